"""`ContainerRuntime` on the Docker Engine API: Docker, or Podman's compatible service.

The only module that talks to the `docker` SDK. It finds the engine the way
the `docker` CLI does (`DOCKER_HOST`, else `/var/run/docker.sock`), so
`DOCKER_HOST=unix:///run/podman/podman.sock` selects Podman. Engine errors
are mapped to Mahiru's error tree in one place, `_engine`.

Images are never pulled: every image must already be on the engine or be
loaded from an archive. Scratch containers (created, never started, to copy
files in or out of an image) are named `<scratch_prefix>-<random>`; they are
removed as soon as they are done with, and `remove_scratch_containers`
cleans up after a crash.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import docker.utils

from mahiru.errors import Conflict, Internal, InvalidInput, MahiruError, NotFound, Unavailable
from mahiru.runtime.archives import CHUNK_SIZE, extract_tree, write_file_atomically, write_tree_tar
from mahiru.runtime.limits import StepLimits
from mahiru.runtime.outputs import discard_outputs, measure_outputs, prepare_output_dirs
from mahiru.runtime.protocol import ContainerInfo, ImageConfig
from mahiru.runtime.space import OutputWatch, bounded_folder, unmount_below
from mahiru.runtime.steps import (
    INPUTS_DIR,
    LABEL_ROLE,
    LIVE_DIR,
    OUTPUTS_DIR,
    ROLE_STEP,
    StepResult,
    check_io_name,
    judge_step,
    tail_lines,
)

logger = logging.getLogger("mahiru.runtime")

#: nobody:nogroup, present in Debian-based images and in mahiru-data-base.
DEFAULT_STEP_USER = "65534:65534"
#: After a kill, how long the engine gets to report the container stopped.
KILL_GRACE_SECONDS = 10.0
#: A command for creating a scratch container from an image that has none;
#: it is never run (but becomes the Cmd of an image committed from it).
_PLACEHOLDER_CMD = ["/bin/sh"]


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


class DockerRuntime:
    """Images and isolated step containers on a Docker-API engine.

    Connects lazily: constructing one never fails, and every operation
    raises Unavailable while the engine cannot be reached.
    """

    def __init__(
        self,
        client: Any | None = None,
        *,
        timeout: float = 120.0,
        step_user: str = DEFAULT_STEP_USER,
        log_tail_lines: int = 50,
        scratch_prefix: str = "mahiru-scratch",
        scratch_dir: Path | None = None,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._step_user = step_user
        self._log_tail_lines = log_tail_lines
        self._scratch_prefix = scratch_prefix
        self._scratch_dir = scratch_dir
        self._lock = threading.Lock()
        self._owner: tuple[int, int] | None = None
        self._owner_known = False
        self._stopped: set[str] = set()

    # -- images ---------------------------------------------------------------

    def load_image(self, archive: Path) -> str:
        """Load a `docker save` archive, streamed from disk; returns the image id."""
        if not archive.is_file():
            raise NotFound(f"image archive {archive} does not exist")
        with (
            archive.open("rb") as content,
            self._engine(f"load image archive {archive}", bad_input_is_invalid=True),
        ):
            images = self._docker().images.load(content)
        ids = sorted({image.id for image in images})
        if len(ids) != 1:
            raise InvalidInput(f"{archive}: expected exactly one image, found {len(ids)}")
        return str(ids[0])

    def save_image(self, image: str, dest: Path) -> None:
        """Write `image` as a `docker save` archive to `dest` (temporary file, fsync, rename).

        Saved by name, the archive carries the name; saved by id, it carries none.
        """
        action = f"save image {image}"
        with self._engine(action):
            chunks = self._docker().api.get_image(image, chunk_size=CHUNK_SIZE)
        write_file_atomically(self._stream(chunks, action), dest)

    def has_image(self, image: str) -> bool:
        """Whether the engine has `image` (an id or a name)."""
        try:
            with self._engine(f"inspect image {image}"):
                self._docker().images.get(image)
        except NotFound:
            return False
        return True

    def remove_image(self, image: str) -> None:
        """Remove `image`; a missing image is fine, one in use is a Conflict."""
        try:
            with self._engine(f"remove image {image}"):
                self._docker().images.remove(image)
        except NotFound:
            pass

    def image_id(self, image: str) -> str:
        """The id of `image` (a name or an id); NotFound if the engine lacks it."""
        with self._engine(f"inspect image {image}"):
            return str(self._docker().images.get(image).id)

    # -- copying files out of and into images ---------------------------------

    def extract_data(self, image: str, dest: Path) -> None:
        """Copy the content of `/data` in `image` to `dest` without running the image.

        `dest` must not exist (or be empty) and appears complete or not at
        all. The archive is checked member by member: see `extract_tree`.
        """
        with self._scratch_container(image) as container:
            action = f"copy /data out of image {image}"
            try:
                with self._engine(action):
                    chunks, _ = self._docker().api.get_archive(container, "/data", CHUNK_SIZE)
            except NotFound:
                raise NotFound(f"image {image} has no /data") from None
            extract_tree(self._stream(chunks, action), dest, prefix="data")

    def build_image(
        self,
        base_image: str,
        trees: Mapping[str, Path],
        *,
        config: ImageConfig | None = None,
        labels: Mapping[str, str] | None = None,
        tag: str | None = None,
    ) -> str:
        """A new image: `base_image` plus each host folder at its container path.

        No Dockerfile and nothing pulled: a scratch container from the base
        receives a tar of the folders and is committed. Files replace those of
        the base at the same paths. Returns the new image's id.
        """
        base_config = self._image_config(base_image)
        with tempfile.TemporaryFile(dir=self._scratch_dir) as archive:
            write_tree_tar(trees, archive)
            archive.seek(0)
            repository, version = docker.utils.parse_repository_tag(tag) if tag else (None, None)
            commit = commit_config(base_config, config or ImageConfig(), labels or {})
            with self._scratch_container(base_image, base_config) as container:
                with self._engine(f"copy files into a container of {base_image}"):
                    self._docker().api.put_archive(container, "/", archive)
                with self._engine(f"commit an image from {base_image}"):
                    result = self._docker().api.commit(
                        container, repository=repository, tag=version, conf=commit
                    )
        return str(result["Id"])

    def build_data_image(
        self,
        base_image: str,
        files: Path,
        *,
        labels: Mapping[str, str] | None = None,
        tag: str | None = None,
    ) -> str:
        """A new data image: `base_image` plus the files of `files` under `/data`."""
        return self.build_image(base_image, {"/data": files}, labels=labels, tag=tag)

    # -- steps ------------------------------------------------------------------

    def run_step(
        self,
        compute_image: str,
        inputs: Mapping[str, Path],
        outputs: Sequence[str],
        limits: StepLimits,
        *,
        output_dir: Path,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        live: Mapping[str, Path] | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> StepResult:
        """Run `compute_image` isolated and wait for it, at most `limits.timeout_seconds`.

        Input `i` is bind-mounted read-only at `/mahiru/inputs/<i>`; output
        `o` is the new host directory `output_dir/<o>`, mounted read-write at
        `/mahiru/outputs/<o>`. The container has no network, a read-only root
        file system with a private /tmp (tmpfs), no capabilities, no way to
        gain privileges, a non-root user and CPU, memory (without swap) and
        process limits. It is removed afterwards, whatever happens. A failed
        step leaves no output directories behind.

        Live input `i` (data served by its owner's site while the step runs)
        is the host Unix socket `live[i]`, mounted at `/mahiru/live/<i>.sock`:
        a socket needs no network, so the container can reach that one
        channel and nothing else. `environment` adds variables (the tokens).
        """
        mounts = self._input_mounts(inputs)
        for live_name, socket_path in (live or {}).items():
            check_io_name("input", live_name)
            if not socket_path.is_socket():
                raise NotFound(f"live input {live_name}: {socket_path} is not a socket")
            # Connecting needs write permission on the socket, which a read-only
            # mount keeps; it only stops the container replacing the file.
            mounts.append(_bind(socket_path, f"{LIVE_DIR}/{live_name}.sock", read_only=True))
        names = [check_io_name("output", output) for output in outputs]
        if len(set(names)) != len(names):
            raise InvalidInput(f"duplicate step output names in {names}")
        container_name = name or f"mahiru-step-{uuid.uuid4().hex[:12]}"
        output_dirs = prepare_output_dirs(output_dir, names, self._output_owner())
        for output, path in output_dirs.items():
            mounts.append(_bind(path, f"{OUTPUTS_DIR}/{output}", read_only=False))
        log_context = {"container": container_name, "image": compute_image, **(labels or {})}
        container: str | None = None
        try:
            container = self._create_step_container(
                compute_image,
                container_name,
                {**(labels or {}), LABEL_ROLE: ROLE_STEP},
                self._step_host_config(limits, mounts),
                environment,
            )
            step_container = container
            with OutputWatch(
                output_dirs, limits.max_output_bytes, lambda: self._kill(step_container)
            ) as watch:
                ran = self._start_and_wait(container, limits.timeout_seconds, log_context)
        except BaseException:
            discard_outputs(output_dirs.values())
            raise
        finally:
            if container is not None:
                self._remove_container(container)
        state = ran.state
        cancelled = (state is None and ran.start_error is None) or container in self._stopped
        self._stopped.discard(container)
        exit_code = None if state is None else int(state.get("ExitCode", -1))
        oom_killed = bool(state and state.get("OOMKilled"))
        check = measure_outputs(output_dirs, limits.max_output_bytes)
        exceeded = None
        if watch.exceeded:
            exceeded = (
                f"the step's output exceeds its limit of {limits.max_output_bytes} bytes"
                " (the step was stopped while it ran)"
            )
        elif check.total_bytes > limits.max_output_bytes:
            exceeded = check.problem
        succeeded, reason = judge_step(
            exit_code=exit_code,
            timed_out=ran.timed_out,
            output_exceeded=exceeded,
            oom_killed=oom_killed,
            cancelled=cancelled,
            start_error=ran.start_error,
            timeout_seconds=limits.timeout_seconds,
            memory_bytes=limits.memory_bytes,
            output_problem=check.problem,
        )
        if not succeeded:
            discard_outputs(output_dirs.values())
        logger.info(
            "step container finished",
            extra={**log_context, "succeeded": succeeded, "reason": reason, "seconds": ran.seconds},
        )
        return StepResult(
            succeeded=succeeded,
            reason=reason,
            exit_code=exit_code,
            timed_out=ran.timed_out,
            oom_killed=oom_killed,
            duration_seconds=ran.seconds,
            log_tail=tail_lines(ran.logs, self._log_tail_lines),
            container_name=container_name,
            output_bytes=check.total_bytes if succeeded else 0,
            outputs=dict(output_dirs) if succeeded else {},
        )

    def output_space(self, path: Path, max_bytes: int) -> AbstractContextManager[bool]:
        """A size-bounded folder for a step's outputs (see `mahiru.runtime.space`)."""
        return bounded_folder(path, max_bytes)

    def list_step_containers(self, labels: Mapping[str, str] | None = None) -> list[ContainerInfo]:
        """Step containers (running or not) carrying all of `labels`, oldest first."""
        wanted = {**(labels or {}), LABEL_ROLE: ROLE_STEP}
        filters = {"label": [f"{key}={value}" for key, value in wanted.items()]}
        with self._engine("list step containers"):
            found = self._docker().api.containers(all=True, filters=filters)
        return [
            ContainerInfo(
                id=str(entry["Id"]),
                name=str((entry.get("Names") or ["?"])[0]).lstrip("/"),
                status=str(entry.get("State", "")),
                labels=dict(entry.get("Labels") or {}),
            )
            for entry in sorted(found, key=lambda entry: entry.get("Created", 0))
        ]

    def stop_container(self, container_id: str) -> None:
        """Kill and remove a container (cancelling its step); a missing one is fine."""
        self._stopped.add(container_id)
        try:
            with self._engine(f"stop container {container_id}"):
                self._docker().api.remove_container(container_id, force=True, v=True)
        except NotFound:
            pass
        except Conflict:
            pass  # its removal is already in progress

    def remove_scratch_containers(self) -> int:
        """Remove scratch containers that crashed processes of this host left; how many.

        Each scratch container names the process that made it; those of live
        processes (another site on the same engine, say) are left alone.
        """
        with self._engine("list scratch containers"):
            found = self._docker().api.containers(all=True, filters={"label": LABEL_SCRATCH_OWNER})
        stale = [
            entry["Id"]
            for entry in found
            if _owner_gone(str((entry.get("Labels") or {}).get(LABEL_SCRATCH_OWNER, "")))
        ]
        for container in stale:
            self._remove_container(container)
        return len(stale)

    def release_output_spaces(self, root: Path) -> int:
        """Unmount the output file systems a crash left below `root`; how many."""
        return unmount_below(root)

    # -- internals ---------------------------------------------------------------

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

    def _image_config(self, image: str) -> dict[str, Any]:
        with self._engine(f"inspect image {image}"):
            config = self._docker().api.inspect_image(image).get("Config") or {}
        return dict(config)

    @contextmanager
    def _scratch_container(
        self, image: str, config: Mapping[str, Any] | None = None
    ) -> Iterator[str]:
        """A container of `image`, never started, to copy files in or out; removed after.

        It is known by its (random) name from the start, so that it is
        removed even if an interruption lands while the engine creates it.
        """
        if config is None:
            config = self._image_config(image)
        # The engine refuses to create a container without any command.
        command = None if config.get("Cmd") or config.get("Entrypoint") else _PLACEHOLDER_CMD
        name = f"{self._scratch_prefix}-{uuid.uuid4().hex[:12]}"
        try:
            with self._engine(f"create a scratch container from image {image}"):
                self._docker().api.create_container(
                    image, command=command, name=name, labels={LABEL_SCRATCH_OWNER: _OWNER_TAG}
                )
            yield name
        finally:
            self._remove_container(name)

    def _create_step_container(
        self,
        image: str,
        name: str,
        labels: dict[str, str],
        host_config: Any,
        environment: Mapping[str, str] | None = None,
    ) -> str:
        try:
            with self._engine(f"create a step container from image {image}"):
                created = self._docker().api.create_container(
                    image,
                    name=name,
                    user=self._step_user,
                    labels=labels,
                    environment={**(environment or {}), "HOME": "/tmp"},
                    network_disabled=True,
                    host_config=host_config,
                )
        except Conflict:
            raise  # the name is taken by a container that is not ours to remove
        except BaseException:
            # Interrupted mid-request, the engine may have created it all the same.
            self._remove_if_unstarted(name, labels)
            raise
        return str(created["Id"])

    def _remove_if_unstarted(self, name: str, labels: Mapping[str, str]) -> None:
        """Remove container `name` if it is a never-started one with exactly `labels`."""
        try:
            with self._engine(f"inspect container {name}"):
                found = self._docker().api.inspect_container(name)
        except MahiruError:
            return
        if found["Config"].get("Labels") == labels and found["State"].get("Status") == "created":
            self._remove_container(str(found["Id"]))

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

    def _input_mounts(self, inputs: Mapping[str, Path]) -> list[Any]:
        mounts = []
        for name, path in inputs.items():
            check_io_name("input", name)
            if not path.is_dir():
                raise NotFound(f"input {name}: {path} is not a directory")
            mounts.append(_bind(path, f"{INPUTS_DIR}/{name}", read_only=True))
        return mounts

    def _step_host_config(self, limits: StepLimits, mounts: list[Any]) -> Any:
        return self._docker().api.create_host_config(
            mounts=mounts,
            network_mode="none",
            read_only=True,
            # Counted against the memory limit, so its size needs no limit of its own.
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={limits.memory_bytes},mode=1777"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,
            nano_cpus=limits.nano_cpus,
            pids_limit=limits.pids,
            ipc_mode="private",
            # Only the tail is kept; a chatty step must not fill the engine's disk.
            log_config=docker.types.LogConfig(
                type="json-file", config={"max-size": "10m", "max-file": "1"}
            ),
        )

    def _start_and_wait(
        self, container: str, timeout: float, log_context: Mapping[str, str]
    ) -> _Run:
        """Run the container to its end, killing it at the deadline."""
        try:
            with self._engine(f"start step container {log_context['container']}"):
                self._docker().api.start(container)
        except (NotFound, Conflict):
            return _Run()  # removed, or being removed, before it could start: cancelled
        except InvalidInput as error:
            # The engine refused the image's command (missing program, say):
            # a broken compute asset, which fails its step like any other.
            return _Run(start_error=error.message)
        logger.info("step container started", extra=dict(log_context))
        started = time.monotonic()
        timed_out = self._wait(container, timeout)
        seconds = time.monotonic() - started
        state, logs = self._final_state(container)
        return _Run(timed_out=timed_out, seconds=seconds, state=state, logs=logs)

    def _wait(self, container: str, timeout: float) -> bool:
        """Wait until the container stops, killing it at the deadline; True if it was killed."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill(container)
                return True
            try:
                self._docker().api.wait(container, timeout=remaining)
                return False
            except docker.errors.NotFound:
                return False  # stopped and removed by someone else: a cancellation
            except (docker.errors.DockerException, OSError):
                # The SDK reports a read timeout as an OSError, like a lost
                # connection; the clock tells them apart, the engine the rest.
                if time.monotonic() < deadline - 0.1 and self._running(container):
                    time.sleep(0.5)

    def _running(self, container: str) -> bool:
        try:
            with self._engine(f"inspect container {container}"):
                state = self._docker().api.inspect_container(container)["State"]
        except NotFound:
            return False
        return bool(state.get("Running"))

    def _kill(self, container: str) -> None:
        try:
            with self._engine(f"kill container {container}"):
                self._docker().api.kill(container)
        except (NotFound, Conflict):
            return  # already gone or no longer running
        # If the engine is slow to confirm, removal with force=True finishes the job.
        with contextlib.suppress(docker.errors.DockerException, OSError):
            self._docker().api.wait(container, timeout=KILL_GRACE_SECONDS)

    def _final_state(self, container: str) -> tuple[dict[str, Any] | None, str]:
        """The stopped container's State and its log tail; (None, "") if it is gone.

        A container being removed (stopped by someone else) may still answer
        inspection but no longer gives its logs: that is a Conflict.
        """
        try:
            with self._engine(f"inspect container {container}"):
                state = dict(self._docker().api.inspect_container(container)["State"])
        except NotFound:
            return None, ""
        try:
            with self._engine(f"read the logs of container {container}"):
                raw = self._docker().api.logs(
                    container, stdout=True, stderr=True, tail=self._log_tail_lines
                )
        except (NotFound, Conflict):
            return state, ""
        return state, bytes(raw).decode("utf-8", errors="replace")

    def _output_owner(self) -> tuple[int, int] | None:
        """uid:gid to give output directories, or None where only mode 0777 works."""
        if not self._owner_known:
            user, _, group = self._step_user.partition(":")
            if os.geteuid() == 0 and user.isdigit() and group.isdigit():
                with self._engine("inspect the container engine"):
                    options = self._docker().api.info().get("SecurityOptions") or []
                # Remapped or rootless engines: container ids are not host ids.
                if not any("userns" in o or "rootless" in o for o in options):
                    self._owner = (int(user), int(group))
            self._owner_known = True
        return self._owner


@dataclass(frozen=True, slots=True)
class _Run:
    """How a step container's run ended.

    `state` is the engine's final State; None when the container never ran
    (`start_error` says why, or it was removed first) or was removed while
    running (stopped by someone else: cancelled).
    """

    timed_out: bool = False
    seconds: float = 0.0
    state: dict[str, Any] | None = None
    logs: str = ""
    start_error: str | None = None


def commit_config(
    base: Mapping[str, Any], config: ImageConfig, labels: Mapping[str, str]
) -> dict[str, Any]:
    """The image configuration to commit a scratch container of `base` with.

    The engine fills every field left out here from the scratch container,
    labels included, so the base's settings carry over unless overridden.
    """
    commit: dict[str, Any] = {"Labels": {**(base.get("Labels") or {}), **labels}}
    if config.entrypoint is not None:
        commit["Entrypoint"] = list(config.entrypoint)
    cmd = config.cmd if config.cmd is not None else base.get("Cmd")
    if cmd:
        commit["Cmd"] = list(cmd)
    if config.user is not None:
        commit["User"] = config.user
    if config.workdir is not None:
        commit["WorkingDir"] = config.workdir
    if config.env:
        inherited = [e for e in base.get("Env") or [] if e.split("=", 1)[0] not in config.env]
        commit["Env"] = inherited + [f"{key}={value}" for key, value in config.env.items()]
    return commit


#: Names the process that made a scratch container, so a crashed one's are found.
LABEL_SCRATCH_OWNER = "mahiru.scratch-owner"
_OWNER_TAG = f"{socket.gethostname()}:{os.getpid()}"


def _owner_gone(tag: str) -> bool:
    """Whether the process a scratch container names was of this host and is gone."""
    host, _, pid = tag.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _bind(source: Path, target: str, *, read_only: bool) -> Any:
    return docker.types.Mount(
        target=target, source=str(source.resolve()), type="bind", read_only=read_only
    )


def _explain(error: Any) -> str:
    return str(getattr(error, "explanation", None) or error)
