"""Versioned change logs, shared by the registry and rule repositories.

Each log has one row in `change_heads` holding its last version. A writer
locks that row before it reads anything it might change (`begin_change`), so
writers of one log take turns and their versions commit in increasing order.
That is what lets a replica ask for "changes after N" and never miss one that
was still in flight.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mahiru.errors import Internal
from mahiru.storage.schema import change_heads


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
