"""An in-memory `ContainerRuntime` (image engine and step runner) for fast tests of the job
path (this module holds no tests).

An image is a dict of the files under its `/data`. A compute image's program
is a Python callable, registered with `Programs` by the digest of the archive
that carries it (`Programs.compute`): the site loads that archive from its
blob store like any other, and the step runs the callable, which reads its
input folders (and its live inputs, through their channels' sockets) and writes its
output files through a `StepRun`. Archives are
loaded only if they pass the site's ingress check, and saved as sound
`docker save` archives, so results travel between sites as real bytes.

The step rules themselves (which outcome a step has) are the real runtime's
(`judge_step`, `measure_outputs`); only the container is simulated. Nothing
here sleeps: a program that must wait blocks on an event until the test sets
it or its container is stopped, and simulated time (`StepRun.sleep`) only
counts against the step's time limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import itertools
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mahiru.data_archives import extract_data_files
from mahiru.errors import NotFound, Unavailable
from mahiru.runtime.ended_logs import EndedLogs
from mahiru.runtime.limits import StepLimits
from mahiru.runtime.outputs import discard_outputs, measure_outputs, prepare_output_dirs
from mahiru.runtime.protocol import (
    COMPUTE_BASE_IMAGE,
    DATA_BASE_IMAGE,
    ContainerInfo,
    ImageConfig,
    ScratchLeftovers,
)
from mahiru.runtime.steps import (
    LABEL_ROLE,
    ROLE_STEP,
    ContainerOutcome,
    check_io_name,
    judge_step,
    live_environment,
    tail_lines,
)
from mahiru.storage.image_check import ImageCheck
from tests.support.images import add_file, image_bytes, tar_bytes

#: A step's program: reads and writes through the `StepRun`; returns its exit code.
Program = Callable[["StepRun"], int]

#: How long a blocked program waits for its release at most (a test that forgets to
#: release one fails instead of hanging).
BLOCK_LIMIT = 10.0


class _Stopped(Exception):
    """The step's container was stopped (cancelled, or its site shut down)."""


class _TimedOut(Exception):
    """The step used more (simulated) time than its limit."""


class _OutputFull(Exception):
    """The step wrote past its output limit; the watch stops it, as the real one does."""


