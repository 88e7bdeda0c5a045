"""Parse HL7 v2 bytes into the frozen model of :mod:`pfi.protocols.hl7v2.model`.

The volet "Transmission de document(s) CDA en HL7v2" v2.1 (``profils-messages.md``,
``evenements-declenchants.md``, ``meta-dmp-mss.md``) defines what a producer sends; the official
examples (``../shared/fixtures/MANIFEST.md``) show what arrives in practice. The parser is strict
on what decides where a document goes and tolerant on the rest:

- **Framing**: segments end with CR, LF or CRLF (HL7 wants CR, every official example uses LF);
  an MLLP frame and a UTF-8 BOM are stripped; FHS/BHS/BTS/FTS batch envelopes are dropped and
  each MSH starts a message (:func:`split_file`, :func:`parse_file`).
- **Characters**: MSH-18 picks the codec (``8859/1``, ``8859/15``, ``UNICODE UTF-8``…), an empty
  MSH-18 the caller's default; an unknown MSH-18 or bytes invalid in the declared codec are
  refused (``HL7_CHARSET``) rather than guessed, because a garbled name breaks the INS traits.
- **Escapes** (HL7 v2.6 §2.7.4) ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh..\\`` are decoded here, not
  with ``hl7.unescape``, which logs the whole field (patient data) on a malformed sequence and
  decodes ``\\X..\\`` byte by byte whatever the charset.
- **Structure** comes from ``hl7.parse`` (python-hl7); values are read with a small accessor
  tolerant of absent components.
- **Events**: MDM^T02/T10/T04 and ORU^R01 give an :class:`~pfi.protocols.hl7v2.model.Hl7Request`; ACK and
  ZAM^Z01/Z02/Z03 an :class:`~pfi.protocols.hl7v2.model.Hl7Ack`; anything else (ADT…) is refused with
  ``HL7_UNSUPPORTED_EVENT``. MSH-21 must be a ``CISIS_CDA_HL7_V2``/``_V1`` profile or empty; the
  ``CISIS_CDA_HL7_LPS`` profile is the PFI→DPI direction and is refused
  (``HL7_UNSUPPORTED_PROFILE``).
- **Action**: MDM event, OBX-11 of every document and ORC-1 must agree (``profils-messages.md``:
  "En cas d'incohérence entre ces champs, le message HL7 sera rejeté"). ORC-1 ``SC`` of the
  v1.2/v2.0 examples is tolerated for those profiles only (non-blocking defect).
- **Documents**: every ED OBX that is not a ``MetaDMPMSS`` item; base64 with missing ``=``
  padding is accepted (official examples) and noted; an MDM carries exactly one.
- **Metadata**: the eight required ``MetaDMPMSS`` flags must be present with ``Y``/``N``;
  the v1.2 spellings are read as their v2 names; a truncated ``CORPSMAIL_*`` body (every ORU
  example) is a non-blocking defect — the PFI then writes its default body, as the volet allows.

Errors are :class:`Hl7Error` (an :class:`~pfi.base.errors.InvalidInput`) with a code, the ERR-2
location and the HL7 table 0357 condition for the technical ACK, and ``header`` — the MSH as far
as it could be read, so the caller can always answer the producer. Messages never quote field
values.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Any

import hl7

from pfi.base.errors import InvalidInput
from pfi.protocols.hl7v2 import constants as c
from pfi.protocols.hl7v2.ack import (
    ERR_APPLICATION,
    ERR_DATA_TYPE,
    ERR_REQUIRED_FIELD_MISSING,
    ERR_SEGMENT_SEQUENCE,
    ERR_UNSUPPORTED_EVENT,
    ERR_UNSUPPORTED_MESSAGE_TYPE,
    AckError,
    MessageHeader,
    read_header,
)
from pfi.protocols.hl7v2.model import (
    Action,
    Coded,
    Defect,
    Document,
    DocumentInfo,
    EntityId,
    Hl7Ack,
    Hl7Message,
    Hl7Request,
    MetaFlags,
    Order,
    Participant,
    Patient,
    PatientId,
    Profile,
    Visit,
)
from pfi.protocols.ins import INS_OIDS

# Reason codes (ledger, ACK text). Blocking defects use the HL7_DOC_* codes.
HL7_PARSE = "HL7_PARSE"
HL7_CHARSET = "HL7_CHARSET"
HL7_UNSUPPORTED_EVENT = "HL7_UNSUPPORTED_EVENT"
HL7_UNSUPPORTED_PROFILE = "HL7_UNSUPPORTED_PROFILE"
HL7_MISSING_SEGMENT = "HL7_MISSING_SEGMENT"
HL7_MISSING_FIELD = "HL7_MISSING_FIELD"
HL7_NO_DOCUMENT = "HL7_NO_DOCUMENT"
HL7_DOC_COUNT = "HL7_DOC_COUNT"
HL7_BASE64 = "HL7_BASE64"
HL7_ED_ENCODING = "HL7_ED_ENCODING"
HL7_INCONSISTENT_ACTION = "HL7_INCONSISTENT_ACTION"
HL7_NO_PARENT_ID = "HL7_NO_PARENT_ID"
HL7_META_MISSING = "HL7_META_MISSING"
HL7_META_VALUE = "HL7_META_VALUE"
HL7_META_DUPLICATE = "HL7_META_DUPLICATE"
# Defects (recorded on the model, see Defect.blocking).
HL7_DOC_FORMAT = "HL7_DOC_FORMAT"
HL7_DOC_TRUNCATED = "HL7_DOC_TRUNCATED"
HL7_BASE64_PADDING = "HL7_BASE64_PADDING"
HL7_MAIL_BODY_BASE64 = "HL7_MAIL_BODY_BASE64"
HL7_META_UNKNOWN = "HL7_META_UNKNOWN"
HL7_OBX_IGNORED = "HL7_OBX_IGNORED"
HL7_ORC_LEGACY = "HL7_ORC_LEGACY"

ERR_TABLE_VALUE = ("103", "Table value not found")
ERR_CARDINALITY = ("198", "Non-conformant cardinality")

DEFAULT_ENCODING = "iso-8859-1"

_MDM_EVENTS = {
    c.EVENT_MDM_INITIAL: Action.NEW,
    c.EVENT_MDM_REPLACE: Action.REPLACE,
    c.EVENT_MDM_DELETE: Action.DELETE,
}
_RESULT_ACTIONS = {
    c.RESULT_FINAL: Action.NEW,
    c.RESULT_CORRECTED: Action.REPLACE,
    c.RESULT_DELETED: Action.DELETE,
}
_ORDER_ACTIONS = {
    c.ORDER_NEW: Action.NEW,
    c.ORDER_REPLACE: Action.REPLACE,
    c.ORDER_CANCEL: Action.DELETE,
}
#: MetaDMPMSS code → MetaFlags attribute; required ones first (meta-dmp-mss.md, fixed order).
_FLAG_FIELDS = {
    c.META_MASQUE_PS: "masque_ps",
    c.META_INVISIBLE_PATIENT: "invisible_patient",
    c.META_INVISIBLE_REP_LEGAUX: "invisible_rep_legaux",
    c.META_CONNEXION_SECRETE: "connexion_secrete",
    c.META_MODIF_CONF_CODE: "modif_conf_code",
    c.META_DESTDMP: "dest_dmp",
    c.META_DESTMSSANTEPS: "dest_mss_ps",
    c.META_DESTMSSANTEPAT: "dest_mss_patient",
    c.META_ACK_RECEPTION: "ack_reception",
    c.META_ACK_LECTURE_MSS: "ack_lecture_mss",
}
REQUIRED_FLAGS = tuple(_FLAG_FIELDS)[:8]
_META_ALIASES = {
    c.META_LEGACY_INVISIBLE_REP_LEGAUX: c.META_INVISIBLE_REP_LEGAUX,
    c.META_LEGACY_MODIF_CONF_CODE: c.META_MODIF_CONF_CODE,
    c.META_LEGACY_ACK_LECTURE: c.META_ACK_LECTURE_MSS,
}
_MAIL_BODIES = (c.META_CORPSMAIL_PS, c.META_CORPSMAIL_PATIENT)
_ACCEPTED_PROFILES = (c.PROFILE_CDA_HL7_V2, c.PROFILE_CDA_HL7_V1)
_ZAM_EVENTS = (c.EVENT_ZAM_DMP, c.EVENT_ZAM_MSS_RECEIPT, c.EVENT_ZAM_MSS_READ)

_CLINICAL_DOCUMENT = re.compile(rb"<(?:[\w.-]+:)?ClinicalDocument[\s>/]")
_CLINICAL_DOCUMENT_END = re.compile(rb"</(?:[\w.-]+:)?ClinicalDocument>\s*$")


class Hl7Error(InvalidInput):
    """A message the PFI cannot take: code, ERR-2 location, table 0357 condition, partial MSH."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        location: str = "",
        condition: tuple[str, str] = ERR_APPLICATION,
        header: MessageHeader | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.location = location
        self.condition = condition
        self.header = header or MessageHeader()

    def ack_error(self) -> AckError:
        """The ERR segment of the technical ACK for this error."""
        return AckError(condition=self.condition, location=self.location)


