"""Intake of HL7 v2 files: claim, record, check every message, acknowledge, record what to send.

The two steps of the ``ingest_hl7_drop`` DAG (and of ``pfi intake run``):

1. :func:`claim_and_record` — for each source, claim settled files (:mod:`pfi.flows.drop`) and record
   each one in the ledger with its checksum **before anything else**; return bounded batches of
   ledger ids (what XCom carries: no file name, no patient data).
2. :func:`acknowledge_items` — for each file of a batch, every message it holds (one message, or
   an FHS/BHS batch) is parsed (:mod:`pfi.protocols.hl7v2`), its identity checked (:mod:`pfi.protocols.ins`, and
   PID against the CDA header of each document, :mod:`pfi.protocols.cda`) and its routing decided
   (:func:`pfi.protocols.hl7v2.decide_request`); then, per message:

   - an ``hl7_message`` ledger item (``parent_id`` = the file, ``original_ref`` = its 1-based
     index in the file, ``control_id`` = MSH-10), ``done`` or ``rejected`` with a coded reason;
   - for an accepted request, one ``document`` row per document and the ``delivery`` rows of
     its routing: ``dmp`` (action new/replace/delete), ``mss_professional`` per PRT recipient
     address, ``mss_patient`` (address derived from the INS when sending) — ``pending`` and due
     now, or ``held`` for the channels listed in ``[intake] hold_channels``;
   - one technical ACK file in the source's outbound folder (:mod:`pfi.protocols.hl7v2.ack`): ``AA``
     (non-blocking defects as ERR of severity ``W``), ``AE`` with one ERR per reason, or ``AR``
     when the PFI cannot take the message as it is now (over the configured size).

   The original is then kept under a path fixed by its ledger id (:func:`pfi.flows.drop.kept_path`):
   in the archive when at least one message was accepted (the refused ones of a batch file are
   also copied to quarantine, each with its reason), in quarantine with ``NAME.reason.txt``
   when every message was refused.

Reasons: each refusal carries a stable code (``HL7_*`` parser, ``INS_*`` identity, ``RULE_*``
rule table, ``CDA_*`` document, ``INTAKE_*`` this module), written to the ledger, into the ACK
(ERR-3 HL7 table 0357 condition; for application errors ERR-3 ``207`` and ERR-5 the volet's
``applicationErrorCode`` 903/904/905/906 with our code as the CWE alternate code; ERR-7 a short
diagnostic) and to the task log — never patient data.

Idempotence and crashes: nothing here depends on the time a step runs. Every ledger write is an
insert-or-get (message items by checksum, documents by unique id, deliveries by their key), ACK
file names and control ids derive from ledger ids, and the original's final path is fixed in
advance. A run killed at any point is finished by the next one: a file still in the work folder
is claimed again (:mod:`pfi.flows.drop`) and processed again; a file already moved to its final place
is processed from there when Airflow retries its batch. An unexpected error (ledger down, disk
full) leaves the file where it is, marks the item ``failed`` when it can, and is raised after the
batch so that Airflow retries the task.

Site options (``[intake]`` in the settings file, all optional)::

    max_message_bytes = 33554432   # larger messages are refused (ACK AR, INTAKE_TOO_LARGE)
    max_file_bytes = 536870912     # larger files are refused unread (ACK AR)
    hold_channels = []             # deliveries created "held" on these channels, e.g. ["dmp"]

The volet has no "hold" request of its own (spec-facts §1.14, "Retenir l'envoi" [U]): holding
is a site decision per channel, released by the operator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfi.base.errors import ConfigurationError, InvalidInput, TransientError, unexpected_summary
from pfi.base.settings import Hl7Source, Settings, load_settings
from pfi.flows import drop
from pfi.flows.zam import write_atomically
from pfi.ledger.repository import TERMINAL_INBOUND
from pfi.protocols.hl7v2 import (
    Action,
    Hl7Error,
    Hl7Request,
    decide_request,
    parse_message,
    split_file,
)
from pfi.protocols.hl7v2.ack import (
    ERR_APPLICATION,
    ERR_SEGMENT_SEQUENCE,
    ERR_UNSUPPORTED_MESSAGE_TYPE,
    AckError,
    MessageHeader,
    codec_for,
    read_header,
    technical_ack,
)
from pfi.protocols.hl7v2.parser import DEFAULT_ENCODING
from pfi.protocols.ins import (
    PATIENT_MAIL_DOMAIN,
    InsIdentity,
    InsPolicy,
    RuleFailure,
    compare_identities,
)

if TYPE_CHECKING:
    from pfi.ledger import InboundItem, Ledger
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


# --- claiming -----------------------------------------------------------------------------------


def claim(source: Hl7Source, *, limit: int = 1000) -> list[drop.ClaimedFile]:
    return drop.claim_ready_files(source, limit=limit)


def record_claimed(
    ledger: Ledger,
    source: Hl7Source,
    files: Sequence[drop.ClaimedFile],
    *,
    actor: str,
    settings: Settings | None = None,
) -> list[int]:
    """Record claimed files in the ledger (checksum first); return the ids still to acknowledge.

    The ledger knows each set of bytes once per source. When a claimed file is already known:

    - it is the same file (same work path), or the item is not finished: a crashed run's
      leftover or a copy dropped while the first is in progress — the first item answers once
      processed; a copy is archived beside;
    - it is a new copy of a finished item (the producer dropped it again, typically because it
      did not get the ACK): the copy is archived and the same answers are written again (with
      ``settings``, the messages are checked again so that each answer carries the same ERR
      segments as the first time; without, it is rebuilt from the ledger's first reason).
    """
    ids = []
    for claimed in files:
        item_id, created = ledger.record_inbound(
            kind="hl7_file",
            source=source.name,
            finess_geo=source.finess_geo,
            original_ref=claimed.original_name,
            checksum=claimed.sha256,
            size=claimed.size,
            storage_path=str(claimed.path),
            actor=actor,
        )
        known = ledger.get_inbound(item_id)
        if created or Path(known.storage_path or "") == claimed.path:
            ids.append(item_id)
            continue
        if known.status not in TERMINAL and not Path(known.storage_path or "").exists():
            # the first copy is gone (kept elsewhere by hand?): this copy becomes the original
            ledger.set_inbound_status(
                item_id, known.status, storage_path=str(claimed.path), actor=actor
            )
            ids.append(item_id)
            continue
        # named after the ledger item, not the producer's file name (which may name the patient):
        # the path goes into the event trail
        neutral = dataclasses.replace(claimed, original_name=f"{item_id:08d}__duplicate.hl7")
        archived = drop.archive(source, neutral)
        ledger.add_event(
            "inbound.duplicate_drop",
            inbound_item_id=item_id,
            actor=actor,
            detail={"archived_copy": str(archived), "first_status": known.status},
        )
        if known.status in TERMINAL:
            _answer_again(ledger, source, known, archived.read_bytes(), settings, actor)
    return ids


def _answer_again(
    ledger: Ledger,
    source: Hl7Source,
    item: InboundItem,
    raw: bytes,
    settings: Settings | None,
    actor: str,
) -> None:
    """Write again the ACKs of a finished file: what the ledger decided per message, with the
    ERR segments of the first answer when the messages, checked again, come to the same."""
    when = datetime.now(UTC)
    if settings is not None:
        evaluations = _evaluations(_context(ledger, settings, source, actor=actor), raw)
    else:
        evaluations = [
            Evaluation(index, chunk, read_header(chunk[:HEADER_PEEK_BYTES]), _answer_for(item))
            for index, chunk in enumerate(split_file(raw), 1)
        ]
    if not evaluations:
        _write_ack(source, MessageHeader(), item.id, 0, f"PFI{item.id}", _empty_answer(), when)
        return
    for evaluation in evaluations:
        message = ledger.already_seen(source.name, "hl7_message", evaluation.checksum)
        answered = message or item
        control = f"PFI{message.id}" if message else f"PFI{item.id}"
        answer = _answer_as_recorded(evaluation.answer, answered)
        _write_ack(source, evaluation.header, item.id, evaluation.index, control, answer, when)


def _answer_as_recorded(answer: Answer, item: InboundItem) -> Answer:
    """The answer to a message the ledger already decided: ``answer`` (as evaluated now, with
    all its ERR segments) when it comes to the same decision, else rebuilt from the ledger."""
    if item.status == "done" and answer.accepted:
        return answer
    if item.status == "rejected" and not answer.accepted:
        if answer.reason_code == item.reason_code:
            return answer
    return _answer_for(item)


def _answer_for(item: InboundItem) -> Answer:
    """The answer already given to an item (for a producer that drops the same bytes again)."""
    if item.status == "done":
        return Answer("AA")
    code = item.reason_code or "INTAKE_REFUSED"
    answer = refusal([RuleFailure(code, item.reason_text or "refused")])
    if code == INTAKE_TOO_LARGE:
        return Answer("AR", answer.errors, answer.reason_code, answer.reason_text)
    return answer


def claim_and_record(
    ledger: Ledger,
    settings: Settings,
    *,
    batch_size: int,
    limit: int,
    actor: str,
    sources: Sequence[str] | None = None,
) -> list[dict]:
    """Claim and record each source's files; return batches ``{"source", "item_ids"}``."""
    batches: list[dict] = []
    for source in settings.sources:
        if sources is not None and source.name not in sources:
            continue
        ids = record_claimed(
            ledger, source, claim(source, limit=limit), actor=actor, settings=settings
        )
        ids += [i for i in unfinished_kept(ledger, source, limit=limit) if i not in ids]
        for chunk in drop.batches([str(i) for i in ids], batch_size):
            batches.append({"source": source.name, "item_ids": [int(i) for i in chunk]})
    return batches


def unfinished_kept(ledger: Ledger, source: Hl7Source, *, limit: int = 1000) -> list[int]:
    """Items a crashed run left unfinished after moving their file to its final place.

    Such a file is no longer in the work folder, so claiming does not see it again; its item is
    still ``received``/``processing``/``failed``. Processing it again from its kept path is
    harmless (every step is idempotent) and finishes it.
    """
    found = []
    for status in ("received", "processing", "failed"):
        for item in ledger.find_inbound(
            source=source.name, kind="hl7_file", status=status, limit=limit
        ):
            path = Path(item.storage_path or "")
            if path.parent == source.work_dir and path.is_file():
                continue  # still in the work folder: claiming takes it again
            if _locate_kept(source, item) is not None:
                found.append(item.id)
    return found[:limit]


def _locate_kept(source: Hl7Source, item: InboundItem) -> Path | None:
    name = drop.short_name(item.original_ref or Path(item.storage_path or "").name)
    for rejected in (False, True):
        kept = drop.kept_path(source, item.id, name, item.received_at, rejected=rejected)
        if kept.is_file():
            return kept
    return None


# --- acknowledging --------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def ack_path(source: Hl7Source, file_item_id: int, index: int, control_id: str) -> Path:
    """``ACK_<file item>_<message index>_<MSH-10>.hl7``: stable, so a replay rewrites the same."""
    control = _UNSAFE.sub("_", control_id)[:40] or "unknown"
    return source.outbound_dir / f"ACK_{file_item_id:08d}_{index:03d}_{control}.hl7"


def _write_ack(
    source: Hl7Source,
    header: MessageHeader,
    file_item_id: int,
    index: int,
    ack_control_id: str,
    answer: Answer,
    when: datetime,
) -> Path:
    ack = technical_ack(
        header,
        answer.code,
        control_id=ack_control_id,
        now=when,
        errors=answer.errors,
        text=answer.reason_text or "",
    )
    source.outbound_dir.mkdir(parents=True, exist_ok=True)
    target = ack_path(source, file_item_id, index, header.control_id)
    codec = codec_for(header.charset, source.default_encoding)
    write_atomically(target, ack.encode(codec, errors="replace"))
    return target


def acknowledge_items(
    ledger: Ledger, settings: Settings, batch: dict, *, actor: str, now: datetime | None = None
) -> dict:
    """Process one batch of file items; return counts (no patient data, no file name).

    Counts: files ``acknowledged`` (at least one message accepted), ``rejected`` (all refused),
    ``skipped`` (already finished), ``failed`` (unexpected error); messages ``accepted`` and
    ``refused``; ``deliveries`` created; ``reasons`` per refusal code.
    """
    source = settings.source(batch["source"])
    context = _context(ledger, settings, source, actor=actor, now=now)
    counts: dict[str, Any] = {
        "acknowledged": 0,
        "rejected": 0,
        "skipped": 0,
        "failed": 0,
        "messages_accepted": 0,
        "messages_refused": 0,
        "deliveries": 0,
        "reasons": {},
    }
    unexpected: list[Exception] = []
    for item_id in batch["item_ids"]:
        try:
            counts[_acknowledge_one(context, item_id, counts)] += 1
        except Exception as exc:  # keep the file, record, go on with the batch, raise at the end
            counts["failed"] += 1
            unexpected.append(exc)
            log.error(
                "file item %s: unexpected %s; kept for the next attempt",
                item_id,
                unexpected_summary(exc),
            )
            _record_failure(ledger, item_id, exc, actor=actor)
    if unexpected:
        raise TransientError(
            f"{len(unexpected)} of {len(batch['item_ids'])} items failed unexpectedly "
            f"(first: {unexpected_summary(unexpected[0])}); their files stay where they are"
        ) from None  # the cause's message may quote the input: never in the task log
    return {"source": source.name, **counts}


@dataclass
class _Context:
    ledger: Ledger
    source: Hl7Source
    policy: InsPolicy
    options: IntakeOptions
    structure_oid: str
    actor: str
    now: datetime | None


def _context(
    ledger: Ledger,
    settings: Settings,
    source: Hl7Source,
    *,
    actor: str,
    now: datetime | None = None,
) -> _Context:
    return _Context(
        ledger=ledger,
        source=source,
        policy=InsPolicy.for_site(settings.site),
        options=IntakeOptions.from_settings(settings),
        structure_oid=settings.site.structure_oid,
        actor=actor,
        now=now,
    )


def _record_failure(ledger: Ledger, item_id: int, exc: Exception, *, actor: str) -> None:
    try:
        ledger.set_inbound_status(
            item_id,
            "failed",
            reason_code=getattr(exc, "code", "INTERNAL"),
            reason_text=f"{type(exc).__name__}; the file is kept for the next attempt",
            actor=actor,
        )
    except Exception:  # the ledger itself may be what is down: the retry will record it
        return


def _locate(context: _Context, item: InboundItem) -> Path | None:
    """The file of an unfinished item: where the ledger says, or where a crashed run put it."""
    path = Path(item.storage_path or "")
    if path.is_file():
        return path
    return _locate_kept(context.source, item)


def _read(path: Path, size_limit: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size_limit + 1)


def _acknowledge_one(context: _Context, item_id: int, counts: dict[str, Any]) -> str:
    ledger, source = context.ledger, context.source
    item = ledger.get_inbound(item_id)
    if item.status in TERMINAL:
        return "skipped"
    path = _locate(context, item)
    if path is None:
        raise FileNotFoundError(f"the file of item {item_id} is neither in work nor kept")
    when = context.now or datetime.now(UTC)
    evaluations = _evaluations(context, _read(path, context.options.max_file_bytes))
    if not evaluations:
        return _empty_file(context, item, path, when)

    any_accepted = any(e.answer.accepted for e in evaluations)
    name = drop.short_name(item.original_ref or path.name)
    archived = drop.kept_path(source, item.id, name, item.received_at, rejected=False)
    quarantined = drop.kept_path(source, item.id, name, item.received_at, rejected=True)
    target = archived if any_accepted else quarantined

    def copy_of(index: int) -> Path:  # a refused message of a file kept in the archive
        return drop.kept_path(
            source, item.id, f"{name}.{index:03d}.hl7", item.received_at, rejected=True
        )

    answers: list[tuple[Evaluation, Answer, int]] = []
    for evaluation in evaluations:
        if evaluation.answer.accepted:
            where = archived
        else:
            where = copy_of(evaluation.index) if any_accepted else quarantined
        answer, message_id, created = _record_message(context, item, evaluation, where)
        answers.append((evaluation, answer, message_id))
        counts["deliveries"] += created
        if answer.accepted:
            counts["messages_accepted"] += 1
        else:
            counts["messages_refused"] += 1
            reasons = counts["reasons"]
            reasons[answer.reason_code] = reasons.get(answer.reason_code, 0) + 1
            log.warning(
                "file item %s message %s (ledger item %s) refused: %s %s",
                item.id,
                evaluation.index,
                message_id,
                answer.reason_code,
                answer.reason_text,
            )
    for evaluation, answer, message_id in answers:
        _write_ack(
            source, evaluation.header, item.id, evaluation.index, f"PFI{message_id}", answer, when
        )
    accepted = [a for a in answers if a[1].accepted]
    refused = [a for a in answers if not a[1].accepted]
    if any_accepted:
        for evaluation, answer, _ in refused:  # a copy of each refused message of a batch
            drop.quarantine_copy(
                copy_of(evaluation.index),
                evaluation.chunk,
                answer.reason_code or "",
                answer.reason_text or "",
                when=when,
            )
    kept = drop.keep(path, target)
    if accepted:
        status = "done"
        reason_code = INTAKE_SOME_REFUSED if refused else None
        reason_text = f"{len(refused)} of {len(answers)} messages refused" if refused else None
    else:  # a document id found reused while recording may leave no message accepted
        status = "rejected"
        first = refused[0][1]
        reason_code = first.reason_code if len(refused) == 1 else INTAKE_ALL_REFUSED
        reason_text = (
            first.reason_text
            if len(refused) == 1
            else f"all {len(refused)} messages refused (first: {first.reason_code})"
        )
        drop.write_reason(kept, reason_code or "", reason_text or "", item.checksum, when=when)
    first_header = evaluations[0].header
    ledger.set_inbound_status(
        item.id,
        status,
        reason_code=reason_code,
        reason_text=reason_text,
        storage_path=str(kept),
        control_id=first_header.control_id or None,
        message_type=(first_header.message_type or None) if len(evaluations) == 1 else "batch",
        actor=context.actor,
    )
    log.info(
        "file item %s: %s message(s), %s accepted, %s refused, kept in %s",
        item.id,
        len(answers),
        len(accepted),
        len(refused),
        "archive" if kept == archived else "quarantine",
    )
    return "acknowledged" if accepted else "rejected"


def _evaluations(context: _Context, raw: bytes) -> list[Evaluation]:
    """What is decided about each message of a file (none: an empty file), before any write."""
    # A file far over any sensible size is answered from its first bytes, never parsed.
    file_limit = context.options.max_file_bytes
    if len(raw) > file_limit:
        head = raw[:HEADER_PEEK_BYTES]
        failure = RuleFailure(INTAKE_TOO_LARGE, f"file over the limit of {file_limit} bytes")
        return [Evaluation(1, head, read_header(head), refusal([failure], code="AR"))]
    evaluations = [
        evaluate(
            index,
            chunk,
            source=context.source,
            policy=context.policy,
            options=context.options,
            structure_oid=context.structure_oid,
        )
        for index, chunk in enumerate(split_file(raw), 1)
    ]
    return [_precheck_documents(context, e) for e in evaluations]


def _precheck_documents(context: _Context, evaluation: Evaluation) -> Evaluation:
    """Refuse before any write a request whose document id is known with another content.

    The CI-SIS forbids a new content under an existing ClinicalDocument/id (a new version has a
    new id); a deletion names an existing document and is not compared.
    """
    request = evaluation.request
    if not evaluation.answer.accepted or request is None or request.action is Action.DELETE:
        return evaluation
    for planned in evaluation.documents:
        known = context.ledger.find_document(planned.unique_id)
        if known and known.content_sha256 and known.content_sha256 != planned.content_sha256:
            return replace(evaluation, answer=_reused_id(), documents=(), channels=())
    return evaluation


def _reused_id() -> Answer:
    return refusal(
        [
            RuleFailure(
                DOC_ID_REUSED,
                "a document with this ClinicalDocument/id and another content was already received",
            )
        ]
    )


def _empty_answer() -> Answer:
    return Answer(
        "AE",
        (AckError(condition=ERR_SEGMENT_SEQUENCE, location="MSH", diagnostic=INTAKE_EMPTY_FILE),),
        INTAKE_EMPTY_FILE,
        "the file holds no HL7 segment",
    )


def _empty_file(context: _Context, item: InboundItem, path: Path, when: datetime) -> str:
    answer = _empty_answer()
    _write_ack(context.source, MessageHeader(), item.id, 0, f"PFI{item.id}", answer, when)
    target = drop.kept_path(
        context.source,
        item.id,
        drop.short_name(item.original_ref or path.name),
        item.received_at,
        rejected=True,
    )
    kept = drop.keep(path, target)
    drop.write_reason(kept, INTAKE_EMPTY_FILE, answer.reason_text or "", item.checksum, when=when)
    context.ledger.set_inbound_status(
        item.id,
        "rejected",
        reason_code=INTAKE_EMPTY_FILE,
        reason_text=answer.reason_text,
        storage_path=str(kept),
        actor=context.actor,
    )
    log.warning("file item %s refused: %s", item.id, INTAKE_EMPTY_FILE)
    return "rejected"


def _record_message(
    context: _Context, file_item: InboundItem, evaluation: Evaluation, kept: Path
) -> tuple[Answer, int, int]:
    """The message's ledger item, and for an accepted request its documents and deliveries — in
    one ledger transaction (:meth:`~pfi.ledger.Ledger.record_message`)."""
    header, answer, request = evaluation.header, evaluation.answer, evaluation.request
    documents: list[dict[str, Any]] = []
    deliveries: list[tuple[str, str | None, str]] = []
    action = request.action if request is not None else Action.NEW
    if answer.accepted:
        assert request is not None
        documents = [
            {
                "unique_id": planned.unique_id,
                "set_id": planned.set_id,
                "version": planned.version,
                "type_code": (planned.type_code or "")[:20] or None,
                "type_display": planned.type_display,
                "finess_geo": context.source.finess_geo,
                "effective_time": planned.effective_time,
                "ins_matricule": evaluation.ins_matricule,
                "ins_oid": evaluation.ins_oid,
                "ins_qualified": evaluation.ins_qualified,
                "content_sha256": planned.content_sha256,
                "replaces_unique_id": (
                    planned.replaces_unique_id if action is Action.REPLACE else None
                ),
            }
            for planned in evaluation.documents
        ]
        hold = context.options.hold_channels
        deliveries = [
            (channel, recipient, "held" if channel in hold else "pending")
            for channel, recipient in evaluation.channels
        ]
    reused = _reused_id()
    outcome = context.ledger.record_message(
        source=context.source.name,
        finess_geo=context.source.finess_geo,
        original_ref=str(evaluation.index),
        checksum=evaluation.checksum,
        size=len(evaluation.chunk),
        control_id=header.control_id[:200] or None,
        message_type=header.message_type[:40] or None,
        parent_id=file_item.id,
        storage_path=str(kept),
        status="done" if answer.accepted else "rejected",
        reason_code=answer.reason_code,
        reason_text=answer.reason_text,
        documents=documents,
        deliveries=deliveries,
        action=action.value,
        conflict_reason=(reused.reason_code or DOC_ID_REUSED, reused.reason_text or ""),
        actor=context.actor,
    )
    message = outcome.item
    if outcome.unchanged:
        # seen before (replay, the same message in another file): answered as it was then
        return _answer_as_recorded(answer, message), message.id, 0
    if outcome.content_conflict:
        return reused, message.id, 0
    return answer, message.id, outcome.deliveries_created


# --- reading back ---------------------------------------------------------------------------------


def load_request(
    ledger: Ledger,
    inbound_item_id: int,
    *,
    settings: Settings | None = None,
    default_encoding: str | None = None,
) -> Hl7Request:
    """The parsed request of an ``hl7_message`` item, re-read from its archived original file.

    The ledger keeps no content: an ``hl7_message`` item points to its file (``parent_id``) and
    says which message of the file it is (``original_ref``, 1-based). The message's bytes must
    still have the item's checksum (an archived original never changes). An ``hl7_file`` item
    gives its first message. ``default_encoding`` (else the source's setting, else ISO 8859-1)
    decodes a message without MSH-18.

    Raises :class:`~pfi.base.errors.TransientError` ``INTAKE_ORIGINAL_MISSING`` when the original is
    not where the ledger says (it may be moving to the archive right now: retry), and
    :class:`~pfi.base.errors.InvalidInput` when it changed or holds no document request.
    """
    item = ledger.get_inbound(inbound_item_id)
    if item.kind == "hl7_message":
        if item.parent_id is None:
            raise InvalidInput(
                f"hl7_message item {item.id} has no parent file", code="INTAKE_NO_PARENT"
            )
        index = int(item.original_ref or "1")
        parent_id = item.parent_id
    elif item.kind == "hl7_file":
        index, parent_id = 1, item.id
    else:
        raise InvalidInput(f"item {item.id} is a {item.kind}, not HL7", code="INTAKE_NOT_HL7")
    raw = _read_original(
        ledger, parent_id, item.storage_path if item.kind == "hl7_message" else None
    )
    chunks = split_file(raw)
    if not 1 <= index <= len(chunks):
        raise InvalidInput(
            f"the original of item {item.id} has no message {index}",
            code="INTAKE_ORIGINAL_CHANGED",
        )
    chunk = chunks[index - 1]
    if item.kind == "hl7_message" and message_checksum(chunk) != item.checksum:
        raise InvalidInput(
            f"the archived original of item {item.id} no longer matches its checksum",
            code="INTAKE_ORIGINAL_CHANGED",
        )
    encoding = default_encoding or _default_encoding(settings, item.source)
    message = parse_message(chunk, default_encoding=encoding)
    if not isinstance(message, Hl7Request):
        raise InvalidInput(
            f"item {item.id} is an acknowledgement, not a document request",
            code="INTAKE_NOT_REQUEST",
        )
    return message


def _read_original(ledger: Ledger, file_item_id: int, kept: str | None) -> bytes:
    # The file may be moved to its final place between the read of the ledger and the open;
    # a message item also knows that final place.
    for _ in range(2):
        candidates = [ledger.get_inbound(file_item_id).storage_path, kept]
        for candidate in candidates:
            if not candidate:
                continue
            try:
                return Path(candidate).read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                continue
    raise TransientError(
        f"the original of file item {file_item_id} is not where the ledger says",
        code="INTAKE_ORIGINAL_MISSING",
    )


def _default_encoding(settings: Settings | None, source_name: str) -> str:
    if settings is None:
        try:
            settings = load_settings()
        except ConfigurationError:
            return DEFAULT_ENCODING
    for source in settings.sources:
        if source.name == source_name:
            return source.default_encoding
    return DEFAULT_ENCODING


__all__ = [
    "Answer",
    "Evaluation",
    "IntakeOptions",
    "PlannedDocument",
    "acknowledge_items",
    "ack_path",
    "claim",
    "cda_identity",
    "claim_and_record",
    "evaluate",
    "load_request",
    "message_checksum",
    "record_claimed",
    "refusal",
    "unfinished_kept",
    "volet_code",
]
