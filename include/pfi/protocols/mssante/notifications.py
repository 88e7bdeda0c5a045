"""Delivery and read notifications coming back to the sending mailbox: DSN and MDN.

- **DSN** (RFC 3461-3464, report type ``delivery-status``, RFC 6522 ``multipart/report``): the
  operator says whether the mail reached the recipient's mailbox. Per-recipient fields
  ``Final-Recipient``, ``Action`` (``delivered``/``failed``/``delayed``/``relayed``/``expanded``),
  ``Status`` (``5.1.1``…), ``Diagnostic-Code: smtp; 550 …``; per-message ``Original-Envelope-Id``
  (our ``ENVID`` = the delivery's request id). → ZAM^Z02 (volet v2.1, ``ack-metier-zam.md``).
- **MDN** (RFC 8098, report type ``disposition-notification``): the recipient's software read or
  processed the mail. ``Original-Message-ID`` (our Message-ID), ``Final-Recipient``,
  ``Disposition: <mode>; <type>[/<modifier>]`` where the volet puts the integration error as
  ``processed/Error: 902^libellé^…`` (IG-MSS ``struct-msg-mdn.md``). → ZAM^Z03.

A notification is matched to a delivery by the request id inside the Message-ID we wrote
(:func:`pfi.protocols.mssante.compose.request_id_of`), from ``Original-Message-ID`` (MDN), the returned
headers' ``Message-ID`` (DSN), or the ``Original-Envelope-Id`` (DSN).
"""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from typing import Literal

from pfi.protocols.mssante.compose import request_id_of

Kind = Literal["dsn", "mdn"]

_DELIVERED = frozenset({"delivered", "relayed", "expanded"})
_SMTP_CODE = re.compile(r"\b([245]\d\d)\b")
_ERROR_CODE = re.compile(r"error\s*:\s*(\d{3})", re.IGNORECASE)
# What a report says is recorded (events, reason texts) only in these shapes: a malformed report
# could put anything there, the recipient's address (a patient's INS) included.
_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_WORD = re.compile(r"[a-z][a-z-]{0,39}")


def _status(value: str) -> str:
    token = (value or "").strip().split(" ")[0]
    return token if _STATUS.fullmatch(token) else ("" if not token else "invalid")


def _word(value: str) -> str:
    token = (value or "").strip().lower()
    return token if not token or _WORD.fullmatch(token) else "invalid"


@dataclass(frozen=True)
class Notification:
    """One recipient's line of a DSN, or an MDN."""

    kind: Kind
    #: The recipient the report is about (``Final-Recipient``): a mailbox, maybe the patient's.
    recipient: str = field(repr=False)
    #: DSN ``Action``; MDN disposition type (``displayed``, ``processed``, ``deleted``…).
    action: str
    #: DSN ``Status`` (``2.0.0``, ``5.1.1``); MDN disposition modifier (``error``…) or "".
    status: str = ""
    #: SMTP reply code from ``Diagnostic-Code`` (DSN), else derived from the status class.
    smtp_code: int | None = None
    #: MDN integration error code (volet table applicationErrorCode 900-906), if any.
    error_code: str = ""
    original_message_id: str = ""
    envelope_id: str = ""

    @property
    def request_id(self) -> uuid.UUID | None:
        """The delivery's request id, from what we wrote (Message-ID or ENVID)."""
        found = request_id_of(self.original_message_id)
        if found is None and self.envelope_id:
            try:
                found = uuid.UUID(self.envelope_id.strip())
            except ValueError:
                found = None
        return found

    @property
    def delivered(self) -> bool:
        return self.kind == "dsn" and self.action in _DELIVERED

    @property
    def failed(self) -> bool:
        return self.kind == "dsn" and self.action == "failed"

    @property
    def processed_ok(self) -> bool:
        """MDN without an error modifier (read, or processed without error)."""
        return self.kind == "mdn" and "error" not in self.status


