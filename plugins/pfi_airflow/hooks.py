"""Hooks: one per partner, each turning an Airflow Connection into a ``pfi`` client.

Shape of the providers' hooks (``conn_name_attr``, ``default_conn_name``, lazy ``get_conn``,
``test_connection``); nothing is read when a DAG file is parsed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from pfi.ledger import Ledger


def postgres_url(conn: Any) -> str:
    """A SQLAlchemy URL (psycopg2 driver) from a ``postgres`` Airflow Connection."""
    from sqlalchemy.engine import URL

    return URL.create(
        "postgresql+psycopg2",
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or "127.0.0.1",
        port=conn.port or 5432,
        database=conn.schema or "pfi_ledger",
    ).render_as_string(hide_password=False)


class LedgerHook(BaseHook):
    """The PFI ledger (its own PostgreSQL database, never Airflow's metadata database)."""

    conn_name_attr = "ledger_conn_id"
    default_conn_name = "pfi_ledger"
    conn_type = "postgres"
    hook_name = "PFI ledger"

    def __init__(self, ledger_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger_conn_id = ledger_conn_id
        self._ledger: Ledger | None = None

    def get_conn(self) -> Ledger:
        if self._ledger is None:
            from pfi.ledger import Ledger

            self._ledger = Ledger.from_url(postgres_url(self.get_connection(self.ledger_conn_id)))
        return self._ledger

    def test_connection(self) -> tuple[bool, str]:
        try:
            from pfi.ledger import current_revision

            revision = current_revision(postgres_url(self.get_connection(self.ledger_conn_id)))
        except Exception as exc:  # reported to the UI's "Test connection" button
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"ledger reachable, migration revision {revision or 'none'}"
