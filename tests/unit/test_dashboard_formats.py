"""How the dashboard writes sizes, times and ids (`dashboard.formats`), case by case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from jinja2 import Environment

from mahiru.api.routes.site.dashboard.formats import (
    FILTERS,
    ID_CHARS,
    human_size,
    short_id,
    timestamp,
)

RESULT = "result:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, ""),
        (0, "0 B"),
        (1, "1 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (1234, "1.2 kB"),
        (9_940, "9.9 kB"),
        (9_960, "10 kB"),  # rounds up past one decimal: no "10.0"
        (12_345, "12 kB"),
        (999_499, "999 kB"),
        (999_950, "1.0 MB"),  # not "1000 kB"
        (1_200_000, "1.2 MB"),
        (34_567_890, "35 MB"),
        (1_500_000_000, "1.5 GB"),
        (2 * 10**12, "2.0 TB"),
        (5 * 10**18, "5000 PB"),  # the largest unit goes on counting
    ],
)
def test_sizes_read_as_people_read_them(size: int | None, shown: str) -> None:
    assert human_size(size) == shown


@pytest.mark.parametrize(
    ("moment", "shown"),
    [
        (datetime(2026, 12, 7, 18, 16, 55, 123456, tzinfo=UTC), "2026-12-07 18:16:55 UTC"),
        (datetime(2026, 12, 7, 18, 16, 55), "2026-12-07 18:16:55 UTC"),  # stored in UTC
        (
            datetime(2026, 12, 7, 19, 16, 55, tzinfo=timezone(timedelta(hours=1))),
            "2026-12-07 19:16:55 +01:00",
        ),
        (
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(-timedelta(hours=3, minutes=30))),
            "2026-01-02 03:04:05 -03:30",
        ),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(0))), "2026-01-02 03:04:05 UTC"),
    ],
)
def test_times_carry_their_zone(moment: datetime, shown: str) -> None:
    assert timestamp(moment) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("", ""),
        ("site:p1.org:site", "site:p1.org:site"),
        ("x" * ID_CHARS, "x" * ID_CHARS),  # as long as allowed: whole
        ("x" * (ID_CHARS + 1), "x" * 13 + "…" + "x" * 6),
        (RESULT, "result:012345…abcdef"),
        ("0123456789abcdef" * 2, "0123456789abc…abcdef"),  # a job id
    ],
)
def test_long_ids_keep_their_start_and_end(text: str, shown: str) -> None:
    assert short_id(text) == shown
    assert len(short_id(text)) <= ID_CHARS


@pytest.mark.parametrize(
    ("template", "value", "html"),
    [
        (
            "{{ v | ident }}",
            RESULT,
            f'<span class="mono id" title="{RESULT}">result:012345…abcdef</span>',
        ),
        ("{{ v | ident }}", None, ""),
        (
            "{{ v | ident }}",
            '<b>"x"</b>',
            '<span class="mono id" title="{0}">{0}</span>'.format("&lt;b&gt;&#34;x&#34;&lt;/b&gt;"),
        ),
        ("{{ v | size }}", 1_234_567, '<span class="size" title="1,234,567 bytes">1.2 MB</span>'),
        ("{{ v | size }}", None, ""),
        (
            "{{ v | when }}",
            datetime(2026, 12, 7, 18, 16, 55, tzinfo=UTC),
            '<time datetime="2026-12-07T18:16:55+00:00">2026-12-07 18:16:55 UTC</time>',
        ),
    ],
)
def test_the_filters_keep_the_exact_value_a_hover_away_and_escape_it(
    template: str, value: object, html: str
) -> None:
    """In an autoescaping template the filters give an element holding the short form,
    its title (or datetime) the exact value, both escaped."""
    env = Environment(autoescape=True)
    env.filters.update(FILTERS)
    assert env.from_string(template).render(v=value) == html
