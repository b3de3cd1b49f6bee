"""Databases for the tests: the type of `open_db`, and migrated databases made by copying.

Migrating a fresh SQLite database runs every Alembic revision, about a fifth of
a second, and a test network of sites opens four (copying one takes a tenth of
that). So each test process migrates one template file, the first time it
needs one, and every migrated SQLite database a test asks for after that is a
copy of it: exactly the schema the migrations produce, at the head revision,
so `create_database` finds nothing to do. Tests of the migrations themselves
still start from empty databases (`db_url`). PostgreSQL schemas are migrated
each time: a copied database (`CREATE DATABASE ... TEMPLATE`) costs more there.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from mahiru.storage import Database, create_database

#: Opens the test's database; each call gives another connection to the same one.
OpenDb = Callable[[], Database]


_TEMPLATE_LOCK = threading.Lock()


@functools.cache
def _sqlite_template() -> Path:
    """An SQLite file migrated to the head revision, made once per process."""
    folder = Path(tempfile.mkdtemp(prefix="mahiru-test-template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    template = folder / "template.db"
    # Closing the last connection checkpoints the write-ahead log into the file:
    # the one file is the whole database.
    create_database(f"sqlite:///{template}").close()
    return template


def migrated_sqlite(path: Path) -> str:
    """The URL of the SQLite database `path`, a copy of the migrated template unless it
    exists already (a database asked for again is the same one)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with _TEMPLATE_LOCK:  # threads of a test may open their first databases at once
            template = _sqlite_template()
        shutil.copyfile(template, path)
    return f"sqlite:///{path}"


def sqlite_urls(root: Path) -> Callable[[str], str]:
    """Migrated SQLite databases in `root`, one per name (`<name>.db`)."""
    return lambda name: migrated_sqlite(root / f"{name}.db")
