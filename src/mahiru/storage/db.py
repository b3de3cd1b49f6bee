"""Opening the database, migrating it, and running transactions on it.

`create_database(url)` opens SQLite (the default: `sqlite:///PATH`) or
PostgreSQL (`postgresql+psycopg://...`), brings the schema to the newest
Alembic revision and returns a `Database`. All access goes through
`Database.transaction()` (read-write) or `Database.read()` (read-only): the
block either commits as a whole or, on any exception, leaves nothing behind.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Table, event
from sqlalchemy import create_engine as _create_engine
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mahiru.errors import Conflict, Internal, InvalidInput, Unavailable
from mahiru.storage.local_reads import LocalReads

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: Alembic keeps the running migration in module-global proxies
#: (`alembic.context`, `alembic.op`), so one process migrates one database at a time.
_ALEMBIC_IN_USE = threading.Lock()

#: How long an SQLite connection waits for a lock before it fails (ms).
_BUSY_TIMEOUT_MS = 5_000
#: Execution option marking the engine whose transactions only read.
_READ_ONLY = "mahiru_read_only"


@dataclass(slots=True)
class _Active:
    """The transaction currently open in this context, for nesting."""

    session: Session
    read_only: bool
    #: Work to do just before the outermost transaction commits (see `Database.defer`).
    deferred: list[Callable[[Session], None]] = field(default_factory=list)


class Database:
    """A migrated database: an SQLAlchemy engine plus transactions on it.

    Transactions nest: a repository call made inside an outer `transaction()`
    joins it (as a savepoint), so a service can make several repository calls
    atomic. Each thread or asyncio task has its own transactions; never hold
    one open across an `await`.

    On SQLite, which has one writer at a time, this process's writers queue on
    a lock before `BEGIN IMMEDIATE` (for at most `write_wait` seconds, then
    `Unavailable`): the lock hands over the moment a writer commits, where
    SQLite's busy handler would have its waiters sleep and retry (pauses that
    grow to 100 ms), which made every step transition of a busy site wait for
    tens of milliseconds. Other processes still wait through the busy timeout.
    """

    def __init__(self, engine: Engine, *, write_wait: float = 5.0) -> None:
        self.engine = engine
        self._write_wait = write_wait
        self._writer = threading.Lock() if engine.dialect.name == "sqlite" else None
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)
        read_options: dict[str, Any] = {_READ_ONLY: True}
        if engine.dialect.name == "postgresql":
            # Several statements in one read() must see the same snapshot.
            read_options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        self._read_sessions = sessionmaker(
            bind=engine.execution_options(**read_options), expire_on_commit=False
        )
        self._active: contextvars.ContextVar[_Active | None] = contextvars.ContextVar(
            f"mahiru_db_{id(self)}", default=None
        )
        path = engine.url.database
        self._local = (
            LocalReads(path, _BUSY_TIMEOUT_MS)
            if engine.dialect.name == "sqlite" and path and path != ":memory:"
            else None
        )

    @property
    def local_reads(self) -> LocalReads | None:
        """Reads quick enough for an event loop: on a local SQLite file only, else None."""
        return self._local

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        """The database URL, with any password hidden (safe to log)."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A read-write transaction: commits if the block ends normally, else rolls back.

        On SQLite it starts with `BEGIN IMMEDIATE`, so writers queue (up to
        the busy timeout) instead of failing half-way. Database errors are
        mapped to the error tree: unreachable or locked is `Unavailable`, a
        constraint violation `Conflict`.
        """
        with self._run(read_only=False) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction: a consistent snapshot that never blocks writers."""
        with self._run(read_only=True) as session:
            yield session

    @contextmanager
    def _run(self, *, read_only: bool) -> Iterator[Session]:
        active = self._active.get()
        if active is not None:
            if active.read_only and not read_only:
                raise Internal("a write transaction was opened inside a read-only one")
            mark = len(active.deferred)
            try:
                with _mapped_errors(self.url), active.session.begin_nested():
                    yield active.session
            except BaseException:
                # The savepoint rolled back: so does the work it deferred.
                del active.deferred[mark:]
                raise
            return
        maker = self._read_sessions if read_only else self._sessions
        with (
            self._queued(read_only),
            _mapped_errors(self.url),
            maker() as session,
            session.begin(),
        ):
            current = _Active(session, read_only)
            token = self._active.set(current)
            try:
                yield session
                done = 0
                while done < len(current.deferred):
                    current.deferred[done](session)
                    done += 1
            finally:
                self._active.reset(token)

    @contextmanager
    def _queued(self, read_only: bool) -> Iterator[None]:
        """This process's turn to write (SQLite only; readers never wait)."""
        writer = self._writer
        if read_only or writer is None:
            yield
            return
        if not writer.acquire(timeout=self._write_wait):
            raise Unavailable(
                f"database {self.url} is busy: no turn to write within {self._write_wait:g} s",
                {"database": self.url},
            )
        try:
            yield
        finally:
            writer.release()

    @property
    def writing(self) -> bool:
        """Whether a write transaction is open in this thread or task."""
        active = self._active.get()
        return active is not None and not active.read_only

    def defer(self, work: Callable[[Session], None]) -> None:
        """Run `work` in the current write transaction just before it commits.

        For writes that must come last, after every lock the transaction
        takes (the audit log's, which serialises its writers): taking that
        lock first and another after it could deadlock two transactions.
        Work deferred inside a savepoint that rolls back is dropped with it.
        """
        active = self._active.get()
        if active is None or active.read_only:
            raise Internal("Database.defer needs an open write transaction")
        active.deferred.append(work)

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at (None if never migrated)."""
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def close(self) -> None:
        """Close all pooled connections; the object must not be used afterwards."""
        if self._local is not None:
            self._local.close()
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextmanager
def _mapped_errors(url: str) -> Iterator[None]:
    """Turn database failures into Mahiru errors at this adapter's boundary."""
    try:
        yield
    except IntegrityError as error:
        raise Conflict(
            f"the change conflicts with data stored concurrently: {error.orig}",
            {"database": url},
        ) from error
    except OperationalError as error:
        raise Unavailable(
            f"database {url} is unavailable: {error.orig}", {"database": url}
        ) from error


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the packaged migrations (no alembic.ini needed).

    To write a new revision: `alembic.command.revision(alembic_config(), "message")`,
    then edit the file it creates under `mahiru/storage/migrations/versions/`.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Revision files must be importable module names (mypy checks them).
    config.set_main_option("file_template", "rev_%%(rev)s_%%(slug)s")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision of the packaged migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise Internal(f"no Alembic revisions found in {MIGRATIONS_DIR}")
    return head


