"""Gunicorn settings of the mahiru-registry and mahiru-site images.

The service to run comes from MAHIRU_SERVICE (registry or site), its
configuration file from MAHIRU_CONFIG_FILE (read by mahiru.asgi). Every log
line, Gunicorn's own included, is a JSON object on stdout.
"""

import logging
import os

_service = os.environ.get("MAHIRU_SERVICE", "")
if _service not in ("registry", "site"):
    raise SystemExit(f"MAHIRU_SERVICE must be 'registry' or 'site', not {_service!r}")

wsgi_app = f"mahiru.asgi:{_service}()"
# uvicorn's worker with the service's head and body deadlines and limits on
# connections and concurrent requests (the `callers` section of its config).
worker_class = "mahiru.asgi_worker.BoundedWorker"
bind = [os.environ.get("MAHIRU_BIND", "0.0.0.0:8000")]
# A site runs exactly one worker: each worker would start its own background
# replication (and later step execution), doing all of it twice.
workers = 1 if _service == "site" else int(os.environ.get("MAHIRU_WORKERS", "1"))
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
