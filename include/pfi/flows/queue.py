"""Sending what the ledger says is due: one code path for first attempts and deferred retries.

Every channel (DMP, MSSanté to professionals, MSSanté to the patient, the DPI) works the same way:
intake creates ``pending`` deliveries in the ledger; a channel's executor claims the due ones
(:meth:`~pfi.ledger.Ledger.claim_due_deliveries`: oldest due first, locked rows skipped), tries
each one and records the :class:`Outcome`. A transient failure puts the delivery back in the queue
with a later ``next_attempt_at`` (exponential backoff with a cap, :class:`RetryPolicy`) until it is
older than the policy's give-up age, when it becomes ``failed`` with the reason. This is the
deferred-send queue of SC.DMP/ALI/PROG.06-07; "held" deliveries are never claimed until released.

::

    from pfi.base.retry import RetryPolicy
    from pfi.flows.queue import Outcome, run_due

    def send_one(delivery):                    # raises TransientError / RefusedByPartner, or
        ...                                    # returns an Outcome
        return Outcome.sent(partner_ref)

    counts = run_due(ledger, "dmp", send_one, policy=RetryPolicy(), limit=20, actor=actor)

One bad delivery never stops the batch: its outcome is recorded and the next one is tried. An
unexpected exception (a bug, the disk) is recorded as a retry with the exception's type only (no
message: it may quote content), and raised after the batch so that the task turns red.

``after`` (the producer's ZAM) runs once a final outcome is recorded and is then marked in the
trail (:data:`FOLLOWED_UP`); a final outcome left without that mark — the worker died in
between, or ``after`` failed — is followed up by a later run (:func:`follow_up_missed`), so a
ZAM is never lost. ``after`` must therefore be idempotent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pfi.base.errors import (
    ConfigurationError,
    PfiError,
    TransientError,
    unexpected_summary,
)
from pfi.base.retry import RetryPolicy

if TYPE_CHECKING:
    from pfi.ledger import Delivery, Ledger

log = logging.getLogger(__name__)

OutcomeKind = Literal["sent", "refused", "retry", "later"]

#: Reason code of a delivery given up after the policy's age (the last error's code is kept in
#: the reason text and in the event trail).
GIVEN_UP = "DELIVERY_GIVEN_UP"
#: Reason code of an unexpected exception in a sender (a bug): retried, and the task fails.
INTERNAL = "INTERNAL"
#: Trail line written once ``after`` (the producer's ZAM) has run for a final outcome; a final
#: delivery without it is followed up again by :func:`follow_up_missed`.
FOLLOWED_UP = "delivery.followed_up"
#: How long a final outcome is left to the worker that recorded it before its follow-up is
#: deemed missed (that worker died between the outcome and the ZAM), and how far back to look.
FOLLOW_UP_GRACE = timedelta(minutes=5)
FOLLOW_UP_WINDOW = timedelta(days=2)
#: After this many transient failures in a row within one claim the partner is deemed unavailable
#: (a circuit breaker): the rest of the claim is not tried — it stays due, without counting an
#: attempt, with the reason :data:`PARTNER_UNAVAILABLE` — and the run stops draining. A partner
#: that is down costs a few attempts per run instead of one per delivery, and no delivery's
#: backoff grows for an outage it never saw: the next run probes the partner again (other
#: deliveries, the oldest due), and once it is back the queue goes at once.
BREAKER_AFTER = 3
PARTNER_UNAVAILABLE = "PARTNER_UNAVAILABLE"


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave.

    - ``sent``: the partner accepted (``partner_ref`` its reference, if any);
    - ``refused``: the partner or our own checks refused it for good (coded reason);
    - ``retry``: a transient failure — counted as an attempt, retried with backoff;
    - ``later``: not attempted now (e.g. it waits for the version it replaces): due again after
      ``delay``, not counted as an attempt, still subject to the give-up age.
    """

    kind: OutcomeKind
    partner_ref: str | None = None
    reason_code: str | None = None
    reason_text: str | None = None
    delay: timedelta | None = None

    @classmethod
    def sent(cls, partner_ref: str | None = None) -> Outcome:
        return cls("sent", partner_ref=partner_ref)

    @classmethod
    def refused(cls, code: str, text: str) -> Outcome:
        return cls("refused", reason_code=code, reason_text=text)

    @classmethod
    def retry(cls, code: str, text: str, delay: timedelta | None = None) -> Outcome:
        """A transient failure; retried after ``delay`` when given, else after the policy's
        backoff."""
        return cls("retry", reason_code=code, reason_text=text, delay=delay)

    @classmethod
    def later(cls, code: str, text: str, delay: timedelta = timedelta(minutes=1)) -> Outcome:
        return cls("later", reason_code=code, reason_text=text, delay=delay)

    @classmethod
    def from_error(cls, exc: PfiError) -> Outcome:
        """The outcome a PFI error stands for: transient → retry, anything else → refused.

        A configuration error is retried: the operator fixes the connection, the queue resumes.
        """
        if isinstance(exc, TransientError | ConfigurationError):
            return cls.retry(exc.code, exc.reason)
        return cls.refused(exc.code, exc.reason)  # InvalidInput, RefusedByPartner, the others


