"""The shared delivery queue against a real ledger: outcomes, backoff, give-up, held, bugs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from pfi.base.errors import ConfigurationError, InvalidInput, RefusedByPartner, TransientError
from pfi.base.retry import RetryPolicy
from pfi.flows.queue import (
    BREAKER_AFTER,
    FOLLOWED_UP,
    GIVEN_UP,
    INTERNAL,
    PARTNER_UNAVAILABLE,
    Outcome,
    follow_up_missed,
    run_due,
)
from pfi.ledger import Ledger
from pfi.ledger.schema import delivery
from pfi_fixtures.ledger import record_document

pytestmark = pytest.mark.integration

POLICY = RetryPolicy(
    first_delay=timedelta(minutes=1),
    factor=2,
    max_delay=timedelta(minutes=5),
    give_up_after=timedelta(hours=24),
)


def queue(
    ledger: Ledger, count: int, *, channel: str = "dmp", status: str = "pending"
) -> list[int]:
    return [
        record_document(ledger, f"1.2.250.1.999.1^{n}", channel, status=status).delivery_id
        for n in range(count)
    ]


def later_than_creation(ledger: Ledger, delivery_id: int, delta: timedelta) -> datetime:
    return ledger.get_delivery(delivery_id).created_at + delta


def test_each_outcome_is_recorded_and_the_batch_goes_on(fresh_ledger: Ledger):
    sent, transient, refused, invalid = queue(fresh_ledger, 4)
    answers = {
        sent: lambda: Outcome.sent("DMP-42"),
        transient: lambda: (_ for _ in ()).throw(TransientError("down", code="DMP_UNREACHABLE")),
        refused: lambda: (_ for _ in ()).throw(RefusedByPartner("no", code="XDSRegistryError")),
        invalid: lambda: (_ for _ in ()).throw(InvalidInput("bad", code="INS_NOT_QUALIFIED")),
    }
    now = later_than_creation(fresh_ledger, invalid, timedelta(seconds=1))

    counts = run_due(
        fresh_ledger, "dmp", lambda d: answers[d.id](), policy=POLICY, actor="test", now=now
    )

    assert counts == {
        "channel": "dmp",
        "claimed": 4,
        "sent": 1,
        "refused": 2,
        "deferred": 1,
        "failed": 0,
        "errors": 0,
        "skipped": 0,
        "not_tried": 0,
    }
    assert fresh_ledger.get_delivery(sent).partner_ref == "DMP-42"
    retry = fresh_ledger.get_delivery(transient)
    assert (retry.status, retry.attempts, retry.reason_code) == ("pending", 1, "DMP_UNREACHABLE")
    assert retry.next_attempt_at == now + timedelta(minutes=1)
    assert fresh_ledger.get_delivery(refused).reason_code == "XDSRegistryError"
    assert fresh_ledger.get_delivery(invalid).status == "refused"


def test_a_wave_is_drained_claim_after_claim_in_one_run_and_a_deferral_ends_it(
    fresh_ledger: Ledger,
):
    """``drain_seconds``: a claim that came back full is followed by another — seven deliveries
    go in one run, three at a time — and one deferred is not claimed again in the same run."""
    ids = queue(fresh_ledger, 7)
    now = later_than_creation(fresh_ledger, ids[-1], timedelta(seconds=1))

    def send(delivery):
        if delivery.id == ids[0]:
            raise TransientError("down", code="DMP_UNREACHABLE")
        return Outcome.sent("ok")

    one = run_due(fresh_ledger, "dmp", send, policy=POLICY, actor="test", limit=3, now=now)
    assert (one["claimed"], one["sent"], one["deferred"]) == (3, 2, 1)

    rest = run_due(
        fresh_ledger, "dmp", send, policy=POLICY, actor="test", limit=3, now=now, drain_seconds=60
    )
    assert (rest["claimed"], rest["sent"], rest["deferred"]) == (4, 4, 0)
    assert {fresh_ledger.get_delivery(i).status for i in ids[1:]} == {"sent"}


def test_a_partner_down_is_tried_a_few_times_per_run_not_once_per_delivery(
    fresh_ledger: Ledger,
):
    """The breaker: after BREAKER_AFTER transient failures in a row the rest of the claim waits
    untried (no attempt counted, coded reason, still due) and the run does not drain on, though
    its claim came back full."""
    ids = queue(fresh_ledger, 10)
    now = later_than_creation(fresh_ledger, ids[-1], timedelta(seconds=1))
    tried = []

    def down(delivery):
        tried.append(delivery.id)
        raise TransientError("connection refused", code="DMP_UNREACHABLE")

    counts = run_due(
        fresh_ledger, "dmp", down, policy=POLICY, actor="test", limit=5, now=now, drain_seconds=60
    )

    assert len(tried) == BREAKER_AFTER
    assert (counts["claimed"], counts["deferred"], counts["not_tried"]) == (5, 5, 5 - BREAKER_AFTER)
    spared = [fresh_ledger.get_delivery(i) for i in ids if i not in tried]
    waiting = [d for d in spared if d.reason_code == PARTNER_UNAVAILABLE]
    assert len(waiting) == 5 - BREAKER_AFTER
    assert {(d.status, d.attempts) for d in waiting} == {("pending", 0)}
    assert {d.next_attempt_at for d in waiting} == {now}  # due at the next run, which probes
    assert "DMP_UNREACHABLE" in waiting[0].reason_text
    assert {d.reason_code for d in spared if d not in waiting} == {None}  # never claimed


def test_an_answer_between_failures_keeps_the_breaker_open(fresh_ledger: Ledger):
    """Transient failures that are not in a row (the partner answers in between) spare nobody."""
    ids = queue(fresh_ledger, 2 * BREAKER_AFTER)
    now = later_than_creation(fresh_ledger, ids[-1], timedelta(seconds=1))
    answers = iter(
        ([Outcome.retry("MSS_UNAVAILABLE", "421")] * (BREAKER_AFTER - 1) + [Outcome.sent()]) * 2
    )

    counts = run_due(
        fresh_ledger, "dmp", lambda d: next(answers), policy=POLICY, actor="test", now=now
    )

    assert (counts["sent"], counts["not_tried"]) == (2, 0)


def test_retries_back_off_exponentially_up_to_the_cap_then_succeed_once(fresh_ledger: Ledger):
    (delivery_id,) = queue(fresh_ledger, 1)
    now = later_than_creation(fresh_ledger, delivery_id, timedelta(seconds=1))
    waits = []
    for _ in range(5):
        run_due(
            fresh_ledger,
            "dmp",
            lambda d: Outcome.retry("DMP_UNREACHABLE", "connection refused"),
            policy=POLICY,
            actor="test",
            now=now,
        )
        due = fresh_ledger.get_delivery(delivery_id).next_attempt_at
        waits.append(due - now)
        now = due
    calls = []

    def accept(delivery):
        calls.append(delivery.id)
        return Outcome.sent("ok")

    run_due(fresh_ledger, "dmp", accept, policy=POLICY, actor="test", now=now)
    run_due(fresh_ledger, "dmp", accept, policy=POLICY, actor="test", now=now + timedelta(days=1))

    assert [w.total_seconds() / 60 for w in waits] == [1, 2, 4, 5, 5]
    assert calls == [delivery_id]
    final = fresh_ledger.get_delivery(delivery_id)
    assert (final.status, final.attempts) == ("sent", 6)


def test_a_delivery_not_yet_due_is_left_alone(fresh_ledger: Ledger):
    (delivery_id,) = queue(fresh_ledger, 1)
    now = later_than_creation(fresh_ledger, delivery_id, timedelta(seconds=1))
    run_due(
        fresh_ledger, "dmp", lambda d: Outcome.retry("X", "x"), policy=POLICY, actor="t", now=now
    )

    counts = run_due(
        fresh_ledger, "dmp", lambda d: Outcome.sent(), policy=POLICY, actor="t", now=now
    )

    assert counts["claimed"] == 0
    assert fresh_ledger.get_delivery(delivery_id).status == "pending"


def test_past_the_give_up_age_a_transient_failure_becomes_a_failure(fresh_ledger: Ledger):
    (delivery_id,) = queue(fresh_ledger, 1)
    now = later_than_creation(fresh_ledger, delivery_id, timedelta(hours=25))
    seen = []

    counts = run_due(
        fresh_ledger,
        "dmp",
        lambda d: Outcome.retry("DMP_UNREACHABLE", "timeout"),
        policy=POLICY,
        actor="test",
        now=now,
        after=lambda d, o: seen.append((d.status, o.reason_code)),
    )

    failed = fresh_ledger.get_delivery(delivery_id)
    assert counts["failed"] == 1
    assert (failed.status, failed.reason_code) == ("failed", GIVEN_UP)
    assert "DMP_UNREACHABLE" in failed.reason_text
    assert seen == [("failed", "DMP_UNREACHABLE")]


def test_a_delivery_released_after_a_long_hold_gets_its_retries(fresh_ledger: Ledger):
    (delivery_id,) = queue(fresh_ledger, 1, status="held")
    with fresh_ledger.engine.begin() as conn:  # held by the site for five days
        conn.execute(
            update(delivery)
            .where(delivery.c.id == delivery_id)
            .values(created_at=delivery.c.created_at - timedelta(days=5))
        )
    fresh_ledger.mark_delivery(delivery_id, "pending", actor="test")  # released now

    counts = run_due(
        fresh_ledger,
        "dmp",
        lambda d: Outcome.retry("DMP_UNREACHABLE", "timeout"),
        policy=POLICY,
        actor="test",
    )

    stands = fresh_ledger.get_delivery(delivery_id)
    assert (counts["deferred"], counts["failed"]) == (1, 0)
    assert (stands.status, stands.attempts) == ("pending", 1)


def test_a_delivery_taken_by_another_worker_once_the_lease_ran_out_is_not_attempted_twice(
    fresh_ledger: Ledger,
):
    first, second = queue(fresh_ledger, 2)
    attempted = []

    def slow_send(due):  # the first send outlasts the lease; another worker claims what is left
        attempted.append(due.id)
        if due.id == first:
            later = datetime.now(UTC) + timedelta(minutes=11)
            taken = fresh_ledger.claim_due_deliveries("dmp", now=later, actor="other-worker")
            assert second in [d.id for d in taken]
        return Outcome.sent("DMP-1")

    counts = run_due(fresh_ledger, "dmp", slow_send, policy=POLICY, actor="test")

    assert attempted == [first]
    assert (counts["sent"], counts["skipped"]) == (1, 1)
    stands = fresh_ledger.get_delivery(second)
    assert (stands.status, stands.claimed_by, stands.attempts) == ("pending", "other-worker", 0)


def test_a_hold_put_while_the_delivery_was_being_tried_survives_its_retry(fresh_ledger: Ledger):
    (delivery_id,) = queue(fresh_ledger, 1)

    def held_meanwhile(due):  # the operator runs `pfi dmp hold` during the attempt
        fresh_ledger.mark_delivery(due.id, "held", actor="operator")
        return Outcome.retry("DMP_UNREACHABLE", "timeout")

    run_due(fresh_ledger, "dmp", held_meanwhile, policy=POLICY, actor="test")

    stands = fresh_ledger.get_delivery(delivery_id)
    assert (stands.status, stands.attempts, stands.reason_code) == ("held", 1, "DMP_UNREACHABLE")
    assert fresh_ledger.claim_due_deliveries("dmp") == []


def test_a_follow_up_that_failed_is_run_again_by_a_later_run_once(fresh_ledger: Ledger):
    sent, refused = queue(fresh_ledger, 2)
    answers = {sent: Outcome.sent("DMP-1"), refused: Outcome.refused("XDSRegistryError", "no")}
    followed: list[tuple[int, str, str | None]] = []

    def after(stands, outcome):  # the producer's ZAM; the outbound folder is full at first
        followed.append((stands.id, outcome.kind, outcome.partner_ref or outcome.reason_code))
        if len(followed) == 1:
            raise OSError("no space left")

    def run(now=None):
        return run_due(
            fresh_ledger,
            "dmp",
            lambda d: answers[d.id],
            policy=POLICY,
            actor="t",
            after=after,
            now=now,
        )

    with pytest.raises(TransientError):
        run()
    assert run()["followed_up"] == 0  # within the grace left to the worker that recorded it
    later = datetime.now(UTC) + timedelta(minutes=10)
    assert run(later)["followed_up"] == 1
    assert run(later)["followed_up"] == 0

    assert followed == [(sent, "sent", "DMP-1"), (refused, "refused", "XDSRegistryError")] + [
        (sent, "sent", "DMP-1")
    ]
    for delivery_id in (sent, refused):
        assert len(fresh_ledger.events(delivery_id=delivery_id, kind=FOLLOWED_UP)) == 1


def test_a_follow_up_failing_every_time_blocks_no_other(fresh_ledger: Ledger):
    poison, other = queue(fresh_ledger, 2)
    for delivery_id in (poison, other):  # a worker recorded both and died before following up
        fresh_ledger.mark_delivery(delivery_id, "sent", partner_ref="DMP-1", actor="dead")
    followed = []

    def after(stands, outcome):
        if stands.id == poison:
            raise OSError("this one's producer folder is gone")
        followed.append(stands.id)

    later = datetime.now(UTC) + timedelta(minutes=10)
    with pytest.raises(TransientError, match="OSError"):
        follow_up_missed(fresh_ledger, "dmp", after, actor="t", now=later)
    assert followed == [other]
    assert fresh_ledger.events(delivery_id=poison, kind=FOLLOWED_UP) == []


def test_later_waits_without_counting_an_attempt(fresh_ledger: Ledger):
    (delivery_id,) = queue(fresh_ledger, 1)
    now = later_than_creation(fresh_ledger, delivery_id, timedelta(seconds=1))

    run_due(
        fresh_ledger,
        "dmp",
        lambda d: Outcome.later("DMP_WAITS_PREVIOUS", "replaced version not sent yet"),
        policy=POLICY,
        actor="test",
        now=now,
    )

    waiting = fresh_ledger.get_delivery(delivery_id)
    assert (waiting.status, waiting.attempts) == ("pending", 0)
    assert waiting.next_attempt_at == now + timedelta(minutes=1)


def test_held_deliveries_and_other_channels_are_not_claimed(fresh_ledger: Ledger):
    queue(fresh_ledger, 1, status="held")
    (mail,) = queue(fresh_ledger, 1, channel="mss_patient")
    now = later_than_creation(fresh_ledger, mail, timedelta(seconds=1))
    calls = []

    counts = run_due(
        fresh_ledger,
        "dmp",
        lambda d: calls.append(d) or Outcome.sent(),
        policy=POLICY,
        actor="t",
        now=now,
    )

    assert counts["claimed"] == 0
    assert calls == []


def test_a_bug_in_a_sender_keeps_the_delivery_queued_and_fails_the_task_after_the_batch(
    fresh_ledger: Ledger,
):
    broken, fine = queue(fresh_ledger, 2)
    now = later_than_creation(fresh_ledger, fine, timedelta(seconds=1))

    def send(delivery):
        if delivery.id == broken:
            raise KeyError("a value from a message")
        return Outcome.sent("ok")

    with pytest.raises(TransientError) as raised:
        run_due(fresh_ledger, "dmp", send, policy=POLICY, actor="test", now=now)

    assert "a value from a message" not in str(raised.value)
    assert fresh_ledger.get_delivery(fine).status == "sent"
    kept = fresh_ledger.get_delivery(broken)
    assert (kept.status, kept.reason_code) == ("pending", INTERNAL)


def test_a_configuration_error_is_retried_not_refused(fresh_ledger: Ledger):
    (delivery_id,) = queue(fresh_ledger, 1)
    now = later_than_creation(fresh_ledger, delivery_id, timedelta(seconds=1))

    def send(delivery):
        raise ConfigurationError("no pfi_dmp connection")

    run_due(fresh_ledger, "dmp", send, policy=POLICY, actor="test", now=now)

    assert fresh_ledger.get_delivery(delivery_id).status == "pending"


def test_policy_from_settings_and_its_limits():
    policy = RetryPolicy.from_mapping(
        {"first_delay_seconds": 30, "factor": 3, "max_delay_seconds": 600, "give_up_after_hours": 2}
    )

    assert [policy.delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 90, 270, 600]
    assert policy.give_up_after == timedelta(hours=2)
    assert RetryPolicy.from_mapping(None) == RetryPolicy()
    with pytest.raises(ConfigurationError):
        RetryPolicy.from_mapping({"factor": "fast"})
    with pytest.raises(ConfigurationError):
        RetryPolicy(first_delay=timedelta(minutes=10), max_delay=timedelta(minutes=1))
    assert policy.expired(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 2, tzinfo=UTC))
