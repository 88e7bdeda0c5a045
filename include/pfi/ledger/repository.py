"""The ledger's API: record what arrives, what is sent, and why — each in one transaction.

Every method opens its own transaction, and every change of status writes its :class:`Event` in
that same transaction, so the trail never disagrees with the tables. The methods are written for
replays: ``record_inbound``, ``upsert_document`` and ``ensure_delivery`` are insert-or-get
(``INSERT … ON CONFLICT DO NOTHING`` then read, race-safe between processes) and answer whether
they created the row; :meth:`Ledger.delivery_done` is the "already done?" check every sending step
makes before acting.

The deferred-send queue (SC.DMP/ALI/PROG.06-07) is the set of ``pending`` deliveries:
:meth:`Ledger.claim_due_deliveries` takes the due ones with ``FOR UPDATE SKIP LOCKED`` and moves
their ``next_attempt_at`` forward by a lease, so that two workers never take the same delivery and
one that crashed mid-attempt is taken again once its lease runs out — with the same
``request_id``, so that a response lost in the crash can be resolved with the partner.

Reasons and event details are given by the caller as codes and short technical texts. They must
never hold patient data (names, INS, document content): they are shown in the UI and in logs.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    and_,
    create_engine,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine

from pfi.ledger.migrate import normalize_url
from pfi.ledger.records import (
    Delivery,
    DeliveryEvent,
    Document,
    Event,
    InboundItem,
    MessageOutcome,
    MonthlyCount,
    MonthlyInboundCount,
)
from pfi.ledger.schema import (
    ACTIONS,
    CHANNELS,
    DELIVERY_OUTCOMES,
    DELIVERY_STATUSES,
    INBOUND_KINDS,
    INBOUND_STATUSES,
    STATS_TIME_ZONE,
    delivery,
    document,
    event,
    inbound_item,
)

#: Statuses of an inbound item that no later processing changes.
TERMINAL_INBOUND = ("done", "rejected", "duplicate")

#: How long a claimed delivery stays invisible to other workers (the longest attempt we expect).
DEFAULT_LEASE = timedelta(minutes=10)


def _json_default(value: Any) -> str:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def _json(value: Any) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False, sort_keys=True)


def _plain(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The detail as plain JSON values (datetimes and UUIDs as text), whatever the engine."""
    return json.loads(_json(detail))


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


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


class _ContentConflict(Exception):
    """A document id came back with another content: the message's transaction is undone."""


def delivery_key(channel: str, recipient: str | None, action: str) -> tuple[str, str | None, str]:
    """Check and normalise what identifies a delivery of a document.

    A professional's MSSanté address is required for ``mss_professional`` and compared
    case-insensitively (lower-cased). The DMP and the patient's mailbox take no recipient: the
    patient's address is ``<matricule INS>@patient.mssante.fr``, derived from the document's INS
    when sending, so the INS is not stored a second time. ``dpi`` may name the receiving system.
    """
    _one_of("channel", channel, CHANNELS)
    _one_of("action", action, ACTIONS)
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


