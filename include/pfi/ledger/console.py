"""What the operator console reads and writes: search, a document's timeline, forced replays,
the operator's trail.

**Search** answers one page, newest first, among millions of rows: the selective criteria (a
document's unique id, a control id, a Message-ID, an INS) are resolved to ids first through
their own indexes, the others filter the page's index scan (migration 0004's indexes, each
ending with the id the pages are ordered by). Pages are keyset (``before_id``: the last id of the
previous page), so page 1000 costs what page 1 costs; a page holds at most :data:`MAX_PAGE`
(a caller may ask one row more, to know whether a next page exists).

**Forced replay** (:meth:`Console.force_replay`): a delivery already ``sent`` never becomes
``pending`` again (:meth:`~pfi.ledger.Ledger.mark_delivery`); an operator who wants it sent once
more gets a *new* delivery, ``replay_of`` the original and numbered ``replay_seq``, due at once,
written with the trail's lines on both rows (who, when, why) in one transaction.

**Operator's trail**: every line whose kind starts with ``operator.`` (replays, holds, releases,
views of patient identity or content), its actor ``operator:<user>``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, union
from sqlalchemy.sql import Select

from pfi.ledger.core import LedgerBase, one_of
from pfi.ledger.events import write_event
from pfi.ledger.records import Delivery, Document, Event, InboundItem
from pfi.ledger.schema import (
    CHANNELS,
    DELIVERY_STATUSES,
    INBOUND_KINDS,
    INBOUND_STATUSES,
    delivery,
    document,
    event,
    inbound_item,
)

#: The most rows one page holds (a hard cap, whatever the caller asks).
MAX_PAGE = 100
#: Trail kinds the console writes; :meth:`Console.operator_events` lists them.
OPERATOR_PREFIX = "operator."
#: A forced replay's line, on the original and on the new delivery.
FORCED_REPLAY = "operator.replay_forced"


@dataclass(frozen=True)
class Search:
    """What the operator looks for; every given criterion must hold (``None``: any).

    ``control_id`` is an MSH-10 or a received mail's Message-ID; ``message_id`` a Message-ID,
    received (the item's) or sent (a delivery's ``partner_ref``). ``since``/``until`` bound the
    delivery's creation (the item's reception for items). ``ins`` is the INS matricule: only
    the roles allowed to see identities may search by it (the caller checks).
    """

    unique_id: str | None = None
    control_id: str | None = None
    message_id: str | None = None
    ins: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    source: str | None = None
    finess_geo: str | None = None
    channel: str | None = None
    status: str | None = None
    kind: str | None = None  # inbound items only

    def __post_init__(self) -> None:
        if self.channel is not None:
            one_of("channel", self.channel, CHANNELS)
        if self.kind is not None:
            one_of("kind", self.kind, INBOUND_KINDS)


@dataclass(frozen=True)
class DeliveryLine:
    """One row of the deliveries' search: the delivery, its document and the message behind it."""

    id: int
    document_id: int
    unique_id: str
    type_code: str | None
    channel: str
    recipient: str | None
    action: str
    status: str
    attempts: int
    reason_code: str | None
    finess_geo: str | None
    historical: bool
    replay_of: int | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    source: str | None
    control_id: str | None
    ins_matricule: str | None


@dataclass(frozen=True)
class Timeline:
    """Everything the ledger knows of one document, for its timeline."""

    document: Document
    items: tuple[InboundItem, ...]
    deliveries: tuple[Delivery, ...]
    events: tuple[Event, ...]


def _page(limit: int) -> int:
    # one row past a full page tells the caller that a next page exists
    return max(1, min(int(limit), MAX_PAGE + 1))


