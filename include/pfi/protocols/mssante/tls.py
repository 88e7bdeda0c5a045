"""The ``SSLContext`` of an application mailbox: its client certificate, the operator's CA.

Référentiel #2 as drafted for Ségur (spec-facts §6.1): TLS 1.2 minimum (SC.MSS/CONF.01-02, and
the PFI's policy for every client, :mod:`pfi.protocols.tls`),
the cipher suites of SC.MSS/CONF.03 for TLS 1.2 (TLS 1.3 suites are all acceptable), the
organisation's IGC Santé certificate presented (SC.MSS/CONF.12), the server's certificate
checked against the configured CA bundle — IGC Santé in production, the devkit PKI in tests —
with its revocation lists when given (SC.MSS.06/08, CONF.22). The stdlib's defaults (host name
check, ``CERT_REQUIRED``) stay on.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from pfi.base.errors import ConfigurationError, TransientError
from pfi.protocols import tls
from pfi.protocols.mssante.constants import SERVER_CERTIFICATE, TLS

#: SC.MSS/CONF.03, in OpenSSL names: 0xC030, 0xC02F, 0xC028, 0xC027, 0x009F, 0x009E.
CONF03_CIPHERS = ":".join(
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-SHA384",
        "ECDHE-RSA-AES128-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-AES128-GCM-SHA256",
    )
)

CONFIG_CODE = "MSS_TLS_CONFIG"


@dataclass(frozen=True)
class TlsFiles:
    """Where the mailbox's certificate material is (paths from the Airflow Connection)."""

    ca_bundle: Path
    client_cert: Path | None = None
    client_key: Path | None = None
    #: PEM CRLs of every CA of the server's chain; when given, revocation is checked.
    crl_file: Path | None = None
    #: Restrict TLS 1.2 to the SC.MSS/CONF.03 suites (else the ANSSI recommended ones).
    conf03_ciphers: bool = True


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """A client context presenting the mailbox's certificate, under the PFI's TLS policy
    (:mod:`pfi.protocols.tls`) narrowed to SC.MSS/CONF.03; ConfigurationError when unusable."""
    try:
        return tls.client_context(
            files.ca_bundle,
            client_cert=files.client_cert,
            client_key=files.client_key,
            crl_file=files.crl_file,
            ciphers=CONF03_CIPHERS if files.conf03_ciphers else tls.ANSSI_TLS12_CIPHERS,
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"TLS material of the mailbox is unusable ({type(exc).__name__})", code=CONFIG_CODE
        ) from None


class MailboxSession:
    """What the SMTP and IMAP clients share: an endpoint with :class:`TlsFiles` (``.tls``), the
    ``SSLContext`` built from them at first use (or the one given), ``with`` closing the session.
    Subclasses define ``close()``."""

    def __init__(self, endpoint: Any, *, context: ssl.SSLContext | None = None) -> None:
        self.endpoint = endpoint
        self._context = context

    @property
    def context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = client_context(self.endpoint.tls)
        return self._context

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def untrusted_server(exc: ssl.SSLCertVerificationError, protocol: str) -> TransientError:
    """The error for a server certificate the CA bundle does not vouch for — unknown CA,
    expired, revoked (retried: the operator may fix its chain, or ours may be updated)."""
    return TransientError(
        f"the {protocol} server's certificate is not trusted ({exc.verify_message})",
        code=SERVER_CERTIFICATE,
    )


def refused_handshake(exc: BaseException, protocol: str, stage: str) -> TransientError:
    """The error for a TLS handshake the policy refused or the server broke: an old protocol
    only, no common cipher suite (:func:`pfi.protocols.tls.failure_reason`)."""
    return TransientError(f"{protocol} TLS refused at {stage}: {tls.failure_reason(exc)}", code=TLS)


__all__ = [
    "CONF03_CIPHERS",
    "CONFIG_CODE",
    "MailboxSession",
    "TlsFiles",
    "client_context",
    "refused_handshake",
    "untrusted_server",
]
