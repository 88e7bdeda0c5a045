"""The DMP hook: the Airflow Connection ``pfi_dmp`` turned into a :class:`pfi.protocols.dmp.DmpClient`.

Connection (type ``http``; the demo's is written by ``python -m pfi_devkit up``)::

    host, port, schema=https       the DMP web services (base URL)
    extra.repository_url           ITI-41 endpoint (default: <base>/si-dmp-server/v2/services/repository)
    extra.registry_url             ITI-57 endpoint (default: <base>/si-dmp-server/v2/services/registry)
    extra.client_cert, client_key  the establishment's TLS authentication certificate (PEM)
    extra.ca_bundle                the CAs the DMP's server certificate chains to (IGC-Santé)
    extra.signing_cert, signing_key  the organisation's signing certificate (VIHF, XAdES)
    extra.connect_timeout, read_timeout  seconds (override the [dmp] settings)

Nothing is read when a DAG file is parsed; heavy modules are imported inside the methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from pfi.protocols.dmp import DmpClient, DmpEndpoints, Signer, TlsFiles

REPOSITORY_PATH = "/si-dmp-server/v2/services/repository"
REGISTRY_PATH = "/si-dmp-server/v2/services/registry"


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
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self.get_connection(self.dmp_conn_id)
        return self._conn

    def _extra(self) -> dict[str, Any]:
        return dict(self._connection().extra_dejson or {})

    def _required(self, key: str) -> str:
        from pfi.base.errors import ConfigurationError

        value = self._extra().get(key)
        if not value:
            raise ConfigurationError(
                f"Connection {self.dmp_conn_id}: extra.{key} is missing", code="DMP_CONNECTION"
            )
        return str(value)

    def endpoints(self) -> DmpEndpoints:
        from pfi.protocols.dmp import DmpEndpoints

        conn = self._connection()
        extra = self._extra()
        port = f":{conn.port}" if conn.port else ""
        base = f"{conn.schema or 'https'}://{conn.host or '127.0.0.1'}{port}"
        return DmpEndpoints(
            str(extra.get("repository_url") or base + REPOSITORY_PATH),
            str(extra.get("registry_url") or base + REGISTRY_PATH),
        )

    def tls_files(self) -> TlsFiles:
        from pathlib import Path

        from pfi.protocols.dmp import TlsFiles

        return TlsFiles(
            Path(self._required("client_cert")),
            Path(self._required("client_key")),
            Path(self._required("ca_bundle")),
        )

    def signer(self) -> Signer:
        from pfi.protocols.dmp import Signer

        return Signer.from_files(self._required("signing_cert"), self._required("signing_key"))

    def get_conn(self) -> DmpClient:
        """A new client (its HTTPS session is closed with ``with`` or ``close()``)."""
        from pfi.protocols.dmp import DmpClient

        extra = self._extra()
        return DmpClient(
            self.endpoints(),
            self.tls_files(),
            connect_timeout=float(extra.get("connect_timeout", self.connect_timeout)),
            read_timeout=float(extra.get("read_timeout", self.read_timeout)),
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
