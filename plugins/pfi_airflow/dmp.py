"""The DMP hook: the Airflow Connection ``pfi_dmp`` turned into a :class:`pfi.protocols.dmp.DmpClient`.

The Connection's fields (type ``http``; the demo's is written by ``python -m pfi_devkit up``) and
how they map to the client are :mod:`pfi.protocols.dmp.connection`'s, which ``pfi dmp submit|run``
use too: the DAG and the command build the same client from the same Connection.

Nothing is read when a DAG file is parsed; heavy modules are imported inside the methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from pfi.base.connections import Connection
    from pfi.protocols.dmp import DmpClient, DmpEndpoints, Signer, TlsFiles


class DmpHook(BaseHook):
    """The DMP web services, with the establishment's certificates."""

    conn_name_attr = "dmp_conn_id"
    default_conn_name = "pfi_dmp"
    conn_type = "http"
    hook_name = "PFI DMP"

    def __init__(
        self,
        dmp_conn_id: str = default_conn_name,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dmp_conn_id = dmp_conn_id
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._conn: Connection | None = None

    @classmethod
    def of_site(cls, settings: Any, config: Any) -> DmpHook:
        """The hook of the site's DMP Connection (``[dmp] connection_id``) with the ``[dmp]``
        timeouts: what ``deliver_dmp`` and ``backfill_dmp_history`` both send with."""
        return cls(
            settings.dmp_connection_id,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
        )

    def connection(self) -> Connection:
        if self._conn is None:
            from pfi_airflow.hooks import airflow_connection

            self._conn = airflow_connection(self.dmp_conn_id)
        return self._conn

    def endpoints(self) -> DmpEndpoints:
        from pfi.protocols.dmp.connection import endpoints

        return endpoints(self.connection())

    def tls_files(self) -> TlsFiles:
        from pfi.protocols.dmp.connection import tls_files

        return tls_files(self.connection())

    def signer(self) -> Signer:
        from pfi.protocols.dmp.connection import signer

        return signer(self.connection())

    def get_conn(self) -> DmpClient:
        """A new client (its HTTPS session is closed with ``with`` or ``close()``); the
        Connection's timeouts override the hook's (the ``[dmp]`` settings')."""
        from pfi.protocols.dmp.connection import client

        return client(
            self.connection(), connect_timeout=self.connect_timeout, read_timeout=self.read_timeout
        )

    def test_connection(self) -> tuple[bool, str]:
        """TLS handshake with the client certificate, and the signing key loads."""
        try:
            self.signer()
            with self.get_conn() as client:
                answer = client.session.get(client.endpoints.repository_url, timeout=client.timeout)
        except Exception as exc:  # reported to the UI's "Test connection" button
            return False, f"{type(exc).__name__}: {getattr(exc, 'code', '')}".strip()
        return True, f"DMP reachable over mutual TLS (HTTP {answer.status_code} to a GET)"


def send_backfill_lot(lot: dict) -> dict:
    """One lot of ``backfill_dmp_history`` (:func:`pfi.flows.backfill.run_batch`): the DMP
    client and signer of the same Connection as ``deliver_dmp``, opened only when the lot is
    not a dry run. Counts only."""
    from pfi.flows.backfill import run_batch
    from pfi.protocols.dmp.config import DmpConfig
    from pfi_airflow.runtime import actor, site_and_ledger

    settings, ledger = site_and_ledger()
    if lot.get("request", {}).get("dry_run"):
        return run_batch(ledger, settings, lot, actor=actor())
    config = DmpConfig.from_settings(settings)
    hook = DmpHook.of_site(settings, config)
    with hook.get_conn() as client:
        return run_batch(
            ledger, settings, lot, client=client, signer=hook.signer(), config=config, actor=actor()
        )
