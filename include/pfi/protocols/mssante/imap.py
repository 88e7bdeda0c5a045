"""IMAP client of an application mailbox, for the notifications that come back to it.

Same connection rules as SMTP (spec-facts §6.1): IMAP4rev1 with STARTTLS (SC.MSS/CONF.06), or
implicit TLS; the mailbox's client certificate; SASL PLAIN with the mailbox address as login
(SC.MSS/CONF.12) or EXTERNAL; reopened when the operator closed the session (SC.MSS/CONF.11).

Only reports are touched (``multipart/report``: DSN and MDN), by UID, read with ``BODY.PEEK``
(nothing is marked read by fetching) and flagged ``$PfiProcessed`` once recorded, so the
receiving side of the PFI (documents received by mail) finds every other mail as it was.
"""

from __future__ import annotations

import imaplib
import socket
import ssl
from dataclasses import dataclass, field
from typing import Literal

from pfi.base.errors import ConfigurationError, PfiError, TransientError
from pfi.protocols.mssante import constants as k
from pfi.protocols.mssante.tls import MailboxSession, TlsFiles, untrusted_server

PROCESSED_FLAG = "$PfiProcessed"
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class ImapEndpoint:
    """The operator's IMAP service for one application mailbox."""

    host: str
    port: int
    mailbox: str
    tls: TlsFiles
    security: Literal["starttls", "tls"] = "starttls"
    sasl: Literal["plain", "external"] = "plain"
    password: str = field(default="", repr=False)
    timeout: float = DEFAULT_TIMEOUT
    folder: str = "INBOX"


class ImapClient(MailboxSession):
    """One IMAP session, opened lazily; :meth:`reports` / :meth:`mark_processed`."""

    endpoint: ImapEndpoint
    _imap: imaplib.IMAP4 | None = None

    def connect(self) -> None:
        if self._imap is not None:
            return
        ep = self.endpoint
        stage = "connect"
        imap: imaplib.IMAP4 | None = None
        try:
            if ep.security == "tls":
                stage = "tls"
                imap = imaplib.IMAP4_SSL(
                    ep.host, ep.port, ssl_context=self.context, timeout=ep.timeout
                )
            else:
                imap = imaplib.IMAP4(ep.host, ep.port, timeout=ep.timeout)
                stage = "tls"
                imap.starttls(ssl_context=self.context)
            stage = "auth"
            if ep.sasl == "external":
                imap.authenticate("EXTERNAL", lambda _challenge: b"")
            else:
                token = f"\0{ep.mailbox}\0{ep.password}".encode()
                imap.authenticate("PLAIN", lambda _challenge: token)
            stage = "select"
            typ, _ = imap.select(ep.folder)
            if typ != "OK":
                raise ConfigurationError("the mailbox folder cannot be selected", code=k.AUTH)
        except Exception as exc:
            if imap is not None:
                _quiet_logout(imap)
            if isinstance(exc, PfiError):
                raise
            raise _translate(exc, stage) from None
        self._imap = imap

    def close(self) -> None:
        imap, self._imap = self._imap, None
        if imap is not None:
            _quiet_logout(imap)

    def _call(self, command: str, *args: str) -> list:
        """A UID command, once more on a new session if the server closed this one."""
        for attempt in (1, 2):
            if self._imap is not None and self._imap.state == "LOGOUT":
                self.close()
            self.connect()
            assert self._imap is not None
            try:
                typ, data = self._imap.uid(command, *args)
            except (imaplib.IMAP4.abort, OSError) as exc:
                self.close()
                if attempt == 2:
                    raise _translate(exc, command.lower()) from None
                continue
            except imaplib.IMAP4.error as exc:
                raise _translate(exc, command.lower()) from None
            if typ != "OK":
                raise TransientError(f"IMAP {command} answered {typ}", code=k.CONNECTION)
            return data
        raise AssertionError("unreachable")

    def reports(self, limit: int = 200) -> list[tuple[str, bytes]]:
        """``(uid, raw mail)`` of the reports (DSN, MDN) not processed yet, oldest first."""
        data = self._call(
            "SEARCH",
            "NOT",
            "KEYWORD",
            PROCESSED_FLAG,
            "HEADER",
            "Content-Type",
            "multipart/report",
        )
        uids = (data[0] or b"").split()[:limit] if data else []
        found = []
        for uid in uids:
            fetched = self._call("FETCH", uid.decode(), "(BODY.PEEK[])")
            raw = next((part[1] for part in fetched if isinstance(part, tuple)), None)
            if raw is not None:
                found.append((uid.decode(), raw))
        return found

    def mark_processed(self, uid: str) -> None:
        """Flag a report as recorded (and read): it is not returned again."""
        self._call("STORE", uid, "+FLAGS", f"({PROCESSED_FLAG} \\Seen)")


def _quiet_logout(imap: imaplib.IMAP4) -> None:
    try:
        imap.logout()
    except (imaplib.IMAP4.error, OSError):
        try:
            imap.shutdown()
        except OSError:
            pass


def _translate(exc: Exception, stage: str) -> PfiError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return untrusted_server(exc, "IMAP")
    if isinstance(exc, ssl.SSLError):
        return TransientError(f"TLS refused or broken at IMAP {stage}", code=k.TLS)
    if isinstance(exc, imaplib.IMAP4.error) and stage == "auth":
        # Dovecot refuses a bad certificate at authentication, without a TLS alert.
        return ConfigurationError("IMAP authentication of the mailbox failed", code=k.AUTH)
    if isinstance(exc, TimeoutError | socket.timeout):
        return TransientError(f"IMAP timeout at {stage}", code=k.TIMEOUT)
    return TransientError(
        f"IMAP connection failed at {stage} ({type(exc).__name__})", code=k.CONNECTION
    )


__all__ = ["PROCESSED_FLAG", "ImapClient", "ImapEndpoint"]
