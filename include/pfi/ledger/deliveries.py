"""Deliveries of documents, and the queue that sends them.

A delivery is created with the message that asks for it (:meth:`pfi.ledger.Ledger.record_message`
calls :func:`insert_deliveries`), its ``request_id`` fixed then and never changed, and remembers
that message (``inbound_item_id``: a deletion comes in a later message than its document), the
one its business acknowledgement answers.

The deferred-send queue (SC.DMP/ALI/PROG.06-07) is the set of ``pending`` deliveries:
:meth:`Deliveries.claim_due_deliveries` takes the due ones with ``FOR UPDATE SKIP LOCKED`` and moves
their ``next_attempt_at`` forward by a lease, so that two workers never take the same delivery and
one that crashed mid-attempt is taken again once its lease runs out — with the same
``request_id``, so that a response lost in the crash can be resolved with the partner.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from pfi.ledger.core import LedgerBase, one_of
from pfi.ledger.events import plain, write_event
from pfi.ledger.records import Delivery
from pfi.ledger.schema import (
    ACTIONS,
    CHANNELS,
    DELIVERY_OUTCOMES,
    DELIVERY_STATUSES,
    delivery,
    document,
    event,
)

#: How long a claimed delivery stays invisible to other workers: longer than one attempt (the
#: DMP's 5 s connect + 60 s read timeouts; SMTP and MLLP 30 s), renewed before each delivery of a
#: batch. What a worker killed mid-batch held is due again this long after — measured with
#: a crash trial (``make chaos``, fault ``kill:all``): 10 minutes of lease gave a 602 s recovery.
DEFAULT_LEASE = timedelta(seconds=90)


def delivery_key(channel: str, recipient: str | None, action: str) -> tuple[str, str | None, str]:
    """Check and normalise what identifies a delivery of a document.

    A professional's MSSanté address is required for ``mss_professional`` and compared
    case-insensitively (lower-cased). The DMP and the patient's mailbox take no recipient: the
    patient's address is ``<matricule INS>@patient.mssante.fr``, derived from the document's INS
    when sending, so the INS is not stored a second time. ``dpi`` may name the receiving system.
    """
    one_of("channel", channel, CHANNELS)
    one_of("action", action, ACTIONS)
    if recipient is not None:
        recipient = recipient.strip().lower() or None
    if channel == "mss_professional" and recipient is None:
        raise ValueError("a mss_professional delivery needs the recipient's MSSanté address")
    if channel in ("dmp", "mss_patient") and recipient is not None:
        raise ValueError(
            f"a {channel} delivery takes no recipient"
            + (" (the patient's address comes from the document's INS)" if channel != "dmp" else "")
        )
    return channel, recipient, action


def insert_deliveries(
    conn: Connection,
    document_ids: Sequence[int],
    keys: Sequence[tuple[str, str | None, str, str]],
    action: str,
    item_id: int,
    note: Any,
    *,
    historical: bool = False,
) -> int:
    """Create, unless it exists, one delivery per document and ``(channel, recipient, action,
    status)`` key for message ``item_id`` in ``conn``'s transaction, each new one's event given to
    ``note``; the number created. FINESS géographique, type and qualified INS are copied from
    the document for the statistics. ``historical``: a backfill's deliveries (DMP only)."""
    sources = {
        row.id: row
        for row in conn.execute(
            select(
                document.c.id,
                document.c.finess_geo,
                document.c.type_code,
                document.c.ins_qualified,
            ).where(document.c.id.in_(set(document_ids)))
        )
    }
    rows = []
    for document_id in dict.fromkeys(document_ids):
        source = sources[document_id]
        for channel, recipient, _, status in keys:
            rows.append(
                {
                    "document_id": document_id,
                    "channel": channel,
                    "recipient": recipient,
                    "action": action,
                    "status": status,
                    "next_attempt_at": func.now() if status == "pending" else None,
                    "request_id": uuid.uuid4(),
                    "historical": historical,
                    "inbound_item_id": item_id,
                    "qualified_ins": source.ins_qualified,
                    "finess_geo": source.finess_geo,
                    "type_code": source.type_code,
                }
            )
    inserted = conn.execute(
        insert(delivery)
        .values(rows)
        .on_conflict_do_nothing(
            index_elements=["document_id", "channel", "recipient", "action", "replay_seq"]
        )
        .returning(delivery.c.id, delivery.c.document_id, delivery.c.channel, delivery.c.status)
    ).all()
    for row in sorted(inserted, key=lambda r: r.id):
        note(
            "delivery.created",
            {
                "channel": row.channel,
                "action": action,
                "status": row.status,
                "historical": historical,
            },
            document_id=row.document_id,
            delivery_id=row.id,
        )
    return len(inserted)


