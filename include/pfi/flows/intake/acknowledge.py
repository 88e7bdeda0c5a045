"""Acknowledging a batch of claimed files: every message evaluated, recorded (item, documents,
deliveries, events in one transaction), answered with its technical ACK; the original kept."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfi.base.errors import TransientError, unexpected_summary
from pfi.base.files import write_atomically
from pfi.base.settings import Hl7Source, Settings
from pfi.flows import drop
from pfi.flows.intake.claim import locate_kept
from pfi.flows.intake.evaluate import (
    DOC_ID_REUSED,
    HEADER_PEEK_BYTES,
    INTAKE_ALL_REFUSED,
    INTAKE_EMPTY_FILE,
    INTAKE_SOME_REFUSED,
    INTAKE_TOO_LARGE,
    TERMINAL,
    Answer,
    Evaluation,
    IntakeOptions,
    evaluate,
    refusal,
)
from pfi.protocols.hl7v2 import (
    Action,
    split_file,
)
from pfi.protocols.hl7v2.ack import (
    ERR_SEGMENT_SEQUENCE,
    AckError,
    MessageHeader,
    codec_for,
    read_header,
    technical_ack,
)
from pfi.protocols.ins import (
    InsPolicy,
    RuleFailure,
)

if TYPE_CHECKING:
    from pfi.ledger import InboundItem, Ledger

log = logging.getLogger(__name__)


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
    return locate_kept(context.source, item)


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
        message_type=(first_header.message_type[:40] or None) if len(evaluations) == 1 else "batch",
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


def answer_again(
    ledger: Ledger,
    source: Hl7Source,
    item: InboundItem,
    raw: bytes,
    *,
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
