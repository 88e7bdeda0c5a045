"""Versioned migrations of the ledger, applied programmatically (``pfi ledger upgrade``).

The Alembic scripts live inside the package (``pfi/ledger/migrations``) so that an installed PFI
migrates its own database without a checkout or an ``alembic.ini``. The version table is
``pfi_alembic_version``.

The whole upgrade runs in **one transaction** (PostgreSQL has transactional DDL) behind a
transaction-scoped advisory lock: two processes starting at once (``airflow-init`` and a worker,
two ``make run``) apply each revision exactly once, and a failed revision leaves the database as
it was. Before anything, :func:`upgrade` refuses a database holding Airflow's tables: the ledger
has its own database, never Airflow's metadata one.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from pfi.base.errors import ConfigurationError
from pfi.ledger.schema import VERSION_TABLE

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

#: pg_advisory_xact_lock key ("PFI_LEDG" as a signed 64-bit integer).
MIGRATION_LOCK = int.from_bytes(b"PFI_LEDG", "big") & 0x7FFF_FFFF_FFFF_FFFF

#: Tables whose presence shows a database is Airflow's metadata database.
_AIRFLOW_TABLES = ("dag_run", "task_instance")


def normalize_url(url: str) -> str:
    """Accept the ``postgres://`` spelling that Airflow Connection URIs use."""
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://") :]
    return url


def _engine(url: str) -> Engine:
    return create_engine(normalize_url(url), poolclass=NullPool)


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _refuse_airflow_database(connection: Connection) -> None:
    for table in _AIRFLOW_TABLES:
        if connection.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is not None:
            raise ConfigurationError(
                f"this database has Airflow's {table} table: the ledger needs its own database "
                "(see the pfi_ledger connection), never Airflow's metadata database"
            )


def _run(url: str, action: str, revision: str) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as connection:
            _refuse_airflow_database(connection)
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            getattr(command, action)(_config(connection), revision)
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the ledger database at ``url`` to ``revision``; a no-op when it is there already."""
    _run(url, "upgrade", revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Undo migrations down to ``revision`` (``base`` drops every ledger table: tests only)."""
    _run(url, "downgrade", revision)


def current_revision(url: str) -> str | None:
    """The revision the database is at, or ``None`` when no migration was ever applied."""
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            return context.get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision this version of the code ships."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


__all__ = ["current_revision", "downgrade", "head_revision", "normalize_url", "upgrade"]
