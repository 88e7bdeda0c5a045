"""The mail that answers a received mail: the volet's error mail (an MDN, or a standard mail),
and the MDN of a processed one.

Volet "Transmission au LPS de documents CDA provenant d'un courriel MSSanté" v1.1 (IG-MSS,
``ansforge/IG-hl7v2-volet-trans-lps-doc-cda-courriel-mss``, ``input/pagecontent``):

- **Which kind** (``struct-msg-mdn.md``, ``struct-email-standard.md``, ``cas-usage.md``): an MDN
  (RFC 8098) when the received mail holds ``Disposition-Notification-To`` ("L'envoi du MDN …
  est conditionné par la présence d'un entête Disposition-Notification-To"), else a "standard"
  RFC 5322 mail. ``mdn=None`` applies that rule; ``True``/``False`` overrides it.
- **Subject** (both pages): ``[KO Intégration système !][<code erreur>] XDM/1.0/DDM+<libellé>
  <NOM> <prénom> <date de naissance>``, i.e. the prefix, the code in brackets, one space, the
  received mail's own subject (the ``XDM/1.0/DDM+…`` subject of SC.MSS/CONF.25). The standard
  mail's *example* writes ``[Erreur d'intégration !]``; the rule of both pages is followed. A
  processed MDN keeps the original subject as it is.
- **MDN** (``struct-msg-mdn.md``, RFC 8098, RFC 6522): ``multipart/report;
  report-type=disposition-notification``; 1. a ``text/plain`` part for the human, with "au moins
  … le code et le libellé de l'erreur retournés par le CONSOMMATEUR" ("Le message ci-dessous n'a
  pas pu être intégré automatiquement dans le DPI pour la raison suivante : <libellé>"); 2. a
  ``message/disposition-notification`` part: ``Reporting-UA``, ``Original-Recipient`` (from the
  received mail's ``Original-Recipient`` header, when it has one), ``Final-Recipient: rfc822;
  <the application mailbox>``, ``Original-Message-ID``, ``Disposition: automatic-action/
  MDN-sent-automatically; processed/Error: <code>^<libellé>`` (``processed`` alone on success);
  3. the received mail as ``message/rfc822``; then its attachments (IHE_XDM.ZIP, PDF) again,
  base64: "Les pièces jointes envoyées avec le courriel d'origine … doivent être remises en
  pièces jointes du courriel MDN". RFC 6522 counts three parts; the volet's rule adds them.
- **Standard mail** (``struct-email-standard.md``): ``multipart/mixed``; the same human text
  (UTF-8); the received mail as ``message/rfc822`` with ``filename="message_original.eml"``; its
  attachments again, base64. No ``Disposition`` field: "spécifique aux MDN".

Decisions where the volet is silent:

- *Whose code*: ``code`` is the DPI's ERR-5 code (table applicationErrorCondition, 900-906)
  when its ACK has one, else its ERR-3 code (HL7 table 0357), else the PFI's own coded reason
  (``XDM_…``, ``MSS_…``); ``text`` its label (the ERR-5/ERR-3 text), defaulting to the volet's
  label of a 900-906 code. In the machine-readable ``Disposition`` the label is folded to ASCII
  on one line (the field is ASCII); the human part keeps it as given.
- *Recipient*: an MDN goes to the ``Disposition-Notification-To`` address (``to_address`` only
  when the mail names none and ``mdn=True``); a standard mail to ``to_address``, the dedicated
  error mailbox of ``cas-usage.md`` ("BAL dédiée", "hors périmètre de ce volet", used when no
  MDN was asked for), else to the sender. RFC 8098 §2.1 asks a confirmation when
  ``Disposition-Notification-To`` differs from ``Return-Path``; the volet's use cases (a mail
  forwarded by a secretary) want the MDN anyway: that choice is the caller's
  (:attr:`ReceivedMail.return_path <pfi.protocols.mssante.inbound.ReceivedMail.return_path>`).
- *Loops*: the reply is ``Auto-Submitted: auto-replied`` (RFC 3834) with ``In-Reply-To``; no
  reply is ever made to a mail that is itself automatic (InvalidInput ``MSS_AUTO_SUBMITTED``):
  two PFIs refusing each other's error mails, which re-attach an ``IHE_XDM.ZIP``, would loop.
- *Message-ID*: given by the caller and fixed before the first attempt (a retried send carries
  the same one); :func:`reply_message_id` derives one from the received mail.
- *Sending*: the result is a :class:`ReplyMail`, which
  :meth:`pfi.protocols.mssante.smtp.SmtpClient.send` takes as it takes a composed mail (from
  the application mailbox, one recipient, no DSN).
"""