def report_type(message: Message) -> str | None:
    """``delivery-status`` / ``disposition-notification`` for a ``multipart/report``."""
    if message.get_content_type() != "multipart/report":
        return None
    return (message.get_param("report-type") or "").lower() or None


def parse_notifications(raw: bytes) -> list[Notification]:
    """Every notification in one mail (a DSN may report several recipients); [] otherwise."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    kind = report_type(message)
    if kind not in ("delivery-status", "disposition-notification"):
        return []
    parts = message.get_payload() if message.is_multipart() else []
    if kind == "disposition-notification":
        part = _part(parts, "message/disposition-notification")
        if part is None:
            return []
        # The IG-MSS example writes the fields with no blank line after the part's own
        # Content-Type: they are then the part's headers. Read them there too.
        blocks = _blocks(part) if part.get("Disposition") is None else [part]
        return [_mdn(blocks[0])] if blocks else []
    part = _part(parts, "message/delivery-status")
    if part is None:
        return []
    blocks = _blocks(part)
    if not blocks:
        return []
    per_message, per_recipient = blocks[0], blocks[1:]
    original = _original_message_id(parts)
    envelope_id = _clean(per_message.get("Original-Envelope-Id", ""))
    return [_dsn(block, original, envelope_id) for block in per_recipient]


def _part(parts: list, content_type: str) -> Message | None:
    for part in parts:
        if isinstance(part, Message) and part.get_content_type() == content_type:
            return part
    return None


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a ``message/delivery-status`` or disposition part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    if _field(part, "Content-Transfer-Encoding").lower() in ("base64", "quoted-printable"):
        text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    chunks = re.split(r"\r?\n\s*\r?\n", text.strip())
    return [HeaderParser().parsestr(chunk.strip() + "\n") for chunk in chunks if chunk.strip()]


def _original_message_id(parts: list) -> str:
    for content_type in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
        part = _part(parts, content_type)
        if part is None:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return _clean(payload[0].get("Message-ID", ""))
        if isinstance(payload, str):
            return _clean(HeaderParser().parsestr(payload).get("Message-ID", ""))
    return ""


def _address(value: str) -> str:
    """``rfc822; someone@example.org`` → ``someone@example.org`` (lower case)."""
    _, _, address = (value or "").partition(";")
    return (address or value or "").strip().strip("<>").strip().lower()


def _field(block: Message, *names: str) -> str:
    """The first of these fields that is present, as text. A field with raw 8-bit bytes (a
    diagnostic in UTF-8, an SMTPUTF8 address) comes as a ``Header`` from the parser, not a str."""
    for name in names:
        value = block.get(name)
        if value:
            return str(value)
    return ""


def _clean(value: str) -> str:
    """Message ids as the IG example writes them (``<id >``): blanks removed."""
    return "".join(str(value or "").split())


def _dsn(block: Message, original: str, envelope_id: str) -> Notification:
    status = _status(_field(block, "Status"))
    diagnostic = _field(block, "Diagnostic-Code")
    found = _SMTP_CODE.search(diagnostic)
    code = int(found.group(1)) if found else None
    if code is None and status[:1] in "45" and status:
        code = 550 if status.startswith("5") else 450
    return Notification(
        kind="dsn",
        recipient=_address(_field(block, "Final-Recipient", "Original-Recipient")),
        action=_word(_field(block, "Action")),
        status=status,
        smtp_code=code,
        original_message_id=original,
        envelope_id=envelope_id,
    )


def _mdn(block: Message) -> Notification:
    disposition = _field(block, "Disposition")
    _, _, what = disposition.partition(";")
    kind_part, _, modifier = what.strip().partition("/")
    error = _ERROR_CODE.search(modifier)
    return Notification(
        kind="mdn",
        recipient=_address(_field(block, "Final-Recipient", "Original-Recipient")),
        action=_word(kind_part),
        status=_word(modifier.split(":")[0]),
        error_code=error.group(1) if error else "",
        original_message_id=_clean(_field(block, "Original-Message-ID")),
    )


__all__ = ["Notification", "parse_notifications", "report_type"]
