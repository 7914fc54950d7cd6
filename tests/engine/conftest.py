"""Fixtures of the engine tests: a real PostgreSQL server for the history store."""

from __future__ import annotations

import itertools

import pytest

from tests.pg_server import postgres_bin, temporary_postgres

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_server():
    """DSN of a PostgreSQL server started for this test session (skipped, saying why,
    where PostgreSQL is not installed: .ci/run installs it)."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (no initdb on PATH or under "
                    "/usr/lib/postgresql/*/bin); apt-get install postgresql")
    with temporary_postgres() as dsn:
        yield dsn


@pytest.fixture
def postgres_dsn(postgres_server):
    """DSN of a fresh, empty database on the session's server."""
    import psycopg

    name = f"history_{next(_databases)}"
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    yield postgres_server.replace("dbname=postgres", f"dbname={name}")