@dataclass
class StepRun:
    """What a running program sees: its inputs, its outputs, its environment and a log."""

    inputs: Mapping[str, Path]
    outputs: Mapping[str, Path]
    environment: Mapping[str, str]
    limits: StepLimits
    labels: Mapping[str, str]
    stopped: threading.Event
    log: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    #: The socket of each live input's channel (mounted into a real container).
    live: Mapping[str, Path] = field(default_factory=dict)

    def read(self, name: str, path: str = "payload") -> bytes:
        """The bytes of file `path` of input `name`."""
        return (self.inputs[name] / path).read_bytes()

    def live_token(self, name: str) -> str:
        """The token of live input `name`, from the step's environment."""
        key = next(k for k in live_environment(name, "") if k.endswith("_TOKEN"))
        return self.environment[key]

    def read_live(self, name: str, path: str = "") -> tuple[int, bytes]:
        """GET file `path` of live input `name` (its listing without `path`) as a program in a
        container does: over the channel's socket, with the step's token; status and body."""
        target = f"/live/{self.live_token(name)}/files" + (f"/{path}" if path else "")
        connection = _UnixConnection(self.live[name])
        try:
            connection.request("GET", target)
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def write(self, output: str, path: str, data: bytes) -> None:
        """Write a file of output `output`; a write past the output limit stops the step."""
        written = sum(
            f.stat().st_size for d in self.outputs.values() for f in d.rglob("*") if f.is_file()
        )
        if written + len(data) > self.limits.max_output_bytes:
            raise _OutputFull()
        target = self.outputs[output] / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def sleep(self, seconds: float) -> None:
        """Pass `seconds` of simulated time; past the time limit the step is killed."""
        self.elapsed += seconds
        if self.elapsed > self.limits.timeout_seconds:
            raise _TimedOut()

    def block(self, release: threading.Event) -> None:
        """Wait until `release` is set; raises (ending the program) if the container stops."""
        deadline = time.monotonic() + BLOCK_LIMIT
        while not release.is_set() and not self.stopped.is_set():
            if time.monotonic() > deadline:
                raise AssertionError("a blocked step was never released")
            release.wait(0.002)  # short: a stop must end the wait soon too
        if self.stopped.is_set():
            raise _Stopped()


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (a live channel), bounded as a blocked program is."""

    def __init__(self, path: Path) -> None:
        super().__init__("live", timeout=BLOCK_LIMIT)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(BLOCK_LIMIT)
        # A test's temporary folder can make the path longer than a socket address may
        # be (107 bytes); reached through an open handle of its folder, it stays short.
        folder = os.open(self._path.parent, os.O_PATH | os.O_DIRECTORY)
        try:
            self.sock.connect(f"/proc/self/fd/{folder}/{self._path.name}")
        finally:
            os.close(folder)


class Programs:
    """The programs of compute images, by image id; shared by every fake runtime of a network."""

    def __init__(self, programs: Mapping[str, Program] | None = None) -> None:
        self._programs: dict[str, Program] = dict(programs or {})

    def compute(self, name: str, program: Program) -> bytes:
        """A compute image archive running `program`; its `name` makes it unique."""
        data = archive_of({"program": name.encode()})
        self._programs[image_id_of(data)] = program
        return data

    def get(self, image: str) -> Program | None:
        """The program of compute image `image`, if it has one."""
        return self._programs.get(image)

    def copy(self) -> Programs:
        """Programs with the same images, changed independently (`compute` again to change one)."""
        return Programs(self._programs)


def image_id_of(archive: bytes) -> str:
    """The id the fake gives the image in `archive`: the archive's sha256."""
    return "sha256:" + hashlib.sha256(archive).hexdigest()


def archive_of(files: Mapping[str, bytes]) -> bytes:
    """A sound `docker save` archive with `files` under `/data` (deterministic bytes)."""

    def members(archive: tarfile.TarFile) -> None:
        folder = tarfile.TarInfo("data")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        for name, content in sorted(files.items()):
            add_file(archive, f"data/{name}", content)

    return image_bytes(tar_bytes(members))


@dataclass
class _Container:
    info: ContainerInfo
    stopped: threading.Event
    log: list[str] = field(default_factory=list)


