"""Gunicorn settings of the mahiru-registry and mahiru-site images.

The service to run comes from MAHIRU_SERVICE (registry or site), its
configuration file from MAHIRU_CONFIG_FILE (read by mahiru.asgi). Every log
line, Gunicorn's own included, is a JSON object on stdout.
"""

import logging
import os
import subprocess
import sys
import threading
import time

_service = os.environ.get("MAHIRU_SERVICE", "")
if _service not in ("registry", "site"):
    raise SystemExit(f"MAHIRU_SERVICE must be 'registry' or 'site', not {_service!r}")

_workers = int(os.environ.get("MAHIRU_WORKERS", "1"))
# A site with several workers runs its background loops (replication, steps, job
# following, review exchange) in one process of its own beside them: the workers
# load site_web(), which starts none (docs/architecture.md, Processes).
_split_site = _service == "site" and _workers > 1
wsgi_app = "mahiru.asgi:site_web()" if _split_site else f"mahiru.asgi:{_service}()"
# uvicorn's worker with the service's head and body deadlines and limits on
# connections and concurrent requests (the `callers` section of its config).
worker_class = "mahiru.asgi_worker.BoundedWorker"
bind = [os.environ.get("MAHIRU_BIND", "0.0.0.0:8000")]
workers = _workers
# Asset uploads and downloads stream for as long as they take; the proxies
# bound the idle time instead. Graceful shutdown gets the time a
# `docker stop` gives before it kills.
timeout = 0
graceful_timeout = 8
keepalive = 30
# The client address must stay the proxy's: trusted_proxies is checked
# against it, so no forwarded-for header is ever believed.
forwarded_allow_ips = ""
accesslog = None
# Gunicorn's own loggers write JSON to stdout; once the app is loaded,
# mahiru.logs.configure_logging sends every other logger there through the
# root logger.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "mahiru.logs.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        }
    },
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
    },
}


def post_worker_init(worker: object) -> None:
    """Silence uvicorn's access log once the app is loaded: mahiru.access logs every request."""
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


class _LoopsProcess:
    """The site's loops process, started with the arbiter and started again if it ends."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._watch = threading.Thread(target=self._run, name="mahiru-loops-watch", daemon=True)

    def start(self) -> None:
        self._watch.start()

    def stop(self) -> None:
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=graceful_timeout + 5)
        self._watch.join(timeout=5)

    def _run(self) -> None:
        command = [sys.executable, "-c", "from mahiru.asgi import site_loops; site_loops()"]
        while not self._stopping.is_set():
            started = time.monotonic()
            self._process = subprocess.Popen(command)
            self._process.wait()
            if self._stopping.is_set():
                return
            logging.getLogger("gunicorn.error").warning(
                "the site's loops process ended; restarting"
            )
            self._stopping.wait(max(0.0, 1.0 - (time.monotonic() - started)))


_loops = _LoopsProcess()


def on_starting(server: object) -> None:
    """Before the workers: migrate a split site's database, name its metrics folder (which
    the workers inherit), and start its loops process."""
    if _split_site:
        from mahiru.asgi import prepare_site_processes

        prepare_site_processes()
        _loops.start()


def on_exit(server: object) -> None:
    """Stop the loops process of a split site with the arbiter."""
    if _split_site:
        _loops.stop()
