"""Reading one lot of each kind of source and deciding, document by document, what is sent
(:class:`Tally`): intake's evaluation for HL7 messages, the CDA reader for CDA files, the
ledger's own rows; then how each one is recorded (as intake records it, ``historical``)."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfi.base.errors import InvalidInput
from pfi.flows.backfill.plan import (
    ALREADY_QUEUED,
    ALREADY_SENT,
    CDA_PATTERNS,
    DELETION,
    DOC_ID_REUSED,
    FOLDER_CHANGED,
    HL7_PATTERNS,
    NO_DATE,
    NOT_FOR_DMP,
    OTHER_FINESS,
    OTHER_TYPE,
    OUT_OF_RANGE,
    PARIS,
    REFUSED_BEFORE,
    SOURCE_NAME,
    TOO_OLD,
    BackfillRequest,
    Batch,
    folder_fingerprint,
    history_limit,
    list_folder,
)
from pfi.flows.dmp import CHANNEL, INS_NOT_QUALIFIED
from pfi.flows.intake.evaluate import IntakeOptions, cda_identity, evaluate
from pfi.protocols.hl7v2 import Action, split_file
from pfi.protocols.hl7v2.rules import RULE_DMP_INS
from pfi.protocols.ins import InsPolicy

if TYPE_CHECKING:
    from pfi.base.settings import Hl7Source, Settings
    from pfi.ledger import Ledger
    from pfi.ledger.backfill import DmpState
    from pfi.protocols.hl7v2 import Hl7Request

    #: A recorded message's item id and its parsed request (None: read back when sending).
    Loaded = tuple[int, Hl7Request] | None

log = logging.getLogger(__name__)


@dataclass
class _Candidate:
    """A document of the batch that passed every filter (to record, then send)."""

    unique_id: str
    type_code: str | None
    action: str
    #: writes it into the ledger (folder sources); returns the recorded item and the request
    #: already parsed (the sender need not read the file again), or None
    record: Callable[[], Loaded] | None = None
    document_id: int | None = None  # ledger source


@dataclass(frozen=True)
class Seen:
    """What a backfill decided about one document, for ``pfi dmp backfill --show-identity``
    only (holds the INS: never logged, never in XCom)."""

    unique_id: str
    type_code: str | None
    effective_time: datetime | None
    ins: str | None = field(repr=False)
    decision: str  # "send" or "skip"
    reason: str


@dataclass
class Tally:
    """What one lot decided: counts per reason and per type, the documents to send."""

    documents: int = 0
    skipped: Counter = field(default_factory=Counter)
    by_type: Counter = field(default_factory=Counter)  # to send, per document type
    candidates: list[_Candidate] = field(default_factory=list)
    listed: list[Seen] = field(default_factory=list)

    def skip(
        self,
        reason: str | None,
        unique_id: str = "",
        type_code: str | None = None,
        *,
        when: datetime | None = None,
        ins: str | None = None,
    ) -> None:
        self.documents += 1
        self.skipped[reason or "UNKNOWN"] += 1
        self.listed.append(Seen(unique_id, type_code, when, ins, "skip", reason or "UNKNOWN"))

    def take(
        self, candidate: _Candidate, *, when: datetime | None = None, ins: str | None = None
    ) -> None:
        self.documents += 1
        self.by_type[candidate.type_code or "?"] += 1
        self.candidates.append(candidate)
        self.listed.append(Seen(candidate.unique_id, candidate.type_code, when, ins, "send", ""))


class Filters:
    """The request's filters, in the order their reasons are given."""

    def __init__(self, request: BackfillRequest, reference: date) -> None:
        self.request = request
        self.limit = history_limit(reference)

    def reason(
        self, type_code: str | None, effective: datetime | None, qualified: bool
    ) -> str | None:
        types = self.request.type_codes
        if types and (type_code or "") not in types:
            return OTHER_TYPE
        if effective is None:
            return NO_DATE
        day = (effective.astimezone(PARIS) if effective.tzinfo else effective).date()
        if day < self.limit:
            return TOO_OLD
        if not self.request.start <= day <= self.request.end:
            return OUT_OF_RANGE
        if not qualified:
            return INS_NOT_QUALIFIED
        return None


def _ledger_reason(state: DmpState | None, content_sha256: str | None) -> tuple[str | None, bool]:
    """(reason to skip, whether a historical delivery of this document is already queued)."""
    if state is None:
        return None, False
    if content_sha256 and state.content_sha256 and state.content_sha256 != content_sha256:
        return DOC_ID_REUSED, False
    if state.sent:
        return ALREADY_SENT, False
    queued = [p for p in state.publications if p.status in ("pending", "held")]
    if queued:
        if all(p.historical for p in queued):
            return None, True  # this backfill's, from a run stopped before sending: resume
        return ALREADY_QUEUED, False
    if state.publications:
        return REFUSED_BEFORE, False
    return None, False


