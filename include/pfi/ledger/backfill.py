"""What a historical DMP backfill asks the ledger (:mod:`pfi.flows.backfill`): which documents
were never published to the DMP, where each document's DMP publication stands, and the
historical delivery of a document the ledger already holds.

A document read from a folder is recorded through the one write path
(:meth:`pfi.ledger.Ledger.record_message` with ``historical=True``); every backfill sends
through the claim queue (:meth:`claim_due_deliveries` with ``ids``). The reads here are one
query for a whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, exists, func, select, update

from pfi.ledger.core import LedgerBase
from pfi.ledger.deliveries import insert_deliveries
from pfi.ledger.events import EventBatch, plain
from pfi.ledger.records import Document
from pfi.ledger.schema import delivery, document, event, inbound_item

#: Inbound kinds whose documents are this establishment's own (produced here): a document
#: received by MSSanté (``mail``) belongs to its sender and is never published by this PFI.
OWN_DOCUMENT_KINDS = ("hl7_message", "hl7_file", "cda_file")


@dataclass(frozen=True)
class DmpPublication:
    """One DMP delivery of a document that publishes it (action ``new`` or ``replace``)."""

    delivery_id: int
    action: str
    status: str
    historical: bool


@dataclass(frozen=True)
class DmpState:
    """A document the ledger knows, and its DMP publications (none: never asked for)."""

    document_id: int
    unique_id: str
    content_sha256: str | None
    publications: tuple[DmpPublication, ...] = ()

    @property
    def sent(self) -> bool:
        return any(p.status == "sent" for p in self.publications)

    @property
    def queued(self) -> bool:
        return any(p.status in ("pending", "held") for p in self.publications)


def _publication_rows(conn, document_ids: Sequence[int]) -> dict[int, list[DmpPublication]]:
    found: dict[int, list[DmpPublication]] = {}
    if not document_ids:
        return found
    query = (
        select(
            delivery.c.document_id,
            delivery.c.id,
            delivery.c.action,
            delivery.c.status,
            delivery.c.historical,
        )
        .where(
            delivery.c.document_id.in_(list(document_ids)),
            delivery.c.channel == "dmp",
            delivery.c.action != "delete",
        )
        .order_by(delivery.c.id)
    )
    for row in conn.execute(query):
        found.setdefault(row.document_id, []).append(
            DmpPublication(row.id, row.action, row.status, row.historical)
        )
    return found


class Backfill(LedgerBase):
    """The reads of a historical DMP backfill."""

    def dmp_states(self, unique_ids: Sequence[str]) -> dict[str, DmpState]:
        """The documents among ``unique_ids`` that the ledger knows, with their DMP
        publications, by unique id (one query for the documents, one for their deliveries)."""
        if not unique_ids:
            return {}
        with self.engine.connect() as conn:
            documents = conn.execute(
                select(document.c.id, document.c.unique_id, document.c.content_sha256).where(
                    document.c.unique_id.in_(list(dict.fromkeys(unique_ids)))
                )
            ).all()
            publications = _publication_rows(conn, [d.id for d in documents])
        return {
            d.unique_id: DmpState(
                d.id, d.unique_id, d.content_sha256, tuple(publications.get(d.id, ()))
            )
            for d in documents
        }

    def documents_never_published(self, finess_geo: str) -> list[int]:
        """Ids of the documents of this FINESS géographique that no DMP delivery ever sent
        (none asked for, or one still queued, refused or failed), in id order: the plan of a
        backfill from the ledger. Only documents produced here (:data:`OWN_DOCUMENT_KINDS`)."""
        published = exists().where(
            and_(
                delivery.c.document_id == document.c.id,
                delivery.c.channel == "dmp",
                delivery.c.action != "delete",
                delivery.c.status == "sent",
            )
        )
        own = exists().where(
            inbound_item.c.id == document.c.inbound_item_id,
            inbound_item.c.kind.in_(OWN_DOCUMENT_KINDS),
        )
        query = (
            select(document.c.id)
            .where(document.c.finess_geo == finess_geo, own, ~published)
            .order_by(document.c.id)
        )
        with self.engine.connect() as conn:
            return [row.id for row in conn.execute(query)]

    def documents_with_dmp_state(
        self, document_ids: Sequence[int]
    ) -> list[tuple[Document, DmpState]]:
        """These documents (those still in the ledger), in id order, with their DMP state."""
        if not document_ids:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(document)
                .where(document.c.id.in_(list(document_ids)))
                .order_by(document.c.id)
            ).all()
            publications = _publication_rows(conn, [r.id for r in rows])
        found = []
        for row in rows:
            doc = Document.from_row(row._mapping)
            state = DmpState(
                doc.id, doc.unique_id, doc.content_sha256, tuple(publications.get(doc.id, ()))
            )
            found.append((doc, state))
        return found

    def add_historical_delivery(self, document_id: int, action: str, *, actor: str) -> int | None:
        """Create (unless it exists) the ``historical`` DMP delivery of a document the ledger
        holds, ``held`` until its lot releases it (:meth:`release_historical`), answering the
        message that brought it; its id, ``None``
        when the document already has a DMP delivery for ``action`` (a live one, or this
        backfill's from an earlier run: the caller reads it with :meth:`dmp_states`)."""
        trail = EventBatch(actor)
        with self.engine.begin() as conn:
            item_id = conn.execute(
                select(document.c.inbound_item_id).where(document.c.id == document_id)
            ).scalar_one()
            created = insert_deliveries(
                conn,
                [document_id],
                [("dmp", None, action, "held")],
                action,
                item_id,
                trail.note,
                historical=True,
            )
            if not created:
                return None
            trail.write(conn)
            return trail.lines[0]["delivery_id"]

    def release_historical(self, delivery_ids: Sequence[int], *, actor: str) -> list[int]:
        """Make these ``held`` historical deliveries due now (one statement, with their
        ``delivery.status`` lines), just before their lot claims them: until then the live
        queue never sees them. The ids released."""
        if not delivery_ids:
            return []
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(delivery)
                .where(
                    delivery.c.id.in_(list(delivery_ids)),
                    delivery.c.status == "held",
                    delivery.c.historical.is_(True),
                )
                .values(
                    status="pending",
                    next_attempt_at=func.now(),
                    reason_code=None,
                    reason_text=None,
                    updated_at=func.now(),
                )
                .returning(delivery.c.id, delivery.c.document_id, delivery.c.attempts)
            ).all()
            if rows:
                conn.execute(
                    event.insert(),
                    [
                        {
                            "kind": "delivery.status",
                            "actor": actor,
                            "document_id": row.document_id,
                            "delivery_id": row.id,
                            "detail": plain(
                                {"from": "held", "to": "pending", "attempts": row.attempts}
                            ),
                        }
                        for row in rows
                    ],
                )
        return sorted(row.id for row in rows)


__all__ = ["OWN_DOCUMENT_KINDS", "Backfill", "DmpPublication", "DmpState"]