class FakeRuntime:
    """The `ContainerRuntime` of one fake site: images in memory, steps as callables.

    `down` makes every call raise Unavailable (an engine that cannot be
    reached); `broken` is raised by every `run_step` (an engine failing in a way
    nobody mapped to a Mahiru error); `steps_run` counts the steps started, by
    their `mahiru.step` label.
    """

    def __init__(self, programs: Programs) -> None:
        self.programs = programs
        self.down = False
        self.broken: Exception | None = None
        self.steps_run: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        base: dict[str, bytes] = {}
        self._images: dict[str, dict[str, bytes]] = {DATA_BASE_IMAGE: base}
        self._images[COMPUTE_BASE_IMAGE] = base
        self._containers: dict[str, _Container] = {}
        self._spaces: dict[Path, int] = {}
        self._ended = EndedLogs()

    def _engine(self) -> None:
        if self.down:
            raise Unavailable("the container engine cannot be reached (fake engine down)")

    def _files(self, image: str) -> dict[str, bytes]:
        with self._lock:
            files = self._images.get(image)
        if files is None:
            raise NotFound(f"no image {image}")
        return files

    # -- images ---------------------------------------------------------------

    def load_image(self, archive: Path) -> str:
        """Check the archive as the ingress gate does, then keep its `/data` files."""
        self._engine()
        data = archive.read_bytes()
        check = ImageCheck()
        check.feed(data)
        check.finish()
        with tempfile.TemporaryDirectory() as temp:
            extract_data_files(archive, Path(temp))
            files = {
                str(p.relative_to(temp)): p.read_bytes()
                for p in Path(temp).rglob("*")
                if p.is_file()
            }
        image = image_id_of(data)
        with self._lock:
            self._images[image] = files
        return image

    def save_image(self, image: str, dest: Path) -> None:
        """Write `image` as a sound archive, atomically."""
        self._engine()
        partial = dest.with_name(f".{dest.name}.partial")
        partial.write_bytes(archive_of(self._files(image)))
        partial.replace(dest)

    def has_image(self, image: str) -> bool:
        """Whether the image is kept."""
        self._engine()
        with self._lock:
            return image in self._images

    def image_id(self, image: str) -> str:
        """The image's id (names are ids here)."""
        self._files(image)
        return image

    def remove_image(self, image: str) -> None:
        """Forget the image (the base images stay)."""
        self._engine()
        with self._lock:
            if image not in (DATA_BASE_IMAGE, COMPUTE_BASE_IMAGE):
                self._images.pop(image, None)

    def extract_data(self, image: str, dest: Path) -> None:
        """Write the image's `/data` files to the new folder `dest`."""
        self._engine()
        files = self._files(image)
        dest.mkdir(parents=True)
        for name, content in files.items():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(content)

    def _new_image(self, files: dict[str, bytes], tag: str | None) -> str:
        image = tag or f"sha256:{next(self._ids):064x}"
        with self._lock:
            self._images[image] = files
        return image

    def build_image(
        self,
        base_image: str,
        trees: Mapping[str, Path],
        *,
        config: ImageConfig | None = None,
        labels: Mapping[str, str] | None = None,
        tag: str | None = None,
    ) -> str:
        """The base's files plus the files of each tree placed under `/data` (others ignored)."""
        self._engine()
        files = dict(self._files(base_image))
        for where, tree in trees.items():
            if where.rstrip("/") == "/data":
                files.update(_read_tree(tree))
        return self._new_image(files, tag)

    def build_data_image(
        self,
        base_image: str,
        files: Path,
        *,
        labels: Mapping[str, str] | None = None,
        tag: str | None = None,
    ) -> str:
        """The base's `/data` files with those of `files` laid over them."""
        self._engine()
        return self._new_image({**self._files(base_image), **_read_tree(files)}, tag)

    # -- steps ----------------------------------------------------------------

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
        """Run the image's program in this thread, and judge it as the real runtime does."""
        self._engine()
        if self.broken is not None:
            raise self.broken
        self._files(compute_image)
        program = self.programs.get(compute_image)
        if program is None:
            raise NotFound(f"image {compute_image} has no program (not a compute image)")
        names = [check_io_name("output", output) for output in outputs]
        dirs = prepare_output_dirs(output_dir, names, None)
        container_id = f"fake-{next(self._ids)}"
        all_labels = {**(labels or {}), LABEL_ROLE: ROLE_STEP}
        container = _Container(
            ContainerInfo(container_id, name or container_id, "running", all_labels),
            threading.Event(),
        )
        step = all_labels.get("mahiru.step", "")
        with self._lock:
            self._containers[container_id] = container
            self.steps_run[step] = self.steps_run.get(step, 0) + 1
        run = StepRun(
            inputs,
            dirs,
            dict(environment or {}),
            limits,
            all_labels,
            container.stopped,
            log=container.log,
            live=dict(live or {}),
        )
        exit_code: int | None = None
        timed_out = exceeded = False
        try:
            exit_code = program(run)
        except _Stopped:
            pass
        except _TimedOut:
            timed_out = True
        except _OutputFull:
            exceeded = True
        except Exception as error:  # a crashing program is a failing step, as in a container
            run.log.append(f"Traceback: {type(error).__name__}: {error}")
            exit_code = 1
        finally:
            self._ended.remember(container_id, _log_bytes(container.log))
            with self._lock:
                self._containers.pop(container_id, None)
        check = measure_outputs(dirs, limits.max_output_bytes)
        over = None
        if exceeded:
            over = (
                f"the step's output exceeds its limit of {limits.max_output_bytes} bytes"
                " (the step was stopped while it ran)"
            )
        elif check.total_bytes > limits.max_output_bytes:
            over = check.problem
        succeeded, reason = judge_step(
            exit_code=None if timed_out or exceeded else exit_code,
            timed_out=timed_out,
            oom_killed=False,
            cancelled=container.stopped.is_set(),
            timeout_seconds=limits.timeout_seconds,
            memory_bytes=limits.memory_bytes,
            output_problem=check.problem,
            output_exceeded=over,
        )
        if not succeeded:
            discard_outputs(dirs.values())
        return ContainerOutcome(
            succeeded=succeeded,
            reason=reason,
            exit_code=exit_code,
            timed_out=timed_out,
            oom_killed=False,
            duration_seconds=run.elapsed,
            log_tail=tail_lines("\n".join(run.log), 20),
            container_name=container.info.name,
            output_bytes=check.total_bytes if succeeded else 0,
            outputs=dict(dirs) if succeeded else {},
        )

    @contextlib.contextmanager
    def _space(self, path: Path, max_bytes: int) -> Iterator[bool]:
        path.mkdir(parents=True)
        with self._lock:
            self._spaces[path] = max_bytes
        try:
            yield False  # bounded by the step's writes (`StepRun.write`), not by construction
        finally:
            with self._lock:
                self._spaces.pop(path, None)
            shutil.rmtree(path, ignore_errors=True)

    def output_space(self, path: Path, max_bytes: int) -> contextlib.AbstractContextManager[bool]:
        """A new folder for a step's outputs, removed on leaving."""
        return self._space(path, max_bytes)

    def output_spaces(self) -> dict[Path, int]:
        """The output spaces in use, and their bounds."""
        with self._lock:
            return dict(self._spaces)

    def release_output_spaces(self, root: Path) -> int:
        """Forget the spaces below `root` (a crashed site's); how many there were."""
        with self._lock:
            left = [p for p in self._spaces if p.is_relative_to(root)]
            for path in left:
                del self._spaces[path]
        return len(left)

    def remove_scratch_leftovers(self) -> ScratchLeftovers:
        """The fake makes no scratch containers, and its images die with it."""
        self._engine()
        return ScratchLeftovers()

    def list_step_containers(self, labels: Mapping[str, str] | None = None) -> list[ContainerInfo]:
        """The running step containers carrying all of `labels`."""
        self._engine()
        wanted = {**(labels or {}), LABEL_ROLE: ROLE_STEP}
        with self._lock:
            return [
                c.info
                for c in self._containers.values()
                if all(c.info.labels.get(k) == v for k, v in wanted.items())
            ]

    def step_log(self, step_id: str) -> str:
        """What the running step's program has logged so far; "" once it has ended."""
        self._engine()
        with self._lock:
            container = self._containers.get(step_id)
        return "" if container is None else "\n".join(container.log)

    def step_output(self, step_id: str, start: int) -> bytes | None:
        """What the step's program has logged from byte `start` on, one line each; kept a
        while after it ended, like the real runners'."""
        self._engine()
        with self._lock:
            container = self._containers.get(step_id)
        if container is None:
            return self._ended.output(step_id, start)
        return _log_bytes(container.log)[start:]

    def stop_container(self, container_id: str) -> None:
        """Stop a running step (its program's next `block` ends it); a missing one is fine."""
        self._engine()
        with self._lock:
            container = self._containers.pop(container_id, None)
        if container is not None:
            container.stopped.set()


def _log_bytes(log: list[str]) -> bytes:
    return "".join(f"{line}\n" for line in list(log)).encode()


def _read_tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
