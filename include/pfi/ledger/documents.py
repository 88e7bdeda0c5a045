"""Documents: one row per CDA document version the PFI has seen, named by its unique id.

A document is recorded with the first message that brings it
(:meth:`pfi.ledger.Ledger.record_message` calls :func:`insert_documents`) and never rewritten:
the first recording is what was sent. Its content is not kept, only its SHA-256, by which a
document id reused for another content is recognised (the CI-SIS forbids it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from pfi.ledger.core import LedgerBase
from pfi.ledger.records import Document
from pfi.ledger.schema import document


class ContentConflict(Exception):
    """A document id came back with another content: the message's transaction is undone."""


def _document_values(
    *,
    unique_id: str,
    set_id: str | None = None,
    version: int | None = None,
    type_code: str | None = None,
    type_display: str | None = None,
    finess_geo: str | None = None,
    effective_time: datetime | None = None,
    ins_matricule: str | None = None,
    ins_oid: str | None = None,
    ins_qualified: bool = False,
    content_sha256: str | None = None,
    inbound_item_id: int | None = None,
    replaces_unique_id: str | None = None,
) -> dict[str, Any]:
    """A document row's values, normalised (INS upper-case, kept only with its OID)."""
    matricule = ins_matricule.strip().upper() if ins_matricule else None
    replaced = (
        select(document.c.id).where(document.c.unique_id == replaces_unique_id).scalar_subquery()
        if replaces_unique_id
        else None
    )
    return {
        "unique_id": unique_id,
        "set_id": set_id,
        "version": version,
        "type_code": type_code,
        "type_display": type_display,
        "finess_geo": finess_geo,
        "effective_time": effective_time,
        "ins_matricule": matricule,
        "ins_oid": ins_oid if matricule else None,
        "ins_qualified": bool(ins_qualified and matricule),
        "content_sha256": content_sha256.lower() if content_sha256 else None,
        "inbound_item_id": inbound_item_id,
        "replaces_unique_id": replaces_unique_id,
        "replaces_document_id": replaced,
    }


def insert_documents(
    conn: Connection,
    documents: Sequence[Mapping[str, Any]],
    item_id: int,
    action: str,
    note: Any,
) -> list[int]:
    """Insert-or-get the ``documents`` of message ``item_id`` (keyword arguments of
    :func:`_document_values`) in ``conn``'s transaction, each new one's event given to ``note``;
    their ids, in order.

    A known document is not rewritten, only completed (:func:`_completion`): what an earlier
    message left unknown — the content SHA-256 a deletion received before it could not give, the
    FINESS géographique, type and INS a document received by MSSanté does not carry — and the
    INS's qualification, once a message says it is qualified. :class:`ContentConflict` when a known id comes with another content
    (except for a deletion, which names a document and carries none of its own). A replacement's
    ``replaces_unique_id`` is resolved to ``replaces_document_id`` when that document is known.
    """
    ids: list[int] = []
    for fields in documents:
        values = _document_values(**fields, inbound_item_id=item_id)
        sha = values["content_sha256"]
        if action == "delete":
            # A deletion names a document: what it carries is not that document's content
            # (a deletion received before its creation must not make the creation a reuse).
            values["content_sha256"] = None
        inserted = conn.execute(
            insert(document)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["unique_id"])
            .returning(document.c.id, document.c.replaces_document_id)
        ).first()
        if inserted is not None:
            detail: dict[str, Any] = {
                "type_code": values["type_code"],
                "version": values["version"],
                "ins_qualified": values["ins_qualified"],
            }
            if values["replaces_unique_id"]:
                detail["replaces_known"] = inserted.replaces_document_id is not None
            note("document.recorded", detail, inbound_item_id=item_id, document_id=inserted.id)
            ids.append(inserted.id)
            continue
        known = conn.execute(
            select(
                document.c.id,
                document.c.content_sha256,
                document.c.ins_matricule,
                document.c.ins_qualified,
            ).where(document.c.unique_id == values["unique_id"])
        ).one()
        if action != "delete" and known.content_sha256 and sha and known.content_sha256 != sha:
            raise ContentConflict
        completed = _completion(known, values)
        if action != "delete" and sha and not known.content_sha256:  # known by a deletion
            completed["content_sha256"] = sha
        if completed:
            conn.execute(update(document).where(document.c.id == known.id).values(**completed))
        ids.append(known.id)
    return ids


#: Columns a later message fills when the document's first message left them empty.
_COMPLETED = ("set_id", "version", "type_code", "type_display", "finess_geo", "effective_time")


def _completion(known: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """What a new message about a known document adds to its row: the columns left empty (the
    INS with its OID), and ``ins_qualified`` when the new message has the same INS qualified.
    A value already known is never replaced: a message contradicting it changes nothing."""
    changes = {
        name: func.coalesce(document.c[name], values[name])
        for name in _COMPLETED
        if values.get(name) is not None
    }
    matricule = values["ins_matricule"]
    if matricule and not known.ins_matricule:
        changes["ins_matricule"] = matricule
        changes["ins_oid"] = values["ins_oid"]
    if (
        values["ins_qualified"]
        and not known.ins_qualified
        and (known.ins_matricule in (None, matricule))
    ):
        changes["ins_qualified"] = True
    return changes


class Documents(LedgerBase):
    """Reading the documents."""

    def get_document(self, document_id: int) -> Document:
        with self.engine.connect() as conn:
            row = conn.execute(select(document).where(document.c.id == document_id)).first()
        if row is None:
            raise LookupError(f"no document {document_id} in the ledger")
        return Document.from_row(row._mapping)

    def find_document(self, unique_id: str) -> Document | None:
        """The document recorded under this unique id (CDA id root^extension), if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(document).where(document.c.unique_id == unique_id)).first()
        return Document.from_row(row._mapping) if row is not None else None


__all__ = ["ContentConflict", "Documents", "insert_documents"]
