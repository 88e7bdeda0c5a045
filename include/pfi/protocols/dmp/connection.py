"""The DMP's Airflow Connection (``[connections] dmp``, default ``pfi_dmp``) → the client's setup.

One mapping for every face: the ``deliver_dmp`` DAG's hook (``plugins/pfi_airflow/dmp.py``) and
``pfi dmp submit|run`` hand it the same :class:`~pfi.base.connections.Connection` and get the same
endpoints, TLS files, signer, timeouts and client.

========================================  ========================================================
Connection field (type ``http``)          meaning
========================================  ========================================================
``host``, ``port``, ``schema``            the DMP web services' base URL (``schema`` is the
                                          scheme, ``https`` by default; a ``host`` with its own
                                          ``https://`` keeps it)
``extra.repository_url``                  ITI-41 endpoint (default: <base>/si-dmp-server/v2/
                                          services/repository)
``extra.registry_url``                    ITI-57 endpoint (default: <base>/si-dmp-server/v2/
                                          services/registry)
``extra.client_cert``, ``client_key``     the establishment's TLS authentication certificate (PEM)
``extra.ca_bundle``                       the CAs the DMP's server certificate chains to
``extra.crl_file``                        optional: PEM CRLs of every CA of that chain (the
                                          server's revocation is then checked)
``extra.signing_cert``, ``signing_key``   the organisation's signing certificate (VIHF, XAdES)
``extra.connect_timeout``,                seconds; override the ``[dmp]`` settings' timeouts
``extra.read_timeout``
========================================  ========================================================
"""

from __future__ import annotations

from pathlib import Path

from pfi.base.connections import Connection
from pfi.base.errors import ConfigurationError
from pfi.protocols.dmp.client import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DmpClient,
    DmpEndpoints,
    TlsFiles,
)
from pfi.protocols.dmp.signing import Signer

REPOSITORY_PATH = "/si-dmp-server/v2/services/repository"
REGISTRY_PATH = "/si-dmp-server/v2/services/registry"
#: Code of the ConfigurationError of an incomplete DMP Connection.
CODE = "DMP_CONNECTION"


def base_url(conn: Connection) -> str:
    """``<schema or https>://host[:port]`` (``host`` as is when it carries its own scheme)."""
    if not conn.host:
        raise ConfigurationError(
            f"Connection {conn.conn_id}: a host is needed, or extra.repository_url and "
            "extra.registry_url",
            code=CODE,
        )
    port = f":{conn.port}" if conn.port else ""
    if "://" in conn.host:
        return f"{conn.host.rstrip('/')}{port}"
    return f"{conn.schema or 'https'}://{conn.host}{port}"


def endpoints(conn: Connection) -> DmpEndpoints:
    """ITI-41 and ITI-57 URLs: ``extra.repository_url`` / ``extra.registry_url``, else the DMP's
    paths under the host's base URL."""
    repository = conn.optional("repository_url")
    registry = conn.optional("registry_url")
    return DmpEndpoints(
        repository or base_url(conn) + REPOSITORY_PATH,
        registry or base_url(conn) + REGISTRY_PATH,
    )


def tls_files(conn: Connection) -> TlsFiles:
    """The establishment's TLS client certificate and key, and the DMP's CA bundle."""
    crl_file = conn.optional("crl_file")
    return TlsFiles(
        Path(conn.required("client_cert", code=CODE)),
        Path(conn.required("client_key", code=CODE)),
        Path(conn.required("ca_bundle", code=CODE)),
        Path(crl_file) if crl_file else None,
    )


def has_signer(conn: Connection) -> bool:
    """Does the Connection name a signing certificate and its key?"""
    return bool(conn.optional("signing_cert") and conn.optional("signing_key"))


def signer(conn: Connection) -> Signer:
    """The organisation's signing certificate (VIHF, XAdES)."""
    return Signer.from_files(
        conn.required("signing_cert", code=CODE), conn.required("signing_key", code=CODE)
    )


def timeouts(
    conn: Connection,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
) -> tuple[float, float]:
    """Connect and read timeouts: the Connection's extra, else the ones given (``[dmp]``)."""
    return (
        conn.number("connect_timeout", connect_timeout),
        conn.number("read_timeout", read_timeout),
    )


def client(
    conn: Connection,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
) -> DmpClient:
    """A new client (its HTTPS session is closed with ``with`` or ``close()``); the timeouts
    given are the ``[dmp]`` settings', which the Connection's extra overrides."""
    connect, read = timeouts(conn, connect_timeout=connect_timeout, read_timeout=read_timeout)
    return DmpClient(endpoints(conn), tls_files(conn), connect_timeout=connect, read_timeout=read)


__all__ = [
    "REGISTRY_PATH",
    "REPOSITORY_PATH",
    "base_url",
    "client",
    "endpoints",
    "has_signer",
    "signer",
    "timeouts",
    "tls_files",
]