class Console(LedgerBase):
    """The operator console's reads and its forced replay."""

    # -- search -----------------------------------------------------------------------------

    def _item_ids(self, conn: Any, search: Search) -> list[int] | None:
        """Ids of the items named by a control id or a received Message-ID (``None``: no such
        criterion), and of the HL7 messages inside a file so named."""
        wanted = [v for v in (search.control_id, search.message_id) if v]
        if not wanted:
            return None
        ids: set[int] = set()
        for value in dict.fromkeys(wanted):
            ids.update(
                conn.execute(
                    select(inbound_item.c.id).where(inbound_item.c.control_id == value.strip())
                ).scalars()
            )
        return sorted(ids)

    def _named_deliveries(self, conn: Any, search: Search) -> list[int] | None:
        """Ids of the deliveries a control id or a Message-ID names (``None``: no such
        criterion): those its message asked for, those of the documents it brought, and — for
        a Message-ID — the mail sent with it. Resolved first, each through its own index, so
        that the page's query reads a handful of rows by primary key."""
        items = self._item_ids(conn, search)
        if items is None and not search.message_id:
            return None
        ids: set[int] = set()
        if items:
            ids.update(
                conn.execute(
                    union(
                        select(delivery.c.id).where(delivery.c.inbound_item_id.in_(items)),
                        select(delivery.c.id)
                        .join(document, document.c.id == delivery.c.document_id)
                        .where(document.c.inbound_item_id.in_(items)),
                    )
                ).scalars()
            )
        if search.message_id:
            ids.update(
                conn.execute(
                    select(delivery.c.id).where(delivery.c.partner_ref == search.message_id.strip())
                ).scalars()
            )
        return sorted(ids)

    def search_deliveries(
        self, search: Search, *, before_id: int | None = None, limit: int = 50
    ) -> list[DeliveryLine]:
        """One page of the deliveries matching ``search``, newest first (ids below
        ``before_id``)."""
        if search.status is not None:
            one_of("status", search.status, DELIVERY_STATUSES)
        item = inbound_item.alias("item")
        query: Select = (
            select(
                delivery.c.id,
                delivery.c.document_id,
                document.c.unique_id,
                delivery.c.type_code,
                delivery.c.channel,
                delivery.c.recipient,
                delivery.c.action,
                delivery.c.status,
                delivery.c.attempts,
                delivery.c.reason_code,
                delivery.c.finess_geo,
                delivery.c.historical,
                delivery.c.replay_of,
                delivery.c.created_at,
                delivery.c.updated_at,
                delivery.c.sent_at,
                item.c.source,
                item.c.control_id,
                document.c.ins_matricule,
            )
            .select_from(
                delivery.join(document, document.c.id == delivery.c.document_id).outerjoin(
                    item,
                    item.c.id
                    == func.coalesce(delivery.c.inbound_item_id, document.c.inbound_item_id),
                )
            )
            .order_by(delivery.c.id.desc())
            .limit(_page(limit))
        )
        with self.engine.connect() as conn:
            documents: set[int] | None = None
            if search.unique_id:
                documents = set(
                    conn.execute(
                        select(document.c.id).where(
                            document.c.unique_id == search.unique_id.strip()
                        )
                    ).scalars()
                )
            if search.ins:
                found = set(
                    conn.execute(
                        select(document.c.id).where(document.c.ins_matricule == search.ins.strip())
                    ).scalars()
                )
                documents = found if documents is None else documents & found
            if documents is not None:
                if not documents:
                    return []
                query = query.where(delivery.c.document_id.in_(sorted(documents)))
            named = self._named_deliveries(conn, search)
            if named is not None:
                if not named:
                    return []
                query = query.where(delivery.c.id.in_(named))
            for column, value in (
                (delivery.c.channel, search.channel),
                (delivery.c.status, search.status),
                (delivery.c.finess_geo, search.finess_geo),
                (item.c.source, search.source),
            ):
                if value:
                    query = query.where(column == value)
            if search.since is not None:
                query = query.where(delivery.c.created_at >= search.since)
            if search.until is not None:
                query = query.where(delivery.c.created_at < search.until)
            if before_id is not None:
                query = query.where(delivery.c.id < before_id)
            return [DeliveryLine(**row._mapping) for row in conn.execute(query)]

    def search_items(
        self, search: Search, *, before_id: int | None = None, limit: int = 50
    ) -> list[InboundItem]:
        """One page of the received items (HL7 files and messages, mails, CDA files) matching
        ``search``, newest first. A document's unique id names the items that brought it or
        asked for its deliveries."""
        if search.status is not None:
            one_of("status", search.status, INBOUND_STATUSES)
        query = select(inbound_item).order_by(inbound_item.c.id.desc()).limit(_page(limit))
        with self.engine.connect() as conn:
            items = self._item_ids(conn, search)
            if search.unique_id or search.ins:
                matching = select(document.c.id)
                if search.unique_id:
                    matching = matching.where(document.c.unique_id == search.unique_id.strip())
                if search.ins:
                    matching = matching.where(document.c.ins_matricule == search.ins.strip())
                ids = matching
                named = set(
                    conn.execute(
                        union(
                            select(document.c.inbound_item_id).where(document.c.id.in_(ids)),
                            select(delivery.c.inbound_item_id).where(
                                delivery.c.document_id.in_(ids)
                            ),
                        )
                    ).scalars()
                ) - {None}
                items = sorted(named if items is None else named & set(items))
            if items is not None:
                if not items:
                    return []
                query = query.where(inbound_item.c.id.in_(items))
            for column, value in (
                (inbound_item.c.kind, search.kind),
                (inbound_item.c.status, search.status),
                (inbound_item.c.source, search.source),
                (inbound_item.c.finess_geo, search.finess_geo),
            ):
                if value:
                    query = query.where(column == value)
            if search.since is not None:
                query = query.where(inbound_item.c.received_at >= search.since)
            if search.until is not None:
                query = query.where(inbound_item.c.received_at < search.until)
            if before_id is not None:
                query = query.where(inbound_item.c.id < before_id)
            return [InboundItem.from_row(row._mapping) for row in conn.execute(query)]

    # -- timeline ---------------------------------------------------------------------------

    def timeline(self, document_id: int) -> Timeline:
        """The document, the items that brought it or asked for its deliveries (with the files
        they came in), its deliveries (replays included) and every trail line of any of them,
        in the order written."""
        with self.engine.connect() as conn:
            row = conn.execute(select(document).where(document.c.id == document_id)).first()
            if row is None:
                raise LookupError(f"no document {document_id} in the ledger")
            doc = Document.from_row(row._mapping)
            deliveries = [
                Delivery.from_row(r._mapping)
                for r in conn.execute(
                    select(delivery)
                    .where(delivery.c.document_id == document_id)
                    .order_by(delivery.c.id)
                )
            ]
            item_ids = {doc.inbound_item_id} | {d.inbound_item_id for d in deliveries}
            item_ids.discard(None)
            items = [
                InboundItem.from_row(r._mapping)
                for r in conn.execute(
                    select(inbound_item).where(inbound_item.c.id.in_(sorted(item_ids)))  # type: ignore[arg-type]
                )
            ]
            parents = {i.parent_id for i in items if i.parent_id} - {i.id for i in items}
            if parents:
                items += [
                    InboundItem.from_row(r._mapping)
                    for r in conn.execute(
                        select(inbound_item).where(inbound_item.c.id.in_(sorted(parents)))
                    )
                ]
            all_items = sorted(i.id for i in items)
            delivery_ids = [d.id for d in deliveries]
            trail = select(event).where(
                or_(
                    event.c.document_id == document_id,
                    event.c.delivery_id.in_(delivery_ids),
                    event.c.inbound_item_id.in_(all_items),
                )
            )
            events = [
                Event.from_row(r._mapping)
                for r in conn.execute(trail.order_by(event.c.at, event.c.id).limit(5000))
            ]
        return Timeline(
            doc, tuple(sorted(items, key=lambda i: i.id)), tuple(deliveries), tuple(events)
        )

    # -- forced replay ----------------------------------------------------------------------

    def force_replay(self, delivery_id: int, *, actor: str, reason: str) -> Delivery:
        """A new delivery repeating ``delivery_id`` (its document, channel, recipient, action),
        due at once, ``replay_of`` it, with a :data:`FORCED_REPLAY` line on both rows naming
        the operator's ``reason``. For a delivery already sent: its second send is on purpose."""
        reason = reason.strip()
        if not reason:
            raise ValueError("a forced replay needs the operator's reason")
        with self.engine.begin() as conn:
            original = conn.execute(
                select(delivery).where(delivery.c.id == delivery_id).with_for_update()
            ).first()
            if original is None:
                raise LookupError(f"no delivery {delivery_id} in the ledger")
            root = original.replay_of or original.id
            seq = conn.execute(
                select(func.coalesce(func.max(delivery.c.replay_seq), 0)).where(
                    delivery.c.document_id == original.document_id,
                    delivery.c.channel == original.channel,
                    delivery.c.recipient.is_not_distinct_from(original.recipient),
                    delivery.c.action == original.action,
                )
            ).scalar_one()
            row = conn.execute(
                delivery.insert()
                .values(
                    document_id=original.document_id,
                    channel=original.channel,
                    recipient=original.recipient,
                    action=original.action,
                    status="pending",
                    next_attempt_at=func.now(),
                    request_id=uuid.uuid4(),
                    historical=original.historical,
                    qualified_ins=original.qualified_ins,
                    finess_geo=original.finess_geo,
                    type_code=original.type_code,
                    inbound_item_id=original.inbound_item_id,
                    replay_of=root,
                    replay_seq=seq + 1,
                )
                .returning(*delivery.c)
            ).one()
            detail = {
                "reason": reason,
                "original": original.id,
                "original_status": original.status,
                "replay": row.id,
                "replay_seq": row.replay_seq,
            }
            for target in (original.id, row.id):
                write_event(
                    conn,
                    FORCED_REPLAY,
                    actor,
                    detail,
                    document_id=original.document_id,
                    delivery_id=target,
                )
        return Delivery.from_row(row._mapping)

    # -- the operator's trail ---------------------------------------------------------------

    def operator_events(
        self,
        *,
        before_id: int | None = None,
        limit: int = 50,
        kinds: Sequence[str] | None = None,
    ) -> list[Event]:
        """One page of the operator's trail (kinds ``operator.*``), newest first."""
        query = select(event).order_by(event.c.id.desc()).limit(_page(limit))
        # the very predicate of the partial index ix_event_operator (migration 0004)
        query = query.where(event.c.kind.like(OPERATOR_PREFIX + "%"))
        if kinds:
            query = query.where(event.c.kind.in_(list(kinds)))
        if before_id is not None:
            query = query.where(event.c.id < before_id)
        with self.engine.connect() as conn:
            return [Event.from_row(row._mapping) for row in conn.execute(query)]


__all__ = [
    "FORCED_REPLAY",
    "MAX_PAGE",
    "OPERATOR_PREFIX",
    "Console",
    "DeliveryLine",
    "Search",
    "Timeline",
]
