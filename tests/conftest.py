"""Hooks for the whole suite: how pytest-xdist shares the tests out (`make test`).

Tests that use a module-scoped fixture (a running network, a scenario set up
on it) go to one worker together under `--dist loadgroup`, so that it is set
up once rather than once per worker; every other test goes to whichever
worker is free. Without xdist the marks do nothing.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group each module's tests that share a module-scoped fixture."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        info = getattr(item, "_fixtureinfo", None)  # what the item's fixtures are
        if info is None:
            continue
        if any(defs and defs[-1].scope == "module" for defs in info.name2fixturedefs.values()):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
