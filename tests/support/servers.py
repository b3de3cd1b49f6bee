"""Running real servers on loopback for tests: in a thread, with TLS."""

from __future__ import annotations

import functools
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mahiru.config import CallerLimits
from mahiru.server import make_server


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    Servers bind their port a while after it is picked here, and tests restart
    them on the same one. Under pytest-xdist, each worker therefore picks from
    a block of ports of its own below the kernel's ephemeral range, where no
    other worker's server and no outgoing connection can take it meanwhile.
    """
    for port in _ports_left():
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or lingering): try the next one
            return port
    with socket.socket() as sock:  # the block is used up (or there is none)
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: The lowest port of the workers' blocks; the blocks end where the ephemeral range begins.
_BLOCKS_FROM = 10_000


@functools.cache
def _worker_block() -> range:
    """This pytest-xdist worker's ports (none outside xdist: the kernel picks then)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return range(0)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    try:
        ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        first_ephemeral = int(ephemeral[0])
    except (OSError, IndexError, ValueError):
        first_ephemeral = 32_768
    size = min(4_000, (first_ephemeral - _BLOCKS_FROM) // max(workers, 1))
    if size < 100:
        return range(0)
    start = _BLOCKS_FROM + int(worker.removeprefix("gw")) * size
    return range(start, start + size)


@functools.cache
def _ports_left() -> Iterator[int]:
    """The ports of this worker's block not yet tried: each is handed out once only, as a
    stopped server may come back on its port. They start at a random one, so that two
    test runs at once on this machine do not try the same ports in step."""
    block = _worker_block()
    start = random.randrange(len(block)) if block else 0
    return iter([*block[start:], *block[:start]])


@contextmanager
def serving(
    app: Any,
    *,
    certfile: Path | None,
    keyfile: Path | None,
    client_ca_files: list[Path],
    port: int | None = None,
    limits: CallerLimits | None = None,
) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 in a thread; yields the base URL; stops on exit."""
    port = port or free_port()
    server = make_server(
        app,
        host="127.0.0.1",
        port=port,
        certfile=certfile,
        keyfile=keyfile,
        client_ca_files=client_ca_files,
        limits=limits,
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    scheme = "https" if certfile else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
