r"""IMAP client of an application mailbox: the notifications that come back to it, and the
mails received on it (documents sent to the hospital by MSSanté).

Same connection rules as SMTP (spec-facts §6.1): IMAP4rev1 with STARTTLS (SC.MSS/CONF.06), or
implicit TLS; the mailbox's client certificate; SASL PLAIN with the mailbox address as login
(SC.MSS/CONF.12) or EXTERNAL; reopened when the operator closed the session (SC.MSS/CONF.11).

*Reports* (``multipart/report``: DSN and MDN) of the sending side: :meth:`ImapClient.reports`,
read with ``BODY.PEEK`` and flagged ``$PfiProcessed`` once recorded (:meth:`mark_processed`).

*Received mails* of the receiving side (volet "Transmission au LPS de documents CDA provenant
d'un courriel MSSanté"), every mail of the folder that is not a report, by UID::

    with ImapClient(endpoint) as imap:
        validity = imap.select_folder()            # UIDVALIDITY: (validity, uid) names a mail
        for uid in imap.list_uids(limit=50):       # oldest first
            raw = imap.fetch(uid)                  # BODY.PEEK[]: never marked \Seen
            ...
            imap.move(uid, "PFI/Integres")         # the folder is created when missing

- A UID means something only with the folder's UIDVALIDITY (RFC 3501 §2.3.1.1): the poller
  keeps both. When a reopened session finds another UIDVALIDITY, every UID operation raises
  TransientError ``MSS_UIDVALIDITY_CHANGED`` rather than touch another mail.
- :meth:`move` uses ``UID MOVE`` (RFC 6851) when the server offers MOVE; else ``UID COPY``,
  ``\Deleted`` and ``UID EXPUNGE`` of that UID only (UIDPLUS, RFC 4315). Without UIDPLUS the
  source stays flagged ``\Deleted``, not expunged: a plain ``EXPUNGE`` would also remove mails
  someone else flagged; :meth:`list_uids` skips ``\Deleted`` mails and the operator's own
  expunge removes it. Nothing else ever deletes a mail.
- :meth:`wait_for_new_mail` waits in IMAP IDLE (RFC 2177) until the server announces a new
  mail in the selected folder, or the time runs out: what wakes the receiving DAG within seconds
  (:mod:`pfi_airflow.triggers`). Meant for a session of its own, that does nothing else.
- Folder names are ASCII (letters, digits, ``._-`` and the server's separator ``/``): no
  modified UTF-7, no quoting surprises.
"""

from __future__ import annotations

import imaplib
import itertools
import re
import select
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Literal

from pfi.base.errors import ConfigurationError, InvalidInput, PfiError, TransientError
from pfi.protocols.mssante import constants as k
from pfi.protocols.mssante.tls import (
    MailboxSession,
    TlsFiles,
    refused_handshake,
    untrusted_server,
)

PROCESSED_FLAG = "$PfiProcessed"
DEFAULT_TIMEOUT = 30.0
#: Received mails listed at most by one :meth:`ImapClient.list_uids`.
DEFAULT_LIST_LIMIT = 100

