"""Fixtures shared by the integration tests.

`db_url` gives each test a fresh, empty database: an SQLite file in the
test's temporary folder, and (when MAHIRU_TEST_POSTGRES_URL is set) a
PostgreSQL schema of its own, dropped afterwards. For a test that takes `db`
(the database, migrated), the SQLite file is a copy of a template migrated
once (tests/support/db.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from tests.support.apps import Apps, in_process_apps
from tests.support.db import OpenDb, migrated_sqlite
from tests.support.sites import DATABASE_PARAMS, database_urls

from mahiru.storage import Database, create_database

POSTGRES_URL_ENV = "MAHIRU_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_admin_engine() -> Iterator[Engine]:
    """An autocommit engine on the test PostgreSQL server; skips if none is configured."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(
            f"{POSTGRES_URL_ENV} is not set; to test on PostgreSQL too, run"
            f" `export {POSTGRES_URL_ENV}=$(bash scripts/ensure-postgres.sh)`"
        )
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        pytest.fail(f"{POSTGRES_URL_ENV} must be a postgresql:// URL, got {parsed.drivername}")
    if parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The URL of a fresh database, on each backend in turn: empty, except that an SQLite
    file is already migrated for a test that takes `db` (which would migrate it before the
    test began anyway)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "mahiru.db"
        yield migrated_sqlite(path) if "db" in request.fixturenames else f"sqlite:///{path}"
        return
    admin: Engine = request.getfixturevalue("postgres_admin_engine")
    schema = f"mahiru_test_{uuid.uuid4().hex[:16]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    options = admin.url.query.get("options")
    search_path = f"-csearch_path={schema}"
    if isinstance(options, str):
        search_path = f"{options} {search_path}"
    url = admin.url.update_query_dict({"options": search_path})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def open_db(db_url: str) -> Iterator[OpenDb]:
    """Opens the test's database (again); everything opened is closed afterwards."""
    opened: list[Database] = []

    def open_() -> Database:
        database = create_database(db_url)
        opened.append(database)
        return database

    yield open_
    for database in opened:
        database.close()


@pytest.fixture
def db(open_db: OpenDb) -> Database:
    """The test's database, freshly migrated."""
    return open_db()


@pytest.fixture(scope="module", params=DATABASE_PARAMS)
def apps(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Apps]:
    """A registry with parties p1 and p2 and their sites, and p1's site, replicated once."""
    with database_urls(request, tmp_path_factory) as urls:
        yield from in_process_apps(tmp_path_factory.mktemp("fuzz"), urls)
