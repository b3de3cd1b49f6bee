"""Versioned change logs, shared by the registry and rule repositories.

Each log has one row in `change_heads` holding its last version. A writer
locks that row before it reads anything it might change (`begin_change`), so
writers of one log take turns and their versions commit in increasing order.
That is what lets a replica ask for "changes after N" and never miss one that
was still in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Table, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from mahiru.errors import Internal
from mahiru.model.registry import ChangeBatch, RegistryChange
from mahiru.policy.changes import RuleChange
from mahiru.storage.db import Database, positive_limit
from mahiru.storage.schema import change_heads

C = TypeVar("C", RegistryChange, RuleChange)


def begin_change(session: Session, log: str) -> int:
    """Lock `log` for the rest of the transaction and return its current version.

    On PostgreSQL this is `SELECT ... FOR UPDATE`; on SQLite the write
    transaction already holds the database's write lock.
    """
    statement = select(change_heads.c.version).where(change_heads.c.log == log).with_for_update()
    version: int | None = session.execute(statement).scalar_one_or_none()
    if version is None:
        raise Internal(f"change log {log!r} is missing; was the database migrated?")
    return version


def next_version(session: Session, log: str, current: int) -> int:
    """Hand out the version after `current` (the value `begin_change` returned)."""
    new = current + 1
    session.execute(update(change_heads).where(change_heads.c.log == log).values(version=new))
    return new


def current_version(session: Session, log: str) -> int:
    """The last version of `log`, without locking it."""
    statement = select(change_heads.c.version).where(change_heads.c.log == log)
    version: int | None = session.execute(statement).scalar_one_or_none()
    if version is None:
        raise Internal(f"change log {log!r} is missing; was the database migrated?")
    return version


def current_version_now(database: Database, log: str) -> int | None:
    """The last version of `log` read at once, quick enough for an event loop: on a local
    SQLite file only (`Database.local_reads`); None elsewhere (use `current_version`).

    Never older than a change committed before the call, by any process.
    """
    reads = database.local_reads
    if reads is None:
        return None
    version: int | None = reads.scalar("SELECT version FROM change_heads WHERE log = ?", log)
    if version is None:
        raise Internal(f"change log {log!r} is missing; was the database migrated?")
    return version


def changes_since(
    database: Database,
    log: str,
    table: Table,
    version: int,
    limit: int | None,
    from_row: Callable[[Row[Any]], C],
) -> ChangeBatch[C]:
    """The entries of `log` (stored in `table`) after `version`, oldest first, and where to go on.

    With `limit`, at most that many entries are returned and the version to
    continue from is that of the last one; the caller asks again until no
    entries come back. Without it, every entry up to the log's head.
    """
    with database.read() as session:
        head = current_version(session, log)
        statement = select(table).where(table.c.version > version).order_by(table.c.version)
        if limit is not None:
            statement = statement.limit(positive_limit(limit))
        rows = session.execute(statement).all()
    changes = [from_row(row) for row in rows]
    if limit is not None and len(rows) == limit:
        head = rows[-1]._mapping["version"]
    return ChangeBatch(changes, head)
