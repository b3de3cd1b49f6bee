"""The Gunicorn worker of the service images: uvicorn's, holding callers to their limits.

Gunicorn's `timeout` and `keepalive` bound neither a request's head nor its
body; this worker serves with mahiru.server's connection protocol, so a
service under Gunicorn sheds slow and excess callers as `mahiru serve`
does, with the `callers` limits of the file named in MAHIRU_CONFIG_FILE.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

from mahiru.asgi import caller_limits
from mahiru.server import bounded_protocol


class BoundedWorker(UvicornWorker):  # type: ignore[misc]
    """A uvicorn worker whose connections keep the service's head and body deadlines."""

    CONFIG_KWARGS = {"loop": "asyncio", "http": "httptools"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The app is loaded (and the configuration checked) later; the limits
        # are read here, before uvicorn resolves the protocol class.
        self.config.http = bounded_protocol(caller_limits())