SendOne = Callable[["Delivery"], Outcome]
AfterOutcome = Callable[["Delivery", Outcome], None]


def record_outcome(
    ledger: Ledger,
    delivery: Delivery,
    outcome: Outcome,
    *,
    policy: RetryPolicy,
    actor: str,
    now: datetime | None = None,
) -> Delivery:
    """Write an attempt's outcome into the ledger; return the delivery as it now stands."""
    now = now or datetime.now(UTC)
    if outcome.kind == "sent":
        return ledger.mark_delivery(
            delivery.id, "sent", partner_ref=outcome.partner_ref, at=now, actor=actor
        )
    if outcome.kind == "refused":
        return ledger.mark_delivery(
            delivery.id,
            "refused",
            reason_code=outcome.reason_code,
            reason_text=outcome.reason_text,
            at=now,
            actor=actor,
        )
    attempted = outcome.kind == "retry"
    if policy.expired(delivery.created_at, now) and policy.expired(
        since := queued_since(ledger, delivery), now
    ):
        age_hours = round((now - since).total_seconds() / 3600, 1)
        return ledger.mark_delivery(
            delivery.id,
            "failed",
            reason_code=GIVEN_UP,
            reason_text=f"given up after {age_hours} h; last error {outcome.reason_code}: "
            f"{outcome.reason_text or ''}".strip(),
            attempted=attempted,
            at=now,
            keep_held=True,
            actor=actor,
        )
    wait = outcome.delay if outcome.delay is not None else policy.delay(delivery.attempts + 1)
    return ledger.mark_delivery(
        delivery.id,
        "pending",
        reason_code=outcome.reason_code,
        reason_text=outcome.reason_text,
        next_attempt_at=now + wait,
        attempted=attempted,
        at=now,
        keep_held=True,
        actor=actor,
    )


def queued_since(ledger: Ledger, delivery: Delivery) -> datetime:
    """When the delivery joined the queue: its creation, or its last release from ``held`` or
    from ``failed`` (a delivery held for days by the site has not been tried yet, one given up
    and released by the operator starts afresh: its retries start then)."""
    since = delivery.created_at
    for line in ledger.events(delivery_id=delivery.id, kind="delivery.status"):
        if line.detail.get("from") in ("held", "failed") and line.detail.get("to") == "pending":
            since = max(since, line.at)
    return since