# --- framing ----------------------------------------------------------------------------------


def _lines(raw: bytes) -> list[bytes]:
    data = raw.lstrip(b"\x0b").rstrip(b"\x1c\r\n\t ")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return [line for line in data.splitlines() if line.strip()]  # CR, LF, CRLF (bytes)


def split_file(raw: bytes) -> list[bytes]:
    """Split a file into messages (CR-joined bytes), dropping FHS/BHS/BTS/FTS.

    Works on bytes (segment ids and separators are ASCII in every accepted charset), so each
    message is decoded later with its own MSH-18. Lines before the first MSH form a chunk of
    their own, which :func:`parse_message` refuses.
    """
    chunks: list[list[bytes]] = []
    preamble: list[bytes] = []
    batch = tuple(s.encode() for s in c.BATCH_SEGMENTS)
    for line in _lines(raw):
        tag = line[:3]
        if tag in batch:
            continue
        if tag == b"MSH":
            chunks.append([line])
        elif chunks:
            chunks[-1].append(line)
        else:
            preamble.append(line)
    messages = [b"\r".join(lines) + b"\r" for lines in chunks]
    if preamble:
        messages.insert(0, b"\r".join(preamble) + b"\r")
    return messages


def parse_file(
    raw: bytes, *, default_encoding: str = DEFAULT_ENCODING
) -> list[Hl7Message | Hl7Error]:
    """Every message of a file (single message or FHS/BHS batch), in order.

    A message that cannot be parsed is returned as its :class:`Hl7Error` instead of stopping the
    others (each gets its own answer); an empty file gives one error.
    """
    chunks = split_file(raw)
    if not chunks:
        return [
            Hl7Error(
                "the file holds no HL7 segment", code=HL7_PARSE, condition=ERR_SEGMENT_SEQUENCE
            )
        ]
    results: list[Hl7Message | Hl7Error] = []
    for chunk in chunks:
        try:
            results.append(_parse_chunk(chunk, default_encoding))
        except Hl7Error as exc:
            results.append(exc)
    return results