class Deliveries(LedgerBase):
    """Reading deliveries, recording their outcomes, and the claim queue."""

    def get_delivery(self, delivery_id: int) -> Delivery:
        with self.engine.connect() as conn:
            row = conn.execute(select(delivery).where(delivery.c.id == delivery_id)).first()
        if row is None:
            raise LookupError(f"no delivery {delivery_id} in the ledger")
        return Delivery.from_row(row._mapping)

    def deliveries_of(self, document_id: int) -> list[Delivery]:
        """Every delivery of a document, in creation order."""
        query = (
            select(delivery).where(delivery.c.document_id == document_id).order_by(delivery.c.id)
        )
        with self.engine.connect() as conn:
            return [Delivery.from_row(row._mapping) for row in conn.execute(query)]

    def deliveries_asked_by(self, inbound_item_id: int) -> list[Delivery]:
        """Every delivery a message (or a received mail) asked for, in creation order."""
        return self.deliveries_asked_by_each([inbound_item_id]).get(inbound_item_id, [])

    def deliveries_asked_by_each(
        self, inbound_item_ids: Sequence[int]
    ) -> dict[int, list[Delivery]]:
        """The deliveries of each of these messages (or received mails), in one query."""
        query = (
            select(delivery)
            .where(delivery.c.inbound_item_id.in_(list(inbound_item_ids)))
            .order_by(delivery.c.id)
        )
        found: dict[int, list[Delivery]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                found.setdefault(row.inbound_item_id, []).append(Delivery.from_row(row._mapping))
        return found

    def find_deliveries(
        self,
        channel: str,
        *,
        status: str | None = None,
        reason_code: str | None = None,
        recipient_prefix: str | None = None,
        limit: int = 1000,
    ) -> list[Delivery]:
        """The deliveries of ``channel`` matching every given criterion, oldest first."""
        query = (
            select(delivery)
            .where(delivery.c.channel == channel)
            .order_by(delivery.c.id)
            .limit(limit)
        )
        if status is not None:
            query = query.where(delivery.c.status == status)
        if reason_code is not None:
            query = query.where(delivery.c.reason_code == reason_code)
        if recipient_prefix is not None:
            escaped = (
                recipient_prefix.strip()
                .lower()
                .replace("\\", "\\\\")
                .replace("%", "\\%")
                .replace("_", "\\_")
            )
            query = query.where(delivery.c.recipient.like(escaped + "%", escape="\\"))
        with self.engine.connect() as conn:
            return [Delivery.from_row(row._mapping) for row in conn.execute(query)]

    def final_without_event(
        self,
        channel: str,
        kind: str,
        *,
        updated_after: datetime,
        updated_before: datetime,
        limit: int = 200,
    ) -> list[Delivery]:
        """Deliveries of ``channel`` that reached a final status (sent, failed, refused) between
        the two times and have no ``kind`` line in their trail, oldest first: the follow-up (the
        producer's ZAM) that a worker dying right after the outcome never wrote."""
        one_of("channel", channel, CHANNELS)
        followed = exists().where(event.c.delivery_id == delivery.c.id, event.c.kind == kind)
        query = (
            select(delivery)
            .where(
                delivery.c.channel == channel,
                delivery.c.status.in_(DELIVERY_OUTCOMES),
                delivery.c.updated_at > updated_after,
                delivery.c.updated_at <= updated_before,
                ~followed,
            )
            .order_by(delivery.c.updated_at, delivery.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [Delivery.from_row(row._mapping) for row in conn.execute(query)]

    def delivery_by_request_id(
        self, request_id: uuid.UUID, channels: Sequence[str] = CHANNELS
    ) -> Delivery | None:
        """The delivery of one of ``channels`` whose request id this is, if any: a partner's
        answer (a mail's DSN or MDN) names the request it answers."""
        query = select(delivery).where(
            delivery.c.request_id == request_id, delivery.c.channel.in_(tuple(channels))
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return Delivery.from_row(row._mapping) if row is not None else None

    def sent_without_answer(
        self,
        channels: Sequence[str],
        *,
        sent_before: datetime,
        asked: tuple[str, Mapping[str, Any]],
        answer: tuple[str, Mapping[str, Any]],
        limit: int = 200,
    ) -> list[Delivery]:
        """Deliveries of ``channels`` sent before ``sent_before`` whose trail has a line of the
        ``asked`` kind holding its detail values, and none of the ``answer`` kind holding its
        values, by id: e.g. mails that asked for a DSN and whose receipt ZAM is still unwritten.
        """

        def trail_has(kind: str, detail: Mapping[str, Any]) -> ColumnElement[bool]:
            return exists().where(
                event.c.delivery_id == delivery.c.id,
                event.c.kind == kind,
                event.c.detail.contains(dict(detail)),
            )

        query = (
            select(delivery)
            .where(
                delivery.c.channel.in_(tuple(channels)),
                delivery.c.status == "sent",
                delivery.c.sent_at < sent_before,
                trail_has(*asked),
                ~trail_has(*answer),
            )
            .order_by(delivery.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [Delivery.from_row(row._mapping) for row in conn.execute(query)]

    def delivery_done(
        self,
        document_unique_id: str,
        channel: str,
        recipient: str | None = None,
        action: str = "new",
    ) -> bool:
        """Has this document (by unique id) already been sent on this channel, to this recipient,
        for this action? The check every sending step makes before acting."""
        channel, recipient, action = delivery_key(channel, recipient, action)
        query = select(
            exists().where(
                delivery.c.document_id == document.c.id,
                document.c.unique_id == document_unique_id,
                delivery.c.channel == channel,
                delivery.c.recipient.is_not_distinct_from(recipient),
                delivery.c.action == action,
                delivery.c.status == "sent",
            )
        )
        with self.engine.connect() as conn:
            return bool(conn.execute(query).scalar())

    def mark_delivery(
        self,
        delivery_id: int,
        status: str,
        *,
        partner_ref: str | None = None,
        reason_code: str | None = None,
        reason_text: str | None = None,
        next_attempt_at: datetime | None = None,
        attempted: bool | None = None,
        at: datetime | None = None,
        keep_held: bool = False,
        actor: str = "cli",
    ) -> Delivery:
        """Record where a delivery stands and write the ``delivery.status`` event.

        ``keep_held``: an unfinished outcome (``pending``, ``failed``) of an attempt that an
        operator put on hold while it ran leaves the delivery ``held`` (the attempt and its
        reason are still recorded): the operator's hold wins until ``release``.

        ``attempted`` says whether this records an attempt (``attempts`` + 1, ``last_attempt_at``
        = ``at``); by default only the outcomes ``sent``, ``failed`` and ``refused`` are. A retry
        after a transient error is ``mark_delivery(id, "pending", next_attempt_at=…,
        attempted=True, reason_code=…)``; ``pending`` without ``next_attempt_at`` is due at once.
        ``at`` is when it happened (default: now).

        ``sent`` is final for sending: a sent delivery may still become ``failed`` or ``refused``
        (a bounce, a DSN arriving later) but never ``pending`` or ``held`` again, since that
        would send it twice. Marking ``sent`` twice is a no-op.
        """
        one_of("status", status, DELIVERY_STATUSES)
        if attempted is None:
            attempted = status in DELIVERY_OUTCOMES
        when: Any = at if at is not None else func.now()
        with self.engine.begin() as conn:
            current = conn.execute(
                select(delivery).where(delivery.c.id == delivery_id).with_for_update()
            ).first()
            if current is None:
                raise LookupError(f"no delivery {delivery_id} in the ledger")
            before = current.status
            if keep_held and before == "held" and status in ("pending", "failed"):
                status = "held"
            if before == "sent" and status in ("pending", "held"):
                raise ValueError(
                    f"delivery {delivery_id} was sent: it cannot become {status} (no second send)"
                )
            if before == "sent" and status == "sent":
                if partner_ref is not None and partner_ref != current.partner_ref:
                    write_event(
                        conn,
                        "delivery.sent_again",
                        actor,
                        {"partner_ref": partner_ref, "first_partner_ref": current.partner_ref},
                        document_id=current.document_id,
                        delivery_id=delivery_id,
                    )
                return Delivery.from_row(current._mapping)
            changes: dict[str, Any] = {
                "status": status,
                "reason_code": reason_code,
                "reason_text": reason_text,
                "next_attempt_at": None,
                "updated_at": func.now(),
            }
            if status == "pending":
                changes["next_attempt_at"] = next_attempt_at if next_attempt_at else when
            if partner_ref is not None:
                changes["partner_ref"] = partner_ref
            if attempted:
                changes["attempts"] = delivery.c.attempts + 1
                changes["last_attempt_at"] = when
            if status == "sent":
                changes["sent_at"] = when
            row = conn.execute(
                update(delivery)
                .where(delivery.c.id == delivery_id)
                .values(**changes)
                .returning(*delivery.c)
            ).one()
            write_event(
                conn,
                "delivery.status",
                actor,
                {
                    "from": before,
                    "to": status,
                    "attempts": row.attempts,
                    "partner_ref": row.partner_ref,
                    "reason_code": reason_code,
                    "reason_text": reason_text,
                    "next_attempt_at": row.next_attempt_at,
                },
                document_id=current.document_id,
                delivery_id=delivery_id,
            )
            return Delivery.from_row(row._mapping)

    def claim_due_deliveries(
        self,
        channel: str,
        now: datetime | None = None,
        limit: int = 50,
        *,
        lease: timedelta = DEFAULT_LEASE,
        actor: str = "cli",
        ids: Sequence[int] | None = None,
    ) -> list[Delivery]:
        """Take up to ``limit`` due ``pending`` deliveries of a channel, oldest due first —
        the live ones before the ``historical`` ones (a backfill never delays the live flow).
        ``ids``: only among these deliveries (a backfill's batch sends its own).

        Rows locked by another worker's claim are skipped (``FOR UPDATE SKIP LOCKED``), and the
        claimed ones are pushed ``lease`` into the future, so no other worker takes them after
        this transaction either. The caller attempts each one and records the outcome with
        :meth:`mark_delivery`; one it never reports on is due again when the lease expires.
        """
        one_of("channel", channel, CHANNELS)
        moment: Any = now if now is not None else func.now()
        due = (
            select(delivery.c.id)
            .where(
                delivery.c.channel == channel,
                delivery.c.status == "pending",
                delivery.c.next_attempt_at <= moment,
                *([delivery.c.id.in_(list(ids))] if ids is not None else []),
            )
            .order_by(delivery.c.historical, delivery.c.next_attempt_at, delivery.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
            .prefix_with("MATERIALIZED")
        )
        claim = (
            update(delivery)
            .where(delivery.c.id.in_(select(due.c.id)))
            .values(
                next_attempt_at=moment + lease,
                claimed_by=actor,
                claimed_at=moment,
                updated_at=func.now(),
            )
            .returning(*delivery.c)
        )
        with self.engine.begin() as conn:
            rows = [Delivery.from_row(row._mapping) for row in conn.execute(claim)]
            if rows:
                conn.execute(
                    event.insert(),
                    [
                        {
                            "kind": "delivery.claimed",
                            "document_id": row.document_id,
                            "delivery_id": row.id,
                            "actor": actor,
                            "detail": plain(
                                {"lease_until": row.next_attempt_at, "attempts": row.attempts}
                            ),
                        }
                        for row in rows
                    ],
                )
        return sorted(rows, key=lambda row: row.id)

    def renew_claim(
        self, claimed: Delivery, now: datetime | None = None, *, lease: timedelta = DEFAULT_LEASE
    ) -> bool:
        """Confirm that ``claimed`` (as :meth:`claim_due_deliveries` returned it) is still this
        worker's to attempt, and push its lease ``lease`` from ``now``.

        ``False`` when it is not pending any more or when another worker claimed it since (its
        lease ran out while this worker's batch was busy with earlier deliveries): the caller
        must not attempt it, or it could be sent twice.
        """
        moment: Any = now if now is not None else func.now()
        with self.engine.begin() as conn:
            renewed = conn.execute(
                update(delivery)
                .where(
                    delivery.c.id == claimed.id,
                    delivery.c.status == "pending",
                    delivery.c.claimed_at == claimed.claimed_at,
                    delivery.c.claimed_by == claimed.claimed_by,
                )
                .values(next_attempt_at=moment + lease, updated_at=func.now())
                .returning(delivery.c.id)
            ).first()
        return renewed is not None


__all__ = ["DEFAULT_LEASE", "Deliveries", "delivery_key", "insert_deliveries"]
