"""Alembic environment: runs the revisions on the connection `migrate` passes in.

There is no alembic.ini and no offline (SQL script) mode: migrations always
run through `mahiru.storage.db.migrate`, inside the caller's transaction.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from mahiru.storage.schema import metadata

#: Arbitrary key of the PostgreSQL advisory lock that serialises migrations.
_MIGRATION_LOCK_KEY = 0x6D61686972750001


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite can only change most of a table by copying it; batch mode does that.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes opening a fresh database at once would both try to
            # create the tables; this lock makes the second wait and find them.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("Mahiru migrations run online only, via mahiru.storage.db.migrate")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "no database connection given; run migrations via mahiru.storage.db.migrate"
        )
    _run(connection)


_main()