def parse_message(raw: bytes, *, default_encoding: str = DEFAULT_ENCODING) -> Hl7Message:
    """Parse one message; raise :class:`Hl7Error` (with ``header``) when it cannot be taken."""
    chunks = split_file(raw)
    if len(chunks) != 1:
        header = read_header(raw)
        if not chunks:
            raise Hl7Error(
                "the input holds no HL7 segment",
                code=HL7_PARSE,
                condition=ERR_SEGMENT_SEQUENCE,
                header=header,
            )
        raise Hl7Error(
            f"the input holds {len(chunks)} messages where one was expected",
            code=HL7_PARSE,
            condition=ERR_SEGMENT_SEQUENCE,
            header=header,
        )
    return _parse_chunk(chunks[0], default_encoding)


#: HL7 table 0211 shapes: an MSH-18 of another shape is not quoted (it may be a PID field when
#: the MSH runs into the next segment).
_CHARSET_SHAPE = re.compile(
    r"ASCII|8859/\d{1,2}|ISO IR\d{1,3}|UNICODE(?: UTF-(?:8|16|32))?|BIG-5|GB 18030-2000"
    r"|KS X 1001|CNS 11643-1992"
)


def codec_for_charset(charset: str, default_encoding: str = DEFAULT_ENCODING) -> str:
    """The Python codec of an MSH-18 value; ``""`` gives ``default_encoding``."""
    value = charset.strip().upper()
    if not value:
        return default_encoding
    try:
        return c.CHARSET_CODECS[value]
    except KeyError:
        shown = repr(value) if _CHARSET_SHAPE.fullmatch(value) else "(not a table 0211 value)"
        raise Hl7Error(
            f"MSH-18 character set {shown} is not supported",
            code=HL7_CHARSET,
            location="MSH^1^18",
            condition=ERR_TABLE_VALUE,
        ) from None


def _parse_chunk(chunk: bytes, default_encoding: str) -> Hl7Message:
    header = read_header(chunk)  # ASCII peek: good enough to answer if decoding fails
    try:
        if not chunk.startswith(b"MSH"):
            raise Hl7Error(
                "the message does not start with an MSH segment",
                code=HL7_PARSE,
                location="MSH",
                condition=ERR_SEGMENT_SEQUENCE,
            )
        codec = codec_for_charset(header.charset, default_encoding)
        try:
            text = chunk.decode(codec)
        except UnicodeDecodeError:
            raise Hl7Error(
                f"the message is not valid {codec} as MSH-18 declares",
                code=HL7_CHARSET,
                location="MSH^1^18",
                condition=ERR_DATA_TYPE,
            ) from None
        try:
            message = hl7.parse(text)
        except Exception as exc:  # python-hl7 errors may quote content: keep only the type
            raise Hl7Error(
                f"HL7 structure not readable ({type(exc).__name__})",
                code=HL7_PARSE,
                condition=ERR_SEGMENT_SEQUENCE,
            ) from None
        reader = _Reader(message, codec)
        header = reader.header()
        return _dispatch(reader, header)
    except Hl7Error as exc:
        if not exc.header.control_id:
            exc.header = header
        raise
    except Exception as exc:  # a shape we did not foresee: answer, never crash the batch
        raise Hl7Error(
            f"message not readable ({type(exc).__name__})",
            code=HL7_PARSE,
            condition=ERR_APPLICATION,
            header=header,
        ) from None


