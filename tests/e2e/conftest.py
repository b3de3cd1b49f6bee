"""Fixtures for the end-to-end tests that need a real container engine.

`container_runtime` skips the test only when no engine answers; missing base
images are built (scripts/build-base-image.sh), never pulled. Tests that use
it are checked afterwards for step or scratch containers left behind (each
pytest-xdist worker checks for its own). The costly images and archives are
built once per test run and shared by the workers (tests/support/shared.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.support.leaks import LEAK_MARKER, LEAK_VARIANTS
from tests.support.shared import KILLED_FILE_ENV, killed_elsewhere, run_folder, run_lock
from tests.support.sites import made_by_this_process

from mahiru.runtime import DockerRuntime, ImageConfig, docker_available
from mahiru.runtime.assets import COMPUTE_BASE_IMAGE, DATA_BASE_IMAGE, build_scenario_assets

ROOT = Path(__file__).resolve().parents[2]
#: Marks every step container of this test session, so leftovers are ours.
SESSION_LABEL = "mahiru.test-session"
SESSION_ID = uuid.uuid4().hex[:12]

#: A test-only compute program: argv[1] picks what it does. Stdlib only.
PROBE_SOURCE = textwrap.dedent(
    """
    import errno, json, os, socket, sys, time
    from pathlib import Path

    IN = Path("/mahiru/inputs/input0")
    OUT = Path("/mahiru/outputs/output0")


    def fail():
        for number in range(1, 101):
            print(f"line {number}", flush=True)
        # The engine reads stdout and stderr separately: let stdout land first.
        time.sleep(0.5)
        print("failing on purpose", file=sys.stderr)
        return 3


    def hang():
        print("sleeping", flush=True)
        time.sleep(3600)


    def network():
        print("interfaces:", sorted(os.listdir("/sys/class/net")), flush=True)
        port = int((IN / "port").read_text())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=3).close()
        except OSError as error:
            print("connect failed:", error)
            return 4
        print("connected")
        return 0


    def huge():
        with open(OUT / "big.bin", "wb") as out:
            for _ in range(3):
                out.write(b"x" * (1024 * 1024))
        return 0


    def flood():
        # Three times a 64 MiB limit, a MiB at a time; when the room runs out,
        # wait to be stopped instead of exiting.
        try:
            with open(OUT / "flood.bin", "wb") as out:
                for _ in range(192):
                    out.write(b"x" * (1024 * 1024))
                    out.flush()
                    time.sleep(0.01)
        except OSError as error:
            print("write failed:", error, flush=True)
            time.sleep(60)
        return 0


    def symlink():
        os.symlink("/etc/passwd", OUT / "passwd")
        return 0


    def leak(variant):
        # Names that carry the step's data, on entries that are not output.
        mark = "@LEAK_MARKER@"
        name = (mark + "-") * 40
        if variant == "symlink":
            os.symlink("/etc/passwd", OUT / name[:250])
        elif variant == "fifo":
            os.mkfifo(OUT / name[:250])
        elif variant == "socket":  # a socket's path holds at most 107 bytes
            socket.socket(socket.AF_UNIX).bind(str(OUT / name[:80]))
        elif variant == "dirlink":
            os.symlink("/etc", OUT / name[:250], target_is_directory=True)
        elif variant == "deep":
            folder = OUT
            for _ in range(14):  # ~3.8 KiB of path: just under PATH_MAX
                folder = folder / name[:250]
                folder.mkdir()
            os.symlink("/etc/passwd", folder / name[:250])
        elif variant == "bytes":
            os.symlink("/etc/passwd", bytes(OUT) + b"/" + mark.encode() + b"\\xff\\xfe\\n\\x1b[31m")
        return 0


    def hog():
        hoard = []
        while True:
            hoard.append(b"x" * (16 * 1024 * 1024))
            print("holding", len(hoard) * 16, "MiB", flush=True)


    def error_of(action):
        try:
            action()
        except OSError as error:
            return errno.errorcode.get(error.errno, str(error.errno))
        return None


    def read(path):
        try:
            return Path(path).read_text().strip()
        except OSError:
            return None


    def isolation():
        status = dict(
            line.split(":\\t", 1) for line in Path("/proc/self/status").read_text().splitlines()
        )
        quota, period = read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), read(
            "/sys/fs/cgroup/cpu/cpu.cfs_period_us"
        )
        report = {
            "uid": os.getuid(),
            "gid": os.getgid(),
            "cap_eff": status["CapEff"].strip(),
            "no_new_privs": status["NoNewPrivs"].strip(),
            "interfaces": sorted(os.listdir("/sys/class/net")),
            "write_root": error_of(lambda: Path("/probe").write_text("x")),
            "write_tmp": error_of(lambda: Path("/tmp/probe").write_text("x")),
            "write_input_new": error_of(lambda: (IN / "new.txt").write_text("x")),
            "write_input_existing": error_of(lambda: (IN / "data.json").write_text("x")),
            "remove_input": error_of(lambda: (IN / "data.json").unlink()),
            "input": read(IN / "data.json"),
            "memory_limit": read("/sys/fs/cgroup/memory/memory.limit_in_bytes")
            or read("/sys/fs/cgroup/memory.max"),
            "pids_max": read("/sys/fs/cgroup/pids/pids.max") or read("/sys/fs/cgroup/pids.max"),
            "cpu": f"{quota} {period}" if quota else read("/sys/fs/cgroup/cpu.max"),
        }
        (OUT / "report.json").write_text(json.dumps(report))
        print(json.dumps(report))
        return 0


    sys.exit(globals()[sys.argv[1]](*sys.argv[2:]))
    """
).replace("@LEAK_MARKER@", LEAK_MARKER)
PROBE_MODES = (
    "fail",
    "hang",
    "network",
    "huge",
    "flood",
    "symlink",
    "hog",
    "isolation",
    *(f"leak {variant}" for variant in LEAK_VARIANTS),
)


@pytest.fixture(scope="session")
def container_runtime(tmp_path_factory: pytest.TempPathFactory) -> DockerRuntime:
    """A runtime on the local engine, with the base images present; skips if no engine
    answers, except in CI (CI=true), where a missing engine fails the run."""
    if not docker_available():
        why = (
            "no container engine answers (DOCKER_HOST, else /var/run/docker.sock);"
            " start one with scripts/ensure-engine.sh"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{why} (in CI the end-to-end tests must run)")
        pytest.skip(why)
    runtime = DockerRuntime(scratch_prefix=f"mahiru-test-{SESSION_ID}")
    with run_lock(tmp_path_factory, "base-images"):  # one build, not one per worker
        if not (runtime.has_image(DATA_BASE_IMAGE) and runtime.has_image(COMPUTE_BASE_IMAGE)):
            built = subprocess.run(
                ["bash", str(ROOT / "scripts" / "build-base-image.sh")],
                capture_output=True,
                text=True,
                check=False,
            )
            if built.returncode != 0:
                pytest.fail(f"scripts/build-base-image.sh failed:\n{built.stderr[-3000:]}")
    return runtime


@pytest.fixture
def step_labels() -> dict[str, str]:
    """Labels for the step containers of a test: they tie them to this session."""
    return {SESSION_LABEL: SESSION_ID, "mahiru.job": f"job-{uuid.uuid4().hex[:8]}"}


@pytest.fixture(autouse=True)
def _no_containers_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used the engine, none of its step or scratch containers remain."""
    yield
    if "container_runtime" not in request.fixturenames:
        return
    runtime: DockerRuntime = request.getfixturevalue("container_runtime")
    # Only this process's: another worker's running steps are never touched.
    steps = [
        container
        for container in runtime.list_step_containers()
        if made_by_this_process(container, (SESSION_LABEL, SESSION_ID))
    ]
    for container in steps:
        runtime.stop_container(container.id)
    # Output images a killed site left are removed too, but are no leak of the test.
    scratch = runtime.remove_scratch_leftovers()
    assert not steps, f"step containers left behind: {[c.name for c in steps]}"
    # A process another worker SIGKILLed is that worker's to account for (its restart
    # removes what it left); any other gone process's scratch container is a leak.
    others = killed_elsewhere()
    left = [owner for owner in scratch.owners if int(owner.rpartition(":")[2]) not in others]
    assert not left, f"scratch containers left behind by {left}"


