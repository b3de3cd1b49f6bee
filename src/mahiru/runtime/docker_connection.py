"""The connection to a Docker-API engine (Docker, or Podman's compatible service).

The engine is found the way the `docker` CLI finds it (`DOCKER_HOST`, else
`/var/run/docker.sock`), so `DOCKER_HOST=unix:///run/podman/podman.sock`
selects Podman. Engine errors are mapped to Mahiru's error tree in one place,
`DockerConnection._engine`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import docker
import docker.errors
import docker.types
import docker.utils

from mahiru.errors import Conflict, Internal, InvalidInput, MahiruError, NotFound, Unavailable

logger = logging.getLogger("mahiru.runtime")


def docker_available(timeout: float = 3.0) -> bool:
    """Whether a Docker-API engine answers within `timeout` seconds."""
    try:
        client = docker.from_env(timeout=max(1, round(timeout)))
    except (docker.errors.DockerException, OSError):
        return False
    try:
        return bool(client.ping())
    except (docker.errors.DockerException, OSError):
        return False
    finally:
        client.close()


class DockerConnection:
    """A lazily opened engine client.

    Constructing one never fails; every operation raises Unavailable while
    the engine cannot be reached.
    """

    def __init__(self, client: Any | None = None, *, timeout: float = 120.0) -> None:
        self._client = client
        self._timeout = timeout
        self._lock = threading.Lock()

    def _docker(self) -> Any:
        with self._lock:
            if self._client is None:
                with self._engine("connect to the container engine"):
                    self._client = docker.from_env(timeout=max(1, round(self._timeout)))
            return self._client

    @contextmanager
    def _engine(self, action: str, bad_input_is_invalid: bool = False) -> Iterator[None]:
        """Map docker SDK errors raised while doing `action` to Mahiru errors.

        Wrap engine calls only: the SDK's connection errors are OSErrors, so
        wrapping local file work would turn a full disk into Unavailable.
        """
        try:
            yield
        except docker.errors.NotFound as error:
            raise NotFound(f"{action}: {_explain(error)}") from None
        except docker.errors.ImageLoadError as error:
            raise InvalidInput(f"{action}: not a usable image archive: {error}") from None
        except docker.errors.APIError as error:
            status = error.status_code or 0
            if status == 409:
                raise Conflict(f"{action}: {_explain(error)}") from None
            if 400 <= status < 500 or bad_input_is_invalid:
                raise InvalidInput(f"{action}: {_explain(error)}") from None
            raise Internal(f"{action}: the container engine failed: {_explain(error)}") from None
        except (docker.errors.DockerException, OSError) as error:
            raise Unavailable(
                f"{action}: the container engine is not available ({error});"
                " is it running? (scripts/ensure-engine.sh starts one)"
            ) from None

    def _stream(self, chunks: Iterable[bytes], action: str) -> Iterator[bytes]:
        """`chunks`, with engine errors raised while reading them mapped by `_engine`."""
        with self._engine(action):
            yield from chunks

    def _remove_container(self, container: str) -> None:
        """Remove a container we created; never raises, as it runs in `finally` blocks."""
        try:
            with self._engine(f"remove container {container}"):
                self._docker().api.remove_container(container, force=True, v=True)
        except (NotFound, Conflict):
            pass  # gone, or its removal is already in progress
        except MahiruError as error:
            logger.warning(
                "could not remove container", extra={"container": container, "error": str(error)}
            )


def _explain(error: Any) -> str:
    return str(getattr(error, "explanation", None) or error)