# --- reading values ---------------------------------------------------------------------------


class _Segment:
    """One segment with 1-based, absent-tolerant access: ``get(field, rep, comp, sub)``."""

    def __init__(self, segment: Any, reader: _Reader, ordinal: int) -> None:
        self._segment = segment
        self._reader = reader
        self.id = str(_walk(segment[0], (1, 1, 1)))
        self.ordinal = ordinal  # n-th segment of this id, for ERR-2 locations

    def location(self, field: int) -> str:
        return f"{self.id}^{self.ordinal}^{field}"

    def raw(self, field: int) -> str:
        """The whole field as written (separators kept, no unescaping)."""
        return str(self._segment[field]) if field < len(self._segment) else ""

    def repetitions(self, field: int) -> int:
        if field >= len(self._segment):
            return 0
        node = self._segment[field]
        if len(node) and not isinstance(node[0], str):
            return len(node)
        return 1

    def get(self, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        if field >= len(self._segment):
            return ""
        value = _walk(self._segment[field], (rep, comp, sub))
        return self._reader.unescape(value).strip()


def _walk(node: Any, path: Sequence[int]) -> str:
    """Follow a 1-based path into python-hl7's containers, whose depth varies with content."""
    for depth, index in enumerate(path):
        if isinstance(node, str):
            return node if all(i == 1 for i in path[depth:]) else ""
        if index > len(node):
            return ""
        node = node[index - 1]
    while not isinstance(node, str):
        node = node[0] if len(node) else ""
    return node


class _Reader:
    def __init__(self, message: Any, codec: str) -> None:
        self.codec = codec
        self.separators = message.separators  # "\r" field repetition component subcomponent
        self.esc = message.esc
        counts: dict[str, int] = {}
        self.segments: list[_Segment] = []
        for segment in message:
            seg_id = str(_walk(segment[0], (1, 1, 1)))
            counts[seg_id] = counts.get(seg_id, 0) + 1
            self.segments.append(_Segment(segment, self, counts[seg_id]))

    def first(self, seg_id: str) -> _Segment | None:
        return next((s for s in self.segments if s.id == seg_id), None)

    def all(self, seg_id: str) -> list[_Segment]:
        return [s for s in self.segments if s.id == seg_id]

    def header(self) -> MessageHeader:
        msh = self.segments[0]
        return MessageHeader(
            field_separator=self.separators[1],
            encoding_characters=msh.raw(2) or "^~\\&",
            sending_application=msh.raw(3),
            sending_facility=msh.raw(4),
            receiving_application=msh.raw(5),
            receiving_facility=msh.raw(6),
            message_code=msh.get(9, 1, 1),
            trigger_event=msh.get(9, 1, 2),
            control_id=msh.get(10),
            processing_id=msh.get(11) or "P",
            version=msh.get(12) or "2.6",
            charset=msh.get(18),
        )

    def unescape(self, value: str) -> str:
        esc = self.esc
        if not esc or esc not in value:
            return value
        out: list[str] = []
        index = 0
        while index < len(value):
            char = value[index]
            end = value.find(esc, index + 1) if char == esc else -1
            if end == -1:
                out.append(char)
                index += 1
                continue
            out.append(self._escape_sequence(value[index + 1 : end], value[index : end + 1]))
            index = end + 1
        return "".join(out)

    def _escape_sequence(self, sequence: str, literal: str) -> str:
        seps = self.separators
        simple = {"F": seps[1], "R": seps[2], "S": seps[3], "T": seps[4], "E": self.esc}
        if sequence in simple:
            return simple[sequence]
        if sequence.startswith("X"):
            try:
                return bytes.fromhex(sequence[1:]).decode(self.codec)
            except (ValueError, UnicodeDecodeError):
                return literal
        if sequence in (".br", ".sp"):
            return "\n"
        if sequence in ("H", "N") or sequence.startswith((".", "C", "M", "Z")):
            return ""  # formatting, charset switches, local escapes: no text of their own
        return literal


_CODE_SHAPE = re.compile(r"[A-Z0-9]{1,3}")


def _as_code(value: str) -> str:
    """MSH-9 components as they may be quoted: a three-character HL7 code, else not at all —
    a message whose MSH runs into its PID (a lost segment separator) has the patient's name
    there."""
    if not value:
        return "(empty)"
    return value if _CODE_SHAPE.fullmatch(value) else "(not an HL7 code)"


_PROFILE_SHAPE = re.compile(r"[A-Z0-9]{1,20}(?:_[A-Z0-9]{1,20}){1,5}")
#: Table values of two or three characters (ORC-1, OBX-2, OBX-5.4): too short to be a name.
_SHORT_CODE = re.compile(r"[A-Za-z0-9]{1,3}")


def _as_profile(value: str) -> str:
    """An MSH-21 profile name as it may be quoted (``CISIS_CDA_HL7_LPS``), else not at all."""
    return repr(value) if _PROFILE_SHAPE.fullmatch(value) else "(not a profile name)"


def _quoted(value: str, shape: re.Pattern[str]) -> str:
    """A field value quoted in a refusal only when it has the shape of the code expected there:
    a segment run into the one before it (a lost separator) brings PID's values anywhere."""
    if not value:
        return "(empty)"
    return repr(value) if shape.fullmatch(value) else "(not quoted)"


def _set_id(obx: _Segment) -> str:
    """OBX-1 as named in a message: a set id is a small number."""
    value = obx.get(1)
    return value if re.fullmatch(r"\d{1,4}", value) else "?"


def _fail(
    code: str, message: str, location: str = "", condition: tuple[str, str] = ERR_APPLICATION
) -> Hl7Error:
    return Hl7Error(message, code=code, location=location, condition=condition)


def _oid_of(segment: _Segment, field: int, rep: int, comp: int) -> str:
    """The OID of an HD component: its universal id, or the namespace when it is a bare OID."""
    universal = segment.get(field, rep, comp, 2)
    if universal:
        return universal
    namespace = segment.get(field, rep, comp, 1)
    return namespace if re.fullmatch(r"[0-2](\.\d+)+", namespace) else ""


# --- dispatch ---------------------------------------------------------------------------------


def _dispatch(reader: _Reader, header: MessageHeader) -> Hl7Message:
    code, event = header.message_code, header.trigger_event
    builder: Callable[[_Reader, MessageHeader], Hl7Message] | None = None
    if (code == c.MSG_MDM and event in _MDM_EVENTS) or (code, event) == (c.MSG_ORU, c.EVENT_ORU):
        builder = _request
    elif code == c.MSG_ACK:
        builder = _ack
    elif code == c.MSG_ZAM and event in _ZAM_EVENTS:
        builder = _ack
    if builder is None:
        known = code in (c.MSG_MDM, c.MSG_ORU, c.MSG_ZAM)
        raise _fail(
            HL7_UNSUPPORTED_EVENT,
            f"{_as_code(code)}^{_as_code(event)} is not a message of the volet "
            "Transmission de document(s) CDA en HL7v2",
            "MSH^1^9",
            ERR_UNSUPPORTED_EVENT if known else ERR_UNSUPPORTED_MESSAGE_TYPE,
        )
    return builder(reader, header)


def _profile(reader: _Reader, *, check: bool) -> Profile | None:
    msh = reader.segments[0]
    found = [
        Profile(version=msh.get(21, rep, 1), name=msh.get(21, rep, 2))
        for rep in range(1, msh.repetitions(21) + 1)
    ]
    found = [p for p in found if p.version or p.name]
    for profile in found:
        if profile.name in _ACCEPTED_PROFILES:
            return profile
    if found and check:
        raise _fail(
            HL7_UNSUPPORTED_PROFILE,
            f"MSH-21 profile {_as_profile(found[0].name)} is not CISIS_CDA_HL7_V2 (the "
            "CISIS_CDA_HL7_LPS profile goes from the PFI to the DPI, not to the PFI)",
            "MSH^1^21",
        )
    return found[0] if found else None


# --- acknowledgements -------------------------------------------------------------------------


def _ack(reader: _Reader, header: MessageHeader) -> Hl7Ack:
    errors = tuple(
        AckError(
            condition=(err.get(3, 1, 1), err.get(3, 1, 2)),
            location=err.raw(2),
            severity=err.get(4),
            application_code=err.get(5, 1, 1),
            application_text=err.get(5, 1, 2),
            application_table=err.get(5, 1, 3),
        )
        for err in reader.all("ERR")
    )
    common: dict[str, Any] = {
        "header": header,
        "message_structure": reader.segments[0].get(9, 1, 3),
        "profile": _profile(reader, check=False),
        "errors": errors,
    }
    if header.message_code == c.MSG_ACK:
        msa = reader.first("MSA")
        if msa is None:
            raise _fail(HL7_MISSING_SEGMENT, "ACK without MSA segment", "MSA", ERR_SEGMENT_SEQUENCE)
        return Hl7Ack(code=msa.get(1), acknowledged_control_id=msa.get(2), **common)
    obx = reader.all("OBX")
    if not obx:
        raise _fail(HL7_MISSING_SEGMENT, "ZAM without OBX segment", "OBX", ERR_SEGMENT_SEQUENCE)
    second = obx[1] if len(obx) > 1 else None
    return Hl7Ack(
        code=obx[0].get(5, 1, 1),
        acknowledged_control_id=obx[0].get(4),
        item=obx[0].get(3, 1, 1),
        recipient_id=second.get(4) if second else "",
        recipient_address=second.get(5, 1, 4) if second else "",
        **common,
    )


# --- document requests ------------------------------------------------------------------------


def _request(reader: _Reader, header: MessageHeader) -> Hl7Request:
    profile = _profile(reader, check=True)
    is_mdm = header.message_code == c.MSG_MDM
    pid = reader.first("PID")
    if pid is None:
        raise _fail(HL7_MISSING_SEGMENT, "PID segment missing", "PID", ERR_SEGMENT_SEQUENCE)
    txa = reader.first("TXA")
    if is_mdm and txa is None:
        raise _fail(HL7_MISSING_SEGMENT, "MDM without TXA segment", "TXA", ERR_SEGMENT_SEQUENCE)
    body = _Body(reader)
    body.read()
    documents = tuple(body.documents)
    if not documents:
        raise _fail(
            HL7_NO_DOCUMENT,
            "no document OBX (value type ED) in the message",
            "OBX",
            ERR_REQUIRED_FIELD_MISSING,
        )
    if is_mdm and len(documents) > 1:
        raise _fail(
            HL7_DOC_COUNT,
            f"an MDM carries one document, this one {len(documents)}",
            "OBX",
            ERR_CARDINALITY,
        )
    missing = [code for code in REQUIRED_FLAGS if body.flags.get(_FLAG_FIELDS[code]) is None]
    if missing:
        raise _fail(
            HL7_META_MISSING,
            "required MetaDMPMSS OBX missing: " + ", ".join(missing),
            "OBX",
            ERR_REQUIRED_FIELD_MISSING,
        )
    orc = reader.first("ORC")
    obr = reader.first("OBR")
    action = _action(header, documents, orc, profile, body.defects)
    document_info = _document_info(txa) if txa else None
    if is_mdm and action is Action.REPLACE and not (document_info and document_info.parent_id):
        raise _fail(
            HL7_NO_PARENT_ID,
            "MDM^T10 without TXA-13 (parent document id)",
            txa.location(13) if txa else "TXA",
            ERR_REQUIRED_FIELD_MISSING,
        )
    order = None
    if orc or obr:
        order = Order(
            order_control=orc.get(1) if orc else "",
            document_type=_coded(obr, 4) if obr else None,
        )
    pv1 = reader.first("PV1")
    return Hl7Request(
        header=header,
        message_structure=reader.segments[0].get(9, 1, 3),
        profile=profile,
        action=action,
        patient=_patient(pid),
        visit=_visit(pv1) if pv1 else None,
        order=order,
        document_info=document_info,
        documents=documents,
        flags=MetaFlags(**body.flags, patient_reply_closed=body.patient_reply_closed),
        participants=tuple(body.participants),
        mail_body_ps=body.mail_bodies.get(c.META_CORPSMAIL_PS),
        mail_body_patient=body.mail_bodies.get(c.META_CORPSMAIL_PATIENT),
        defects=tuple(body.defects),
    )


def _action(
    header: MessageHeader,
    documents: Sequence[Document],
    orc: _Segment | None,
    profile: Profile | None,
    defects: list[Defect],
) -> Action:
    """One action from the MDM event, every document's OBX-11 and ORC-1, or a refusal."""
    statuses = {d.result_status for d in documents}
    actions = {_RESULT_ACTIONS.get(status) for status in statuses}
    if len(actions) != 1 or None in actions:
        raise _fail(
            HL7_INCONSISTENT_ACTION,
            "document OBX-11 must be F, C or D, the same for every document",
            "OBX",
        )
    action = actions.pop()
    assert action is not None
    if header.message_code == c.MSG_MDM and _MDM_EVENTS[header.trigger_event] is not action:
        raise _fail(
            HL7_INCONSISTENT_ACTION,
            f"MDM^{header.trigger_event} does not agree with document OBX-11",
            "OBX",
        )
    order_control = orc.get(1) if orc else ""
    if order_control:
        expected = _ORDER_ACTIONS.get(order_control)
        if expected is not None and expected is not action:
            raise _fail(
                HL7_INCONSISTENT_ACTION,
                f"ORC-1 {order_control} does not agree with the event and OBX-11",
                "ORC^1^1",
            )
        if expected is None:
            if profile is None or profile.is_current:
                raise _fail(
                    HL7_INCONSISTENT_ACTION,
                    f"ORC-1 {_quoted(order_control, _SHORT_CODE)} must be NW, RO or CA",
                    "ORC^1^1",
                )
            defects.append(
                Defect(
                    HL7_ORC_LEGACY,
                    f"ORC-1 {_quoted(order_control, _SHORT_CODE)} of an older volet version ignored",
                    "ORC^1^1",
                )
            )
    return action


class _Body:
    """The OBX/PRT/NTE groups, read in order (PRT and NTE belong to the OBX before them)."""

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.documents: list[Document] = []
        self.flags: dict[str, bool | None] = {name: None for name in _FLAG_FIELDS.values()}
        self.mail_bodies: dict[str, bytes | None] = {}
        self.participants: list[Participant] = []
        self.defects: list[Defect] = []
        self.patient_reply_closed = False

    def read(self) -> None:
        last_code = ""
        for segment in self.reader.segments:
            if segment.id == "OBX":
                last_code = self._obx(segment)
            elif segment.id == "PRT":
                self.participants.append(_participant(segment))
            elif segment.id == "NTE" and last_code == c.META_DESTMSSANTEPAT:
                if segment.get(4, 1, 1).upper() == c.NTE_END_OF_EXCHANGE:
                    self.patient_reply_closed = True

    def _obx(self, obx: _Segment) -> str:
        code = obx.get(3, 1, 1)
        code = _META_ALIASES.get(code, code)
        system = obx.get(3, 1, 3)
        if code in _FLAG_FIELDS:
            self._flag(obx, code)
        elif code in _MAIL_BODIES:
            self._mail_body(obx, code)
        elif code == c.META_LEGACY_COMP_LOT:
            pass  # v1.2 "lot de soumission" ids: no longer part of the volet
        elif system == c.META_TABLE:
            self.defects.append(
                Defect(
                    HL7_META_UNKNOWN,
                    f"unknown MetaDMPMSS item {_quoted(code, _PROFILE_SHAPE)} ignored",
                    obx.location(3),
                )
            )
        elif obx.get(2) == c.VALUE_TYPE_ED:
            self.documents.append(self._document(obx))
        else:
            self.defects.append(
                Defect(
                    HL7_OBX_IGNORED,
                    f"OBX of value type {_quoted(obx.get(2), _SHORT_CODE)} "
                    "is neither a document nor a MetaDMPMSS item",
                    obx.location(2),
                )
            )
        return code

    def _flag(self, obx: _Segment, code: str) -> None:
        value = obx.get(5, 1, 1).upper()
        if value not in (c.YES, c.NO):
            raise _fail(HL7_META_VALUE, f"{code} must be Y or N", obx.location(5), ERR_TABLE_VALUE)
        attribute = _FLAG_FIELDS[code]
        flag = value == c.YES
        if self.flags[attribute] is not None and self.flags[attribute] != flag:
            raise _fail(
                HL7_META_DUPLICATE,
                f"{code} is given twice with different values",
                obx.location(5),
                ERR_CARDINALITY,
            )
        self.flags[attribute] = flag

    def _mail_body(self, obx: _Segment, code: str) -> None:
        try:
            content, _ = _decode_ed(obx, self.reader.codec)
        except Hl7Error:
            self.mail_bodies[code] = None
            self.defects.append(
                Defect(
                    HL7_MAIL_BODY_BASE64,
                    f"{code} is not decodable (truncated"
                    " base64?): the default mail body will be used",
                    obx.location(5),
                )
            )
            return
        self.mail_bodies[code] = content

    def _document(self, obx: _Segment) -> Document:
        content, padded = _decode_ed(obx, self.reader.codec)
        location = obx.location(5)
        if padded:
            self.defects.append(
                Defect(HL7_BASE64_PADDING, "base64 '=' padding was missing", location)
            )
        fmt = _sniff(content)
        if fmt in (c.FORMAT_UNKNOWN, c.FORMAT_XML):
            self.defects.append(
                Defect(
                    HL7_DOC_FORMAT,
                    f"the document in OBX {_set_id(obx)} is neither a CDA nor a PDF",
                    location,
                    blocking=True,
                )
            )
        elif fmt == c.FORMAT_CDA and not _CLINICAL_DOCUMENT_END.search(content[-256:]):
            self.defects.append(
                Defect(
                    HL7_DOC_TRUNCATED,
                    f"the CDA in OBX {_set_id(obx)} does not end with </ClinicalDocument>",
                    location,
                    blocking=True,
                )
            )
        return Document(
            set_id=obx.get(1),
            type_code=_coded(obx, 3),
            result_status=obx.get(11).upper(),
            media_type=obx.get(5, 1, 2),
            media_subtype=obx.get(5, 1, 3),
            format=fmt,
            content=content,
        )


def _decode_ed(obx: _Segment, codec: str) -> tuple[bytes, bool]:
    """OBX-5 ED → bytes; ``True`` when base64 padding had to be added."""
    encoding = obx.get(5, 1, 4).upper()
    data = obx.get(5, 1, 5)
    if encoding == c.ED_BASE64:
        compact = "".join(data.split())
        missing = -len(compact) % 4
        try:
            return base64.b64decode(compact + "=" * missing, validate=True), missing > 0
        except (binascii.Error, ValueError):
            raise _fail(
                HL7_BASE64,
                f"OBX {_set_id(obx)}: OBX-5.5 is not valid base64",
                obx.location(5),
                ERR_DATA_TYPE,
            ) from None
    if encoding == c.ED_ASCII:
        return data.encode(codec, errors="replace"), False
    if encoding == c.ED_HEX:
        try:
            return bytes.fromhex(data), False
        except ValueError:
            raise _fail(
                HL7_BASE64,
                f"OBX {_set_id(obx)}: OBX-5.5 is not valid hex",
                obx.location(5),
                ERR_DATA_TYPE,
            ) from None
    raise _fail(
        HL7_ED_ENCODING,
        f"OBX {_set_id(obx)}: OBX-5.4 encoding {_quoted(encoding, _SHORT_CODE)} is not Base64, A or Hex",
        obx.location(5),
        ERR_TABLE_VALUE,
    )


def _sniff(content: bytes) -> str:
    head = content[:65536].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"%PDF-"):
        return c.FORMAT_PDF
    if head.startswith(b"<"):
        return c.FORMAT_CDA if _CLINICAL_DOCUMENT.search(head) else c.FORMAT_XML
    return c.FORMAT_UNKNOWN


