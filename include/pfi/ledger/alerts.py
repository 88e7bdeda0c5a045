"""What the operations alerts read (:mod:`pfi.flows.alerts`): counts, codes and ids only.

Every query is bounded by an index: deliveries given up since a time (``ix_delivery_status_
updated_at``), the pending queue per channel (the partial ``ix_delivery_due``), items refused since
a time (``ix_inbound_item_status_received_at``), a channel's retry queue and the first failure
of its deliveries in the trail (``ix_event_delivery_id``), the alerts already sent in a recent
window (``ix_event_at``). Nothing here reads a document's INS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import aliased

from pfi.ledger.core import LedgerBase
from pfi.ledger.records import Event
from pfi.ledger.schema import delivery, event, inbound_item

#: Ids listed in an alert at most (the console finds the others).
SAMPLE_IDS = 20


@dataclass(frozen=True)
class DeliveryTally:
    """Deliveries matching a question: how many, per channel and per reason code, a few ids."""

    total: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class ItemTally:
    """Received items refused: how many, per source and per reason code, a few ids."""

    total: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class ChannelFailure:
    """A partner's channels in trouble: deliveries waiting for a retry after a transient failure,
    their codes, when the first of their failures after the partner's last answer happened
    (``None``: none of them failed after it), and that last answer (sent or refused)."""

    retrying: int
    by_reason: dict[str, int]
    ids: tuple[int, ...]
    failing_since: datetime | None
    last_answer: datetime | None


class Alerts(LedgerBase):
    """The operations alerts' questions (:mod:`pfi.flows.alerts`)."""

    def given_up_since(self, since: datetime, *, reason_code: str) -> DeliveryTally:
        """Deliveries ``failed`` with ``reason_code`` (the queue's give-up) after ``since``, per
        channel and per last error code (the code the queue writes into the reason text:
        ``… last error DMP_UNREACHABLE: …``; the text itself is never read out)."""
        where = and_(
            delivery.c.status == "failed",
            delivery.c.updated_at > since,
            delivery.c.reason_code == reason_code,
        )
        last_error = func.substring(delivery.c.reason_text, "last error ([A-Za-z0-9_.-]+)")
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(delivery.c.channel, last_error, func.count())
                .where(where)
                .group_by(delivery.c.channel, last_error)
            ).all()
            ids = tuple(
                conn.execute(
                    select(delivery.c.id).where(where).order_by(delivery.c.id).limit(SAMPLE_IDS)
                ).scalars()
            )
        by_channel: dict[str, int] = {}
        by_reason: dict[str, int] = {}
        for channel, code, count in rows:
            by_channel[channel] = by_channel.get(channel, 0) + count
            by_reason[code or reason_code] = by_reason.get(code or reason_code, 0) + count
        return DeliveryTally(sum(by_channel.values()), by_channel, by_reason, ids)

    def pending_per_channel(self) -> dict[str, int]:
        """Deliveries waiting in the queue (``pending``: due now or at a later retry), per
        channel; ``held`` ones wait for an operator and are not counted."""
        query = (
            select(delivery.c.channel, func.count())
            .where(delivery.c.status == "pending")
            .group_by(delivery.c.channel)
        )
        with self.engine.connect() as conn:
            return dict(conn.execute(query).all())

    def refused_items_since(self, since: datetime) -> ItemTally:
        """Received items refused (``rejected``: kept in quarantine, or a mail moved to the
        errors folder) since ``since``: each refused message, mail or CDA file once — a file
        counts only when no message of it was recorded (its messages count instead)."""
        child = aliased(inbound_item)
        has_child = exists().where(child.c.parent_id == inbound_item.c.id)
        where = and_(
            inbound_item.c.status == "rejected",
            inbound_item.c.received_at > since,
            (inbound_item.c.kind != "hl7_file") | ~has_child,
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(inbound_item.c.source, inbound_item.c.reason_code, func.count())
                .where(where)
                .group_by(inbound_item.c.source, inbound_item.c.reason_code)
            ).all()
            ids = tuple(
                conn.execute(
                    select(inbound_item.c.id)
                    .where(where)
                    .order_by(inbound_item.c.id.desc())
                    .limit(SAMPLE_IDS)
                ).scalars()
            )
        by_source: dict[str, int] = {}
        by_reason: dict[str, int] = {}
        for source, reason, count in rows:
            by_source[source] = by_source.get(source, 0) + count
            by_reason[reason or "?"] = by_reason.get(reason or "?", 0) + count
        return ItemTally(sum(by_source.values()), by_source, by_reason, ids)

    def channel_failure(
        self, channels: Sequence[str], *, answers_after: datetime
    ) -> ChannelFailure:
        """Where ``channels`` stand with their partner: the deliveries ``pending`` after a failed
        attempt (the retry queue), and the first ``delivery.status`` line of those deliveries
        recording a failure after the partner's last answer (a delivery sent or refused, looked
        for after ``answers_after`` only)."""
        channels = tuple(channels)
        retrying = and_(
            delivery.c.channel.in_(channels),
            delivery.c.status == "pending",
            delivery.c.attempts > 0,
            delivery.c.reason_code.is_not(None),
        )
        answered = func.coalesce(delivery.c.sent_at, delivery.c.last_attempt_at)
        with self.engine.connect() as conn:
            by_reason = dict(
                conn.execute(
                    select(delivery.c.reason_code, func.count())
                    .where(retrying)
                    .group_by(delivery.c.reason_code)
                ).all()
            )
            if not by_reason:
                return ChannelFailure(0, {}, (), None, None)
            ids = tuple(
                conn.execute(
                    select(delivery.c.id).where(retrying).order_by(delivery.c.id).limit(SAMPLE_IDS)
                ).scalars()
            )
            last_answer = conn.execute(
                select(func.max(answered)).where(
                    delivery.c.channel.in_(channels),
                    delivery.c.status.in_(("sent", "refused")),
                    delivery.c.updated_at > answers_after,
                )
            ).scalar()
            failures = (
                select(func.min(event.c.at))
                .select_from(event.join(delivery, delivery.c.id == event.c.delivery_id))
                .where(
                    retrying,
                    event.c.kind == "delivery.status",
                    event.c.detail["to"].astext.in_(("pending", "held")),
                    event.c.detail["reason_code"].astext.is_not(None),
                    event.c.at > (last_answer or answers_after),
                )
            )
            failing_since = conn.execute(failures).scalar()
        return ChannelFailure(sum(by_reason.values()), by_reason, ids, failing_since, last_answer)

    def events_since(self, kind: str, since: datetime, *, limit: int = 2000) -> list[Event]:
        """Trail lines of ``kind`` written after ``since``, newest first (the alerts already
        sent: a window of the trail, read by its time index)."""
        query = (
            select(event)
            .where(event.c.at > since, event.c.kind == kind)
            .order_by(event.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [Event.from_row(row._mapping) for row in conn.execute(query)]


__all__ = ["Alerts", "ChannelFailure", "DeliveryTally", "ItemTally"]
