from __future__ import annotations

from collections.abc import Iterator

import pytest

from pgserver import NOT_FOUND, PostgresServer, find_binaries
from twelvefactor.models import forbid_real_requests


@pytest.fixture(autouse=True)
def _no_real_model_requests() -> Iterator[None]:
    # The whole suite runs offline: any real provider request is an error, not a network call.
    with forbid_real_requests():
        yield


# --- a real PostgreSQL, started once per session when a test asks for it ---


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    binaries = find_binaries()
    if binaries is None:
        pytest.skip(NOT_FOUND)
    server = PostgresServer(binaries).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_database(pg_server: PostgresServer) -> str:
    """The session's store database: the store's migrations applied once."""
    from twelvefactor.store.postgres import PostgresStore

    name = pg_server.fresh_database()
    PostgresStore(pg_server.url(name)).close()
    return name


@pytest.fixture
def pg_url(pg_server: PostgresServer, pg_database: str) -> str:
    """The session's store database, emptied for this test: no rows (a failed test's rows stay until the
    next test, to look at); the tables and their migrations stay. For a database of its own, pg_empty_url."""
    pg_server.empty_database(pg_database)
    return pg_server.url(pg_database)


@pytest.fixture
def pg_empty_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh database without the store's tables (migrations not applied), dropped after."""
    name = pg_server.fresh_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)
