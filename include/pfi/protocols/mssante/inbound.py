"""Read a mail received on an application mailbox: the model the receiving side works on.

Volet "Transmission au LPS de documents CDA provenant d'un courriel MSSanté" v1.1 (IG-MSS,
``ansforge/IG-hl7v2-volet-trans-lps-doc-cda-courriel-mss``): the PFI detects the mails that carry
an ``IHE_XDM.ZIP`` (``cas-usage.md``: "les courriels avec une pièce jointe IHE_XDM.zip"), sends
the DPI one MDM per document whose mail OBX carries the mail's ``Message-ID``, subject and body
(``profils-messages.md``, "Le groupe de segments portant les informations du courriel
MSSanté"), and answers a refusal with an MDN when the mail holds ``Disposition-Notification-To``
(``struct-msg-mdn.md``), else a standard mail (``struct-email-standard.md``):
:mod:`pfi.protocols.mssante.error_mail`.

::

    mail = read_mail(raw)            # InvalidInput MSS_MAIL_UNREADABLE / MSS_MAIL_NO_SENDER
    for archive in mail.xdm_archives:
        read_xdm(archive.data)       # the hostile-archive reader

How it reads (the stdlib ``email`` package, ``policy.default``; no hand parsing of MIME):

- *Headers*: RFC 2047 encoded words decoded by the policy; raw 8-bit bytes in a header (not
  allowed, but sent) read as UTF-8, else windows-1252, never as replacement characters.
- *Text*: the declared charset; ``iso-8859-1`` and ``us-ascii`` read as windows-1252 (its
  superset, what such senders mean: WHATWG Encoding), an undeclared or ``us-ascii`` text that is
  valid UTF-8 as UTF-8, an unknown charset as UTF-8 else windows-1252.
- *Body*: the ``text/plain`` part the policy's ``get_body`` picks (multipart/alternative,
  related, mixed), else the text of the ``text/html`` one.
- *Attachments*: every leaf part of the multipart tree, however nested, that is an attachment
  (``Content-Disposition: attachment``, or a file name, or not text), except the body; file
  names decoded (RFC 2231, and the encoded words some clients put there), control characters
  dropped. A ``message/rfc822`` part (a mail forwarded *as an attachment*) is one attachment,
  not opened: its files belong to the enclosed mail, whose sender and Message-ID are not this
  mail's.

Reprs and exception texts name counts and sizes only: the subject, the file names, the
addresses and the body name the patient.
"""

from __future__ import annotations

import codecs
import email
import email.policy
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage, Message
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser

from pfi.base.errors import InvalidInput
from pfi.protocols.mssante import constants as k

#: Deepest multipart nesting read (a mail client nests three or four levels).
MAX_DEPTH = 32

_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9.+_-]{0,40}/[a-z0-9][a-z0-9.+_-]{0,80}")
_SURROGATES = re.compile("[\udc80-\udcff]+")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Codec names read as windows-1252 (``iso-8859-1``, and ``us-ascii`` that is not UTF-8).
_AS_CP1252 = frozenset({"iso8859-1", "ascii", "cp1252"})


@dataclass(frozen=True, repr=False)
class Attachment:
    """One attached file: its (decoded) name, ``maintype/subtype``, its decoded bytes."""

    filename: str
    content_type: str
    data: bytes

    @property
    def is_xdm(self) -> bool:
        """Named ``IHE_XDM.ZIP`` (any case), as the MSSanté rules name the archive."""
        return self.filename.upper() == k.XDM_FILENAME

    def __repr__(self) -> str:
        return f"Attachment({self.content_type}, {len(self.data)} bytes)"


