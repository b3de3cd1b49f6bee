"""How long the container runtime takes for what a job does: steps, image builds, save/load.

Usage: .venv/bin/python benchmarks/runtime.py [--repeat N] [--assets DIR] [--quick]

Needs a running engine and the base images (scripts/build-assets.sh makes
sure of both). Builds the scenario assets into a temporary folder, then times
each operation N times (default 5) and prints the median and the slowest.
Everything it creates is removed afterwards. With `--assets DIR` the scenario
assets are built in DIR instead (kept, and only rebuilt when their sources
change). `--quick` times each operation once (a smoke test).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mahiru.runtime import DockerRuntime, StepLimits, docker_available
from mahiru.runtime.assets import (
    INPUT_ASSET,
    MINMAX_ASSET,
    OUTPUT_BASE_ASSET,
    build_scenario_assets,
)

LIMITS = StepLimits(cpus=1.0, memory_bytes=256 << 20, timeout_seconds=60, max_output_bytes=1 << 20)


def timed(label: str, repeat: int, action: Callable[[int], object]) -> None:
    """Run `action(i)` `repeat` times and print the median and the maximum duration."""
    seconds = []
    for attempt in range(repeat):
        start = time.perf_counter()
        action(attempt)
        seconds.append(time.perf_counter() - start)
    print(f"{label:<44} median {statistics.median(seconds):6.3f} s   max {max(seconds):6.3f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--assets", type=Path, help="where to build (or find) the asset archives")
    parser.add_argument("--quick", action="store_true", help="each operation once (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.repeat = 1
    if not docker_available():
        print("no container engine answers; run scripts/ensure-engine.sh", file=sys.stderr)
        return 4
    runtime = DockerRuntime()
    repeat = args.repeat
    with tempfile.TemporaryDirectory(prefix="mahiru-bench-") as scratch:
        work = Path(scratch)
        start = time.perf_counter()
        archives = build_scenario_assets(runtime, args.assets or work / "assets")
        print(f"{'build + save the 3 scenario assets':<44} {time.perf_counter() - start:6.3f} s")
        data = runtime.load_image(archives[INPUT_ASSET])
        compute = runtime.load_image(archives[MINMAX_ASSET])
        output_base = runtime.load_image(archives[OUTPUT_BASE_ASSET])
        runtime.extract_data(data, work / "input0")
        results: list[str] = []

        def step(i: int) -> None:
            result = runtime.run_step(
                compute, {"input0": work / "input0"}, ["output0"], LIMITS, output_dir=work / f"s{i}"
            )
            assert result.succeeded, result

        def build(i: int) -> None:
            results.append(runtime.build_data_image(output_base, work / "s0" / "output0"))

        timed("run_step (min/max, create..remove)", repeat, step)
        timed("build_data_image (output on output base)", repeat, build)
        timed(
            "extract_data (data image /data to host)",
            repeat,
            lambda i: runtime.extract_data(data, work / f"x{i}"),
        )
        timed(
            "save_image data image (2 MB)",
            repeat,
            lambda i: runtime.save_image(results[0], work / f"d{i}.tar"),
        )
        timed(
            "load_image data image (2 MB)", repeat, lambda i: runtime.load_image(work / f"d{i}.tar")
        )
        timed(
            "save_image minmax image (124 MB)",
            repeat,
            lambda i: runtime.save_image(compute, work / "m.tar"),
        )
        timed(
            "load_image minmax image (124 MB, present)",
            repeat,
            lambda i: runtime.load_image(work / "m.tar"),
        )
        for image in set(results):
            runtime.remove_image(image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
