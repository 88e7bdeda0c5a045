"""SMTP and IMAP endpoints of an application mailbox from its Connection's fields.

Plain Python so that the mapping is tested without Airflow; the hook
(``plugins/pfi_airflow/mssante.py``) hands the ``pfi_mss_<mailbox>`` Connection's fields here.

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

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pfi.base.errors import ConfigurationError
from pfi.protocols.mssante.imap import ImapEndpoint
from pfi.protocols.mssante.smtp import SmtpEndpoint
from pfi.protocols.mssante.tls import TlsFiles


def _extra(extra: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if not extra:
        return {}
    if isinstance(extra, str):
        try:
            value = json.loads(extra)
        except ValueError:
            raise ConfigurationError("the mailbox Connection's extra is not JSON") from None
        return dict(value)
    return dict(extra)


def _path(extra: Mapping[str, Any], key: str) -> Path | None:
    value = extra.get(key)
    return Path(str(value)) if value else None


def tls_files(extra: Mapping[str, Any]) -> TlsFiles:
    ca_bundle = _path(extra, "ca_bundle")
    if ca_bundle is None:
        raise ConfigurationError("the mailbox Connection needs extra.ca_bundle", code="MSS_CONFIG")
    cert = _path(extra, "client_cert")
    if cert is None:
        raise ConfigurationError(
            "the mailbox Connection needs extra.client_cert (the ORG certificate)",
            code="MSS_CONFIG",
        )
    return TlsFiles(
        ca_bundle=ca_bundle,
        client_cert=cert,
        client_key=_path(extra, "client_key"),
        crl_file=_path(extra, "crl_file"),
        conf03_ciphers=str(extra.get("conf03_ciphers", "true")).lower() not in ("false", "0", "no"),
    )


def endpoints(
    *,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    extra: Mapping[str, Any] | str | None,
    mailbox: str | None = None,
) -> tuple[SmtpEndpoint, ImapEndpoint]:
    """The SMTP and IMAP endpoints a Connection describes (ConfigurationError when incomplete)."""
    options = _extra(extra)
    address = (mailbox or login or "").strip()
    if not host or not address:
        raise ConfigurationError("the mailbox Connection needs a host and the mailbox address")
    if mailbox and login and login.strip().lower() != mailbox.strip().lower():
        raise ConfigurationError(
            "the mailbox Connection's login is not the mailbox address", code="MSS_CONFIG"
        )
    tls = tls_files(options)
    timeout = float(options.get("timeout", 30))
    smtp_security = str(options.get("smtp_security", "starttls"))
    imap_security = str(options.get("imap_security", "starttls"))
    smtp_port = int(
        options.get("smtps_port", 465) if smtp_security == "tls" else options.get("smtp_port", 587)
    )
    imap_port = int(
        options.get("imaps_port", 993)
        if imap_security == "tls"
        else options.get("imap_port", port or 143)
    )
    smtp = SmtpEndpoint(
        host=str(options.get("smtp_host", host)),
        port=smtp_port,
        mailbox=address,
        tls=tls,
        security=smtp_security,  # type: ignore[arg-type]
        sasl=str(options.get("smtp_sasl", "plain")),  # type: ignore[arg-type]
        password=password or "",
        timeout=timeout,
    )
    imap_sasl = str(options.get("imap_sasl", "plain"))
    if imap_sasl not in ("plain", "external") or imap_security not in ("starttls", "tls"):
        raise ConfigurationError("imap_sasl is plain|external, imap_security starttls|tls")
    imap = ImapEndpoint(
        host=host,
        port=imap_port,
        mailbox=address,
        tls=tls,
        security=imap_security,  # type: ignore[arg-type]
        sasl=imap_sasl,  # type: ignore[arg-type]
        password=password or "",
        timeout=timeout,
    )
    return smtp, imap


def endpoints_of(
    conn: Mapping[str, Any], mailbox: str | None = None
) -> tuple[SmtpEndpoint, ImapEndpoint]:
    """:func:`endpoints` of a Connection given as a mapping (the JSON form of
    ``AIRFLOW_CONN_<ID>``: ``host``, ``port``, ``login``, ``password``, ``extra``)."""
    return endpoints(
        host=conn.get("host"),
        port=conn.get("port"),
        login=conn.get("login"),
        password=conn.get("password"),
        extra=conn.get("extra"),
        mailbox=mailbox,
    )


__all__ = ["endpoints", "endpoints_of", "tls_files"]
