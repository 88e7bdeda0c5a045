"""SMTP and IMAP endpoints of an application mailbox from its Connection's fields.

Plain Python so that the mapping is tested without Airflow: the hook
(``plugins/pfi_airflow/mssante.py``) and ``pfi mss`` hand the ``pfi_mss_<mailbox>`` Connection
here as a :class:`~pfi.base.connections.Connection` (Airflow's, or ``AIRFLOW_CONN_<ID>``).

========================  ===================================================================
Connection field          meaning
========================  ===================================================================
``host``                  IMAP and SMTP host (``extra.smtp_host`` when SMTP is elsewhere)
``port``                  IMAP port with STARTTLS (``extra.imap_port`` wins)
``login``                 the mailbox address (SASL PLAIN login); default: the settings' one
``password``              the PLAIN password the operator gave (may be empty)
``extra.smtp_port``       SMTP with STARTTLS (default 587)
``extra.smtps_port``      SMTP with implicit TLS (default 465), used when ``smtp_security``
                          is ``tls``
``extra.imaps_port``      IMAP with implicit TLS (default 993), when ``imap_security`` = ``tls``
``extra.smtp_security``   ``starttls`` (default, SC.MSS/CONF.05) or ``tls``
``extra.imap_security``   ``starttls`` (default, SC.MSS/CONF.06) or ``tls``
``extra.smtp_sasl``       ``plain`` (default, SC.MSS/CONF.12), ``external`` or ``none``
``extra.imap_sasl``       ``plain`` (default) or ``external``
``extra.client_cert``     PEM of the mailbox's ORG AUTH_CLI certificate (+ chain)
``extra.client_key``      its private key
``extra.ca_bundle``       the CAs the operator's servers are checked against (IGC Santé)
``extra.crl_file``        CRLs of those CAs (revocation checked when given)
``extra.timeout``         seconds for connect and each command (default 30)
``extra.conf03_ciphers``  ``false`` to lift the SC.MSS/CONF.03 TLS 1.2 cipher restriction
========================  ===================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pfi.base.connections import Connection
from pfi.base.errors import ConfigurationError
from pfi.protocols.mssante.imap import ImapEndpoint
from pfi.protocols.mssante.smtp import SmtpEndpoint
from pfi.protocols.mssante.tls import TlsFiles


def _path(conn: Connection, key: str) -> Path | None:
    value = conn.optional(key)
    return Path(value) if value else None


def tls_files(conn: Connection) -> TlsFiles:
    """The mailbox's client certificate (and key, CRLs) and the operator's CA bundle."""
    return TlsFiles(
        ca_bundle=Path(conn.required("ca_bundle", code="MSS_CONFIG")),
        client_cert=Path(
            conn.required("client_cert", code="MSS_CONFIG", hint="the ORG certificate")
        ),
        client_key=_path(conn, "client_key"),
        crl_file=_path(conn, "crl_file"),
        conf03_ciphers=str(conn.extra.get("conf03_ciphers", "true")).lower()
        not in ("false", "0", "no"),
    )


def endpoints(conn: Connection, mailbox: str | None = None) -> tuple[SmtpEndpoint, ImapEndpoint]:
    """The SMTP and IMAP endpoints of the mailbox ``mailbox`` (its address; default: the
    Connection's login) a Connection describes (ConfigurationError when incomplete)."""
    options = conn.extra
    address = (mailbox or conn.login or "").strip()
    if not conn.host or not address:
        raise ConfigurationError(
            f"Connection {conn.conn_id} needs a host and the mailbox address", code="MSS_CONFIG"
        )
    if mailbox and conn.login and conn.login.strip().lower() != mailbox.strip().lower():
        raise ConfigurationError(
            f"Connection {conn.conn_id}: its login is not the mailbox address", code="MSS_CONFIG"
        )
    tls = tls_files(conn)
    timeout = conn.number("timeout", 30.0)
    smtp_security = str(options.get("smtp_security", "starttls"))
    imap_security = str(options.get("imap_security", "starttls"))
    try:
        smtp_port = int(
            options.get("smtps_port", 465)
            if smtp_security == "tls"
            else options.get("smtp_port", 587)
        )
        imap_port = int(
            options.get("imaps_port", 993)
            if imap_security == "tls"
            else options.get("imap_port", conn.port or 143)
        )
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"Connection {conn.conn_id}: the SMTP and IMAP ports must be numbers",
            code="MSS_CONFIG",
        ) from None
    smtp = SmtpEndpoint(
        host=str(options.get("smtp_host", conn.host)),
        port=smtp_port,
        mailbox=address,
        tls=tls,
        security=smtp_security,  # type: ignore[arg-type]
        sasl=str(options.get("smtp_sasl", "plain")),  # type: ignore[arg-type]
        password=conn.password,
        timeout=timeout,
    )
    imap_sasl = str(options.get("imap_sasl", "plain"))
    if imap_sasl not in ("plain", "external") or imap_security not in ("starttls", "tls"):
        raise ConfigurationError("imap_sasl is plain|external, imap_security starttls|tls")
    imap = ImapEndpoint(
        host=conn.host,
        port=imap_port,
        mailbox=address,
        tls=tls,
        security=imap_security,  # type: ignore[arg-type]
        sasl=imap_sasl,  # type: ignore[arg-type]
        password=conn.password,
        timeout=timeout,
    )
    return smtp, imap


def endpoints_of(
    data: Mapping[str, Any], mailbox: str | None = None, *, conn_id: str = "mailbox"
) -> tuple[SmtpEndpoint, ImapEndpoint]:
    """:func:`endpoints` of a Connection given in its JSON form as a mapping (``host``,
    ``port``, ``login``, ``password``, ``extra``), as test fixtures write it."""
    return endpoints(Connection.from_mapping(conn_id, data), mailbox)


__all__ = ["endpoints", "endpoints_of", "tls_files"]
