"""Claiming a source's settled files and recording each in the ledger (checksum) before anything
else; bounded batches of ledger ids for the acknowledging step."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pfi.base.settings import Hl7Source
from pfi.flows import drop
from pfi.flows.intake.evaluate import TERMINAL

if TYPE_CHECKING:
    from pfi.ledger import InboundItem, Ledger

log = logging.getLogger(__name__)


def claim(source: Hl7Source, *, limit: int = 1000) -> list[drop.ClaimedFile]:
    return drop.claim_ready_files(source, limit=limit)


def record_claimed(
    ledger: Ledger,
    source: Hl7Source,
    files: Sequence[drop.ClaimedFile],
    *,
    actor: str,
    answer_again: Callable[[InboundItem, bytes], None],
) -> list[int]:
    """Record claimed files in the ledger (checksum first); return the ids still to acknowledge.

    The ledger knows each set of bytes once per source. When a claimed file is already known:

    - it is the same file (same work path), or the item is not finished: a crashed run's
      leftover or a copy dropped while the first is in progress — the first item answers once
      processed; a copy is archived beside;
    - it is a new copy of a finished item (the producer dropped it again, typically because it
      did not get the ACK): the copy is archived and ``answer_again(item, its bytes)`` writes
      the same answers again (:func:`pfi.flows.intake.acknowledge.answer_again`).
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
            answer_again(known, archived.read_bytes())
    return ids


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
            if locate_kept(source, item) is not None:
                found.append(item.id)
    return found[:limit]


def locate_kept(source: Hl7Source, item: InboundItem) -> Path | None:
    name = drop.short_name(item.original_ref or Path(item.storage_path or "").name)
    for rejected in (False, True):
        kept = drop.kept_path(source, item.id, name, item.received_at, rejected=rejected)
        if kept.is_file():
            return kept
    return None