def run_due(
    ledger: Ledger,
    channel: str,
    send_one: SendOne,
    *,
    policy: RetryPolicy,
    actor: str,
    limit: int = 50,
    now: datetime | None = None,
    after: AfterOutcome | None = None,
    ids: Sequence[int] | None = None,
    drain_seconds: float = 0.0,
) -> dict[str, Any]:
    """Claim up to ``limit`` due deliveries of ``channel`` (only among ``ids`` when given: a
    backfill's batch sends its own), try each one, record each outcome.

    ``drain_seconds``: while a claim comes back full and this long has not passed, claim again
    — a wave of documents goes in one run instead of ``limit`` per run and schedule tick (each
    claim is a batch of its own: leases, follow-ups). Counts are summed over the claims.

    ``after(delivery, outcome)`` runs once the outcome is recorded (business acknowledgement to
    the producer, for instance); ``delivery`` is the ledger row as it now stands (``failed`` when
    the retries were given up). Before each delivery after the first, its lease is renewed
    (:meth:`~pfi.ledger.Ledger.renew_claim`): one that another worker claimed once this batch
    outlasted the lease is skipped, never attempted twice. With ``after``, the final outcomes
    whose follow-up a dead worker missed are followed up too (:func:`follow_up_missed`).
    After :data:`BREAKER_AFTER` transient failures in a row, the rest of the claim waits
    untried (``not_tried``, also counted in ``deferred``) and the run ends.
    Returns counts only (XCom-safe): ``claimed``, ``sent``, ``refused``, ``deferred``,
    ``failed``, ``errors``, ``skipped``, ``not_tried`` (and ``followed_up`` with ``after``).
    """
    started = time.monotonic()
    counts: dict[str, Any] = {}
    while True:
        batch = _run_claim(ledger, channel, send_one, policy, actor, limit, now, after, ids)
        for key, value in batch.items():
            counts[key] = value if key == "channel" else counts.get(key, 0) + value
        if (
            batch["claimed"] < limit
            or batch["not_tried"]
            or time.monotonic() - started >= drain_seconds
        ):
            return counts


def _run_claim(
    ledger: Ledger,
    channel: str,
    send_one: SendOne,
    policy: RetryPolicy,
    actor: str,
    limit: int,
    now: datetime | None,
    after: AfterOutcome | None,
    ids: Sequence[int] | None,
) -> dict[str, Any]:
    """One claim of :func:`run_due`: its deliveries tried, recorded, followed up; counts."""
    claimed = ledger.claim_due_deliveries(channel, now=now, limit=limit, actor=actor, ids=ids)
    counts = {"channel": channel, "claimed": len(claimed), "sent": 0, "refused": 0}
    counts |= {"deferred": 0, "failed": 0, "errors": 0, "skipped": 0, "not_tried": 0}
    unexpected: list[BaseException] = []
    failing: list[str] = []  # the reason codes of the transient failures in a row
    for position, due in enumerate(claimed):
        if position and not ledger.renew_claim(due, now=now):
            # the batch outlasted this delivery's lease and another worker took it: theirs now
            counts["skipped"] += 1
            continue
        if len(failing) >= BREAKER_AFTER:
            outcome = _partner_unavailable(failing)
            counts["not_tried"] += 1
        else:
            try:
                outcome = send_one(due)
            except PfiError as exc:
                outcome = Outcome.from_error(exc)
            except Exception as exc:  # a bug or the machine: keep the delivery queued, go on
                unexpected.append(exc)
                counts["errors"] += 1
                outcome = Outcome.retry(INTERNAL, f"unexpected {type(exc).__name__}")
            if outcome.kind == "retry":
                failing.append(outcome.reason_code or "")
            elif outcome.kind != "later":  # the partner answered: sent, or refused for good
                failing.clear()
        try:
            stands = record_outcome(ledger, due, outcome, policy=policy, actor=actor, now=now)
        except Exception as exc:  # the ledger itself: the lease makes it due again later
            unexpected.append(exc)
            counts["errors"] += 1
            continue
        counts[_count_key(stands.status)] += 1
        log.info(
            "delivery %s (%s, attempt %s): %s %s",
            due.id,
            channel,
            stands.attempts,
            stands.status,
            outcome.reason_code or "",
        )
        if after is not None:
            try:
                _follow_up(ledger, stands, outcome, after, actor)
            except Exception as exc:  # followed up again by a later run (follow_up_missed)
                unexpected.append(exc)
                counts["errors"] += 1
    if after is not None:
        try:
            counts["followed_up"] = follow_up_missed(ledger, channel, after, actor=actor, now=now)
        except Exception as exc:
            unexpected.append(exc)
            counts["errors"] += 1
    if unexpected:
        raise TransientError(
            f"{len(unexpected)} unexpected error(s) while sending {channel} deliveries "
            f"(first: {unexpected_summary(unexpected[0])}); the deliveries stay queued",
            code=INTERNAL,
        ) from None  # the cause's message may quote a document or a patient: not in the log
    return counts