_IDLE_TAGS = (f"PFIIDLE{n}".encode() for n in itertools.count(1))
_EXISTS = re.compile(rb"\* \d+ EXISTS", re.IGNORECASE)
_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,99}(?:/[A-Za-z0-9][A-Za-z0-9._ -]{0,99}){0,4}")


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
    """One IMAP session, opened lazily: :meth:`reports` / :meth:`mark_processed` (sending
    side); :meth:`select_folder`, :meth:`list_uids`, :meth:`fetch`, :meth:`move` (receiving
    side). The UID operations act on the folder selected last, and :meth:`reports` selects the
    endpoint's: one client per side, or :meth:`select_folder` again."""

    endpoint: ImapEndpoint
    _imap: imaplib.IMAP4 | None = None
    #: The folder selected (the endpoint's until :meth:`select_folder` names another).
    _folder: str | None = None
    #: UIDVALIDITY of each folder selected in this client's life, to detect a change.
    _validities: dict[str, int]
    _capabilities: frozenset[str] = frozenset()

    def __init__(self, endpoint: ImapEndpoint, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(endpoint, **kwargs)
        self._validities = {}

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
            stage = "capability"
            self._capabilities = _capabilities(imap)
            stage = "select"
            folder = self._folder or ep.folder
            typ, _ = imap.select(_quoted(folder))
            if typ != "OK":
                raise ConfigurationError("the mailbox folder cannot be selected", code=k.AUTH)
            self._check_validity(folder, _uidvalidity(imap))
        except Exception as exc:
            if imap is not None:
                _quiet_logout(imap)
            if isinstance(exc, PfiError):
                raise
            raise _translate(exc, stage) from None
        self._imap = imap
        self._folder = folder

    def _check_validity(self, folder: str, validity: int | None) -> None:
        if validity is None:
            raise TransientError("the IMAP server gave no UIDVALIDITY", code=k.CONNECTION)
        known = self._validities.setdefault(folder, validity)
        if known != validity:
            raise TransientError(
                "the folder's UIDVALIDITY changed: its UIDs name other mails now",
                code=k.UIDVALIDITY_CHANGED,
            )

    def close(self) -> None:
        imap, self._imap = self._imap, None
        if imap is not None:
            _quiet_logout(imap)

    def _call(self, command: str, *args: str) -> list:
        """A UID command, once more on a new session if the server closed this one."""
        typ, data = self._run(command, lambda imap: imap.uid(command, *args))
        if typ != "OK":
            raise TransientError(f"IMAP {command} answered {typ}", code=k.CONNECTION)
        return data

    def _run(self, name: str, action) -> tuple[str, list]:  # type: ignore[no-untyped-def]
        """``action(imaplib session)`` on the open session (the selected folder checked), once
        more on a new one if the server closed this one."""
        for attempt in (1, 2):
            if self._imap is not None and self._imap.state == "LOGOUT":
                self.close()
            self.connect()
            assert self._imap is not None
            try:
                return action(self._imap)
            except (imaplib.IMAP4.abort, OSError) as exc:
                self.close()
                if attempt == 2:
                    raise _translate(exc, name.lower()) from None
            except imaplib.IMAP4.error as exc:
                raise _translate(exc, name.lower()) from None
        raise AssertionError("unreachable")

    def _select(self, folder: str) -> None:
        """Make ``folder`` the selected one (reports and marks act on the endpoint's)."""
        if self._imap is not None and self._folder == folder:
            return
        if self._imap is None:
            previous, self._folder = self._folder, folder
            try:
                self.connect()
            except BaseException:
                self._folder = previous
                raise
            return

        def select(imap: imaplib.IMAP4) -> tuple[str, list]:
            typ, data = imap.select(_quoted(folder))
            if typ == "OK":
                self._check_validity(folder, _uidvalidity(imap))
            return typ, data

        self._folder = None  # nothing is selected until the server says so
        try:
            typ, _ = self._run("select", select)
        except TransientError as exc:
            if exc.code == k.UIDVALIDITY_CHANGED:  # every later operation meets it again
                self._folder = folder
                self.close()
            raise
        if typ != "OK":
            raise ConfigurationError("the mailbox folder cannot be selected", code=k.BAD_FOLDER)
        self._folder = folder

    # -- received mails ---------------------------------------------------------------------

    @property
    def capabilities(self) -> frozenset[str]:
        """The server's capabilities once authenticated (``MOVE``, ``UIDPLUS``…), upper case."""
        self.connect()
        return self._capabilities

    def select_folder(self, folder: str | None = None) -> int:
        """Select ``folder`` (the endpoint's, INBOX, by default) read-write; its UIDVALIDITY."""
        folder = _folder_name(folder or self.endpoint.folder)
        self._select(folder)
        return self._validities[folder]

    @property
    def folder(self) -> str:
        """The folder the UID operations act on."""
        return self._folder or self.endpoint.folder

    def list_uids(self, limit: int = DEFAULT_LIST_LIMIT, *, after: int = 0) -> list[int]:
        """UIDs of the selected folder's mails, oldest first, at most ``limit``; only those
        above ``after`` when given. Reports (``multipart/report``, the sending side's) and mails
        flagged ``\\Deleted`` are not listed."""
        self._select(self.folder)
        criteria = ["UNDELETED", "NOT", "HEADER", "Content-Type", "multipart/report"]
        if after > 0:
            criteria = ["UID", f"{after + 1}:*", *criteria]
        data = self._call("SEARCH", *criteria)
        uids = sorted(int(u) for u in (data[0] or b"").split() if u.isdigit()) if data else []
        return [uid for uid in uids if uid > after][: max(0, limit)]

    def fetch(self, uid: int, *, max_bytes: int | None = None) -> bytes | None:
        """The mail's bytes (``BODY.PEEK[]``: its flags, ``\\Seen`` included, are left as they
        were); None when the folder no longer holds that UID. With ``max_bytes``, a larger mail
        is not downloaded: InvalidInput ``MSS_MAIL_TOO_LARGE``."""
        self._select(self.folder)
        wanted = str(int(uid))
        if max_bytes is not None:
            sizes = self._call("FETCH", wanted, "(RFC822.SIZE)")
            size = _fetched_size(sizes, wanted)
            if size is None:
                return None
            if size > max_bytes:
                raise InvalidInput(
                    f"the mail is {size} bytes, more than {max_bytes}", code=k.MAIL_TOO_LARGE
                )
        fetched = self._call("FETCH", wanted, "(BODY.PEEK[])")
        return _fetched_body(fetched, wanted)

    def wait_for_new_mail(self, seconds: float) -> bool:
        """IDLE on the selected folder for at most ``seconds``: True as soon as the server
        announces a mail (``* n EXISTS``), False when the time ran out. ConfigurationError
        ``MSS_NO_IDLE`` when the server does not offer IDLE; TransientError when the session
        broke (the next call opens another)."""
        self._select(self.folder)
        if "IDLE" not in self._capabilities:
            raise ConfigurationError("the IMAP server does not offer IDLE", code=k.NO_IDLE)
        assert self._imap is not None
        imap, tag = self._imap, next(_IDLE_TAGS)
        lines = _Lines(imap.sock)
        try:
            imap.send(tag + b" IDLE\r\n")
            started = lines.next(time.monotonic() + self.endpoint.timeout)
            if started is None or not started.startswith(b"+"):
                raise imaplib.IMAP4.abort("IDLE refused")
            deadline = time.monotonic() + max(0.0, seconds)
            arrived = False
            while not arrived and (line := lines.next(deadline)) is not None:
                if line.upper().startswith(b"* BYE"):
                    raise imaplib.IMAP4.abort("the server closed the session")
                arrived = bool(_EXISTS.match(line))
            imap.send(b"DONE\r\n")
            ended = time.monotonic() + self.endpoint.timeout
            while not (line := lines.next(ended) or b"").startswith(tag + b" "):
                if not line:
                    raise TimeoutError("no answer to DONE")
        except (imaplib.IMAP4.abort, OSError) as exc:
            self.close()
            raise _translate(exc, "idle") from None
        return arrived

    def fetch_header(self, uid: int) -> bytes | None:
        """The mail's header alone (``BODY.PEEK[HEADER]``, flags untouched): what answers a mail
        too large to download. None when the folder no longer holds that UID."""
        self._select(self.folder)
        wanted = str(int(uid))
        fetched = self._call("FETCH", wanted, "(BODY.PEEK[HEADER])")
        return _fetched_body(fetched, wanted, section=b"BODY[HEADER]")

    def move(self, uid: int, folder: str) -> None:
        """Move one mail of the selected folder to ``folder`` (created when missing); see the
        module docstring for servers without MOVE or UIDPLUS."""
        target = _folder_name(folder)
        source = self.folder
        if target == source:
            raise ConfigurationError("a mail is not moved to its own folder", code=k.BAD_FOLDER)
        self.ensure_folder(target)
        self._select(source)
        wanted = str(int(uid))
        if "MOVE" in self._capabilities:
            self._call("MOVE", wanted, _quoted(target))
            return
        self._call("COPY", wanted, _quoted(target))
        self._call("STORE", wanted, "+FLAGS.SILENT", "(\\Deleted)")
        if "UIDPLUS" in self._capabilities:
            self._call("EXPUNGE", wanted)

    def ensure_folder(self, folder: str) -> None:
        """Create ``folder`` (and subscribe to it, for the people who read the mailbox) unless it
        exists."""
        name = _folder_name(folder)
        typ, data = self._run("list", lambda imap: imap.list('""', _quoted(name)))
        if typ == "OK" and any(item for item in data if item):
            return
        typ, data = self._run("create", lambda imap: imap.create(_quoted(name)))
        if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(d for d in data if d).upper():
            raise ConfigurationError("the folder cannot be created", code=k.BAD_FOLDER)
        self._run("subscribe", lambda imap: imap.subscribe(_quoted(name)))

    # -- reports ----------------------------------------------------------------------------

    def reports(self, limit: int = 200) -> list[tuple[str, bytes]]:
        """``(uid, raw mail)`` of the reports (DSN, MDN) not processed yet, oldest first."""
        self._select(self.endpoint.folder)
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
        self._select(self.endpoint.folder)
        self._call("STORE", uid, "+FLAGS", f"({PROCESSED_FLAG} \\Seen)")


def _folder_name(folder: str) -> str:
    if folder.upper() == "INBOX":
        return "INBOX"
    if not _FOLDER.fullmatch(folder or "") or folder.endswith(" "):
        raise ConfigurationError(
            "an IMAP folder name is ASCII letters, digits, '._ -' and '/'", code=k.BAD_FOLDER
        )
    return folder


def _quoted(folder: str) -> str:
    return f'"{folder}"'


def _capabilities(imap: imaplib.IMAP4) -> frozenset[str]:
    """CAPABILITY once authenticated (servers announce MOVE, UIDPLUS only then)."""
    typ, data = imap.capability()
    if typ != "OK" or not data:
        return frozenset(str(c).upper() for c in imap.capabilities)
    words = b" ".join(d for d in data if isinstance(d, bytes)).decode("ascii", "replace")
    return frozenset(words.upper().split())


def _uidvalidity(imap: imaplib.IMAP4) -> int | None:
    _, data = imap.response("UIDVALIDITY")
    for item in data or []:
        if isinstance(item, bytes) and item.strip().isdigit():
            return int(item)
    return None


def _fetched_body(fetched: list, uid: str, *, section: bytes = b"BODY[]") -> bytes | None:
    """The ``BODY[]`` (or ``section``) literal of ``uid`` among a UID FETCH's answers (others
    may be flag updates the server pushes unasked)."""
    for part in fetched or []:
        if isinstance(part, tuple) and len(part) == 2 and section in part[0].upper():
            if _uid_of(part[0]) in (uid, None):
                return part[1]
    return None


def _fetched_size(fetched: list, uid: str) -> int | None:
    for part in fetched or []:
        line = part[0] if isinstance(part, tuple) else part
        if isinstance(line, bytes) and _uid_of(line) == uid:
            match = re.search(rb"RFC822\.SIZE\s+(\d+)", line, re.IGNORECASE)
            if match:
                return int(match.group(1))
    return None


def _uid_of(line: bytes) -> str | None:
    match = re.search(rb"\bUID\s+(\d+)", line, re.IGNORECASE)
    return match.group(1).decode() if match else None


class _Lines:
    """CRLF lines read straight from the session's socket with a deadline (IDLE only: imaplib's
    own reader has no timeout but the socket's, after which its file object is unusable)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def next(self, deadline: float) -> bytes | None:
        """The next line, or None when ``deadline`` (monotonic) passed first."""
        while b"\r\n" not in self.buffer:
            pending = self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0
            if not pending:
                ready, _, _ = select.select(
                    [self.sock], [], [], max(0.0, deadline - time.monotonic())
                )
                if not ready:
                    return None
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the IMAP server closed the connection")
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line


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
        return refused_handshake(exc, "IMAP", stage)
    if isinstance(exc, imaplib.IMAP4.error) and stage == "auth":
        # Dovecot refuses a bad certificate at authentication, without a TLS alert.
        return ConfigurationError("IMAP authentication of the mailbox failed", code=k.AUTH)
    if isinstance(exc, TimeoutError | socket.timeout):
        return TransientError(f"IMAP timeout at {stage}", code=k.TIMEOUT)
    return TransientError(
        f"IMAP connection failed at {stage} ({type(exc).__name__})", code=k.CONNECTION
    )


__all__ = ["DEFAULT_LIST_LIMIT", "PROCESSED_FLAG", "ImapClient", "ImapEndpoint"]
