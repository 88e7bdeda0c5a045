"""Rows the ledger hands back: frozen dataclasses, one per table, plus the statistics rows.

They are snapshots (reading one twice may give two answers); callers pass ids around — in XCom
too — and re-read what they need. The INS is excluded from ``repr`` so that logging a
:class:`Document` never writes patient data.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any, Self


class _Row:
    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        """Build from a result row, ignoring columns the dataclass does not expose."""
        return cls(**{f.name: row[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class InboundItem(_Row):
    """Something received (HL7 file, HL7 message, mail), recorded before it was processed."""

    id: int
    kind: str
    source: str
    finess_geo: str | None
    original_ref: str | None
    checksum: str
    size: int | None
    control_id: str | None
    message_type: str | None
    parent_id: int | None
    status: str
    reason_code: str | None
    reason_text: str | None
    storage_path: str | None
    received_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Document(_Row):
    """One CDA document version seen by the PFI."""

    id: int
    unique_id: str
    set_id: str | None
    version: int | None
    type_code: str | None
    type_display: str | None
    finess_geo: str | None
    effective_time: datetime | None
    ins_matricule: str | None = field(repr=False)
    ins_oid: str | None
    ins_qualified: bool
    content_sha256: str | None
    inbound_item_id: int | None
    replaces_unique_id: str | None
    replaces_document_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class Delivery(_Row):
    """One (document, channel, recipient, action) and where it stands."""

    id: int
    document_id: int
    channel: str
    recipient: str | None
    action: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    sent_at: datetime | None
    request_id: uuid.UUID
    partner_ref: str | None
    reason_code: str | None
    reason_text: str | None
    historical: bool
    qualified_ins: bool
    finess_geo: str | None
    type_code: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    #: The message that asked for this delivery (migration 0002), when the writer recorded it.
    inbound_item_id: int | None = None
    #: A forced replay's original and its number (migration 0004); ``None`` and 0 otherwise.
    replay_of: int | None = None
    replay_seq: int = 0


@dataclass(frozen=True)
class Event(_Row):
    """One line of the append-only trail."""

    id: int
    at: datetime
    kind: str
    inbound_item_id: int | None
    document_id: int | None
    delivery_id: int | None
    actor: str
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class DeliveryEvent(_Row):
    """A trail line of a delivery, with what its delivery and document say (a trace line)."""

    at: datetime
    kind: str
    actor: str
    detail: Mapping[str, Any]
    delivery_id: int
    channel: str
    recipient: str | None
    action: str
    partner_ref: str | None
    unique_id: str
    type_code: str | None


@dataclass(frozen=True)
class MessageOutcome:
    """What :meth:`pfi.ledger.Ledger.record_message` recorded for one message.

    ``item`` is the message's item as it now stands; ``created`` says whether this call recorded
    it (``False``: already known); ``unchanged`` that it was already final (an earlier run, the
    same message in another file) so that nothing was written.
    ``content_conflict`` says that a document id came back with another content, so that the
    message was recorded refused and none of its documents or deliveries were written.
    """

    item: InboundItem
    created: bool
    document_ids: tuple[int, ...] = ()
    deliveries_created: int = 0
    content_conflict: bool = False
    unchanged: bool = False


@dataclass(frozen=True)
class MonthlyCount(_Row):
    """Deliveries of one month (Paris time) sharing every other column: the statistics' unit.

    ``month`` is the month of the delivery's outcome (``sent_at``, else its last attempt, else its
    creation). The indicators of SC.STAT/ES.02 are sums over these rows.
    """

    month: date
    finess_geo: str | None
    type_code: str | None
    channel: str
    action: str
    status: str
    historical: bool
    qualified_ins: bool
    count: int


@dataclass(frozen=True)
class IndicatorCount(_Row):
    """One row of the statistics report's one query (:meth:`Statistics.indicator_counts`):
    deliveries, or refused mails, sharing every column.

    ``basis`` says what is counted and which month it falls in: ``outcome`` — deliveries that
    reached ``sent``, ``failed`` or ``refused``, in the month of their outcome (``stat_month``);
    ``received`` — ``dpi`` deliveries of a replacement or a deletion, in the month their mail was
    received, whatever their status; ``mail_refused`` — received mails the PFI refused before any
    document could be read (no XDM, hostile archive, identity mismatch), in the month received
    (no type, no action).
    """

    basis: str
    month: date
    finess_geo: str | None
    type_code: str | None
    channel: str
    action: str | None
    status: str
    historical: bool
    qualified_ins: bool
    count: int


@dataclass(frozen=True)
class MonthlyInboundCount(_Row):
    """Items received in one month (Paris time) per source, kind and status."""

    month: date
    finess_geo: str | None
    source: str
    kind: str
    status: str
    count: int


__all__ = [
    "Delivery",
    "DeliveryEvent",
    "Document",
    "Event",
    "InboundItem",
    "IndicatorCount",
    "MessageOutcome",
    "MonthlyCount",
    "MonthlyInboundCount",
]
