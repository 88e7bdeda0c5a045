"""SMTP client of an application mailbox: STARTTLS (or implicit TLS) with its client
certificate, SASL PLAIN with the mailbox address (or EXTERNAL), explicit timeouts, reconnection.

Référentiel #2 as drafted for Ségur (spec-facts §6.1): SMTP with STARTTLS (SC.MSS/CONF.05); TLS
presenting the ORG AUTH_CLI certificate, then "l'adresse de la BAL dans le login de la méthode
d'authentification PLAIN" (SC.MSS/CONF.12); sessions closed by the operator are reopened
automatically (SC.MSS/CONF.11); a connection error must not disturb anything else
(SC.MSS/CONF.08): every failure is one of the PFI's errors, never a stray exception.

Failures, drawn as the PFI's exception tree (:mod:`pfi.base.errors`)::

    TransientError        4xx replies, refused/closed/timed-out connections, TLS failures
     ├── SmtpTransient    a 4xx reply: .smtp_code kept, .code "SMTP_421"…
     └── OutcomeUnknown   connection lost or timed out once the mail's data went out, before
                          the answer: the server may have the mail (.dsn_requested)
    RefusedByPartner
     └── SmtpRefused      a 5xx reply to RCPT TO or DATA: the partner refuses *this* mail
                          (.smtp_code kept for the ZAM's ERR-5, table SMTPERRORCODE)
    ConfigurationError    5xx at the greeting, AUTH or MAIL FROM, STARTTLS not offered:
                          *our* mailbox is refused, every mail would be; retried once fixed

Exception messages hold the stage, the code and the enhanced status only, never the server's
text (it quotes addresses, and a patient's address is an INS).
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pfi.base.errors import ConfigurationError, PfiError, RefusedByPartner, TransientError
from pfi.protocols.mssante import constants as k
from pfi.protocols.mssante.tls import (
    MailboxSession,
    TlsFiles,
    refused_handshake,
    untrusted_server,
)

Security = Literal["starttls", "tls"]
SaslMechanism = Literal["plain", "external", "none"]

DEFAULT_TIMEOUT = 30.0


class OutgoingMail(Protocol):
    """What :meth:`SmtpClient.send` needs of a mail: a delivery's
    :class:`~pfi.protocols.mssante.compose.ComposedMail`, or a
    :class:`~pfi.protocols.mssante.error_mail.ReplyMail` (error mail, MDN)."""

    @property
    def message_id(self) -> str: ...
    @property
    def sender(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def dsn(self) -> bool: ...
    @property
    def envelope_id(self) -> str: ...
    def as_bytes(self) -> bytes: ...


class SmtpTransient(TransientError):
    """A 4xx reply: try again later."""

    def __init__(self, message: str, *, smtp_code: int) -> None:
        super().__init__(message, code=f"{k.SMTP_PREFIX}{smtp_code}")
        self.smtp_code = smtp_code


class SmtpRefused(RefusedByPartner):
    """A 5xx reply to this mail: never retried; the code goes into the ZAM."""

    def __init__(self, message: str, *, smtp_code: int) -> None:
        super().__init__(message, code=f"{k.SMTP_PREFIX}{smtp_code}")
        self.smtp_code = smtp_code


def smtp_code_of(code: str | None) -> int | None:
    """``SMTP_550`` → 550 (the code of an SMTP failure as stored in the ledger)."""
    if code and code.startswith(k.SMTP_PREFIX) and code[len(k.SMTP_PREFIX) :].isdigit():
        return int(code[len(k.SMTP_PREFIX) :])
    return None


@dataclass(frozen=True)
class SmtpEndpoint:
    """The operator's SMTP service for one application mailbox."""

    host: str
    port: int
    mailbox: str
    tls: TlsFiles
    security: Security = "starttls"
    sasl: SaslMechanism = "plain"
    password: str = field(default="", repr=False)
    timeout: float = DEFAULT_TIMEOUT
    local_hostname: str = ""

    def __post_init__(self) -> None:
        if self.security not in ("starttls", "tls"):
            raise ConfigurationError(f"SMTP security must be starttls or tls, not {self.security}")
        if self.sasl not in ("plain", "external", "none"):
            raise ConfigurationError(f"SMTP SASL must be plain, external or none, not {self.sasl}")


@dataclass(frozen=True)
class SendReceipt:
    """What the server said: accepted, and whether a DSN was requested from it."""

    message_id: str
    dsn_requested: bool


_ENHANCED = re.compile(rb"^\s*([245]\.\d{1,3}\.\d{1,3})")