@dataclass(frozen=True, repr=False)
class ReceivedMail:
    """A received mail, read. ``raw`` is what the mailbox holds, byte for byte."""

    #: ``<id@domain>`` as written (blanks removed); None when the mail has none.
    message_id: str | None
    #: The ``From`` address (the first one).
    sender: str
    #: ``To`` then ``Cc`` addresses, each once.
    recipients: tuple[str, ...]
    subject: str
    #: The text/plain body, else the text of the text/html one; "" when none; ``\n`` line ends.
    body: str
    date: datetime | None
    #: Where the sender wants its MDN (RFC 8098); None when it asked for none.
    disposition_notification_to: str | None
    attachments: tuple[Attachment, ...]
    raw: bytes
    #: ``Return-Path`` written at delivery (RFC 8098 §2.1 compares it with the MDN address).
    return_path: str | None = None
    #: ``Original-Recipient`` header, for the MDN's field of that name (IG-MSS struct-msg-mdn).
    original_recipient: str | None = None
    #: ``Auto-Submitted`` other than ``no`` (RFC 3834): an automatic mail, never answered.
    auto_submitted: bool = False
    #: ``Reply-To`` addresses (the MDM's PRT ``REPLY``), each once.
    reply_to: tuple[str, ...] = ()

    @property
    def xdm_archives(self) -> tuple[Attachment, ...]:
        """The attachments named ``IHE_XDM.ZIP``, case-insensitive, in mail order."""
        return tuple(a for a in self.attachments if a.is_xdm)

    @property
    def mdn_requested(self) -> bool:
        return self.disposition_notification_to is not None

    def __repr__(self) -> str:
        return (
            f"ReceivedMail({len(self.raw)} bytes, {len(self.attachments)} attachment(s), "
            f"{len(self.xdm_archives)} IHE_XDM.ZIP, mdn={self.mdn_requested})"
        )


def read_mail(raw: bytes) -> ReceivedMail:
    """Read one received mail; InvalidInput when it is not a mail the PFI can read."""
    if not isinstance(raw, bytes | bytearray) or not raw.strip():
        raise InvalidInput("the mail is empty", code=k.MAIL_UNREADABLE)
    raw = bytes(raw)
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        return _read(msg, raw)
    except InvalidInput:
        raise
    except RecursionError:
        raise InvalidInput(
            "the mail's MIME tree is nested too deeply", code=k.MAIL_UNREADABLE
        ) from None
    except Exception as exc:  # the parser's own failures on hostile input
        raise InvalidInput(
            f"the mail cannot be read ({type(exc).__name__})", code=k.MAIL_UNREADABLE
        ) from None


def _read(msg: EmailMessage, raw: bytes) -> ReceivedMail:
    if not msg.keys():
        raise InvalidInput("the data has no mail header", code=k.MAIL_UNREADABLE)
    senders = _addresses(msg, "From")
    if not senders:
        raise InvalidInput("the mail has no From address", code=k.MAIL_NO_SENDER)
    recipients = tuple(dict.fromkeys(_addresses(msg, "To") + _addresses(msg, "Cc")))
    body_part = msg.get_body(preferencelist=("plain", "html"))
    body = ""
    if body_part is not None:
        text = _text_of(body_part).replace("\r\n", "\n").replace("\r", "\n")
        body = _html_text(text) if body_part.get_content_subtype() == "html" else text
    attachments: list[Attachment] = []
    _collect(msg, body_part, attachments, 0)
    auto = _header_text(msg, "Auto-Submitted").strip().lower()
    return ReceivedMail(
        message_id=_message_id(msg),
        sender=senders[0],
        recipients=recipients,
        subject=" ".join(_header_text(msg, "Subject").split()),
        body=body,
        date=_date(msg),
        disposition_notification_to=next(
            iter(_addresses(msg, k.DISPOSITION_NOTIFICATION_TO)), None
        ),
        attachments=tuple(attachments),
        raw=raw,
        return_path=next(iter(_addresses(msg, "Return-Path")), None),
        original_recipient=_original_recipient(msg),
        auto_submitted=bool(auto) and not auto.startswith("no"),
        reply_to=tuple(dict.fromkeys(_addresses(msg, "Reply-To"))),
    )


# --- headers ----------------------------------------------------------------------------------


def _raw_header(msg: Message, name: str) -> str | None:
    wanted = name.lower()
    return next((v for n, v in msg.raw_items() if n.lower() == wanted), None)


def _repair(value: str) -> str:
    """Raw 8-bit bytes of a header (kept by the parser as surrogates) read as UTF-8, else as
    windows-1252."""
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _SURROGATES.sub(
            lambda m: _cp1252(m.group().encode("utf-8", "surrogateescape")), value
        )


