"""Intake of HL7 v2 files: claim, record in the ledger first, acknowledge, archive or quarantine.

The two steps of the ``ingest_hl7_drop`` DAG (and of ``pfi intake run``):

1. :func:`claim_and_record` — for each source, claim settled files (:mod:`pfi.drop`) and record
   each one in the ledger with its checksum **before anything else**; return bounded batches of
   ledger ids (what XCom carries: no file name, no patient data).
2. :func:`acknowledge_items` — for each ledger id of a batch: read the file, answer the producer
   with the technical ACK, archive the original (or quarantine it with the reason beside it) and
   record the outcome. Items already finished are skipped, so replaying a batch is harmless.

A message that cannot be read gets an ``AE`` acknowledgement with an ERR segment and goes to
quarantine; it never stops the other messages of its batch. An unexpected error (ledger down,
disk full) leaves the file where it is, marks the item ``failed`` when it can, and is raised
after the batch so that Airflow retries the task.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pfi import drop
from pfi.errors import ConfigurationError, InvalidInput, TransientError
from pfi.hl7ack import (
    ERR_REQUIRED_FIELD_MISSING,
    ERR_UNSUPPORTED_MESSAGE_TYPE,
    AckError,
    MessageHeader,
    codec_for,
    read_header,
    technical_ack,
)
from pfi.hl7v2 import Hl7Request, parse_message, split_file
from pfi.hl7v2.parser import DEFAULT_ENCODING
from pfi.settings import Hl7Source, Settings, load_settings

if TYPE_CHECKING:
    from pfi.ledger import InboundItem, Ledger

#: Message types the volet "Transmission de document(s) CDA en HL7v2" sends to a PFI.
SUPPORTED_MESSAGES = {"MDM", "ORU"}
TERMINAL = {"done", "rejected", "duplicate"}


@dataclass(frozen=True)
class Answer:
    code: str
    errors: tuple[AckError, ...] = ()
    reason_code: str | None = None
    reason_text: str | None = None


def check_header(header: MessageHeader) -> Answer:
    """What the slice checks before the full parser exists: MSH readable, MDM or ORU."""
    if not header.control_id:
        return Answer(
            "AE",
            (AckError(condition=ERR_REQUIRED_FIELD_MISSING, location="MSH^1^10"),),
            "HL7_NO_MSH",
            "MSH segment or MSH-10 (message control id) missing",
        )
    if header.message_code not in SUPPORTED_MESSAGES:
        return Answer(
            "AE",
            (AckError(condition=ERR_UNSUPPORTED_MESSAGE_TYPE, location="MSH^1^9"),),
            "HL7_UNSUPPORTED_MESSAGE",
            f"message type {header.message_code or '(empty)'} is not MDM or ORU",
        )
    return Answer("AA")


def claim(source: Hl7Source, *, limit: int = 1000) -> list[drop.ClaimedFile]:
    return drop.claim_ready_files(source, limit=limit)


def _answer_for(item: InboundItem) -> Answer:
    """The answer already given to an item (for a producer that drops the same bytes again)."""
    if item.status == "done":
        return Answer("AA")
    return Answer(
        "AE",
        (AckError(location="", application_code=item.reason_code or ""),),
        item.reason_code,
        item.reason_text,
    )


def record_claimed(
    ledger: Ledger, source: Hl7Source, files: Sequence[drop.ClaimedFile], *, actor: str
) -> list[int]:
    """Record claimed files in the ledger (checksum first); return the ids still to acknowledge.

    The ledger knows each set of bytes once per source. When a claimed file is already known:

    - it is the same file (same work path): a crashed run's leftover — it is processed again;
    - it is a new copy of a finished item (the producer dropped it again, typically because it
      did not get the ACK): the copy is archived and the same answer is written again;
    - it is a new copy of an item still in progress: the copy is archived; the first one answers.
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
        header = read_header(claimed.read_bytes())
        archived = drop.archive(source, claimed)
        ledger.add_event(
            "inbound.duplicate_drop",
            inbound_item_id=item_id,
            actor=actor,
            detail={"archived_copy": str(archived), "first_status": known.status},
        )
        if known.status in TERMINAL:
            _write_ack(source, header, item_id, _answer_for(known), datetime.now(UTC))
    return ids


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
        ids = record_claimed(ledger, source, claim(source, limit=limit), actor=actor)
        for chunk in drop.batches([str(i) for i in ids], batch_size):
            batches.append({"source": source.name, "item_ids": [int(i) for i in chunk]})
    return batches


