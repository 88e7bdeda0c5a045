"""Evaluating one HL7 v2 message (pure): parse, check the INS and the CDA, decide the routing, plan
the ledger rows and the ACK. No ledger write, no file: :mod:`.acknowledge` does those."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from pfi.base.errors import ConfigurationError, InvalidInput
from pfi.base.settings import Hl7Source, Settings, section
from pfi.ledger import TERMINAL_INBOUND
from pfi.protocols.hl7v2 import (
    Hl7Error,
    Hl7Request,
    decide_request,
    parse_message,
)
from pfi.protocols.hl7v2.ack import (
    ERR_APPLICATION,
    ERR_UNSUPPORTED_MESSAGE_TYPE,
    AckError,
    MessageHeader,
    read_header,
)
from pfi.protocols.ins import (
    PATIENT_MAIL_DOMAIN,
    InsIdentity,
    InsPolicy,
    RuleFailure,
    compare_identities,
)

if TYPE_CHECKING:
    from pfi.protocols.cda import CdaDocument

log = logging.getLogger(__name__)

TERMINAL = TERMINAL_INBOUND

#: Default bound of one message (the CDA reader refuses documents over 20 MB anyway).
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
#: Bound of one file (a batch of messages); a larger one is refused unread.
DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024
#: How many bytes of an oversized file are read to answer it (its MSH).
HEADER_PEEK_BYTES = 64 * 1024

# Reason codes of this module.
INTAKE_EMPTY_FILE = "INTAKE_EMPTY_FILE"
INTAKE_TOO_LARGE = "INTAKE_TOO_LARGE"
INTAKE_NOT_A_REQUEST = "INTAKE_NOT_A_REQUEST"
INTAKE_SOME_REFUSED = "INTAKE_SOME_REFUSED"
INTAKE_ALL_REFUSED = "INTAKE_ALL_REFUSED"
INTAKE_NO_RECIPIENT = "INTAKE_NO_RECIPIENT"
CDA_NO_INS = "CDA_NO_INS"
CDA_UNREADABLE = "CDA_UNREADABLE"
DOC_ID_MISMATCH = "DOC_ID_MISMATCH"
DOC_ID_REUSED = "DOC_ID_REUSED"

#: Volet table applicationErrorCode (ERR-5 when ERR-3 = 207), ``error-codes.md``.
APP_INS_ABSENT = ("903", "INS non présent dans le document")
APP_INS_MISMATCH = ("904", "L'INS transmis ne correspond pas exactement")
APP_INS_INCOMPLETE = ("905", "L'INS transmis n'est pas complet")
APP_OTHER = ("906", "Erreur 'Autre'")
APPLICATION_TABLE = "applicationErrorCode"
PFI_TABLE = "PFI"


def volet_code(reason_code: str) -> tuple[str, str]:
    """The volet's applicationErrorCode for one of our reason codes."""
    if reason_code in ("INS_MISSING", CDA_NO_INS):
        return APP_INS_ABSENT
    if reason_code.startswith("INS_MISMATCH"):
        return APP_INS_MISMATCH
    if reason_code == "INS_TRAIT_MISSING":
        return APP_INS_INCOMPLETE
    return APP_OTHER