class OutcomeUnknown(TransientError):
    """The mail's data went out and the connection was lost (or timed out) before the server's
    answer: the server may have taken the mail. Retried like any transient failure, but the
    sender may first wait for the DSN that would tell (``dsn_requested``)."""

    code = k.OUTCOME_UNKNOWN

    def __init__(self, message: str, *, dsn_requested: bool) -> None:
        super().__init__(message)
        self.dsn_requested = dsn_requested


class _DataPhase:
    """An smtplib session that remembers whether the current mail reached its DATA command."""

    in_data = False

    def data(self, msg):  # type: ignore[no-untyped-def]
        self.in_data = True
        return super().data(msg)  # type: ignore[misc]


class _Smtp(_DataPhase, smtplib.SMTP):
    pass


class _SmtpSsl(_DataPhase, smtplib.SMTP_SSL):
    pass


class SmtpClient(MailboxSession):
    """One SMTP session, opened lazily, reused for many mails, reopened when the server closed it
    (found before a mail is sent, never by resending one).

    ::

        with SmtpClient(endpoint) as smtp:
            smtp.send(mail)
    """

    endpoint: SmtpEndpoint
    _smtp: smtplib.SMTP | None = None

    # -- session -----------------------------------------------------------------------------

    def connect(self) -> None:
        """Open and authenticate the session (no-op when open)."""
        if self._smtp is not None:
            return
        ep = self.endpoint
        local = ep.local_hostname or ep.mailbox.rsplit("@", 1)[-1]
        stage = "connect"
        smtp: smtplib.SMTP | None = None
        try:
            if ep.security == "tls":
                stage = "tls"
                smtp = _SmtpSsl(
                    ep.host, ep.port, local_hostname=local, timeout=ep.timeout, context=self.context
                )
            else:
                smtp = _Smtp(ep.host, ep.port, local_hostname=local, timeout=ep.timeout)
                stage = "ehlo"
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise ConfigurationError(
                        "the SMTP server does not offer STARTTLS", code=k.CONNECTION
                    )
                stage = "tls"
                smtp.starttls(context=self.context)
            stage = "tls"  # with TLS 1.3 a refused client certificate shows at the first read
            smtp.ehlo()
            stage = "auth"
            self._authenticate(smtp)
        except BaseException as exc:
            if smtp is not None:
                _quiet_close(smtp)
            if isinstance(exc, PfiError):
                raise
            if isinstance(exc, Exception):
                raise _translate(exc, stage) from None
            raise
        self._smtp = smtp

    def _authenticate(self, smtp: smtplib.SMTP) -> None:
        ep = self.endpoint
        if ep.sasl == "none":
            return
        if ep.sasl == "external":
            # No initial response: "AUTH EXTERNAL", then an empty answer to the empty challenge
            # (the certificate names the mailbox; RFC 4422 appendix A).
            smtp.auth("EXTERNAL", lambda challenge=None: "", initial_response_ok=False)
            return
        smtp.user, smtp.password = ep.mailbox, ep.password
        smtp.auth("PLAIN", smtp.auth_plain, initial_response_ok=True)

    def offers_dsn(self) -> bool:
        """Whether the server offers DSN (RFC 3461): what a mail sent by a worker that died
        before recording the outcome would have asked (opens the session when needed)."""
        self.connect()
        assert self._smtp is not None
        return bool(self._smtp.has_extn("dsn"))

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                _quiet_close(smtp)

    # -- sending -----------------------------------------------------------------------------

    def send(self, mail: OutgoingMail) -> SendReceipt:
        """Send one mail to its one recipient; raise a PFI error on any failure.

        A session the server closed since the last mail (inactivity, maximum duration) is found
        by a ``NOOP`` before the mail and reopened. Once the mail's transaction has begun, a lost
        connection is a transient failure and never a second copy on a new session: the server
        may have taken the mail before the connection broke (a missing "250" after the data).
        """
        if mail.sender.lower() != self.endpoint.mailbox.lower():
            raise ConfigurationError(
                "the mail's sender is not this SMTP session's mailbox", code=k.NO_MAILBOX
            )
        data = mail.as_bytes()
        self._probe()
        try:
            return self._send_once(mail, data)
        except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
            in_data = getattr(self._smtp, "in_data", False)
            dsn = self._dsn_requested(mail)
            self._drop()
            error = _translate(exc, "send")
            if in_data:
                raise OutcomeUnknown(
                    f"{error.reason}, after the mail's data: the server may have taken it",
                    dsn_requested=dsn,
                ) from None
            raise error from None

    def _probe(self) -> None:
        """Drop a reused session that no longer answers (nothing of a mail has been sent yet)."""
        if self._smtp is None:
            return
        try:
            code, _ = self._smtp.noop()
        except (OSError, smtplib.SMTPException):
            code = 0
        if code != 250:
            self._drop()

    def _send_once(self, mail: OutgoingMail, data: bytes) -> SendReceipt:
        self.connect()
        smtp = self._smtp
        assert smtp is not None
        dsn = self._dsn_requested(mail)
        smtp.in_data = False  # type: ignore[attr-defined]
        mail_options: list[str] = []
        rcpt_options: list[str] = []
        if dsn:
            mail_options = ["RET=HDRS", f"ENVID={mail.envelope_id}"]
            rcpt_options = ["NOTIFY=SUCCESS,FAILURE,DELAY", f"ORCPT=rfc822;{mail.recipient}"]
        try:
            smtp.sendmail(mail.sender, [mail.recipient], data, mail_options, rcpt_options)
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            raise
        except Exception as exc:
            if isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPDataError):
                self._reset()
                raise _translate(exc, "send") from None
            in_data = getattr(smtp, "in_data", False)
            self._drop()
            error = _translate(exc, "send")
            if in_data and isinstance(error, TransientError):  # e.g. no answer in time
                raise OutcomeUnknown(
                    f"{error.reason}, after the mail's data: the server may have taken it",
                    dsn_requested=dsn,
                ) from None
            raise error from None
        return SendReceipt(message_id=mail.message_id, dsn_requested=dsn)

    def _dsn_requested(self, mail: OutgoingMail) -> bool:
        """Whether this mail asks the server for a DSN (the mail wants one, the server offers
        the extension)."""
        return bool(mail.dsn and self._smtp is not None and self._smtp.has_extn("dsn"))

    def _reset(self) -> None:
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            _quiet_close(smtp)


