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
def fresh_ledger(postgres_server):
    """A migrated ledger in a database of its own, dropped after the test."""
    from pfi.ledger import Ledger, upgrade

    url = postgres_server.create_database()
    upgrade(url)
    ledger = Ledger.from_url(url)
    yield ledger
    ledger.dispose()
    postgres_server.drop_database(url.rsplit("/", 1)[1])
