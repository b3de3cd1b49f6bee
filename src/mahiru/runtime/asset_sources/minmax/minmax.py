"""Mahiru scenario compute asset: the minimum and maximum of a list of numbers.

Reads a JSON list of numbers from `<root>/inputs/<input>/data.json` and
writes `[min, max]` as JSON to `<root>/outputs/<output>/data.json`. The root
is `/mahiru`, the input `input0` and the output `output0`, unless changed
with --root/--input/--output or MAHIRU_ROOT/MAHIRU_MINMAX_INPUT/
MAHIRU_MINMAX_OUTPUT. Bad input: a message on stderr and exit code 2.

A live input (data access: the data stays at its owner's site) is read
instead over HTTP through the Unix socket named by MAHIRU_LIVE_<INPUT>_SOCKET,
as `/live/<token>/files/data.json` with the token in MAHIRU_LIVE_<INPUT>_TOKEN.

Runs in a container with only the Python standard library.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import socket
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """The input is missing or is not a non-empty JSON list of numbers."""


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (the live channel to an input's owner)."""

    def __init__(self, socket_path: str) -> None:
        super().__init__("live", timeout=60)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


def live_source(name: str) -> tuple[str, str] | None:
    """The socket and token of live input `name`, if the step reads it live."""
    key = re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    socket_path = os.environ.get(f"MAHIRU_LIVE_{key}_SOCKET")
    token = os.environ.get(f"MAHIRU_LIVE_{key}_TOKEN")
    if socket_path is None or token is None:
        return None
    return socket_path, token


def read_live(socket_path: str, token: str, file_name: str) -> str:
    """The text of file `file_name` of a live input, read through its channel."""
    connection = _UnixConnection(socket_path)
    try:
        connection.request("GET", f"/live/{token}/files/{file_name}")
        response = connection.getresponse()
        body = response.read()
    except OSError as error:
        raise BadInput(f"cannot read live input over {socket_path}: {error}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise BadInput(f"live input {file_name}: HTTP {response.status}: {body[:200]!r}")
    return body.decode("utf-8")


def read_numbers(path: Path, text: str | None = None) -> list[float]:
    """The numbers in the JSON list at `path` (or in `text`, read from there already)."""
    if text is None:
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
    live = live_source(args.input)
    try:
        if live is None:
            numbers = read_numbers(source)
        else:
            numbers = read_numbers(source, read_live(*live, "data.json"))
    except BadInput as error:
        print(f"minmax: bad input: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    result = min_max(numbers)
    write_result(target, result)
    print(f"minmax: {len(numbers)} numbers in, {result} out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