@section("intake")
@dataclass(frozen=True)
class IntakeOptions:
    """The ``[intake]`` section of the settings."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    hold_channels: frozenset[str] = frozenset()
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> IntakeOptions:
        raw: Mapping[str, Any] = settings.extra.get("intake", {}) or {}
        try:
            size = int(raw.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES))
            file_size = int(raw.get("max_file_bytes", DEFAULT_MAX_FILE_BYTES))
            hold = frozenset(str(c) for c in raw.get("hold_channels", ()))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"[intake] settings are not valid: {exc}") from None
        unknown = hold - {"dmp", "mss_professional", "mss_patient"}
        if size < 1024 or file_size < size or unknown:
            raise ConfigurationError(
                "[intake] max_message_bytes must be ≥ 1024, max_file_bytes ≥ max_message_bytes, "
                "hold_channels among dmp, mss_professional, mss_patient"
            )
        return cls(size, hold, file_size)


@dataclass(frozen=True)
class Answer:
    """The technical answer to one message, and the coded reason recorded in the ledger."""

    code: str
    errors: tuple[AckError, ...] = ()
    reason_code: str | None = None
    reason_text: str | None = None

    @property
    def accepted(self) -> bool:
        return self.code == "AA"


@dataclass(frozen=True)
class PlannedDocument:
    """A document of an accepted request, as it goes into the ledger (no content kept)."""

    unique_id: str
    set_id: str | None
    version: int | None
    type_code: str | None
    type_display: str | None
    effective_time: datetime | None
    content_sha256: str
    replaces_unique_id: str | None
    #: MSSanté addresses of the CDA's intended recipients (used for a volet v1.2 request only).
    recipient_addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evaluation:
    """What the PFI decided about one message of a file (pure: no ledger, no file written)."""

    index: int
    chunk: bytes = field(repr=False)
    header: MessageHeader
    answer: Answer
    request: Hl7Request | None = None
    documents: tuple[PlannedDocument, ...] = ()
    channels: tuple[tuple[str, str | None], ...] = ()  # (channel, recipient)
    ins_matricule: str | None = field(default=None, repr=False)
    ins_oid: str | None = None
    ins_qualified: bool = False

    @property
    def checksum(self) -> str:
        return message_checksum(self.chunk)


def message_checksum(chunk: bytes) -> str:
    """SHA-256 of one message as :func:`pfi.protocols.hl7v2.split_file` returns it (segments CR-joined)."""
    return hashlib.sha256(chunk).hexdigest()


# --- evaluation (pure) ----------------------------------------------------------------------------


def refusal(failures: Sequence[RuleFailure], *, code: str = "AE", location: str = "") -> Answer:
    """An answer refusing with every failure (one ERR per code, the first one is the reason)."""
    seen: set[str] = set()
    failures = [f for f in failures if not (f.code in seen or seen.add(f.code))]
    errors = tuple(
        AckError(
            condition=ERR_APPLICATION,
            location=location,
            application_code=volet_code(f.code)[0],
            application_text=volet_code(f.code)[1],
            application_table=APPLICATION_TABLE,
            alternate_code=f.code,
            alternate_text=f.message[:80],
            alternate_table=PFI_TABLE,
            diagnostic=f"{f.code}: {f.message}"[:200],
        )
        for f in failures
    )
    first = failures[0]
    text = first.message if len(failures) == 1 else f"{first.message} (+{len(failures) - 1})"
    return Answer(code, errors, first.code, text[:500])


def _parse_error_answer(exc: Hl7Error) -> Answer:
    condition = exc.condition
    if condition[0] == ERR_APPLICATION[0]:
        answer = refusal([RuleFailure(exc.code, exc.reason)], location=exc.location)
        return answer
    error = AckError(
        condition=condition, location=exc.location, diagnostic=f"{exc.code}: {exc.reason}"[:200]
    )
    return Answer("AE", (error,), exc.code, exc.reason[:500])


def _warnings(request: Hl7Request) -> tuple[AckError, ...]:
    return tuple(
        AckError(
            condition=ERR_APPLICATION,
            location=d.location,
            severity="W",
            application_code=APP_OTHER[0],
            application_text=APP_OTHER[1],
            application_table=APPLICATION_TABLE,
            alternate_code=d.code,
            alternate_text=d.message[:80],
            alternate_table=PFI_TABLE,
        )
        for d in request.defects
        if not d.blocking
    )


def cda_identity(cda: CdaDocument) -> InsIdentity | None:
    """The INS identity a CDA header states (``recordTarget``), ``None`` without an INS."""
    patient = cda.patient
    ins = patient.ins if patient else None
    if patient is None or ins is None:
        return None
    birth = patient.birth_time
    return InsIdentity(
        matricule=ins.extension or "",
        oid=ins.root,
        birth_name=patient.birth_family_name or "",
        first_given_name=patient.first_given_name or "",
        birth_date=birth.strftime("%Y%m%d") if isinstance(birth, date) else "",
        sex=patient.gender or "",
        birthplace_code=patient.birthplace_code or "",
        given_names=tuple((patient.birth_given_names or "").split()),
    )


def _identity_failures(pid: InsIdentity | None, cda: CdaDocument) -> list[RuleFailure]:
    """PID against the CDA header of one document: matricule, OID and the five traits."""
    header = cda_identity(cda)
    if pid is None and header is None:
        return []
    if header is None:
        return [RuleFailure(CDA_NO_INS, "the CDA header has no INS while PID-3 has one")]
    if pid is None:
        return [RuleFailure("INS_MISMATCH_MATRICULE", "the CDA header has an INS that PID-3 lacks")]
    return compare_identities(pid, header)


def _entity_unique_id(request: Hl7Request) -> str | None:
    info = request.document_info
    if info is None or info.unique_id is None:
        return None
    uid = info.unique_id
    return f"{uid.universal_id}^{uid.id}" if uid.universal_id else uid.id


def _plan_documents(
    request: Hl7Request, structure_oid: str
) -> tuple[list[PlannedDocument], list[RuleFailure]]:
    from pfi.protocols.cda import read_cda  # lxml: only when there is a document to read

    pid = request.patient.ins_identity
    planned: list[PlannedDocument] = []
    failures: list[RuleFailure] = []
    txa_id = _entity_unique_id(request)
    parent = request.document_info.parent_id if request.document_info else None
    parent_id = (
        (f"{parent.universal_id}^{parent.id}" if parent.universal_id else parent.id)
        if parent
        else None
    )
    for document in request.documents:
        sha = hashlib.sha256(document.content).hexdigest()
        if document.format != "cda":  # a PDF alone (SGL): no CDA header to check or read
            unique = txa_id or f"{structure_oid}.99.{int(sha[:24], 16)}"
            planned.append(
                PlannedDocument(
                    unique,
                    None,
                    None,
                    document.type_code.code or None,
                    document.type_code.label or None,
                    None,
                    sha,
                    parent_id,
                )
            )
            continue
        try:
            cda = read_cda(document.content)
        except InvalidInput as exc:
            failures.append(RuleFailure(exc.code, exc.reason))
            continue
        except Exception as exc:  # a shape the reader did not foresee: refuse, never loop
            failures.append(
                RuleFailure(CDA_UNREADABLE, f"CDA header not readable ({type(exc).__name__})")
            )
            continue
        failures += _identity_failures(pid, cda)
        unique = str(cda.id)
        if txa_id and len(request.documents) == 1 and txa_id != unique:
            failures.append(
                RuleFailure(DOC_ID_MISMATCH, "TXA-12 differs from the CDA ClinicalDocument/id")
            )
        replaced = cda.replaced_id
        planned.append(
            PlannedDocument(
                unique_id=unique,
                set_id=str(cda.set_id) if cda.set_id else None,
                version=cda.version_number,
                type_code=(cda.code.code if cda.code else None) or document.type_code.code,
                type_display=(cda.code.display_name if cda.code else None) or None,
                effective_time=cda.effective_time,
                content_sha256=sha,
                replaces_unique_id=str(replaced) if replaced else parent_id,
                recipient_addresses=cda.recipient_addresses,
            )
        )
    return planned, failures


def evaluate(
    index: int,
    chunk: bytes,
    *,
    source: Hl7Source,
    policy: InsPolicy,
    options: IntakeOptions,
    structure_oid: str,
) -> Evaluation:
    """Parse, check and route one message; never raises on bad content."""
    header = read_header(chunk[:HEADER_PEEK_BYTES])
    if len(chunk) > options.max_message_bytes:
        failure = RuleFailure(
            INTAKE_TOO_LARGE,
            f"message of {len(chunk)} bytes over the limit of {options.max_message_bytes}",
        )
        return Evaluation(index, chunk, header, refusal([failure], code="AR"))
    try:
        message = parse_message(chunk, default_encoding=source.default_encoding)
    except Hl7Error as exc:
        return Evaluation(index, chunk, exc.header or header, _parse_error_answer(exc))
    header = message.header
    if not isinstance(message, Hl7Request):
        error = AckError(
            condition=ERR_UNSUPPORTED_MESSAGE_TYPE,
            location="MSH^1^9",
            diagnostic=f"{INTAKE_NOT_A_REQUEST}: acknowledgements are not taken from a drop",
        )
        text = f"{message.message_type} is an acknowledgement, not a document request"
        return Evaluation(index, chunk, header, Answer("AE", (error,), INTAKE_NOT_A_REQUEST, text))
    request = message
    blocking = [RuleFailure(d.code, d.message) for d in request.blocking_defects]
    if blocking:
        return Evaluation(index, chunk, header, refusal(blocking, location="OBX"), request)
    identity = request.patient.ins_identity
    ins_failures = policy.check_ins(identity) if identity is not None else []
    if ins_failures:  # an INS is given but is not a valid one of this site: never propagate it
        return Evaluation(index, chunk, header, refusal(ins_failures, location="PID^1^3"), request)
    documents, document_failures = _plan_documents(request, structure_oid)
    decision = decide_request(request, policy)
    failures = list(decision.failures) + document_failures
    if failures:
        return Evaluation(index, chunk, header, refusal(failures), request)
    channels: list[tuple[str, str | None]] = []
    if decision.routing.dmp:
        channels.append(("dmp", None))
    if decision.routing.professionals:
        addresses = [r.address.strip().lower() for r in request.professional_recipients]
        if request.profile is not None and request.profile.is_vague1 and not any(addresses):
            # volet v1.2: the professionals "indiqués dans le document CDA" (its header's
            # informationRecipient/intendedRecipient/telecom mailto:); the patient's own
            # address is DESTMSSANTEPAT's business, never a professional delivery
            addresses = [
                a
                for d in documents
                for a in d.recipient_addresses
                if not a.endswith("@" + PATIENT_MAIL_DOMAIN)
            ]
        for address in dict.fromkeys(a for a in addresses if a):
            channels.append(("mss_professional", address))
    warnings = _warnings(request)
    if decision.routing.professionals and not any(c == "mss_professional" for c, _ in channels):
        # only for volet v1.2 (the rule table refuses it otherwise) whose CDA names no recipient
        # address either: said in the ACK, not guessed
        warnings += (
            AckError(
                condition=ERR_APPLICATION,
                location="PRT",
                severity="W",
                application_code=APP_OTHER[0],
                application_text=APP_OTHER[1],
                application_table=APPLICATION_TABLE,
                alternate_code=INTAKE_NO_RECIPIENT,
                alternate_text="DESTMSSANTEPS=Y without PRT or CDA recipient: no mail sent",
                alternate_table=PFI_TABLE,
            ),
        )
    if decision.routing.patient:
        channels.append(("mss_patient", None))
    qualified = identity is not None and policy.is_qualified(
        identity, request.patient.identity_reliability
    )
    return Evaluation(
        index,
        chunk,
        header,
        Answer("AA", warnings),
        request,
        tuple(documents),
        tuple(channels),
        ins_matricule=identity.matricule if identity else None,
        ins_oid=identity.oid if identity else None,
        ins_qualified=qualified,
    )