from __future__ import annotations

import email
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP as SMTP_POLICY
from email.policy import compat32 as COMPAT32
from email.utils import format_datetime
from typing import Literal

from pfi.base.errors import ConfigurationError, InvalidInput
from pfi.protocols.hl7v2.zam import APPLICATION_ERROR_LABELS
from pfi.protocols.mssante import constants as k
from pfi.protocols.mssante.inbound import ReceivedMail

Kind = Literal["mdn", "standard"]

#: ``Reporting-UA`` product of the MDN.
USER_AGENT = "PFI-Airflow"
#: Longest label kept (the human part and the ``Disposition`` field).
MAX_LABEL = 300
#: Longest quote of the received body in the human part (the whole mail is attached anyway).
MAX_QUOTE = 20_000

#: An address an error mail can go to: ASCII only (no SMTPUTF8 here: a non-ASCII local part
#: would fail at MAIL/RCPT, for ever), without control characters or specials.
_ADDRESS = re.compile(r"[!#-'*+\-/-9=?A-Z^-~.]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")


@dataclass(frozen=True)
class ReplyMail:
    """A reply ready for SMTP: the message and its envelope (the application mailbox, one
    recipient). Sent by :class:`~pfi.protocols.mssante.smtp.SmtpClient` like a composed mail."""

    message: EmailMessage = field(repr=False)
    message_id: str
    sender: str
    recipient: str = field(repr=False)
    kind: Kind
    #: The error code of the subject and ``Disposition``; "" for a processed MDN.
    code: str
    #: No DSN is asked for a reply.
    dsn: bool = False

    @property
    def envelope_id(self) -> str:
        return self.message_id.strip("<>")

    def as_bytes(self) -> bytes:
        """The wire form (CRLF line ends, RFC 5322 folding)."""
        return self.message.as_bytes(policy=SMTP_POLICY)


def error_mail(
    original: ReceivedMail,
    *,
    from_address: str,
    code: str,
    message_id: str,
    text: str | None = None,
    to_address: str | None = None,
    mdn: bool | None = None,
    now: datetime | None = None,
) -> ReplyMail:
    """The error mail answering ``original``: an MDN when it asked for one (``mdn=None``),
    else a standard mail; see the module docstring for every rule.

    ValueError for a malformed ``code`` or ``message_id`` (the caller's); ConfigurationError
    when ``from_address`` is not an address; InvalidInput ``MSS_BAD_ADDRESS`` when there is no
    usable recipient, ``MSS_AUTO_SUBMITTED`` when ``original`` is an automatic mail.
    """
    code = _code(code)
    label = _line(text or "") or error_label(code)
    kind: Kind = "mdn" if (original.mdn_requested if mdn is None else mdn) else "standard"
    return _reply(original, kind, from_address, to_address, message_id, now, code, label)


def processed_mdn(
    original: ReceivedMail,
    *,
    from_address: str,
    message_id: str,
    to_address: str | None = None,
    now: datetime | None = None,
) -> ReplyMail:
    """The MDN of a mail whose documents the DPI took (``Disposition: …; processed``), subject
    unchanged (IG-MSS ``struct-msg-mdn.md``); the same structure as the error MDN."""
    return _reply(original, "mdn", from_address, to_address, message_id, now, "", "")


def ko_subject(subject: str, code: str) -> str:
    """``[KO Intégration système !][<code>] <subject>`` (IG-MSS struct-msg-mdn.md)."""
    return f"{k.KO_SUBJECT_PREFIX}[{_code(code)}] {' '.join(subject.split())}".rstrip()


def error_label(code: str) -> str:
    """The volet's label of a code (applicationErrorCondition 900-906, table 0357), else a
    generic one."""
    return (
        APPLICATION_ERROR_LABELS.get(code) or k.MESSAGE_ERRORS.get(code) or "Erreur d'intégration"
    )


def reply_message_id(original: ReceivedMail, from_address: str, *, kind: str = "ko") -> str:
    """``<pfi-ko.<hash>@<mailbox domain>>``: the same for every attempt at answering the same
    received mail (hash of its Message-ID, else of its bytes)."""
    seed = (original.message_id or "").encode() or original.raw
    digest = hashlib.sha256(kind.encode() + b"\0" + seed).hexdigest()[:32]
    domain = from_address.rsplit("@", 1)[-1].lower()
    return f"<pfi-{kind}.{digest}@{domain}>"


