"""A fresh PostgreSQL database per test session (dropped at the end), on a real server."""

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory):
    from pfi_devkit.postgres import find_or_start

    state = Path(tmp_path_factory.getbasetemp()) / "pg-state"
    return find_or_start(state)


@pytest.fixture(scope="session")
def ledger_url(postgres_server) -> Iterator[str]:
    """URL of an empty database of this session, for the ledger (migrations not applied)."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def fresh_ledger_url(postgres_server) -> Iterator[str]:
    """URL of a migrated ledger in a database of its own, dropped after the test."""
    from pfi.ledger import upgrade

    url = postgres_server.create_database()
    upgrade(url)
    yield url
    postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def fresh_ledger(fresh_ledger_url):
    """The ledger of ``fresh_ledger_url``, opened (disposed after the test)."""
    from pfi.ledger import Ledger

    ledger = Ledger.from_url(fresh_ledger_url)
    yield ledger
    ledger.dispose()