def migrate(database: Database, revision: str = "head") -> None:
    """Upgrade the schema to `revision`, in one transaction.

    Safe when several processes open the same database at once: SQLite's
    `BEGIN IMMEDIATE` and a PostgreSQL advisory lock (taken in env.py) make
    them take turns.
    """
    with (
        _ALEMBIC_IN_USE,
        _mapped_errors(database.url),
        database.engine.begin() as connection,
    ):
        command.upgrade(alembic_config(connection), revision)


def create_database(
    url: str,
    *,
    run_migrations: bool = True,
    busy_timeout_ms: int = _BUSY_TIMEOUT_MS,
    connect_timeout_s: int = 10,
) -> Database:
    """Open the database at `url` and migrate it to the newest schema.

    `sqlite:///PATH` creates the file (and its folder) if needed and sets WAL
    mode, foreign keys and a busy timeout on every connection.
    `postgresql://` and `postgresql+psycopg://` use psycopg 3, with a connect
    timeout and a liveness check before each pooled connection is reused.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise InvalidInput(f"not a database URL: {url!r}") from error
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = _sqlite_engine(parsed, busy_timeout_ms)
    elif backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = _create_engine(
            parsed, pool_pre_ping=True, connect_args={"connect_timeout": connect_timeout_s}
        )
    else:
        raise InvalidInput(
            f"unsupported database {parsed.render_as_string(hide_password=True)!r}:"
            " use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        )
    database = Database(engine, write_wait=busy_timeout_ms / 1000)
    if run_migrations:
        try:
            migrate(database)
        except BaseException:
            database.close()
            raise
    return database


def _sqlite_engine(url: URL, busy_timeout_ms: int) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = _create_engine(url)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (which would
        # otherwise BEGIN lazily and commit DDL behind our back); `_begin`
        # below issues BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # A deferred transaction that later writes cannot wait for the lock
        # (SQLite fails it at once with SQLITE_BUSY), so writers take the
        # write lock up front and wait their turn within the busy timeout.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def positive_limit(limit: int) -> int:
    """Check a page size given by a caller: a positive integer."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive integer, got {limit!r}")
    return limit


def insert_ignoring_duplicates(session: Session, table: Table, values: dict[str, Any]) -> bool:
    """Insert a row unless one with the same key exists; return whether it was inserted.

    Unlike select-then-insert this is safe against a concurrent insert of the
    same key on PostgreSQL, where it waits for the other transaction and then
    skips the row instead of failing with an integrity error.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql_insert(table)
    elif dialect == "sqlite":
        statement = sqlite_insert(table)
    else:
        raise Internal(f"unsupported database dialect {dialect!r}")
    statement = statement.values(values).on_conflict_do_nothing()
    # The outcome comes from RETURNING: psycopg 3 under SQLAlchemy 2.1 reports
    # a rowcount of -1 for INSERT, so the rowcount cannot tell.
    returned = session.execute(statement.returning(*table.primary_key.columns)).first()
    return returned is not None