class Ledger:
    """The PFI ledger over a SQLAlchemy :class:`~sqlalchemy.engine.Engine` (PostgreSQL).

    The schema must be at the head revision (:func:`pfi.ledger.upgrade`). ``actor`` arguments name
    who acts, for the trail: ``dag_id/task_id/run_id[map_index]`` of a task, or ``"cli"``.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str, **engine_options: Any) -> Ledger:
        """A ledger on the database at ``url`` (``postgresql://…``; ``postgres://`` accepted)."""
        options: dict[str, Any] = {
            "pool_pre_ping": True,
            "json_serializer": _json,
            "connect_args": {"application_name": "pfi-ledger"},
            # A statement's error text would list its parameters (a document's INS matricule).
            "hide_parameters": True,
        }
        options.update(engine_options)
        return cls(create_engine(normalize_url(url), **options))

    def dispose(self) -> None:
        """Close the pooled connections (end of a command, test teardown)."""
        self.engine.dispose()

    # --- inbound items -------------------------------------------------------------------------

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
        _one_of("kind", kind, INBOUND_KINDS)
        _one_of("status", status, INBOUND_STATUSES)
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
                self._event(
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
        _one_of("status", status, INBOUND_STATUSES)
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
            self._event(
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
        actor: str = "cli",
    ) -> MessageOutcome:
        """Record one ``hl7_message`` and what was decided about it, in ONE transaction.

        The message's item (insert-or-get by checksum, as :meth:`record_inbound`), moved to
        ``status`` (``done`` or ``rejected``, with its reason); for ``done``, its ``documents``
        (keyword arguments of :meth:`upsert_document`, insert-or-get by unique id) and, for each
        document, one delivery per ``(channel, recipient, status)`` of ``deliveries`` (insert-or-get
        by key as :meth:`ensure_delivery`, ``status`` ``pending`` due now or ``held``, for
        ``action``) — with the same events as those methods, written in the same transaction.

        An item already known in a final status (``done``, ``rejected``, ``duplicate``: a replay,
        the same message in another file) is returned unchanged and nothing is written. A document
        id already known with another ``content_sha256`` (except for a deletion) refuses the whole
        message: it is recorded ``rejected`` with ``conflict_reason`` and nothing else is written
        (``content_conflict=True``). Any error (a constraint violated) writes nothing at all.
        """
        if status not in ("done", "rejected"):
            raise ValueError(f"a message is recorded done or rejected, not {status!r}")
        _one_of("action", action, ACTIONS)
        keys = [
            (*delivery_key(c, r, action), _one_of("status", s, ("pending", "held")))
            for c, r, s in deliveries
        ]
        item = {
            "kind": "hl7_message",
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
                )
        except _ContentConflict:
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
    ) -> MessageOutcome:
        events: list[dict[str, Any]] = []

        def note(kind: str, detail: Mapping[str, Any], **refs: int | None) -> None:
            events.append(
                {
                    "kind": kind,
                    "actor": actor,
                    "detail": _plain(detail),
                    "inbound_item_id": refs.get("inbound_item_id"),
                    "document_id": refs.get("document_id"),
                    "delivery_id": refs.get("delivery_id"),
                }
            )

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
                    "kind": "hl7_message",
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
                    inbound_item.c.kind == "hl7_message",
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
            document_ids = self._record_documents(conn, documents, item_id, action, note)
        if document_ids and keys:
            created_deliveries = self._record_deliveries(
                conn, document_ids, keys, action, item_id, note
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
        conn.execute(event.insert(), events)
        return MessageOutcome(
            InboundItem.from_row(row._mapping), created, tuple(document_ids), created_deliveries
        )

    @staticmethod
    def _record_documents(
        conn: Connection,
        documents: Sequence[Mapping[str, Any]],
        item_id: int,
        action: str,
        note: Any,
    ) -> list[int]:
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
                select(document.c.id, document.c.content_sha256).where(
                    document.c.unique_id == values["unique_id"]
                )
            ).one()
            if action != "delete" and known.content_sha256 and sha and known.content_sha256 != sha:
                raise _ContentConflict
            if action != "delete" and sha and not known.content_sha256:  # known by a deletion
                conn.execute(
                    update(document).where(document.c.id == known.id).values(content_sha256=sha)
                )
            ids.append(known.id)
        return ids

    @staticmethod
    def _record_deliveries(
        conn: Connection,
        document_ids: Sequence[int],
        keys: Sequence[tuple[str, str | None, str, str]],
        action: str,
        item_id: int,
        note: Any,
    ) -> int:
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
                        "historical": False,
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
                index_elements=["document_id", "channel", "recipient", "action"]
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
                    "historical": False,
                },
                document_id=row.document_id,
                delivery_id=row.id,
            )
        return len(inserted)

    # --- documents -----------------------------------------------------------------------------

    def upsert_document(
        self,
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
        actor: str = "cli",
    ) -> tuple[int, bool]:
        """Record a document version; return ``(document_id, created)``.

        A document already known by its unique id is returned as it is and never rewritten: the
        first recording is what was sent. A caller that gets ``created=False`` with a different
        ``content_sha256`` (see :meth:`get_document`) has received a new content under an old
        id, which the CI-SIS forbids: it should reject the message.

        ``replaces_unique_id`` (the parent document of a replacement) is resolved to
        ``replaces_document_id`` when that document is in the ledger.
        """
        values = _document_values(
            unique_id=unique_id,
            set_id=set_id,
            version=version,
            type_code=type_code,
            type_display=type_display,
            finess_geo=finess_geo,
            effective_time=effective_time,
            ins_matricule=ins_matricule,
            ins_oid=ins_oid,
            ins_qualified=ins_qualified,
            content_sha256=content_sha256,
            inbound_item_id=inbound_item_id,
            replaces_unique_id=replaces_unique_id,
        )
        with self.engine.begin() as conn:
            inserted = conn.execute(
                insert(document)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["unique_id"])
                .returning(document.c.id, document.c.replaces_document_id)
            ).first()
            if inserted is not None:
                document_id = inserted.id
                detail: dict[str, Any] = {
                    "type_code": type_code,
                    "version": version,
                    "ins_qualified": values["ins_qualified"],
                }
                if replaces_unique_id:
                    detail["replaces_known"] = inserted.replaces_document_id is not None
                self._event(
                    conn,
                    "document.recorded",
                    actor,
                    detail,
                    inbound_item_id=inbound_item_id,
                    document_id=document_id,
                )
                return document_id, True
            document_id = conn.execute(
                select(document.c.id).where(document.c.unique_id == unique_id)
            ).scalar_one()
            return document_id, False

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

    # --- deliveries ----------------------------------------------------------------------------

    def ensure_delivery(
        self,
        document_id: int,
        channel: str,
        recipient: str | None = None,
        action: str = "new",
        *,
        historical: bool = False,
        qualified_ins: bool | None = None,
        status: str = "pending",
        next_attempt_at: datetime | None = None,
        inbound_item_id: int | None = None,
        actor: str = "cli",
    ) -> tuple[int, bool]:
        """Create the delivery of a document unless it exists; return ``(delivery_id, created)``.

        Its ``request_id`` is fixed here, before any attempt, and never changes. A new delivery
        is ``pending`` and due at once (or at ``next_attempt_at``), or ``held``. ``qualified_ins``
        defaults to the document's; its FINESS géographique and type are copied for statistics.
        ``inbound_item_id`` is the message that asked for it (a deletion comes in a later message
        than its document): the one its business acknowledgement answers.
        """
        channel, recipient, action = delivery_key(channel, recipient, action)
        _one_of("status", status, ("pending", "held"))
        if historical and channel != "dmp":
            raise ValueError("only DMP deliveries can be historical (backfill)")
        if status == "pending" and next_attempt_at is None:
            next_attempt_at_value: Any = func.now()
        else:
            next_attempt_at_value = next_attempt_at if status == "pending" else None
        with self.engine.begin() as conn:
            source = conn.execute(
                select(document.c.finess_geo, document.c.type_code, document.c.ins_qualified).where(
                    document.c.id == document_id
                )
            ).first()
            if source is None:
                raise LookupError(f"no document {document_id} in the ledger")
            delivery_id = conn.execute(
                insert(delivery)
                .values(
                    document_id=document_id,
                    channel=channel,
                    recipient=recipient,
                    action=action,
                    status=status,
                    next_attempt_at=next_attempt_at_value,
                    request_id=uuid.uuid4(),
                    historical=historical,
                    inbound_item_id=inbound_item_id,
                    qualified_ins=source.ins_qualified if qualified_ins is None else qualified_ins,
                    finess_geo=source.finess_geo,
                    type_code=source.type_code,
                )
                .on_conflict_do_nothing(
                    index_elements=["document_id", "channel", "recipient", "action"]
                )
                .returning(delivery.c.id)
            ).scalar()
            if delivery_id is not None:
                self._event(
                    conn,
                    "delivery.created",
                    actor,
                    {
                        "channel": channel,
                        "action": action,
                        "status": status,
                        "historical": historical,
                    },
                    document_id=document_id,
                    delivery_id=delivery_id,
                )
                return delivery_id, True
            delivery_id = conn.execute(
                select(delivery.c.id).where(
                    self._key_clause(document_id, channel, recipient, action)
                )
            ).scalar_one()
            return delivery_id, False

    @staticmethod
    def _key_clause(
        document_id: int, channel: str, recipient: str | None, action: str
    ) -> ColumnElement[bool]:
        return and_(
            delivery.c.document_id == document_id,
            delivery.c.channel == channel,
            delivery.c.recipient.is_not_distinct_from(recipient),
            delivery.c.action == action,
        )

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
        _one_of("channel", channel, CHANNELS)
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
        _one_of("status", status, DELIVERY_STATUSES)
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
                    self._event(
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
            self._event(
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
    ) -> list[Delivery]:
        """Take up to ``limit`` due ``pending`` deliveries of a channel, oldest due first.

        Rows locked by another worker's claim are skipped (``FOR UPDATE SKIP LOCKED``), and the
        claimed ones are pushed ``lease`` into the future, so no other worker takes them after
        this transaction either. The caller attempts each one and records the outcome with
        :meth:`mark_delivery`; one it never reports on is due again when the lease expires.
        """
        _one_of("channel", channel, CHANNELS)
        moment: Any = now if now is not None else func.now()
        due = (
            select(delivery.c.id)
            .where(
                delivery.c.channel == channel,
                delivery.c.status == "pending",
                delivery.c.next_attempt_at <= moment,
            )
            .order_by(delivery.c.next_attempt_at, delivery.c.id)
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
                            "detail": _plain(
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

    # --- event trail ---------------------------------------------------------------------------

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
            return self._event(
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

    @staticmethod
    def _event(
        conn: Connection,
        kind: str,
        actor: str,
        detail: Mapping[str, Any],
        *,
        inbound_item_id: int | None = None,
        document_id: int | None = None,
        delivery_id: int | None = None,
    ) -> int:
        if not isinstance(detail, Mapping):
            raise TypeError("event detail must be a mapping")
        return conn.execute(
            event.insert()
            .values(
                kind=kind,
                actor=actor,
                detail=_plain(detail),
                inbound_item_id=inbound_item_id,
                document_id=document_id,
                delivery_id=delivery_id,
            )
            .returning(event.c.id)
        ).scalar_one()

    # --- statistics ----------------------------------------------------------------------------

    def monthly_counts(self, month_start: date, month_end: date) -> list[MonthlyCount]:
        """Deliveries counted per month × FINESS géographique × document type × channel ×
        action × status × historical × qualified INS, for months in ``[month_start, month_end)``.

        Each delivery counts once, in the month of its outcome (Paris time). The indicators of
        SC.STAT/ES.02 are sums over these rows, e.g. "DMP in flow, succeeded" = channel ``dmp``,
        not historical, status ``sent``; "update or deletion request mails received" = channel
        ``dpi``, action ``replace`` or ``delete``, any status.
        """
        month = delivery.c.stat_month
        keys = (
            month.label("month"),
            delivery.c.finess_geo,
            delivery.c.type_code,
            delivery.c.channel,
            delivery.c.action,
            delivery.c.status,
            delivery.c.historical,
            delivery.c.qualified_ins,
        )
        query = (
            select(*keys, func.count().label("count"))
            .where(
                month >= _first_of_month(month_start), month < _first_of_month(month_end, up=True)
            )
            .group_by(*keys)
            .order_by(*keys)
        )
        with self.engine.connect() as conn:
            return [MonthlyCount.from_row(row._mapping) for row in conn.execute(query)]

    def monthly_inbound_counts(
        self, month_start: date, month_end: date
    ) -> list[MonthlyInboundCount]:
        """Items received per month (Paris time) × FINESS géographique × source × kind × status,
        for months in ``[month_start, month_end)``: mails refused before any document was read
        (a broken zip) only appear here."""
        month = func.date_trunc(
            "month", func.timezone(STATS_TIME_ZONE, inbound_item.c.received_at)
        ).cast(Date)
        keys = (
            month.label("month"),
            inbound_item.c.finess_geo,
            inbound_item.c.source,
            inbound_item.c.kind,
            inbound_item.c.status,
        )
        start = _paris_midnight(_first_of_month(month_start))
        end = _paris_midnight(_first_of_month(month_end, up=True))
        query = (
            select(*keys, func.count().label("count"))
            .where(inbound_item.c.received_at >= start, inbound_item.c.received_at < end)
            .group_by(*keys)
            .order_by(*keys)
        )
        with self.engine.connect() as conn:
            return [MonthlyInboundCount.from_row(row._mapping) for row in conn.execute(query)]

    def delivery_events(
        self,
        kinds: Sequence[str],
        *,
        channels: Sequence[str] = CHANNELS,
        since: datetime | None = None,
        until: datetime | None = None,
        channel: str | None = None,
        document_unique_id: str | None = None,
        recipient: str | None = None,
        delivery_id: int | None = None,
        limit: int = 10000,
    ) -> list[DeliveryEvent]:
        """Trail lines of these ``kinds`` about deliveries of ``channels``, in the order they were
        written, with their delivery and document: filtered by period (``[since, until)``),
        channel, document, recipient (compared as stored, lower-cased) and delivery."""
        query = (
            select(
                event.c.at,
                event.c.kind,
                event.c.actor,
                event.c.detail,
                delivery.c.id.label("delivery_id"),
                delivery.c.channel,
                delivery.c.recipient,
                delivery.c.action,
                delivery.c.partner_ref,
                document.c.unique_id,
                document.c.type_code,
            )
            .join(delivery, event.c.delivery_id == delivery.c.id)
            .join(document, delivery.c.document_id == document.c.id)
            .where(event.c.kind.in_(tuple(kinds)), delivery.c.channel.in_(tuple(channels)))
            .order_by(event.c.id)
            .limit(limit)
        )
        if since is not None:
            query = query.where(event.c.at >= since)
        if until is not None:
            query = query.where(event.c.at < until)
        if channel is not None:
            query = query.where(delivery.c.channel == channel)
        if document_unique_id is not None:
            query = query.where(document.c.unique_id == document_unique_id)
        if recipient is not None:
            query = query.where(delivery.c.recipient == recipient.strip().lower())
        if delivery_id is not None:
            query = query.where(delivery.c.id == delivery_id)
        with self.engine.connect() as conn:
            return [DeliveryEvent.from_row(row._mapping) for row in conn.execute(query)]


def _first_of_month(day: date, *, up: bool = False) -> date:
    """The first day of ``day``'s month, or of the next month when ``up`` and ``day`` is not one."""
    first = day.replace(day=1)
    if up and first != day:
        first = (first + timedelta(days=32)).replace(day=1)
    return first


def _paris_midnight(day: date) -> Any:
    return func.timezone(STATS_TIME_ZONE, literal(datetime(day.year, day.month, day.day)))


__all__ = ["DEFAULT_LEASE", "Ledger", "delivery_key"]
