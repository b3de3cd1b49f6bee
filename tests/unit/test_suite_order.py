"""The slow files `make test` hands out first exist (a renamed one would silently go last)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SLOW_FILES

ROOT = Path(__file__).resolve().parents[2]


def test_every_file_named_slow_exists_once() -> None:
    """Each entry names a test file of the suite, and none twice."""
    assert len(set(SLOW_FILES)) == len(SLOW_FILES)
    for path in SLOW_FILES:
        assert (ROOT / path).is_file(), path