def _folder_slice(batch: Batch, patterns: Sequence[str]) -> tuple[Path, list[Path]]:
    folder = Path(batch.request.get("folder") or "")
    files = list_folder(folder, patterns)
    if folder_fingerprint(folder, files) != batch.fingerprint:
        raise InvalidInput(
            "le dossier a changé depuis le plan de la reprise : relancer la reprise (les "
            "documents déjà envoyés ne le seront pas deux fois)",
            code=FOLDER_CHANGED,
        )
    return folder, files[batch.offset : batch.offset + batch.count]


def _backfill_source(settings: Settings, request: BackfillRequest, folder: Path) -> Hl7Source:
    """The pseudo HL7 source a historical folder is read as (intake's evaluation needs one)."""
    from pfi.base.settings import Hl7Source

    return Hl7Source(
        name=SOURCE_NAME,
        kind="OTHER",
        finess_geo=request.finess_geo,
        drop_dir=folder,
        outbound_dir=folder,
        archive_dir=folder,
        quarantine_dir=folder,
        work_dir=folder,
    )


def _classify_hl7(
    ledger: Ledger,
    settings: Settings,
    request: BackfillRequest,
    filters: Filters,
    batch: Batch,
    tally: Tally,
    actor: str,
) -> None:
    folder, files = _folder_slice(batch, HL7_PATTERNS)
    source = _backfill_source(settings, request, folder)
    policy = InsPolicy.for_site(settings.site)
    options = IntakeOptions.from_settings(settings)
    for path in files:
        raw = path.read_bytes()[: options.max_file_bytes + 1]
        evaluations = [
            evaluate(
                index,
                chunk,
                source=source,
                policy=policy,
                options=options,
                structure_oid=settings.site.structure_oid,
            )
            for index, chunk in enumerate(split_file(raw), 1)
        ]
        chosen = []  # (evaluation, planned document)
        for evaluation in evaluations:
            request_ = evaluation.request
            if not evaluation.answer.accepted or request_ is None:
                code = evaluation.answer.reason_code
                tally.skip(INS_NOT_QUALIFIED if code == RULE_DMP_INS else code)
                continue
            sender = request_.sender
            for planned in evaluation.documents:
                if request_.action is Action.DELETE:
                    reason: str | None = DELETION
                elif (CHANNEL, None) not in evaluation.channels and not (
                    request.include_not_requested
                ):
                    reason = NOT_FOR_DMP
                elif (
                    sender is not None
                    and sender.organization_id_type == "FINEG"
                    and sender.organization_id
                    and sender.organization_id != request.finess_geo
                ):
                    reason = OTHER_FINESS
                else:
                    reason = filters.reason(
                        planned.type_code, planned.effective_time, evaluation.ins_qualified
                    )
                if reason:
                    tally.skip(
                        reason,
                        planned.unique_id,
                        planned.type_code,
                        when=planned.effective_time,
                        ins=evaluation.ins_matricule,
                    )
                else:
                    chosen.append((evaluation, planned))
        states = ledger.dmp_states([p.unique_id for _, p in chosen])
        file_item: list[int] = []  # recorded once per file, on its first document to send

        for evaluation, planned in chosen:
            reason, _ = _ledger_reason(states.get(planned.unique_id), planned.content_sha256)
            seen = {"when": planned.effective_time, "ins": evaluation.ins_matricule}
            if reason:
                tally.skip(reason, planned.unique_id, planned.type_code, **seen)
                continue

            def record(evaluation=evaluation, path=path, raw=raw, file_item=file_item) -> Loaded:
                if not file_item:
                    item_id, _ = ledger.record_inbound(
                        kind="hl7_file",
                        source=SOURCE_NAME,
                        finess_geo=request.finess_geo,
                        original_ref=path.relative_to(folder).as_posix(),
                        checksum=hashlib.sha256(raw).hexdigest(),
                        size=len(raw),
                        storage_path=str(path.resolve()),
                        status="done",
                        actor=actor,
                    )
                    file_item.append(item_id)
                item_id = _record_evaluation(ledger, request, evaluation, path, file_item[0], actor)
                return item_id, evaluation.request

            action = evaluation.request.action.value if evaluation.request else "new"
            tally.take(_Candidate(planned.unique_id, planned.type_code, action, record), **seen)


def _record_evaluation(
    ledger: Ledger, request: BackfillRequest, evaluation: Any, path: Path, file_id: int, actor: str
) -> int:
    """One message of a historical file, as intake records it; its DMP delivery historical."""
    action = evaluation.request.action
    header = evaluation.header
    outcome = ledger.record_message(
        source=SOURCE_NAME,
        finess_geo=request.finess_geo,
        original_ref=str(evaluation.index),
        checksum=evaluation.checksum,
        size=len(evaluation.chunk),
        control_id=header.control_id[:200] or None,
        message_type=header.message_type[:40] or None,
        parent_id=file_id,
        storage_path=str(path.resolve()),
        status="done",
        documents=[
            {
                "unique_id": p.unique_id,
                "set_id": p.set_id,
                "version": p.version,
                "type_code": (p.type_code or "")[:20] or None,
                "type_display": p.type_display,
                "finess_geo": request.finess_geo,
                "effective_time": p.effective_time,
                "ins_matricule": evaluation.ins_matricule,
                "ins_oid": evaluation.ins_oid,
                "ins_qualified": evaluation.ins_qualified,
                "content_sha256": p.content_sha256,
                "replaces_unique_id": p.replaces_unique_id if action is Action.REPLACE else None,
            }
            for p in evaluation.documents
        ],
        deliveries=[(CHANNEL, None, "held")],  # the lot releases it: run_batch
        action=action.value,
        historical=True,
        actor=actor,
    )
    if outcome.content_conflict:
        log.warning("message of ledger item %s: %s", outcome.item.id, DOC_ID_REUSED)
    return outcome.item.id


