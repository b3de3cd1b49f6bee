"""Structured logs: one JSON object per line on stdout.

Use `logging.getLogger("mahiru....")` everywhere and pass context as
`extra={...}`; `configure_logging` makes every record a JSON line.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

#: Record attributes that are not context: the standard ones, and uvicorn's copy of
#: the message with terminal colour codes.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
#: Libraries whose INFO lines repeat what Mahiru logs itself (each outgoing call of
#: the HTTP client; each request, which `mahiru.access` logs once): shown at debug.
_CHATTY = ("httpx", "httpcore", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object, with its `extra` fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info") -> None:
    """Send all logs to stdout as JSON lines (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_mahiru", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler._mahiru = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    quiet = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    for name in _CHATTY:
        logging.getLogger(name).setLevel(quiet)
