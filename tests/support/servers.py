"""Running real servers on loopback for tests: in a thread, with TLS."""

from __future__ import annotations

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
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