def _classify_cda(
    ledger: Ledger,
    settings: Settings,
    request: BackfillRequest,
    filters: Filters,
    batch: Batch,
    tally: Tally,
    actor: str,
) -> None:
    from pfi.protocols.cda import read_cda

    folder, files = _folder_slice(batch, CDA_PATTERNS)
    policy = InsPolicy.for_site(settings.site)
    chosen = []
    for path in files:
        raw = path.read_bytes()
        try:
            header = read_cda(raw)
        except InvalidInput as exc:
            tally.skip(exc.code)
            continue
        except Exception:  # a shape the reader did not foresee: skipped, never a crash
            tally.skip("CDA_UNREADABLE")
            continue
        unique_id = str(header.id)
        type_code = header.code.code if header.code else None
        identity = cda_identity(header)
        qualified = identity is not None and not (
            policy.check_ins(identity) or policy.check_traits(identity)
        )
        reason = filters.reason(type_code, header.effective_time, qualified)
        if reason:
            ins = identity.matricule if identity else None
            tally.skip(reason, unique_id, type_code, when=header.effective_time, ins=ins)
            continue
        chosen.append((path, raw, header, identity, unique_id, type_code))
    states = ledger.dmp_states([c[4] for c in chosen])
    for path, raw, header, identity, unique_id, type_code in chosen:
        sha = hashlib.sha256(raw).hexdigest()
        reason, _ = _ledger_reason(states.get(unique_id), sha)
        seen = {"when": header.effective_time, "ins": identity.matricule if identity else None}
        if reason:
            tally.skip(reason, unique_id, type_code, **seen)
            continue
        action = "replace" if header.replaced_id is not None else "new"

        def record(path=path, raw=raw, header=header, identity=identity, sha=sha) -> Loaded:
            outcome = ledger.record_message(
                source=SOURCE_NAME,
                kind="cda_file",
                finess_geo=request.finess_geo,
                original_ref=path.relative_to(folder).as_posix(),
                checksum=sha,
                size=len(raw),
                message_type="CDA",
                storage_path=str(path.resolve()),
                status="done",
                documents=[
                    {
                        "unique_id": str(header.id),
                        "set_id": str(header.set_id) if header.set_id else None,
                        "version": header.version_number,
                        "type_code": ((header.code.code if header.code else "") or "")[:20] or None,
                        "type_display": header.code.display_name if header.code else None,
                        "finess_geo": request.finess_geo,
                        "effective_time": header.effective_time,
                        "ins_matricule": identity.matricule if identity else None,
                        "ins_oid": identity.oid if identity else None,
                        "ins_qualified": True,
                        "content_sha256": sha,
                        "replaces_unique_id": (
                            str(header.replaced_id) if header.replaced_id else None
                        ),
                    }
                ],
                deliveries=[(CHANNEL, None, "held")],  # the lot releases it: run_batch
                action="replace" if header.replaced_id is not None else "new",
                historical=True,
                actor=actor,
            )
            if outcome.content_conflict:
                log.warning("CDA file of ledger item %s: %s", outcome.item.id, DOC_ID_REUSED)
            return None

        tally.take(_Candidate(unique_id, type_code, action, record), **seen)


def _classify_ledger(
    ledger: Ledger,
    settings: Settings,
    request: BackfillRequest,
    filters: Filters,
    batch: Batch,
    tally: Tally,
    actor: str,
) -> None:
    for document, state in ledger.documents_with_dmp_state(batch.document_ids):
        if document.finess_geo != request.finess_geo:
            reason: str | None = OTHER_FINESS
        else:
            reason = filters.reason(
                document.type_code, document.effective_time, document.ins_qualified
            )
        if reason is None:
            reason, _ = _ledger_reason(state, None)
        if reason is None and not state.publications and not request.include_not_requested:
            # intake records a DMP delivery whenever the producer asks (DESTDMP=Y): none means
            # it said N, which only the operator may overrule (include_not_requested)
            reason = NOT_FOR_DMP
        seen = {"when": document.effective_time, "ins": document.ins_matricule}
        if reason:
            tally.skip(reason, document.unique_id, document.type_code, **seen)
            continue
        action = "replace" if document.replaces_unique_id else "new"
        tally.take(
            _Candidate(document.unique_id, document.type_code, action, document_id=document.id),
            **seen,
        )


CLASSIFIERS = {"hl7": _classify_hl7, "cda": _classify_cda, "ledger": _classify_ledger}
