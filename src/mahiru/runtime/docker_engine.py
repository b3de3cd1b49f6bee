"""`ContainerRuntime` on the Docker Engine API: step containers, isolated and bounded.

With `docker_connection` (the engine client and its error mapping) and
`docker_images` (images and scratch containers), the only modules that talk
to the `docker` SDK.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import docker.utils

from mahiru.errors import Conflict, InvalidInput, MahiruError, NotFound
from mahiru.runtime.docker_connection import logger
from mahiru.runtime.docker_images import DockerImages
from mahiru.runtime.limits import StepLimits
from mahiru.runtime.outputs import cut, discard_outputs, measure_outputs, prepare_output_dirs
from mahiru.runtime.protocol import ContainerInfo
from mahiru.runtime.space import OutputWatch, bounded_folder, unmount_below
from mahiru.runtime.steps import (
    INPUTS_DIR,
    LABEL_ROLE,
    LIVE_DIR,
    OUTPUTS_DIR,
    ROLE_STEP,
    ContainerOutcome,
    check_io_name,
    judge_step,
    tail_lines,
)

#: nobody:nogroup, present in Debian-based images and in mahiru-data-base.
DEFAULT_STEP_USER = "65534:65534"
#: After a kill, how long the engine gets to report the container stopped.
KILL_GRACE_SECONDS = 10.0


class DockerRuntime(DockerImages):
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
        super().__init__(
            client, timeout=timeout, scratch_prefix=scratch_prefix, scratch_dir=scratch_dir
        )
        self._step_user = step_user
        self._log_tail_lines = log_tail_lines
        self._owner: tuple[int, int] | None = None
        self._owner_known = False
        self._stopped: set[str] = set()

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
    ) -> ContainerOutcome:
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
            else:
                # Interrupted between the engine creating it and us learning its id:
                # it is still ours by its name and labels.
                self._remove_if_unstarted(container_name, {**(labels or {}), LABEL_ROLE: ROLE_STEP})
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
        return ContainerOutcome(
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

    def release_output_spaces(self, root: Path) -> int:
        """Unmount the output file systems a crash left below `root`; how many."""
        return unmount_below(root)

    # -- internals ---------------------------------------------------------------

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
            logger.warning(
                "step container could not start",
                extra={**log_context, "engine_said": cut(error.message)},
            )
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


def _bind(source: Path, target: str, *, read_only: bool) -> Any:
    return docker.types.Mount(
        target=target, source=str(source.resolve()), type="bind", read_only=read_only
    )
