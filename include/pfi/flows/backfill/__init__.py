"""Historical DMP backfill: send a site's past documents (up to 5 years old) to the DMP, once.

A hospital does it once per software migration and per FINESS géographique, over up to millions
of documents (DSR: "historical" documents may feed the DMP up to 5 years back, only with a
**qualified INS**; SC.STAT/ES.02 counts them apart). The ``backfill_dmp_history`` DAG (form in
the Airflow UI) and ``pfi dmp backfill`` call the two steps here:

1. :func:`plan` — checks what was asked (:class:`BackfillRequest`: source, FINESS géographique,
   date range no more than :data:`HISTORY_YEARS` years before the run's logical date, document
   types, dry run, maximum rate) and splits the source into a deterministic list of
   :class:`Batch` (XCom-safe: counts, offsets, ledger ids — never a file name or patient data).
   Sources (:data:`SOURCE_KINDS`):

   - ``hl7``: a folder of HL7 v2 files (MDM/ORU, as producers send them), each message read by
     intake's own evaluation (:func:`pfi.flows.intake.evaluate`: parsing, INS checks, PID ↔ CDA
     traits, routing rules);
   - ``cda``: a folder of CDA R2 files (``*.xml``), read by the CDA reader; the INS of the
     header counts as qualified when it is a valid INS of this site with its traits (the CI-SIS
     puts the INS in a CDA only for a qualified identity);
   - ``ledger``: documents the ledger holds, produced here, that no DMP delivery ever sent.

   Folders are listed recursively in path order; a batch holds a slice of that listing and the
   listing's fingerprint (a folder changed since the plan is refused: plan again).
2. :func:`run_batch` — classifies each document of one batch (sent, or skipped with a reason:
   :data:`REASONS`), records what is to be sent exactly as intake records it
   (:meth:`~pfi.ledger.Ledger.record_message`, deliveries marked ``historical`` and ``held``
   until the lot releases them, so the live queue never takes a lot's work) and sends them
   through the live flow's DMP sender over the claim queue (:class:`pfi.flows.dmp.DmpSender`,
   :func:`pfi.flows.queue.run_due` limited to the batch's deliveries), at most ``max_rate``
   documents per second. A transient failure leaves a delivery in the deferred queue, which
   ``deliver_dmp`` retries after its live deliveries (claims take historical ones last).

**Stop and resume.** Every step is an insert-or-get keyed on the document's unique id: a
document already sent (by the flow or an earlier backfill) is skipped ``ALREADY_SENT``, one
whose historical delivery is still pending is sent by the next run of its batch, and the claim
queue never hands a delivery to two workers. Stopping a run (or killing a worker) and starting
the same backfill again sends nothing twice; the DMP also recognises a resent lot (submission
set uniqueId fixed per delivery).

Logs: one progress line per batch (done / total, rate, time left), counts and reason codes only
— never a file name, an INS or a name.

Modules: :mod:`.plan` (the request, its checks, the lots), :mod:`.sources` (reading and deciding
per source, recording), this one (sending a lot, progress, totals).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from pfi.base.errors import ConfigurationError
from pfi.flows.backfill.plan import (
    HISTORY_YEARS,
    REASONS,
    SOURCE_KINDS,
    SOURCE_NAME,
    BackfillRequest,
    Batch,
    history_limit,
    plan,
)
from pfi.flows.backfill.sources import CLASSIFIERS, Filters, Seen, Tally
from pfi.flows.dmp import CHANNEL, DmpSender, load_original
from pfi.flows.queue import Outcome, run_due

if TYPE_CHECKING:
    from pfi.base.settings import Settings
    from pfi.ledger import Delivery, Ledger
    from pfi.protocols.dmp.client import DmpClient
    from pfi.protocols.dmp.config import DmpConfig
    from pfi.protocols.dmp.signing import Signer

log = logging.getLogger(__name__)

# --- sending --------------------------------------------------------------------------------------


class _Throttle:
    """``send_one`` at most ``rate`` times per second (0: no limit)."""

    def __init__(self, send_one: Callable[[Delivery], Outcome], rate: float) -> None:
        self.send_one = send_one
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at = 0.0

    def __call__(self, delivery: Delivery) -> Outcome:
        if self.interval:
            wait = self.next_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.next_at = max(self.next_at, time.monotonic()) + self.interval
        return self.send_one(delivery)


def _historical_queued(ledger: Ledger, unique_ids: Sequence[str]) -> tuple[list[int], list[int]]:
    """The historical DMP deliveries of these documents still to send: (held, pending)."""
    held, pending = [], []
    for state in ledger.dmp_states(unique_ids).values():
        for p in state.publications:
            if p.historical and p.status == "held":
                held.append(p.delivery_id)
            elif p.historical and p.status == "pending":
                pending.append(p.delivery_id)
    return sorted(held), sorted(pending)


def run_batch(
    ledger: Ledger,
    settings: Settings,
    batch: Mapping[str, Any],
    *,
    client: DmpClient | None = None,
    signer: Signer | None = None,
    config: DmpConfig | None = None,
    actor: str = "cli",
    show: Callable[[Seen], None] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Classify, record and send one batch of :func:`plan`; counts only (XCom-safe).

    A dry run records and sends nothing. ``show`` is told what was decided about each document
    (:class:`Seen`, with its INS: ``pfi dmp backfill --show-identity`` only). ``now``: the
    claim's time (tests walk past a dead worker's lease with it).
    """
    started = time.monotonic()
    lot = Batch.from_xcom(batch)
    reference = date.fromisoformat(lot.reference)
    request = BackfillRequest.from_params(lot.request, reference=reference, settings=settings)
    tally = Tally()
    CLASSIFIERS[request.source_kind](
        ledger, settings, request, Filters(request, reference), lot, tally, actor
    )
    if show is not None:
        for entry in tally.listed:
            show(entry)
    counts: dict[str, Any] = {
        "batch": f"lot {lot.index}/{lot.of}",
        "entries": lot.count,
        "documents": tally.documents,
        "to_send": len(tally.candidates),
        "by_type": dict(sorted(tally.by_type.items())),
        "skipped": dict(sorted(tally.skipped.items())),
        "sent": 0,
        "deferred": 0,
        "refused": 0,
        "failed": 0,
        "dry_run": request.dry_run,
    }
    if not request.dry_run and tally.candidates:
        if client is None or signer is None or config is None:
            raise ConfigurationError("a backfill that sends needs the DMP client and signer")
        preloaded: dict[int, Any] = {}
        for candidate in tally.candidates:
            if candidate.record is not None:
                loaded = candidate.record()
                if loaded is not None:
                    preloaded[loaded[0]] = loaded[1]
            elif candidate.document_id is not None:
                ledger.add_historical_delivery(candidate.document_id, candidate.action, actor=actor)
        # recorded held (the live queue never takes them), released just before the claim
        held, pending = _historical_queued(ledger, [c.unique_id for c in tally.candidates])
        ids = sorted(ledger.release_historical(held, actor=actor) + pending)
        if ids:

            def load(ledger_: Ledger, item_id: int) -> Any:
                """The request parsed while classifying, else read back (a resumed lot)."""
                found = preloaded.pop(item_id, None)
                return found if found is not None else load_original(ledger_, item_id, settings)

            sender = DmpSender(
                ledger, client, signer, config, settings=settings, actor=actor, load_request=load
            )
            sent = run_due(
                ledger,
                CHANNEL,
                _Throttle(sender, request.max_rate),
                policy=config.retry,
                actor=actor,
                limit=len(ids),
                after=sender.after,
                ids=ids,
                now=now,
            )
            for key in ("sent", "deferred", "refused", "failed"):
                counts[key] = sent[key]
    elapsed = max(time.monotonic() - started, 1e-6)
    counts["seconds"] = round(elapsed, 3)
    counts["rate_per_s"] = round(tally.documents / elapsed, 2)
    _progress(lot, counts, elapsed)
    return counts