def _coded(segment: _Segment, field: int) -> Coded:
    return Coded(segment.get(field, 1, 1), segment.get(field, 1, 2), segment.get(field, 1, 3))


def _entity_id(segment: _Segment, field: int) -> EntityId | None:
    if not segment.get(field, 1, 1) and not segment.get(field, 1, 3):
        return None
    return EntityId(*(segment.get(field, 1, comp) for comp in (1, 2, 3, 4)))


def _document_info(txa: _Segment) -> DocumentInfo:
    return DocumentInfo(
        document_type=txa.get(2, 1, 1),
        activity_time=txa.get(4),
        unique_id=_entity_id(txa, 12),
        parent_id=_entity_id(txa, 13),
        completion_status=txa.get(17),
    )


def _patient(pid: _Segment) -> Patient:
    identifiers = tuple(
        PatientId(
            id=pid.get(3, rep, 1),
            authority=pid.get(3, rep, 4, 1),
            authority_oid=_oid_of(pid, 3, rep, 4),
            type_code=pid.get(3, rep, 5),
        )
        for rep in range(1, pid.repetitions(3) + 1)
    )
    ins = next(
        (
            i
            for i in identifiers
            if i.id and (i.type_code == c.ID_TYPE_INS or i.authority_oid in INS_OIDS)
        ),
        None,
    )
    ipp = next((i for i in identifiers if i.id and i.type_code == c.ID_TYPE_PATIENT_INTERNAL), None)
    name_rep = next(
        (
            rep
            for rep in range(1, pid.repetitions(5) + 1)
            if pid.get(5, rep, 7) == c.NAME_TYPE_LEGAL
        ),
        1,
    )
    birthplace = next(
        (
            pid.get(11, rep, 9)
            for rep in range(1, pid.repetitions(11) + 1)
            if pid.get(11, rep, 7) == c.ADDRESS_TYPE_BIRTH
        ),
        "",
    )
    return Patient(
        identifiers=identifiers,
        ins=ins.id if ins else None,
        ins_oid=ins.authority_oid if ins else None,
        ipp=ipp.id if ipp else None,
        ipp_authority=(ipp.authority_oid or ipp.authority) if ipp else "",
        birth_name=pid.get(5, name_rep, 1),
        first_given_name=pid.get(5, name_rep, 2),
        given_names=tuple(pid.get(5, name_rep, 3).split()),
        birth_date=pid.get(7),
        sex=pid.get(8).upper(),
        birthplace_code=birthplace,
        account_number=pid.get(18),
        identity_reliability=tuple(
            code for rep in range(1, pid.repetitions(32) + 1) if (code := pid.get(32, rep, 1))
        ),
    )


