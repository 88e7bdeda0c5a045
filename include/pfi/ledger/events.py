"""The append-only trail: :func:`write_event` adds the line of a change in that change's
transaction; :class:`Events` adds the lines callers write themselves and reads the trail back.
Details are codes and short technical texts: they are shown in the UI and in logs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from pfi.ledger.core import LedgerBase, to_json
from pfi.ledger.records import Event
from pfi.ledger.schema import event


def plain(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The detail as plain JSON values (datetimes and UUIDs as text), whatever the engine."""
    return json.loads(to_json(detail))


class EventBatch:
    """Trail lines gathered during a transaction (``note`` is what ``insert_documents`` and
    ``insert_deliveries`` call back), then written with one INSERT (:meth:`write`)."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        self.lines: list[dict[str, Any]] = []

    def note(self, kind: str, detail: Mapping[str, Any], **refs: int | None) -> None:
        self.lines.append(
            {
                "kind": kind,
                "actor": self.actor,
                "detail": plain(detail),
                "inbound_item_id": refs.get("inbound_item_id"),
                "document_id": refs.get("document_id"),
                "delivery_id": refs.get("delivery_id"),
            }
        )

    def write(self, conn: Connection) -> None:
        if self.lines:
            conn.execute(event.insert(), self.lines)


def write_event(
    conn: Connection,
    kind: str,
    actor: str,
    detail: Mapping[str, Any],
    *,
    inbound_item_id: int | None = None,
    document_id: int | None = None,
    delivery_id: int | None = None,
) -> int:
    """Append a line to the trail within the caller's transaction; return its id."""
    if not isinstance(detail, Mapping):
        raise TypeError("event detail must be a mapping")
    return conn.execute(
        event.insert()
        .values(
            kind=kind,
            actor=actor,
            detail=plain(detail),
            inbound_item_id=inbound_item_id,
            document_id=document_id,
            delivery_id=delivery_id,
        )
        .returning(event.c.id)
    ).scalar_one()


class Events(LedgerBase):
    """Adding to the trail and reading it back."""

    def add_event(
        self,
        kind: str,
        *,
        inbound_item_id: int | None = None,
        document_id: int | None = None,
        delivery_id: int | None = None,
        actor: str = "cli",
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Append a line to the trail; ``detail`` holds codes and references, never patient data."""
        with self.engine.begin() as conn:
            return write_event(
                conn,
                kind,
                actor,
                detail or {},
                inbound_item_id=inbound_item_id,
                document_id=document_id,
                delivery_id=delivery_id,
            )

    def events(
        self,
        *,
        inbound_item_id: int | None = None,
        document_id: int | None = None,
        delivery_id: int | None = None,
        kind: str | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Trail lines matching every given criterion, in the order they were written."""
        query = select(event).order_by(event.c.id).limit(limit)
        for column, value in (
            (event.c.inbound_item_id, inbound_item_id),
            (event.c.document_id, document_id),
            (event.c.delivery_id, delivery_id),
            (event.c.kind, kind),
        ):
            if value is not None:
                query = query.where(column == value)
        with self.engine.connect() as conn:
            return [Event.from_row(row._mapping) for row in conn.execute(query)]


__all__ = ["Events", "plain", "write_event"]
