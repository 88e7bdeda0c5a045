"""The TLS policy of every client of the PFI: one place, for the DMP (HTTPS) and MSSanté (SMTP,
IMAP). The MLLP link to the DPI is plain TCP inside the hospital's network (no TLS here).

ANSSI, "Recommandations de sécurité relatives à TLS" (guide v1.2, 2020): TLS 1.2 at least (TLS
1.0 and 1.1 refused, R3), TLS 1.3 preferred; for TLS 1.2, only the recommended suites —
ephemeral ECDHE key exchange and AEAD encryption (:data:`ANSSI_TLS12_CIPHERS`, R7); the TLS 1.3
suites OpenSSL offers (AES-GCM, ChaCha20-Poly1305) are all on the ANSSI list. The MSSanté
operators' own list, SC.MSS/CONF.03, adds four suites the guide accepts as degraded (ECDHE with
AES-CBC-SHA2, DHE with AES-GCM): :mod:`pfi.protocols.mssante.tls` narrows to it. No
compression, no renegotiation, the server's certificate and host name always checked against
the CA bundle given (never the system store), its revocation against the CRLs given.

A refused handshake is named for what it is (:func:`failure_reason`): a server offering only
TLS 1.0/1.1, no cipher suite in common, a certificate from an unknown CA, expired, revoked.
"""

from __future__ import annotations

import ssl
from pathlib import Path

#: The ANSSI guide's recommended TLS 1.2 suites (ECDHE + AEAD), in OpenSSL names.
ANSSI_TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES256-CCM",
        "ECDHE-ECDSA-AES128-CCM",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


def client_context(
    ca_bundle: Path | str,
    *,
    client_cert: Path | str | None = None,
    client_key: Path | str | None = None,
    crl_file: Path | str | None = None,
    ciphers: str = ANSSI_TLS12_CIPHERS,
) -> ssl.SSLContext:
    """A client ``SSLContext`` under the policy; ``ssl.SSLError``/``OSError`` when the files are
    unusable (the caller turns them into its ConfigurationError)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    ctx.minimum_version = MINIMUM_VERSION
    ctx.set_ciphers(ciphers)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.load_verify_locations(cafile=str(ca_bundle))
    if client_cert is not None:
        ctx.load_cert_chain(str(client_cert), str(client_key or client_cert))
    if crl_file is not None:
        ctx.load_verify_locations(cafile=str(crl_file))
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
    return ctx


#: OpenSSL reasons (``SSLError.reason``) of a server that speaks only an older protocol.
_OLD_PROTOCOL = {
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "UNSUPPORTED_PROTOCOL",
    "WRONG_SSL_VERSION",
    "NO_PROTOCOLS_AVAILABLE",
}
#: … and of one with no cipher suite in common with the policy.
_NO_COMMON_CIPHER = {
    "SSLV3_ALERT_HANDSHAKE_FAILURE",
    "NO_SHARED_CIPHER",
    "NO_CIPHERS_AVAILABLE",
    "NO_SUITABLE_SIGNATURE_ALGORITHM",
}


def failure_reason(exc: BaseException | None) -> str:
    """What a TLS failure means, in words an operator acts on (nothing of the peer quoted but
    OpenSSL's own verification message). Looks through the wrappers (``requests`` → urllib3 →
    ``ssl``): arguments, ``reason`` attributes, causes."""
    pending = [exc] if exc is not None else []
    seen: set[int] = set()
    generic = ""
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"the server's certificate is refused: {current.verify_message}"
        if isinstance(current, ssl.SSLError):
            reason = current.reason or ""
            if reason in _OLD_PROTOCOL:
                return "the server offers no TLS version 1.2 or later (TLS 1.0/1.1 refused)"
            if reason in _NO_COMMON_CIPHER:
                return "the server offers no cipher suite of the ANSSI policy"
            if reason and not generic:
                generic = f"TLS handshake failed ({reason})"
        nested = [a for a in current.args if isinstance(a, BaseException)]
        wrapped = getattr(current, "reason", None)
        if isinstance(wrapped, BaseException):
            nested.append(wrapped)
        pending += [*nested, *(e for e in (current.__cause__, current.__context__) if e)]
    return generic or "TLS handshake failed"


def is_certificate_failure(exc: BaseException | None) -> bool:
    """Whether the failure is the server's certificate (untrusted, expired, revoked…)."""
    return failure_reason(exc).startswith("the server's certificate")


__all__ = [
    "ANSSI_TLS12_CIPHERS",
    "MINIMUM_VERSION",
    "client_context",
    "failure_reason",
    "is_certificate_failure",
]