def _visit(pv1: _Segment) -> Visit:
    return Visit(
        patient_class=pv1.get(2),
        location=pv1.get(3, 1, 1),
        visit_number=pv1.get(19, 1, 1),
        visit_number_authority=_oid_of(pv1, 19, 1, 4) or pv1.get(19, 1, 4, 1),
        admit_time=pv1.get(44),
        discharge_time=pv1.get(45),
    )


def _participant(prt: _Segment) -> Participant:
    address = next(
        (prt.get(15, rep, 4) for rep in range(1, prt.repetitions(15) + 1) if prt.get(15, rep, 4)),
        "",
    )
    return Participant(
        role=prt.get(4, 1, 1).upper(),
        person_id=prt.get(5, 1, 1),
        person_family=prt.get(5, 1, 2),
        person_given=prt.get(5, 1, 3),
        person_authority_oid=_oid_of(prt, 5, 1, 9),
        person_id_type=prt.get(5, 1, 13),
        organization_name=prt.get(8, 1, 1),
        organization_authority_oid=_oid_of(prt, 8, 1, 6),
        organization_id_type=prt.get(8, 1, 7),
        organization_id=prt.get(8, 1, 10),
        device_id=prt.get(10, 1, 1),
        address=address,
    )


__all__ = [
    "DEFAULT_ENCODING",
    "Hl7Error",
    "codec_for_charset",
    "parse_file",
    "parse_message",
    "split_file",
]