def _header_text(msg: Message, name: str) -> str:
    """A header's text, encoded words decoded; "" when absent."""
    raw = _raw_header(msg, name)
    if raw is None:
        return ""
    if _SURROGATES.search(raw):
        return str(email.policy.default.header_factory(name, _repair(raw)))
    return str(msg[name])


def _addresses(msg: Message, name: str) -> list[str]:
    found: list[str] = []
    for header in msg.get_all(name) or []:
        try:
            groups = header.addresses
        except AttributeError:  # not an address header: read the text
            groups = ()
        specs = [a.addr_spec for a in groups] if groups else _ADDRESS.findall(str(header))
        for spec in specs:
            spec = _repair(spec).strip().strip("<>").strip()
            if _ADDRESS.fullmatch(spec):
                found.append(spec)
    return found


def _message_id(msg: Message) -> str | None:
    raw = _raw_header(msg, "Message-ID")
    value = "".join(_repair(raw).split()) if raw else ""
    return value[:998] or None


def _original_recipient(msg: Message) -> str | None:
    """``Original-Recipient: rfc822;someone@example.org`` → the address (RFC 8098 §3.2.3)."""
    _, _, address = _header_text(msg, "Original-Recipient").rpartition(";")
    address = address.strip().strip("<>").strip()
    return address if _ADDRESS.fullmatch(address) else None


def _date(msg: Message) -> datetime | None:
    raw = _raw_header(msg, "Date")
    if not raw:
        return None
    try:
        return parsedate_to_datetime(" ".join(_repair(raw).split()))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# --- parts ------------------------------------------------------------------------------------


def _collect(part: Message, body: Message | None, out: list[Attachment], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidInput("the mail's MIME tree is nested too deeply", code=k.MAIL_UNREADABLE)
    maintype = part.get_content_maintype()
    if part.is_multipart() and maintype == "multipart":
        for sub in part.iter_parts():
            _collect(sub, body, out, depth + 1)
        return
    if part is body or maintype == "multipart":  # the body, or a broken multipart
        return
    filename = _filename(part)
    if not (part.is_attachment() or filename or maintype != "text"):
        return  # an inline text that is not the body: the HTML twin of a text/plain body
    out.append(Attachment(filename, _content_type(part), _data_of(part)))


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:  # a malformed parameter the header parser chokes on
        name = ""
    if _SURROGATES.search(name):
        name = _repair(name)
    return _CONTROLS.sub("", name).strip()


def _content_type(part: Message) -> str:
    value = part.get_content_type().lower()
    return value if _CONTENT_TYPE.fullmatch(value) else "application/octet-stream"


def _data_of(part: Message) -> bytes:
    if part.get_content_maintype() == "message":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0].as_bytes(policy=email.policy.SMTP)
        payload = part.get_payload(decode=True)
        return payload if isinstance(payload, bytes) else b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    return decode_text(data, part.get_content_charset())


def decode_text(data: bytes, charset: str | None) -> str:
    """Bytes of a text part in its declared charset (the rules of the module docstring)."""
    name = _codec(charset)
    if name is None or name in _AS_CP1252:
        if name in (None, "ascii"):
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return _cp1252(data)
    try:
        return data.decode(name, errors="replace")
    except Exception:  # a codec that fails on its own (e.g. a broken UTF-7 state)
        return _cp1252(data)


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    try:
        return codecs.lookup(charset.strip().strip('"')).name
    except (LookupError, ValueError):
        return None


def _cp1252(data: bytes) -> str:
    """windows-1252, its five undefined bytes as in iso-8859-1 (no replacement character)."""
    return "".join(
        chunk.decode("cp1252") if not i % 2 else chunk.decode("latin-1")
        for i, chunk in enumerate(re.split(rb"([\x81\x8d\x8f\x90\x9d]+)", data))
    )


class _HtmlText(HTMLParser):
    _BLOCKS = frozenset(
        "address article br dd div dl dt h1 h2 h3 h4 h5 h6 hr li ol p pre section table td "
        "th tr ul".split()
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style", "head", "title"):
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _html_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return unicodedata.normalize("NFC", text)


__all__ = ["MAX_DEPTH", "Attachment", "ReceivedMail", "decode_text", "read_mail"]
