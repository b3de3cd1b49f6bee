"""Wake-ups of a site's background loops sent from its web workers to its loops process.

A route that makes work for a loop (a job submitted or cancelled, a step
handed over, a review to send) wakes it. When the loops run in a process of
their own, the web workers' copies of the loops never run: each of their
wake-ups is sent instead as one datagram (`name delay`) to a local socket the
loops process listens on, which wakes its loop of that name. The socket is in
Linux's abstract namespace, named after the site's data folder, so it needs no
file and no clean-up. A wake-up that cannot be sent (the loops process is
restarting) is logged and dropped: the loop's own interval finds the work.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
from collections.abc import Mapping
from functools import partial
from pathlib import Path

from mahiru.services.background import BackgroundLoop
from mahiru.services.jobs import JobServices
from mahiru.services.site import SiteServices

logger = logging.getLogger("mahiru.site.wakes")

#: The longest datagram read (a loop's name and a delay).
_MAX_DATAGRAM = 256
#: The longest delay a wake-up may ask for (seconds).
_MAX_DELAY = 3600.0


def site_loops(services: SiteServices, jobs: JobServices) -> tuple[BackgroundLoop, ...]:
    """A site's background loops: replication, the step worker, the job coordinator and the
    review exchange."""
    return (
        services.replication.loop,
        jobs.loops.worker.loop,
        jobs.loops.coordinator.loop,
        jobs.loops.review_exchange.loop,
    )


def wake_address(data_dir: Path) -> str:
    """The abstract socket the loops process of the site with `data_dir` listens on."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:24]
    return f"\0mahiru-loops-{digest}"


def forward_wakes(loops: Mapping[str, BackgroundLoop], address: str) -> socket.socket:
    """Make each of `loops` send its wake-ups to the loops process at `address`.

    Returns the socket they are sent through (close it with the site).
    """
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    for name, loop in loops.items():
        loop.forward_wakes(partial(_send, sender, address, name))
    return sender


def _send(sender: socket.socket, address: str, name: str, seconds: float) -> None:
    try:
        sender.sendto(f"{name} {seconds!r}".encode(), address)
    except OSError as error:
        logger.info(
            "cannot wake a loop in the loops process; its interval will find the work",
            extra={"loop": name, "reason": error.strerror or str(error)},
        )


class WakeListener:
    """The loops process's end: wakes the loop each datagram names, until `stop`."""

    def __init__(self, loops: Mapping[str, BackgroundLoop], address: str) -> None:
        self._loops = dict(loops)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(address)
        # Woken this often to see whether to stop; a datagram ends the wait at once.
        self._socket.settimeout(0.5)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mahiru-wakes", daemon=True)

    def start(self) -> None:
        """Listen in a thread of its own."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and release the address."""
        self._stopping.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                data = self._socket.recv(_MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return
            name, _, delay = data.decode(errors="replace").partition(" ")
            loop = self._loops.get(name)
            try:
                seconds = float(delay)
            except ValueError:
                seconds = 0.0
            if loop is not None:
                # Anyone on this machine may send here: a delay out of range wakes at once.
                loop.wake_after(seconds if 0.0 <= seconds <= _MAX_DELAY else 0.0)
