"""How the dashboard writes sizes, times and ids: short enough for a 1280-px window, with
the exact value a hover away.

The text forms (`human_size`, `timestamp`, `short_id`) are plain functions; the
template filters (`FILTERS`) wrap them in an element whose `title` (or, for a
time, `datetime`) holds the exact value, escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import Markup

#: Decimal units, as file managers and download bars show sizes.
_UNITS = ("kB", "MB", "GB", "TB", "PB")
#: The most characters an id is shown with; longer ids keep their start and end.
ID_CHARS = 20
#: How many characters of a shortened id's end are kept.
_ID_TAIL = 6


def human_size(size: int | None) -> str:
    """`size` bytes as people read it: 999 B, 1.2 kB, 34 MB, 1.5 GB (decimal units, two or
    three significant digits); '' for an unknown size."""
    if size is None:
        return ""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1000
        # Rounded as shown, so 999,950 bytes reads 1.0 MB, not 1000 kB, and 9,960 reads 10 kB.
        shown = f"{value:.1f}" if round(value, 1) < 10 else f"{value:.0f}"
        if float(shown) < 1000 or unit == _UNITS[-1]:
            return f"{shown} {unit}"
    raise AssertionError("unreachable: the last unit returns")


def timestamp(moment: datetime) -> str:
    """`moment` to the second with its zone: `2026-12-07 18:16:55 UTC`, or `+01:00` for an
    offset from UTC. A time without a zone is one the database stored in UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    offset = moment.utcoffset() or timedelta(0)
    if not offset:
        zone = "UTC"
    else:
        minutes = int(offset.total_seconds()) // 60
        sign = "+" if minutes >= 0 else "-"
        zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return f"{moment:%Y-%m-%d %H:%M:%S} {zone}"


def short_id(text: str) -> str:
    """`text` if at most ID_CHARS long; otherwise its start and its end around an ellipsis
    (`result:3f9a01c2d4…9be1c0`), ID_CHARS characters in all."""
    if len(text) <= ID_CHARS:
        return text
    return f"{text[: ID_CHARS - _ID_TAIL - 1]}…{text[-_ID_TAIL:]}"


def _size_element(size: int | None) -> Markup:
    if size is None:
        return Markup("")
    return Markup('<span class="size" title="{} bytes">{}</span>').format(
        f"{size:,}", human_size(size)
    )


def _time_element(moment: datetime) -> Markup:
    return Markup('<time datetime="{}">{}</time>').format(moment.isoformat(), timestamp(moment))


def _id_element(text: object) -> Markup:
    if text is None or text == "":
        return Markup("")
    full = str(text)
    return Markup('<span class="mono id" title="{}">{}</span>').format(full, short_id(full))


#: The template filters: `{{ n | size }}`, `{{ at | when }}`, `{{ id | ident }}`.
FILTERS: dict[str, Callable[..., Any]] = {
    "size": _size_element,
    "when": _time_element,
    "ident": _id_element,
}
