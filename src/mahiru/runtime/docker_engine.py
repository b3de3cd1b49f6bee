"""`ContainerRuntime` on the Docker Engine API: step containers, isolated and bounded.

With `docker_connection` (the engine client and its error mapping),
`docker_images` (images and scratch containers) and `docker_containers` (a
step container's life on the engine), the only modules that talk to the
`docker` SDK. This one sets a step up (mounts, limits, output folders) and
judges how it went.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.types

from mahiru.errors import NotFound
from mahiru.runtime.docker_connection import logger
from mahiru.runtime.docker_containers import ContainerRun, DockerContainers
from mahiru.runtime.limits import StepLimits
from mahiru.runtime.outputs import discard_outputs, judge_outputs, prepare_output_dirs
from mahiru.runtime.space import EmptyFileSystems, OutputWatch, bounded_folder, unmount_below
from mahiru.runtime.steps import (
    INPUTS_DIR,
    LABEL_ROLE,
    LIVE_DIR,
    OUTPUTS_DIR,
    ROLE_STEP,
    ContainerOutcome,
    check_io_name,
    judge_step,
    output_names,
    tail_lines,
)

#: nobody:nogroup, present in Debian-based images and in mahiru-data-base.
DEFAULT_STEP_USER = "65534:65534"


class DockerRuntime(DockerContainers):
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
            client,
            timeout=timeout,
            step_user=step_user,
            log_tail_lines=log_tail_lines,
            scratch_prefix=scratch_prefix,
            scratch_dir=scratch_dir,
        )
        self._owner: tuple[int, int] | None = None
        self._owner_known = False
        self._file_systems = EmptyFileSystems()

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
        mounts = [*_input_mounts(inputs), *_live_mounts(live or {})]
        names = output_names(outputs)
        container_name = name or f"mahiru-step-{uuid.uuid4().hex[:12]}"
        output_dirs = prepare_output_dirs(output_dir, names, self._output_owner())
        for output, path in output_dirs.items():
            mounts.append(_bind(path, f"{OUTPUTS_DIR}/{output}", read_only=False))
        log_context = {"container": container_name, "image": compute_image, **(labels or {})}
        run = self._run_watched(
            compute_image,
            container_name,
            {**(labels or {}), LABEL_ROLE: ROLE_STEP},
            environment,
            limits,
            mounts,
            output_dirs,
            log_context,
        )
        outcome = _judge(run, container_name, limits, output_dirs, self._log_tail_lines)
        if not outcome.succeeded:
            discard_outputs(output_dirs.values())
        logger.info(
            "step container finished",
            extra={
                **log_context,
                "succeeded": outcome.succeeded,
                "reason": outcome.reason,
                "seconds": outcome.duration_seconds,
            },
        )
        return outcome

    def output_space(self, path: Path, max_bytes: int) -> AbstractContextManager[bool]:
        """A size-bounded folder for a step's outputs (see `mahiru.runtime.space`)."""
        return bounded_folder(path, max_bytes, self._file_systems)

    def release_output_spaces(self, root: Path) -> int:
        """Unmount the output file systems a crash left below `root`; how many."""
        return unmount_below(root)

    # -- internals ---------------------------------------------------------------

    def _run_watched(
        self,
        image: str,
        name: str,
        labels: dict[str, str],
        environment: Mapping[str, str] | None,
        limits: StepLimits,
        mounts: list[Any],
        output_dirs: Mapping[str, Path],
        log_context: Mapping[str, str],
    ) -> _WatchedRun:
        """Create the step container, run it to its end while its outputs' size is watched,
        and remove it, whatever happens; if anything fails on the way, the outputs go too."""
        container: str | None = None
        try:
            container = self._create_step_container(
                image, name, labels, self._step_host_config(limits, mounts), environment
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
                self._remove_if_unstarted(name, labels)
        never_ran = ran.state is None and ran.start_error is None
        cancelled = self._was_stopped(container) or never_ran
        return _WatchedRun(ran, cancelled, watch.exceeded)

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
class _WatchedRun:
    """How a step container's run ended, whether it was cancelled (stopped by someone else,
    or removed before it ran), and whether its outputs' size stopped it."""

    run: ContainerRun
    cancelled: bool
    stopped_for_size: bool


def _judge(
    watched: _WatchedRun,
    container_name: str,
    limits: StepLimits,
    output_dirs: Mapping[str, Path],
    log_tail_lines: int,
) -> ContainerOutcome:
    """The outcome of a finished run: its exit, its limits and its outputs, judged."""
    ran = watched.run
    state = ran.state
    exit_code = None if state is None else int(state.get("ExitCode", -1))
    oom_killed = bool(state and state.get("OOMKilled"))
    check, exceeded = judge_outputs(
        output_dirs, limits.max_output_bytes, stopped_for_size=watched.stopped_for_size
    )
    succeeded, reason = judge_step(
        exit_code=exit_code,
        timed_out=ran.timed_out,
        output_exceeded=exceeded,
        oom_killed=oom_killed,
        cancelled=watched.cancelled,
        start_error=ran.start_error,
        timeout_seconds=limits.timeout_seconds,
        memory_bytes=limits.memory_bytes,
        output_problem=check.problem,
    )
    return ContainerOutcome(
        succeeded=succeeded,
        reason=reason,
        exit_code=exit_code,
        timed_out=ran.timed_out,
        oom_killed=oom_killed,
        duration_seconds=ran.seconds,
        log_tail=tail_lines(ran.logs, log_tail_lines),
        container_name=container_name,
        output_bytes=check.total_bytes if succeeded else 0,
        outputs=dict(output_dirs) if succeeded else {},
    )


def _input_mounts(inputs: Mapping[str, Path]) -> list[Any]:
    """Input `i`, a host folder, read-only at `/mahiru/inputs/<i>`."""
    mounts = []
    for name, path in inputs.items():
        check_io_name("input", name)
        if not path.is_dir():
            raise NotFound(f"input {name}: {path} is not a directory")
        mounts.append(_bind(path, f"{INPUTS_DIR}/{name}", read_only=True))
    return mounts


def _live_mounts(live: Mapping[str, Path]) -> list[Any]:
    """Live input `i`, a host Unix socket, at `/mahiru/live/<i>.sock`."""
    mounts = []
    for name, socket_path in live.items():
        check_io_name("input", name)
        if not socket_path.is_socket():
            raise NotFound(f"live input {name}: {socket_path} is not a socket")
        # Connecting needs write permission on the socket, which a read-only
        # mount keeps; it only stops the container replacing the file.
        mounts.append(_bind(socket_path, f"{LIVE_DIR}/{name}.sock", read_only=True))
    return mounts


def _bind(source: Path, target: str, *, read_only: bool) -> Any:
    return docker.types.Mount(
        target=target, source=str(source.resolve()), type="bind", read_only=read_only
    )
