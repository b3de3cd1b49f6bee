"""Mahiru scenario compute asset: the minimum and maximum of a list of numbers.

Reads a JSON list of numbers from `<root>/inputs/<input>/data.json` and
writes `[min, max]` as JSON to `<root>/outputs/<output>/data.json`. The root
is `/mahiru`, the input `input0` and the output `output0`, unless changed
with --root/--input/--output or MAHIRU_ROOT/MAHIRU_MINMAX_INPUT/
MAHIRU_MINMAX_OUTPUT. Bad input: a message on stderr and exit code 2.

Runs in a container with only the Python standard library.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """The input is missing or is not a non-empty JSON list of numbers."""


def read_numbers(path: Path) -> list[float]:
    """The numbers in the JSON list at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise BadInput(f"cannot read {path}: {error.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise BadInput(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, list) or not data:
        raise BadInput(f"{path} must hold a non-empty JSON list of numbers")
    for index, item in enumerate(data):
        # bool is an int in Python, but true/false are not numbers in JSON.
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            raise BadInput(f"{path}: item {index} is {item!r}, not a finite number")
    return data


def min_max(numbers: list[float]) -> list[float]:
    """`[min, max]` of a non-empty list."""
    return [min(numbers), max(numbers)]


def write_result(path: Path, result: list[float]) -> None:
    """Write `result` as JSON, appearing complete or not at all."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(result) + "\n", encoding="utf-8")
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Compute [min, max] of the input data set; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("MAHIRU_ROOT", "/mahiru"))
    parser.add_argument("--input", default=os.environ.get("MAHIRU_MINMAX_INPUT", "input0"))
    parser.add_argument("--output", default=os.environ.get("MAHIRU_MINMAX_OUTPUT", "output0"))
    args = parser.parse_args(argv)
    source = Path(args.root, "inputs", args.input, "data.json")
    target = Path(args.root, "outputs", args.output, "data.json")
    try:
        numbers = read_numbers(source)
    except BadInput as error:
        print(f"minmax: bad input: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    result = min_max(numbers)
    write_result(target, result)
    print(f"minmax: {len(numbers)} numbers in, {result} out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