# --- the mail ---------------------------------------------------------------------------------


def _reply(
    original: ReceivedMail,
    kind: Kind,
    from_address: str,
    to_address: str | None,
    message_id: str,
    now: datetime | None,
    code: str,
    label: str,
) -> ReplyMail:
    if original.auto_submitted:
        raise InvalidInput(
            "no reply to an automatic mail (Auto-Submitted, RFC 3834)", code=k.AUTO_SUBMITTED
        )
    message_id = _message_id(message_id)
    if not _ADDRESS.fullmatch(from_address or ""):
        raise ConfigurationError("the replying mailbox is not a mail address", code=k.NO_MAILBOX)
    if kind == "mdn":
        recipient = original.disposition_notification_to or to_address
    else:
        recipient = to_address or original.sender
    if not recipient or not _ADDRESS.fullmatch(recipient):
        raise InvalidInput("no address to send the reply to", code=k.BAD_ADDRESS)

    msg = EmailMessage()
    msg["From"] = from_address
    msg["To"] = recipient
    msg["Subject"] = ko_subject(original.subject, code) if code else original.subject
    msg["Date"] = format_datetime((now or datetime.now(UTC)).replace(microsecond=0))
    msg["Message-ID"] = message_id
    original_id = original.message_id if _MESSAGE_ID.fullmatch(original.message_id or "") else ""
    if original_id:
        msg["In-Reply-To"] = original_id
        msg["References"] = original_id
    msg["Auto-Submitted"] = "auto-replied"
    msg["MIME-Version"] = "1.0"

    head = [_text_part(_human_text(original, kind, code, label))]
    if kind == "mdn":
        head.append(_disposition_part(original, from_address, original_id, code, label))
        msg["Content-Type"] = "multipart/report; report-type=disposition-notification"
    else:
        msg["Content-Type"] = "multipart/mixed"
    name = None if kind == "mdn" else k.ORIGINAL_MAIL_FILENAME
    try:
        msg.set_payload([*head, *_quoted(original, name, opaque=False)])
        msg.as_bytes(policy=SMTP_POLICY)  # draws the boundaries: every later as_bytes is equal
    except Exception:  # a received mail the generator cannot write back: attach its bytes
        msg.set_payload([*head, *_quoted(original, name, opaque=True)])
        msg.as_bytes(policy=SMTP_POLICY)
    return ReplyMail(
        message=msg,
        message_id=message_id,
        sender=from_address,
        recipient=recipient,
        kind=kind,
        code=code,
    )


def _text_part(text: str) -> MIMEPart:
    part = MIMEPart()
    part.set_content(text, charset="utf-8", cte="quoted-printable")
    return part


def _disposition_part(
    original: ReceivedMail, from_address: str, original_id: str, code: str, label: str
) -> MIMEPart:
    """The machine-readable part (RFC 8098 §3.1), fields written as the volet shows them."""
    domain = from_address.rsplit("@", 1)[-1].lower()
    fields = [f"Reporting-UA: {domain}; {USER_AGENT}"]
    if original.original_recipient and _ADDRESS.fullmatch(original.original_recipient):
        fields.append(f"Original-Recipient: rfc822;{original.original_recipient}")
    fields.append(f"Final-Recipient: rfc822;{from_address}")
    if original_id:
        fields.append(f"Original-Message-ID: {original_id}")
    if code:
        fields.append(f"Disposition: {k.MDN_ERROR}{code}^{_ascii(label)}")
    else:
        fields.append(f"Disposition: {k.MDN_PROCESSED}")
    part = MIMEPart()
    part["Content-Type"] = "message/disposition-notification"
    part.set_payload("\r\n".join(fields) + "\r\n")
    return part


def _message_part(raw: bytes, filename: str | None) -> MIMEPart:
    """The received mail as ``message/rfc822`` (RFC 2046 §5.2.1: 7bit or 8bit, never
    re-encoded). It is parsed with ``compat32`` and written back by the generator, which keeps
    its header values, boundaries and 8-bit bytes as they came (long header lines refolded)."""
    data = re.sub(rb"\r?\n", b"\r\n", raw)
    part = MIMEPart()
    part["Content-Type"] = "message/rfc822"
    part["Content-Transfer-Encoding"] = "8bit" if re.search(rb"[\x80-\xff]", data) else "7bit"
    if filename:
        part["Content-Disposition"] = "attachment"
        part.set_param("filename", filename, header="Content-Disposition")
    part.set_payload([email.message_from_bytes(data, policy=COMPAT32)])
    return part