def _write_ack(
    source: Hl7Source, header: MessageHeader, item_id: int, answer: Answer, when: datetime
) -> Path:
    control = re.sub(r"[^A-Za-z0-9_.-]", "_", header.control_id)[:40] or "unknown"
    ack = technical_ack(
        header,
        answer.code,
        control_id=f"PFI{item_id}",
        now=when,
        errors=answer.errors,
        text=answer.reason_text or "",
    )
    source.outbound_dir.mkdir(parents=True, exist_ok=True)
    target = source.outbound_dir / f"ACK_{item_id:08d}_{control}.hl7"
    codec = codec_for(header.charset, source.default_encoding)
    target.write_bytes(ack.encode(codec, errors="replace"))
    return target


def acknowledge_items(
    ledger: Ledger, settings: Settings, batch: dict, *, actor: str, now: datetime | None = None
) -> dict:
    """Acknowledge one batch; return counts per outcome (no patient data, no file name)."""
    source = settings.source(batch["source"])
    counts = {"acknowledged": 0, "rejected": 0, "skipped": 0, "failed": 0}
    unexpected: list[Exception] = []
    for item_id in batch["item_ids"]:
        try:
            counts[_acknowledge_one(ledger, source, item_id, actor=actor, now=now)] += 1
        except Exception as exc:  # keep the file, record, go on with the batch, raise at the end
            counts["failed"] += 1
            unexpected.append(exc)
            _record_failure(ledger, item_id, exc, actor=actor)
    if unexpected:
        raise TransientError(
            f"{len(unexpected)} of {len(batch['item_ids'])} items failed unexpectedly "
            f"(first: {type(unexpected[0]).__name__}); their files stay in the work folder"
        ) from unexpected[0]
    return {"source": source.name, **counts}


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


def _acknowledge_one(
    ledger: Ledger, source: Hl7Source, item_id: int, *, actor: str, now: datetime | None
) -> str:
    item = ledger.get_inbound(item_id)
    if item.status in TERMINAL:
        return "skipped"
    path = Path(item.storage_path or "")
    claimed = drop.ClaimedFile(
        source=source.name,
        path=path,
        original_name=item.original_ref or path.name,
        size=item.size or 0,
        sha256=item.checksum,
    )
    header = read_header(path.read_bytes())
    answer = check_header(header)
    when = now or datetime.now(UTC)
    _write_ack(source, header, item_id, answer, when)
    if answer.code == "AA":
        kept = drop.archive(source, claimed, when=when)
        status, outcome = "done", "acknowledged"
    else:
        reason = (answer.reason_code or "", answer.reason_text or "")
        kept = drop.quarantine(source, claimed, *reason, when=when)
        status, outcome = "rejected", "rejected"
    ledger.set_inbound_status(
        item_id,
        status,
        reason_code=answer.reason_code,
        reason_text=answer.reason_text,
        storage_path=str(kept),
        control_id=header.control_id or None,
        message_type=header.message_type or None,
        actor=actor,
    )
    return outcome


def message_checksum(chunk: bytes) -> str:
    """SHA-256 of one message as :func:`pfi.hl7v2.split_file` returns it (segments CR-joined)."""
    return hashlib.sha256(chunk).hexdigest()


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

    Raises :class:`~pfi.errors.TransientError` ``INTAKE_ORIGINAL_MISSING`` when the original is
    not where the ledger says (it may be moving to the archive right now: retry), and
    :class:`~pfi.errors.InvalidInput` when it changed or holds no document request.
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
    raw = _read_original(ledger, parent_id)
    chunks = split_file(raw)
    if not 1 <= index <= len(chunks):
        raise InvalidInput(
            f"the original of item {item.id} has no message {index}", code="INTAKE_ORIGINAL_CHANGED"
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


def _read_original(ledger: Ledger, file_item_id: int) -> bytes:
    for _ in range(2):  # the file may have been archived between the read and the open
        path = Path(ledger.get_inbound(file_item_id).storage_path or "")
        try:
            return path.read_bytes()
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
    "load_request",
    "message_checksum",
    "acknowledge_items",
    "check_header",
    "claim",
    "claim_and_record",
    "record_claimed",
]