@pytest.fixture(scope="session", autouse=True)
def _kills_noted(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The workers of a run note the processes they SIGKILL in one file (`note_kill`)."""
    os.environ.setdefault(KILLED_FILE_ENV, str(run_folder(tmp_path_factory) / "killed-pids"))


@pytest.fixture(scope="session")
def scenario_archives(
    container_runtime: DockerRuntime, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The scenario asset archives, built once per test run (pytest-xdist workers share them)."""
    with run_lock(tmp_path_factory, "assets") as folder:
        # The first worker builds them; the others find them up to date (by their stamps).
        return build_scenario_assets(container_runtime, folder)


@pytest.fixture(scope="session")
def probe_images(
    container_runtime: DockerRuntime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """An image per probe mode (see PROBE_SOURCE), built once per test run (pytest-xdist
    workers share them) and removed once no worker uses them any more."""
    with run_lock(tmp_path_factory, "probe") as folder:
        images = _take_probe_images(container_runtime, folder)
    yield images
    with run_lock(tmp_path_factory, "probe") as folder:
        _drop_probe_images(container_runtime, folder)


@pytest.fixture(scope="session")
def probe_archive(
    container_runtime: DockerRuntime,
    probe_images: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], Path]:
    """The archive (`docker save`) of a probe mode's image, for uploading as an asset:
    written once per test run, when first asked for, and shared by the workers (a module
    must not change it)."""

    def archive(mode: str) -> Path:
        image = probe_images[mode]
        with run_lock(tmp_path_factory, "probe-archives") as folder:
            # Named by the image: the images are built again once no worker used them.
            path = folder / f"{image.removeprefix('sha256:')}.tar"
            if not path.exists():
                folder.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(".partial")
                container_runtime.save_image(image, partial)
                partial.rename(path)
            return path

    return archive


def _take_probe_images(runtime: DockerRuntime, folder: Path) -> dict[str, str]:
    """The probe images of this run, built if no worker has them; counts this one as a user.
    The caller holds the run's "probe" lock."""
    listing, users = folder / "images.json", folder / "users"
    if listing.exists():
        images: dict[str, str] = json.loads(listing.read_text())
    else:
        program = folder / "program"
        program.mkdir(parents=True, exist_ok=True)
        (program / "probe.py").write_text(PROBE_SOURCE)
        images = {
            mode: runtime.build_image(
                COMPUTE_BASE_IMAGE,
                {"/opt/probe": program},
                # No session label: every worker runs these, and a container inherits it.
                config=ImageConfig(cmd=("python3", "-u", "/opt/probe/probe.py", *mode.split())),
            )
            for mode in PROBE_MODES
        }
        listing.write_text(json.dumps(images))
    users.write_text(str(int(users.read_text()) + 1 if users.exists() else 1))
    return images


def _drop_probe_images(runtime: DockerRuntime, folder: Path) -> None:
    """Count one user less; the last one removes the images. The caller holds the lock."""
    listing, users = folder / "images.json", folder / "users"
    left = int(users.read_text()) - 1
    if left:
        users.write_text(str(left))
        return
    for image in json.loads(listing.read_text()).values():
        runtime.remove_image(image)
    listing.unlink()
    users.unlink()
