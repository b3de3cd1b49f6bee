"""Step containers on the Docker Engine API: create, run to the end under a deadline, stop.

How a step is set up (mounts, limits, outputs) and judged is `docker_engine`'s
business; this module only drives a container's life on the engine.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from mahiru.errors import Conflict, InvalidInput, MahiruError, NotFound
from mahiru.runtime.docker_connection import logger
from mahiru.runtime.docker_images import DockerImages
from mahiru.runtime.ended_logs import EndedLogs
from mahiru.runtime.outputs import cut
from mahiru.runtime.runner import ContainerInfo
from mahiru.runtime.steps import LABEL_ROLE, ROLE_STEP

#: After a kill, how long the engine gets to report the container stopped.
KILL_GRACE_SECONDS = 10.0
#: How long the engine gets to report the out-of-memory kill of a container it says was
#: killed for no reason it knows (on cgroup v2 it may learn of the OOM after the exit).
OOM_NEWS_SECONDS = 2.0
#: The exit code of a process killed by SIGKILL, as the out-of-memory killer does.
KILLED_EXIT_CODE = 137


class DockerContainers(DockerImages):
    """Images, and step containers run as `user`, on a Docker-API engine.

    Remembers the containers it was asked to stop, so a run that ends
    because of that is told apart from one that failed (`was_stopped`).
    """

    def __init__(
        self,
        client: Any | None = None,
        *,
        timeout: float = 120.0,
        step_user: str,
        log_tail_lines: int,
        scratch_prefix: str,
        scratch_dir: Path | None,
    ) -> None:
        super().__init__(
            client, timeout=timeout, scratch_prefix=scratch_prefix, scratch_dir=scratch_dir
        )
        self._step_user = step_user
        self._log_tail_lines = log_tail_lines
        self._stopped: set[str] = set()
        self._killed: set[str] = set()  # by `_kill`: at a deadline, or over an output limit
        # Step containers being created: the engine lists one before it can remove it.
        self._creating: set[object] = set()
        self._created = threading.Condition()
        self._ended = EndedLogs()

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

    def step_log(self, step_id: str) -> str:
        """The log tail step container `step_id` has written so far; "" once it is gone."""
        try:
            with self._engine(f"read the logs of container {step_id}"):
                raw = self._docker().api.logs(
                    step_id, stdout=True, stderr=True, tail=self._log_tail_lines
                )
        except (NotFound, Conflict):
            return ""
        return bytes(raw).decode("utf-8", errors="replace")

    def step_output(self, step_id: str, start: int) -> bytes | None:
        """The log step container `step_id` has written from byte `start` on; None once
        neither the engine nor this object (for steps that ended lately) has it."""
        try:
            with self._engine(f"read the logs of container {step_id}"):
                raw = bytes(self._docker().api.logs(step_id, stdout=True, stderr=True))
        except (NotFound, Conflict):
            return self._ended.output(step_id, start)
        # Ended meanwhile: what it wrote last may be only in what was kept of it.
        ended = self._ended.output(step_id, start)
        return ended if ended is not None else raw[start:]

    def stop_container(self, container_id: str) -> None:
        """Kill and remove a container (cancelling its step); a missing one is fine."""
        self._stopped.add(container_id)
        if not self._removed_for_stop(container_id):
            # Listed while the engine was still creating it, it is not found until then:
            # once the creations under way now have ended, it is removed if it exists.
            with self._created:
                under_way = set(self._creating)
                self._created.wait_for(
                    lambda: not under_way & self._creating, timeout=self._timeout
                )
            self._removed_for_stop(container_id)

    def _removed_for_stop(self, container_id: str) -> bool:
        """Remove the container (killing it); False if the engine does not know it."""
        try:
            with self._engine(f"stop container {container_id}"):
                self._docker().api.remove_container(container_id, force=True, v=True)
        except NotFound:
            return False
        except Conflict:
            pass  # its removal is already in progress
        return True

    def _was_stopped(self, container: str) -> bool:
        """Whether `stop_container` stopped `container` (asked once: it is forgotten)."""
        stopped = container in self._stopped
        self._stopped.discard(container)
        return stopped

    def _create_step_container(
        self,
        image: str,
        name: str,
        labels: dict[str, str],
        host_config: Any,
        environment: Mapping[str, str] | None = None,
    ) -> str:
        creation = object()
        with self._created:
            self._creating.add(creation)
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
        finally:
            with self._created:
                self._creating.discard(creation)
                self._created.notify_all()
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

    def _start_and_wait(
        self, container: str, timeout: float, log_context: Mapping[str, str]
    ) -> ContainerRun:
        """Run the container to its end, killing it at the deadline."""
        try:
            with self._engine(f"start step container {log_context['container']}"):
                self._docker().api.start(container)
        except (NotFound, Conflict):
            return ContainerRun()  # removed, or being removed, before it could start: cancelled
        except InvalidInput as error:
            # The engine refused the image's command (missing program, say):
            # a broken compute asset, which fails its step like any other.
            logger.warning(
                "step container could not start",
                extra={**log_context, "engine_said": cut(error.message)},
            )
            return ContainerRun(start_error=error.message)
        logger.info("step container started", extra=dict(log_context))
        started, started_at = time.monotonic(), time.time()
        timed_out = self._wait(container, timeout)
        seconds = time.monotonic() - started
        state, logs = self._final_state(container)
        # Killed by this runtime (deadline, output limit) or stopped through it (a cancel, a
        # shutdown): no OOM to look for, and a stopping site must not wait on the engine.
        killed_here = container in self._killed or container in self._stopped
        self._killed.discard(container)
        if state is not None and not killed_here and _killed_for_no_known_reason(state):
            state["OOMKilled"] = self._had_oom_event(container, started_at)
        return ContainerRun(timed_out=timed_out, seconds=seconds, state=state, logs=logs)

    def _had_oom_event(self, container: str, since: float) -> bool:
        """Whether the engine reports an out-of-memory kill of `container` since `since`.

        Docker on cgroup v2 may record a container's exit before the kernel's OOM
        notice reaches it, and then says OOMKilled false for a container the OOM
        killer ended (moby#41929); the notice still arrives, as an `oom` event.
        Waits at most OOM_NEWS_SECONDS for it.
        """
        until = time.time() + OOM_NEWS_SECONDS
        try:
            with self._engine(f"read the events of container {container}"):
                events = self._docker().api.events(
                    since=int(since) - 1,
                    until=int(until) + 1,
                    filters={"type": "container", "container": container, "event": "oom"},
                    decode=True,
                )
                try:
                    return any(True for _ in events)
                finally:
                    events.close()
        except MahiruError:
            return False  # no news is no OOM: the step still fails, for its exit code

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
        self._killed.add(container)
        try:
            with self._engine(f"kill container {container}"):
                self._docker().api.kill(container)
        except (NotFound, Conflict):
            return  # already gone or no longer running
        # If the engine is slow to confirm, removal with force=True finishes the job.
        with contextlib.suppress(docker.errors.DockerException, OSError):
            self._docker().api.wait(container, timeout=KILL_GRACE_SECONDS)

    def _final_state(self, container: str) -> tuple[dict[str, Any] | None, str]:
        """The stopped container's State and the end of its log (kept for `step_output`);
        (None, "") if it is gone.

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
                raw = bytes(self._docker().api.logs(container, stdout=True, stderr=True))
        except (NotFound, Conflict):
            return state, ""
        return state, self._ended.remember(container, raw).decode("utf-8", errors="replace")


def _killed_for_no_known_reason(state: Mapping[str, Any]) -> bool:
    """Whether a stopped container's State says SIGKILL but not that the OOM killer sent it."""
    return state.get("ExitCode") == KILLED_EXIT_CODE and not state.get("OOMKilled")


@dataclass(frozen=True, slots=True)
class ContainerRun:
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
