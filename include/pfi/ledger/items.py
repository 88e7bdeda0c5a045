"""Inbound items: what the PFI receives, recorded before it is processed.

Identical bytes from the same source and of the same kind are one item (a unique constraint on
the SHA-256). :meth:`InboundItems.record_message` is intake's one write of a message's outcome:
its item, documents and deliveries in one transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from pfi.ledger.core import LedgerBase, one_of
from pfi.ledger.deliveries import delivery_key, insert_deliveries
from pfi.ledger.documents import ContentConflict, insert_documents
from pfi.ledger.events import EventBatch, write_event
from pfi.ledger.records import InboundItem, MessageOutcome
from pfi.ledger.schema import ACTIONS, INBOUND_KINDS, INBOUND_STATUSES, inbound_item

#: Statuses of an inbound item that no later processing changes.
TERMINAL_INBOUND = ("done", "rejected", "duplicate")


class InboundItems(LedgerBase):
    """Recording what arrives, and how far its processing got."""

    def record_inbound(
        self,
        *,
        kind: str,
        source: str,
        checksum: str,
        finess_geo: str | None = None,
        original_ref: str | None = None,
        size: int | None = None,
        control_id: str | None = None,
        message_type: str | None = None,
        parent_id: int | None = None,
        storage_path: str | None = None,
        status: str = "received",
        actor: str = "cli",
    ) -> tuple[int, bool]:
        """Record a received thing before it is processed; return ``(item_id, created)``.

        Identical bytes (same SHA-256) from the same source and of the same kind are one item:
        the second call returns the first item's id and ``created=False``, and changes nothing.
        The caller decides what that means — a producer's re-drop (write a ``duplicate`` event,
        answer it again) or its own crashed run (finish the item) — see :mod:`pfi.flows.intake`.
        """
        one_of("kind", kind, INBOUND_KINDS)
        one_of("status", status, INBOUND_STATUSES)
        checksum = checksum.lower()
        values = {
            "kind": kind,
            "source": source,
            "finess_geo": finess_geo,
            "original_ref": original_ref,
            "checksum": checksum,
            "size": size,
            "control_id": control_id,
            "message_type": message_type,
            "parent_id": parent_id,
            "status": status,
            "storage_path": storage_path,
        }
        with self.engine.begin() as conn:
            item_id = conn.execute(
                insert(inbound_item)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["source", "kind", "checksum"])
                .returning(inbound_item.c.id)
            ).scalar()
            if item_id is not None:
                write_event(
                    conn,
                    "inbound.recorded",
                    actor,
                    {"kind": kind, "source": source, "size": size, "status": status},
                    inbound_item_id=item_id,
                )
                return item_id, True
            item_id = conn.execute(
                select(inbound_item.c.id).where(
                    inbound_item.c.source == source,
                    inbound_item.c.kind == kind,
                    inbound_item.c.checksum == checksum,
                )
            ).scalar_one()
            return item_id, False

    def get_inbound(self, item_id: int) -> InboundItem:
        with self.engine.connect() as conn:
            row = conn.execute(select(inbound_item).where(inbound_item.c.id == item_id)).first()
        if row is None:
            raise LookupError(f"no inbound item {item_id} in the ledger")
        return InboundItem.from_row(row._mapping)

    def already_seen(self, source: str, kind: str, checksum: str) -> InboundItem | None:
        """The item already recorded with these bytes from this source, if any."""
        found = self.find_inbound(source=source, kind=kind, checksum=checksum, limit=1)
        return found[0] if found else None

    def find_inbound(
        self,
        *,
        source: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        checksum: str | None = None,
        control_id: str | None = None,
        original_ref: str | None = None,
        parent_id: int | None = None,
        limit: int = 100,
    ) -> list[InboundItem]:
        """Items matching every given criterion, oldest first."""
        criteria = {
            "source": source,
            "kind": kind,
            "status": status,
            "checksum": checksum.lower() if checksum else None,
            "control_id": control_id,
            "original_ref": original_ref,
            "parent_id": parent_id,
        }
        query = select(inbound_item).order_by(inbound_item.c.id).limit(limit)
        for name, value in criteria.items():
            if value is not None:
                query = query.where(inbound_item.c[name] == value)
        with self.engine.connect() as conn:
            return [InboundItem.from_row(row._mapping) for row in conn.execute(query)]

    def set_inbound_status(
        self,
        item_id: int,
        status: str,
        *,
        reason_code: str | None = None,
        reason_text: str | None = None,
        storage_path: str | None = None,
        control_id: str | None = None,
        message_type: str | None = None,
        actor: str = "cli",
    ) -> InboundItem:
        """Move an item to ``status`` and write the ``inbound.status`` event.

        The reason describes the new status, so it replaces the previous one (``None`` clears
        it). ``storage_path``, ``control_id`` and ``message_type`` are only changed when given.
        """
        one_of("status", status, INBOUND_STATUSES)
        with self.engine.begin() as conn:
            before = conn.execute(
                select(inbound_item.c.status).where(inbound_item.c.id == item_id).with_for_update()
            ).scalar()
            if before is None:
                raise LookupError(f"no inbound item {item_id} in the ledger")
            changes: dict[str, Any] = {
                "status": status,
                "reason_code": reason_code,
                "reason_text": reason_text,
                "updated_at": func.now(),
            }
            for name, value in (
                ("storage_path", storage_path),
                ("control_id", control_id),
                ("message_type", message_type),
            ):
                if value is not None:
                    changes[name] = value
            row = conn.execute(
                update(inbound_item)
                .where(inbound_item.c.id == item_id)
                .values(**changes)
                .returning(*inbound_item.c)
            ).one()
            write_event(
                conn,
                "inbound.status",
                actor,
                {
                    "from": before,
                    "to": status,
                    "reason_code": reason_code,
                    "reason_text": reason_text,
                },
                inbound_item_id=item_id,
            )
            return InboundItem.from_row(row._mapping)

    def record_message(
        self,
        *,
        source: str,
        checksum: str,
        status: str,
        finess_geo: str | None = None,
        original_ref: str | None = None,
        size: int | None = None,
        control_id: str | None = None,
        message_type: str | None = None,
        parent_id: int | None = None,
        storage_path: str | None = None,
        reason_code: str | None = None,
        reason_text: str | None = None,
        documents: Sequence[Mapping[str, Any]] = (),
        deliveries: Sequence[tuple[str, str | None, str]] = (),
        action: str = "new",
        conflict_reason: tuple[str, str] = ("DOC_ID_REUSED", "document id reused"),
        kind: str = "hl7_message",
        historical: bool = False,
        actor: str = "cli",
    ) -> MessageOutcome:
        """Record one ``hl7_message`` (or a received ``mail``, ``kind``) and what was decided
        about it, in ONE transaction.

        The message's item (insert-or-get by checksum, as :meth:`record_inbound`), moved to
        ``status`` (``done`` or ``rejected``, with its reason); for ``done``, its ``documents``
        (the columns of each document row by name, ``unique_id`` first; insert-or-get by unique
        id, :func:`~pfi.ledger.documents.insert_documents`) and, for each document, one delivery
        per ``(channel, recipient, status)`` of ``deliveries`` (insert-or-get by key,
        :func:`~pfi.ledger.deliveries.insert_deliveries`; ``status`` ``pending`` due now or
        ``held``, for ``action``) — with their events, written in the same transaction. This is
        the one path that creates documents and deliveries.

        An item already known in a final status (``done``, ``rejected``, ``duplicate``: a replay,
        the same message in another file) is returned unchanged and nothing is written. A document
        id already known with another ``content_sha256`` (except for a deletion) refuses the whole
        message: it is recorded ``rejected`` with ``conflict_reason`` and nothing else is written
        (``content_conflict=True``). Any error (a constraint violated) writes nothing at all.

        ``historical`` marks the deliveries created as a backfill's (DMP only; a CDA file of a
        backfill is recorded with ``kind="cda_file"``): :mod:`pfi.flows.backfill`.
        """
        if status not in ("done", "rejected"):
            raise ValueError(f"a message is recorded done or rejected, not {status!r}")
        one_of("kind", kind, ("hl7_message", "mail", "cda_file"))
        one_of("action", action, ACTIONS)
        keys = [
            (*delivery_key(c, r, action), one_of("status", s, ("pending", "held")))
            for c, r, s in deliveries
        ]
        item = {
            "kind": kind,
            "source": source,
            "finess_geo": finess_geo,
            "original_ref": original_ref,
            "checksum": checksum.lower(),
            "size": size,
            "control_id": control_id,
            "message_type": message_type,
            "parent_id": parent_id,
            "storage_path": storage_path,
        }
        try:
            with self.engine.begin() as conn:
                return self._record_message(
                    conn,
                    item,
                    status,
                    reason_code,
                    reason_text,
                    documents if status == "done" else (),
                    keys,
                    action,
                    actor,
                    historical,
                )
        except ContentConflict:
            pass
        code, text = conflict_reason
        with self.engine.begin() as conn:
            outcome = self._record_message(
                conn, item, "rejected", code, text, (), [], action, actor
            )
        if outcome.unchanged:  # another worker recorded the message meanwhile: its outcome
            return outcome
        return dataclasses.replace(outcome, content_conflict=True)

    def _record_message(
        self,
        conn: Connection,
        item: Mapping[str, Any],
        status: str,
        reason_code: str | None,
        reason_text: str | None,
        documents: Sequence[Mapping[str, Any]],
        keys: Sequence[tuple[str, str | None, str, str]],
        action: str,
        actor: str,
        historical: bool = False,
    ) -> MessageOutcome:
        trail = EventBatch(actor)
        note = trail.note

        item_id = conn.execute(
            insert(inbound_item)
            .values(**item, status="received")
            .on_conflict_do_nothing(index_elements=["source", "kind", "checksum"])
            .returning(inbound_item.c.id)
        ).scalar()
        created = item_id is not None
        if created:
            before = "received"
            note(
                "inbound.recorded",
                {
                    "kind": item["kind"],
                    "source": item["source"],
                    "size": item["size"],
                    "status": before,
                },
                inbound_item_id=item_id,
            )
        else:
            known = conn.execute(
                select(inbound_item)
                .where(
                    inbound_item.c.source == item["source"],
                    inbound_item.c.kind == item["kind"],
                    inbound_item.c.checksum == item["checksum"],
                )
                .with_for_update()
            ).one()
            if known.status in TERMINAL_INBOUND:
                return MessageOutcome(
                    InboundItem.from_row(known._mapping), created=False, unchanged=True
                )
            item_id, before = known.id, known.status
        document_ids: list[int] = []
        created_deliveries = 0
        if documents:
            document_ids = insert_documents(conn, documents, item_id, action, note)
        if document_ids and keys:
            created_deliveries = insert_deliveries(
                conn, document_ids, keys, action, item_id, note, historical=historical
            )
        row = conn.execute(
            update(inbound_item)
            .where(inbound_item.c.id == item_id)
            .values(
                status=status,
                reason_code=reason_code,
                reason_text=reason_text,
                updated_at=func.now(),
            )
            .returning(*inbound_item.c)
        ).one()
        note(
            "inbound.status",
            {"from": before, "to": status, "reason_code": reason_code, "reason_text": reason_text},
            inbound_item_id=item_id,
        )
        trail.write(conn)
        return MessageOutcome(
            InboundItem.from_row(row._mapping), created, tuple(document_ids), created_deliveries
        )


__all__ = ["TERMINAL_INBOUND", "InboundItems"]
