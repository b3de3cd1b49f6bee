"""How long the `mahiru` command takes to start: the cost the test suite pays per spawn.

Usage: .venv/bin/python benchmarks/cli_startup.py [--runs N] [--quick]

Runs each command line N times (default 15) in a fresh process, after one
unmeasured warm-up run, and prints the median and best wall time, and the
median as a multiple of a bare `python -c pass` on the same interpreter. The
command lines are `mahiru --help` (the command table only), `mahiru assets
--help`, `mahiru jobs submit --help` and `mahiru rules add --help` (a client
command's options), `mahiru certs --help` (a command that makes keys) and
`mahiru serve site --help` (a server command). Goals: `mahiru --help` under
0.25 s, any command's help under 0.4 s. `--quick` runs each once (a smoke
test).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

MAHIRU = str(Path(sys.executable).parent / "mahiru")

CASES: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "mahiru --help": [MAHIRU, "--help"],
    "mahiru assets --help": [MAHIRU, "assets", "--help"],
    "mahiru jobs submit --help": [MAHIRU, "jobs", "submit", "--help"],
    "mahiru rules add --help": [MAHIRU, "rules", "add", "--help"],
    "mahiru certs --help": [MAHIRU, "certs", "--help"],
    "mahiru serve site --help": [MAHIRU, "serve", "site", "--help"],
}


def wall_times(command: list[str], runs: int) -> list[float]:
    """Seconds each of `runs` runs of `command` took, after one warm-up run."""
    subprocess.run(command, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    """Measure every case and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command line")
    parser.add_argument("--quick", action="store_true", help="one run each (smoke test)")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    print(f"{'command line':<28}{'median':>10}{'best':>10}{'x bare python':>16}")
    bare: float | None = None
    for name, command in CASES.items():
        times = wall_times(command, runs)
        median = statistics.median(times)
        bare = median if bare is None else bare
        best = min(times)
        print(f"{name:<28}{median * 1000:>8.0f}ms{best * 1000:>8.0f}ms{median / bare:>15.1f}x")


if __name__ == "__main__":
    main()
