"""Hooks: one per partner, each turning an Airflow Connection into a ``pfi`` client.

Shape of the providers' hooks (``conn_name_attr``, ``default_conn_name``, lazy ``get_conn``,
``test_connection``); nothing is read when a DAG file is parsed.

:func:`airflow_connection` is the one place an Airflow Connection becomes ``pfi``'s
:class:`~pfi.base.connections.Connection`; the hooks map that value with the same functions as
the ``pfi`` command (:mod:`pfi.base.connections`, ``pfi.protocols.*.connection``), and the DAG
tasks hand :func:`airflow_connection` itself to the flows that look Connections up by id (the
producers' MLLP Connections of their ZAMs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from pfi.base.connections import Connection
    from pfi.ledger import Ledger


def airflow_connection(conn_id: str) -> Connection:
    """The Airflow Connection ``conn_id`` (metadata database, secrets backend or environment) as
    a :class:`pfi.base.connections.Connection` (a :data:`~pfi.base.connections.Lookup`).

    One Airflow does not know is :class:`~pfi.base.connections.MissingConnection` (a
    ConfigurationError, which ``pfi`` reports with the id where it needs it)."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from pfi.base.connections import MissingConnection

    try:
        return _as_pfi(conn_id, BaseHook.get_connection(conn_id))
    except AirflowNotFoundException:
        raise MissingConnection(f"Connection {conn_id} not found in Airflow") from None


async def airflow_connection_async(conn_id: str) -> Connection:
    """:func:`airflow_connection` from a trigger's event loop (the triggerer's way)."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from pfi.base.connections import MissingConnection

    try:
        return _as_pfi(conn_id, await BaseHook.aget_connection(conn_id))
    except AirflowNotFoundException:
        raise MissingConnection(f"Connection {conn_id} not found in Airflow") from None


def _as_pfi(conn_id: str, conn: Any) -> Connection:
    from pfi.base.connections import Connection

    return Connection.from_fields(
        conn_id,
        conn_type=conn.conn_type,
        host=conn.host,
        port=conn.port,
        login=conn.login,
        password=conn.password,
        schema=conn.schema,
        extra=conn.extra,
    )


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

            self._ledger = Ledger.from_url(self.url())
        return self._ledger

    def url(self) -> str:
        """The ledger's SQLAlchemy URL (:func:`pfi.base.connections.postgres_url`)."""
        from pfi.base.connections import postgres_url

        return postgres_url(airflow_connection(self.ledger_conn_id))

    def test_connection(self) -> tuple[bool, str]:
        try:
            from pfi.ledger import current_revision

            revision = current_revision(self.url())
        except Exception as exc:  # reported to the UI's "Test connection" button
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"ledger reachable, migration revision {revision or 'none'}"
