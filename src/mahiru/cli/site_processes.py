"""`mahiru serve site --workers N` (N > 1): a site as N web workers beside one loops process.

The supervisor (this process) checks the configuration, migrates the database
and opens the listening socket once, then forks: one loops process, which runs
every background loop (replication, the step worker, the job coordinator with
log retention, the review exchange) and serves nothing, and N web workers,
which share the socket, serve the API and start no loop. A child that dies is
started again; SIGTERM or SIGINT is passed to every child, and the supervisor
returns once all have stopped. What the processes keep right between them is
in docs/architecture.md (Processes): writes counted in `run/write-counts`,
loop wake-ups sent to the loops process, metrics counted in `run/metrics`.

Every child counts its metrics in files in that folder (prometheus_client's
multiprocess mode, chosen again in the child once the folder is set).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from mahiru.cli.serve import listen_socket, tls_files
from mahiru.config import SiteConfig

logger = logging.getLogger("mahiru.serve")

#: A child that lived less than this (seconds) is started again only after as long.
_QUICK_DEATH = 1.0


@dataclass(frozen=True, slots=True)
class _Plan:
    """What every child of the supervisor is started from."""

    config: SiteConfig
    listener: socket.socket
    tls: tuple[Path | None, Path | None]


def serve_site_processes(config: SiteConfig, workers: int) -> None:
    """Serve the site of `config` with `workers` web workers and one loops process, until
    SIGTERM or SIGINT."""
    from mahiru.bootstrap.site_parts import prepare_processes
    from mahiru.storage.db import create_database

    tls = tls_files("site", config.tls, [config.tls.network_ca, config.user_ca])
    database = create_database(config.database_url)  # migrated once, here
    try:
        logger.info(
            "database ready",
            extra={"database": database.url, "revision": database.current_revision()},
        )
    finally:
        database.close()
    plan = _Plan(config, listen_socket(config.listen), tls)
    prepare_processes(config)
    host, port = plan.listener.getsockname()[:2]
    logger.info(
        "site listening",
        extra={
            "service": "site",
            "url": f"{'http' if tls[0] is None else 'https'}://{host}:{port}",
            "workers": workers,
        },
    )
    try:
        _supervise(plan, workers)
    finally:
        plan.listener.close()
    logger.info("site stopped", extra={"service": "site"})


def _supervise(plan: _Plan, workers: int) -> None:
    children: dict[int, tuple[str, float]] = {}
    stopping: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        for pid in list(children):
            _kill(pid, signal.SIGTERM)

    def start(role: str) -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(_child(plan, role))
        children[pid] = (role, time.monotonic())
        logger.info("site process started", extra={"role": role, "pid": pid})

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        start("loops")
        for _ in range(workers):
            start("web")
        while children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            role, started = children.pop(pid)
            if stopping:
                continue
            logger.warning(
                "site process ended; starting another",
                extra={"role": role, "pid": pid, "status": status},
            )
            if time.monotonic() - started < _QUICK_DEATH:
                time.sleep(_QUICK_DEATH)
            start(role)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _child(plan: _Plan, role: str) -> int:
    """Run one child (`web` or `loops`) to its end; its exit status."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    try:
        if role == "web":
            _web(plan)
        else:
            _loops(plan)
    except BaseException:
        logger.exception("site process failed", extra={"role": role})
        return 1
    return 0


def _web(plan: _Plan) -> None:
    from mahiru.api.site_app import create_site_app
    from mahiru.bootstrap.site_parts import site_part
    from mahiru.logs import configure_logging
    from mahiru.server import make_server

    config = plan.config
    server = make_server(
        create_site_app(site_part(config, web=True), start_replication=False, start_jobs=False),
        host=config.listen.host,
        port=config.listen.port,
        certfile=plan.tls[0],
        keyfile=plan.tls[1],
        client_ca_files=[config.tls.network_ca, config.user_ca],
        log_level=config.log_level,
        limits=config.callers,
    )
    configure_logging(config.log_level)
    server.run(sockets=[plan.listener])


def _loops(plan: _Plan) -> None:
    from mahiru.bootstrap.site_parts import run_loops, site_part

    plan.listener.close()  # the loops process serves nothing
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    run_loops(site_part(plan.config, web=False), stop)