def _quoted(original: ReceivedMail, filename: str | None, *, opaque: bool) -> list[MIMEPart]:
    """The received mail then its attachments. ``opaque``: the mail (and any mail attached to
    it) as ``application/octet-stream`` bytes, for a mail the generator cannot write back."""
    if opaque:
        first = _file_part(original.raw, "application/octet-stream", k.ORIGINAL_MAIL_FILENAME)
    else:
        first = _message_part(original.raw, filename)
    rest = []
    for attachment in original.attachments:
        if attachment.content_type.startswith(("message/", "multipart/")) and not opaque:
            rest.append(_message_part(attachment.data, attachment.filename or None))
        else:
            content_type = attachment.content_type
            if content_type.startswith(("message/", "multipart/")):
                content_type = "application/octet-stream"
            rest.append(_file_part(attachment.data, content_type, attachment.filename))
    return [first, *rest]


def _file_part(data: bytes, content_type: str, filename: str) -> MIMEPart:
    """An attachment again, base64 (IG-MSS: "remises en pièces jointes")."""
    maintype, _, subtype = content_type.partition("/")
    part = MIMEPart()
    part.set_content(data, maintype, subtype, disposition="attachment", filename=filename or None)
    return part


# --- the human text ---------------------------------------------------------------------------


def _human_text(original: ReceivedMail, kind: Kind, code: str, label: str) -> str:
    names = [a.filename or a.content_type for a in original.attachments]
    lines = ["Bonjour,", ""]
    if code:
        lines += [
            "Le message ci-dessous n'a pas pu être intégré automatiquement dans le DPI pour la "
            f"raison suivante : {label}",
            "",
            f"- Code d'erreur : {code}",
            f"- Erreur détectée : {label}",
            "",
        ]
    else:
        lines += ["Le message ci-dessous a été intégré automatiquement dans le DPI.", ""]
    lines.append("Vous trouverez en pièces jointes :")
    lines.append(
        "1. le message d'origine"
        + (f" ({k.ORIGINAL_MAIL_FILENAME})" if kind == "standard" else "")
        + (" ;" if names else ".")
    )
    if names:
        lines.append(f"2. les fichiers qu'il portait : {', '.join(names)}.")
    if code:
        lines += [
            "",
            "Veuillez vérifier les informations transmises et renvoyer le document après "
            "correction, ou l'intégrer manuellement.",
        ]
    when = original.date.strftime("%d/%m/%Y %H:%M") if original.date else ""
    lines += [
        "",
        "---------- Message d'origine ----------",
        f"Date : {when}",
        f"De : {original.sender}",
        f"Objet : {original.subject}",
        f"Message-ID : {original.message_id or ''}",
        "",
    ]
    body = original.body.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if len(body) > MAX_QUOTE:
        body = body[:MAX_QUOTE] + "\n[…]"
    lines += [f"> {line}".rstrip() for line in body.split("\n")] if body else []
    lines += [
        "",
        "--",
        "Ce courriel a été généré automatiquement par la plateforme "
        "d'intermédiation de l'établissement.",
    ]
    return "\n".join(lines) + "\n"


# --- values -----------------------------------------------------------------------------------


def _code(code: str) -> str:
    code = (code or "").strip()
    if not _CODE.fullmatch(code):
        raise ValueError("an error code is a short token of letters, digits, '_', '.', '-'")
    return code


def _message_id(value: str) -> str:
    value = (value or "").strip()
    if value and not value.startswith("<"):
        value = f"<{value}>"
    if not _MESSAGE_ID.fullmatch(value):
        raise ValueError("the reply's Message-ID must be <left@right>, printable ASCII")
    return value


def _line(text: str) -> str:
    """One line, no control character, at most MAX_LABEL characters."""
    text = " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", text or "").split())
    return text[:MAX_LABEL]


def _ascii(text: str) -> str:
    """The label as the ``Disposition`` field carries it: ASCII, one line, no ``^`` (the
    separator of ``<code>^<libellé>``)."""
    text = text.replace("\u2019", "'").replace("\u00a0", " ").replace("^", " ")
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(folded.split())


__all__ = [
    "MAX_LABEL",
    "USER_AGENT",
    "ReplyMail",
    "error_label",
    "error_mail",
    "ko_subject",
    "processed_mdn",
    "reply_message_id",
]