def _partner_unavailable(failing: Sequence[str]) -> Outcome:
    """The outcome of a delivery the breaker keeps from a partner that just failed in a row."""
    return Outcome.later(
        PARTNER_UNAVAILABLE,
        f"not tried: the partner failed {len(failing)} times in a row just before "
        f"(last error {failing[-1] or 'unknown'}); tried again at the next run",
        delay=timedelta(0),
    )


def _follow_up(
    ledger: Ledger, stands: Delivery, outcome: Outcome, after: AfterOutcome, actor: str
) -> None:
    after(stands, outcome)
    if stands.status in ("sent", "refused", "failed"):
        ledger.add_event(
            FOLLOWED_UP,
            document_id=stands.document_id,
            delivery_id=stands.id,
            actor=actor,
            detail={"status": stands.status},
        )


def follow_up_missed(
    ledger: Ledger,
    channel: str,
    after: AfterOutcome,
    *,
    actor: str,
    now: datetime | None = None,
    limit: int = 200,
) -> int:
    """Run ``after`` for the deliveries of ``channel`` whose final outcome is older than
    :data:`FOLLOW_UP_GRACE` and was never followed up (the worker died before the producer's
    ZAM); how many. ``after`` must be idempotent: it is given the outcome as the ledger tells
    it (``sent`` with its partner reference, ``refused`` / ``failed`` with their reason)."""
    now = now or datetime.now(UTC)
    missed = ledger.final_without_event(
        channel,
        FOLLOWED_UP,
        updated_after=now - FOLLOW_UP_WINDOW,
        updated_before=now - FOLLOW_UP_GRACE,
        limit=limit,
    )
    failures: list[BaseException] = []
    for stands in missed:
        if stands.status == "sent":
            outcome = Outcome.sent(stands.partner_ref or "")
        elif stands.status == "refused":
            outcome = Outcome.refused(stands.reason_code or "", stands.reason_text or "")
        else:
            outcome = Outcome.retry(stands.reason_code or GIVEN_UP, stands.reason_text or "")
        log.info("delivery %s (%s): %s outcome followed up late", stands.id, channel, stands.status)
        try:
            _follow_up(ledger, stands, outcome, after, actor)
        except Exception as exc:  # this one is tried again next run; the others go on
            failures.append(exc)
    if failures:
        raise TransientError(
            f"{len(failures)} late follow-up(s) of {channel} deliveries failed "
            f"(first: {unexpected_summary(failures[0])})",
            code=INTERNAL,
        ) from None
    return len(missed)


def _count_key(status: str) -> str:
    return {"sent": "sent", "refused": "refused", "failed": "failed"}.get(status, "deferred")


__all__ = [
    "BREAKER_AFTER",
    "FOLLOWED_UP",
    "GIVEN_UP",
    "INTERNAL",
    "PARTNER_UNAVAILABLE",
    "AfterOutcome",
    "Outcome",
    "SendOne",
    "follow_up_missed",
    "record_outcome",
    "run_due",
]
