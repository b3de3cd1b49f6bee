"""Types shared by the database tests."""

from __future__ import annotations

from collections.abc import Callable

from mahiru.storage import Database

#: Opens the test's database; each call gives another connection to the same one.
OpenDb = Callable[[], Database]