def _progress(lot: Batch, counts: Mapping[str, Any], elapsed: float) -> None:
    """One line per batch: done / total, rate, time left (counts only)."""
    done = lot.offset + lot.count
    rate = lot.count / elapsed
    left = (lot.total - done) / rate if rate else 0.0
    skipped = sum(counts["skipped"].values())
    log.info(
        "reprise DMP %s : %s/%s %s traités (%.0f %%) · lot : %s envoyés, %s différés, %s refusés, "
        "%s écartés%s · %.1f %s/s · reste ≈ %s",
        f"lot {lot.index}/{lot.of}",
        done,
        lot.total,
        lot.unit,
        100.0 * done / lot.total if lot.total else 100.0,
        counts["sent"],
        counts["deferred"],
        counts["refused"],
        skipped,
        " (essai à blanc)" if counts["dry_run"] else "",
        rate,
        lot.unit,
        _duration(left),
    )


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def summarize(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The counts of every batch added up (the DAG's last task, the command's output)."""
    total: dict[str, Any] = {
        "batches": 0,
        "documents": 0,
        "to_send": 0,
        "sent": 0,
        "deferred": 0,
        "refused": 0,
        "failed": 0,
        "by_type": Counter(),
        "skipped": Counter(),
    }
    for result in results:
        if not result:
            continue
        total["batches"] += 1
        for key in ("documents", "to_send", "sent", "deferred", "refused", "failed"):
            total[key] += int(result.get(key, 0))
        total["by_type"].update(result.get("by_type", {}))
        total["skipped"].update(result.get("skipped", {}))
    total["by_type"] = dict(sorted(total["by_type"].items()))
    total["skipped"] = dict(sorted(total["skipped"].items()))
    log.info(
        "reprise DMP terminée : %s lot(s), %s documents, %s à envoyer, %s envoyés, %s différés, "
        "%s refusés, écartés %s",
        total["batches"],
        total["documents"],
        total["to_send"],
        total["sent"],
        total["deferred"],
        total["refused"],
        total["skipped"],
    )
    return total


__all__ = [
    "HISTORY_YEARS",
    "REASONS",
    "SOURCE_KINDS",
    "SOURCE_NAME",
    "BackfillRequest",
    "Batch",
    "Seen",
    "history_limit",
    "plan",
    "run_batch",
    "summarize",
]
