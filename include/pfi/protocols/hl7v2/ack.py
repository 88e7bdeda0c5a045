"""HL7 v2 technical acknowledgements (ACK) to the producer.

Structure ``MSH [{SFT}] [UAC] MSA [{ERR}]`` (CI-SIS volet "Transmission de document(s) CDA en
HL7v2", ``profils-messages.md`` §ACK; HL7 v2.6 chapter 2):

- MSH-3..6 are the original's MSH-5/6/3/4 (swapped), MSH-9 ``ACK^<event>^ACK``, MSH-12 the
  version of the acknowledged message, MSH-18 its character set.
- MSA-1 ``AA`` accepted, ``AE`` error (the message is wrong), ``AR`` reject (the receiver cannot
  take it now, it may be sent again); MSA-2 is the original MSH-10.
- ERR-2 location, ERR-3 HL7 table 0357 condition, ERR-4 severity (table 0516), ERR-5 the
  application error code when ERR-3 is ``207`` (volet table ``applicationErrorCode`` 900–906; the
  PFI's precise reason code goes in the CWE alternate components ERR-5.4–6), ERR-7 a short
  diagnostic (``CODE: text``, never patient data).

:func:`read_header` reads just enough of MSH to answer even a message the full parser refuses.
It never raises on bad content: what it cannot read stays empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: MSH-18 values of the volet → Python codecs.
CHARSETS = {
    "": None,
    "8859/1": "iso-8859-1",
    "8859/15": "iso-8859-15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "ASCII": "ascii",
}

#: MSA-1 (HL7 table 0008): application acknowledgements, then the enhanced-mode commit
#: acknowledgements an MLLP inlet answers once a message is safely stored (CA accept, CE error,
#: CR reject).
ACK_CODES = ("AA", "AE", "AR", "CA", "CE", "CR")

#: HL7 table 0357 "message error condition" codes used in ERR-3.
ERR_SEGMENT_SEQUENCE = ("100", "Segment sequence error")
ERR_REQUIRED_FIELD_MISSING = ("101", "Required field missing")
ERR_DATA_TYPE = ("102", "Data type error")
ERR_UNSUPPORTED_MESSAGE_TYPE = ("200", "Unsupported message type")
ERR_UNSUPPORTED_EVENT = ("201", "Unsupported event code")
ERR_UNSUPPORTED_VERSION = ("203", "Unsupported version id")
ERR_APPLICATION = ("207", "Application internal error")


@dataclass(frozen=True)
class MessageHeader:
    """What MSH says about a message: enough to acknowledge it. No patient data here."""

    field_separator: str = "|"
    encoding_characters: str = "^~\\&"
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    message_code: str = ""
    trigger_event: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = "2.6"
    charset: str = ""

    @property
    def message_type(self) -> str:
        return (
            f"{self.message_code}^{self.trigger_event}" if self.trigger_event else self.message_code
        )


@dataclass(frozen=True)
class AckError:
    """One ERR segment: an HL7 table 0357 condition and, for 207, an application code."""

    condition: tuple[str, str] = ERR_APPLICATION
    location: str = ""
    severity: str = "E"
    application_code: str = ""
    application_text: str = ""
    application_table: str = ""
    alternate_code: str = ""
    alternate_text: str = ""
    alternate_table: str = ""
    diagnostic: str = ""


#: How much of a message :func:`read_header` looks at.
HEADER_WINDOW = 64 * 1024


def split_segments(text: str) -> list[str]:
    """Split on CR, LF or CRLF (the official examples use LF, HL7 requires CR)."""
    return [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]


def read_header(raw: bytes) -> MessageHeader:
    """Read MSH from the first message of ``raw`` (FHS/BHS batch headers are skipped).

    Only the first 64 KiB are looked at: MSH comes first and is short, and a message may carry
    megabytes of base64 after it.
    """
    text = raw[:HEADER_WINDOW].decode("latin-1", errors="replace")  # MSH is ASCII in practice
    segments = split_segments(text)
    msh = next((s for s in segments if s.startswith("MSH")), None)
    if msh is None or len(msh) < 8:
        return MessageHeader()
    sep = msh[3]
    fields = msh.split(sep)
    # fields[0] = "MSH", fields[1] = encoding characters; MSH-n is fields[n - 1].

    def get(n: int) -> str:
        return fields[n - 1].strip() if len(fields) > n - 1 else ""

    comp = get(2)[:1] or "^"
    msg_type = get(9).split(comp)
    return MessageHeader(
        field_separator=sep,
        encoding_characters=get(2) or "^~\\&",
        sending_application=get(3),
        sending_facility=get(4),
        receiving_application=get(5),
        receiving_facility=get(6),
        message_code=msg_type[0] if msg_type else "",
        trigger_event=msg_type[1] if len(msg_type) > 1 else "",
        control_id=get(10),
        processing_id=get(11) or "P",
        version=get(12).split(comp)[0] or "2.6",
        charset=get(18),
    )


def codec_for(charset: str, default: str = "iso-8859-1") -> str:
    """The Python codec for an MSH-18 value (unknown values fall back to ``default``)."""
    return CHARSETS.get(charset.strip().upper(), None) or default


def escape(value: str, encoding_characters: str = "^~\\&", field_separator: str = "|") -> str:
    """Escape delimiters in a text value (HL7 v2.6 §2.7.4)."""
    comp, rep, esc, sub = (encoding_characters + "^~\\&")[:4]
    out = value.replace(esc, f"{esc}E{esc}")
    for char, code in ((field_separator, "F"), (comp, "S"), (sub, "T"), (rep, "R")):
        out = out.replace(char, f"{esc}{code}{esc}")
    return out.replace("\r", " ").replace("\n", " ")


def reply_header(
    original: MessageHeader,
    message_type: tuple[str, ...],
    control_id: str,
    now: datetime,
    *,
    version: str,
    profile: str = "",
) -> str:
    """The MSH of an answer to ``original`` (an ACK or a ZAM), in its separators.

    MSH-3..6 are the original's MSH-5/6/3/4, MSH-7 ``now``, MSH-9 the components of
    ``message_type``, MSH-10 ``control_id``, MSH-11 the original's processing id, MSH-12
    ``version``, MSH-17 ``FRA``, MSH-18 the original's character set and, when given, MSH-21
    ``profile`` (components separated by ``^``, rewritten in the original's separator).
    """
    sep = original.field_separator or "|"
    enc = original.encoding_characters or "^~\\&"
    comp = enc[0]
    fields = [
        "MSH",
        enc,
        original.receiving_application,
        original.receiving_facility,
        original.sending_application,
        original.sending_facility,
        now.strftime("%Y%m%d%H%M%S"),
        "",
        comp.join(message_type),
        escape(control_id, enc, sep),
        original.processing_id or "P",
        version,
        "",
        "",
        "",
        "",
        "FRA",
        original.charset,
    ]
    if profile:
        fields += ["", "", profile.replace("^", comp)]
    return sep.join(fields)


def error_segment(original: MessageHeader, err: AckError) -> str:
    """``ERR||<location>|<condition>^<text>^messageErrorCondition|<severity>|<code>^<text>^<table>
    [^<alternate code>^<text>^<table>]||<diagnostic>`` in the separators of ``original``."""
    sep = original.field_separator or "|"
    enc = original.encoding_characters or "^~\\&"
    comp = enc[0]
    condition = comp.join([err.condition[0], err.condition[1], "messageErrorCondition"])
    application = ""
    if err.application_code:
        parts = [
            escape(err.application_code, enc, sep),
            escape(err.application_text, enc, sep),
            err.application_table,
        ]
        if err.alternate_code:
            parts += [
                escape(err.alternate_code, enc, sep),
                escape(err.alternate_text, enc, sep),
                err.alternate_table,
            ]
        application = comp.join(parts)
    fields = ["ERR", "", err.location, condition, err.severity, application]
    if err.diagnostic:
        fields += ["", escape(err.diagnostic, enc, sep)]
    return sep.join(fields).rstrip(sep)


def technical_ack(
    original: MessageHeader,
    code: str,
    *,
    control_id: str,
    now: datetime,
    errors: tuple[AckError, ...] = (),
    text: str = "",
) -> str:
    """Build the ACK for ``original`` (segments joined by CR, as HL7 requires).

    ``control_id`` is the ACK's own MSH-10 (the caller makes it unique and stable across retries,
    e.g. from the ledger id). ``text`` goes to MSA-3 and must hold no patient data.
    """
    if code not in ACK_CODES:
        raise ValueError(
            f"acknowledgement code must be one of {', '.join(ACK_CODES)}, not {code!r}"
        )
    sep = original.field_separator or "|"
    enc = original.encoding_characters or "^~\\&"
    event = original.trigger_event
    msh = reply_header(
        original,
        ("ACK", event, "ACK") if event else ("ACK",),
        control_id,
        now,
        version=original.version or "2.6",
    )
    msa = sep.join(["MSA", code, original.control_id] + ([escape(text, enc, sep)] if text else []))
    segments = [msh, msa]
    segments += [error_segment(original, err) for err in errors]
    return "\r".join(segments) + "\r"


__all__ = [
    "AckError",
    "MessageHeader",
    "codec_for",
    "error_segment",
    "escape",
    "read_header",
    "reply_header",
    "split_segments",
    "technical_ack",
]