def _quiet_close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.close()
    except OSError:
        pass


def _reply(code: int, text: bytes | str | None, stage: str) -> str:
    raw = text.encode() if isinstance(text, str) else (text or b"")
    match = _ENHANCED.match(raw)
    enhanced = f" {match.group(1).decode()}" if match else ""
    return f"SMTP {code}{enhanced} at {stage}"


def _translate(exc: Exception, stage: str) -> PfiError:
    """The PFI error for an smtplib/socket/ssl failure at ``stage``."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()), (554, b""))
        return _by_code(code, text, "rcpt", message_level=True)
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return _by_code(exc.smtp_code, exc.smtp_error, "mail from", message_level=False)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return ConfigurationError(
            _reply(exc.smtp_code, exc.smtp_error, "auth") + ": the mailbox was not authenticated",
            code=k.AUTH,
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ConfigurationError(
            f"the SMTP server does not support what the mailbox needs at {stage}", code=k.AUTH
        )
    if isinstance(exc, smtplib.SMTPDataError):
        return _by_code(exc.smtp_code, exc.smtp_error, "data", message_level=True)
    if isinstance(exc, smtplib.SMTPConnectError):
        return _by_code(exc.smtp_code, exc.smtp_error, "greeting", message_level=False)
    if isinstance(exc, smtplib.SMTPResponseException):
        return _by_code(exc.smtp_code, exc.smtp_error, stage, message_level=stage == "send")
    if isinstance(exc, TimeoutError | socket.timeout) or isinstance(
        exc.__context__, TimeoutError | socket.timeout
    ):
        # smtplib reports a read timeout as SMTPServerDisconnected; the cause says which.
        return TransientError(f"SMTP timeout at {stage}", code=k.TIMEOUT)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return untrusted_server(exc, "SMTP")
    if isinstance(exc, ssl.SSLError):
        return refused_handshake(exc, "SMTP", stage)
    if stage == "tls" and isinstance(exc, OSError | smtplib.SMTPServerDisconnected):
        return TransientError(
            f"TLS session refused or broken at {stage} ({type(exc).__name__})", code=k.TLS
        )
    if isinstance(exc, OSError | smtplib.SMTPException):
        return TransientError(
            f"SMTP connection failed at {stage} ({type(exc).__name__})", code=k.CONNECTION
        )
    return TransientError(f"SMTP failure at {stage} ({type(exc).__name__})", code=k.CONNECTION)


def _by_code(code: int, text: bytes | str | None, stage: str, *, message_level: bool) -> PfiError:
    message = _reply(code, text, stage)
    if 400 <= code < 500:
        return SmtpTransient(message, smtp_code=code)
    if message_level and 500 <= code < 600:
        return SmtpRefused(message, smtp_code=code)
    if 500 <= code < 600:
        return ConfigurationError(
            message + ": the sending mailbox is refused", code=f"{k.SMTP_PREFIX}{code}"
        )
    return TransientError(message, code=k.CONNECTION)


__all__ = [
    "DEFAULT_TIMEOUT",
    "OutcomeUnknown",
    "OutgoingMail",
    "SendReceipt",
    "SmtpClient",
    "SmtpEndpoint",
    "SmtpRefused",
    "SmtpTransient",
    "smtp_code_of",
]
