"""Documents and deliveries in a test's ledger, written as intake writes them.

The ledger has one write path for documents and deliveries, :meth:`pfi.ledger.Ledger.record_message`
(one HL7 message, its documents and the deliveries they ask for, in one transaction); tests use it
too, through :func:`record_document`::

    recorded = record_document(ledger, "1.2.250.1.999.1^1", "dmp", ("mss_professional", "dr@x.fr"))
    recorded.document_id, recorded.delivery_ids  # one id per target, in the order given
    record_document(ledger, "1.2.250.1.999.1^1", "dmp", action="delete", due=T0).delivery_id

A call is one message: calling again with the same arguments replays it (nothing new is written),
another action, target or document field is another message about the same document.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pfi.ledger import Ledger, delivery_key

#: A delivery asked for: its channel, or ``(channel, recipient)``.
Target = str | tuple[str, str | None]


@dataclass(frozen=True)
class Recorded:
    """What one message recorded: its item, its document, the deliveries of its targets."""

    item_id: int
    document_id: int
    delivery_ids: tuple[int, ...]
    created: int  # deliveries this message created (0 for a replay)

    @property
    def delivery_id(self) -> int:
        """The delivery of the one target."""
        (delivery_id,) = self.delivery_ids
        return delivery_id


def record_document(
    ledger: Ledger,
    unique_id: str,
    *targets: Target,
    action: str = "new",
    status: str = "pending",
    due: datetime | None = None,
    source: str = "dpi",
    checksum: str | None = None,
    parent_id: int | None = None,
    original_ref: str | None = None,
    control_id: str | None = None,
    message_type: str | None = None,
    storage_path: str | None = None,
    actor: str = "test",
    **document: Any,
) -> Recorded:
    """Record one message bringing document ``unique_id`` (``document``: the other keyword
    arguments of a document row, e.g. ``type_code``, ``ins_matricule``, ``content_sha256``,
    ``replaces_unique_id``) and asking for one delivery per target, for ``action``, each
    ``pending`` (due now, or at ``due`` as a retry schedules it) or ``held``.

    ``checksum`` identifies the message (default: one derived from every argument);
    ``parent_id`` and ``original_ref`` say which message of which file item it is, as intake
    records them (:func:`pfi.flows.archive.load_request` reads it back from there).
    """
    keys = [(t, None) if isinstance(t, str) else t for t in targets]
    if checksum is None:
        fields = sorted((name, repr(value)) for name, value in document.items())
        item = (parent_id, original_ref, control_id, message_type, storage_path)
        seed = repr((source, unique_id, keys, action, status, fields, item))
        checksum = hashlib.sha256(seed.encode()).hexdigest()
    outcome = ledger.record_message(
        source=source,
        checksum=checksum,
        status="done",
        parent_id=parent_id,
        original_ref=original_ref,
        control_id=control_id,
        message_type=message_type,
        storage_path=storage_path,
        documents=[{"unique_id": unique_id, **document}],
        deliveries=[(channel, recipient, status) for channel, recipient in keys],
        action=action,
        actor=actor,
    )
    assert not outcome.content_conflict, f"{unique_id} is known with another content"
    found = ledger.find_document(unique_id)
    assert found is not None
    by_key = {(d.channel, d.recipient, d.action): d for d in ledger.deliveries_of(found.id)}
    deliveries = [by_key[delivery_key(channel, recipient, action)] for channel, recipient in keys]
    if due is not None:
        for delivery in deliveries:
            if delivery.status == "pending":
                ledger.mark_delivery(
                    delivery.id, "pending", next_attempt_at=due, attempted=False, actor=actor
                )
    return Recorded(
        outcome.item.id, found.id, tuple(d.id for d in deliveries), outcome.deliveries_created
    )


__all__ = ["Recorded", "Target", "record_document"]
