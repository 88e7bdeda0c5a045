"""The operator's operations on a document and its deliveries: find it, hold, release, report.

One place for what an integration engineer does by hand, so that every face offers the same:
``pfi dmp hold|release|status`` today, the operator console in the Airflow UI next. Each change
goes through the ledger with the operator as the event's actor, so the trail says who held what.

- :func:`find_document`: by the CDA's unique id (what the producer and the DMP know), or by its
  ledger id;
- :func:`hold` / :func:`release`: a ``pending`` delivery becomes ``held`` (never claimed by the
  queue) and back; a delivery already sent, refused or failed is left alone;
- :func:`status`: the document, its deliveries on the channels asked for, and each one's trail.
  Identifiers and codes only: the patient's identity is not part of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pfi.ledger import Delivery, Document, Ledger

HOLD = "hold"
RELEASE = "release"
#: (status before, status after) of each order.
_ORDERS = {HOLD: ("pending", "held"), RELEASE: ("held", "pending")}


def find_document(ledger: Ledger, reference: str) -> Document | None:
    """The document whose unique id (else ledger id, when ``reference`` is a number) is given."""
    document = ledger.find_document(reference)
    if document is None and reference.isdigit():
        try:
            document = ledger.get_document(int(reference))
        except LookupError:
            document = None
    return document


def order(
    ledger: Ledger, document: Document, what: str, *, channel: str = "dmp", actor: str
) -> list[Delivery]:
    """Hold or release (``what``) the document's deliveries of ``channel``; the ones changed.

    The reason recorded is ``<CHANNEL>_HOLD`` / ``<CHANNEL>_RELEASE`` (``DMP_HOLD``…)."""
    before, after = _ORDERS[what]
    code = f"{channel.upper()}_{what.upper()}"
    return [
        ledger.mark_delivery(delivery.id, after, reason_code=code, actor=actor)
        for delivery in ledger.deliveries_of(document.id)
        if delivery.channel == channel and delivery.status == before
    ]


def hold(ledger: Ledger, document: Document, *, channel: str = "dmp", actor: str) -> list[Delivery]:
    return order(ledger, document, HOLD, channel=channel, actor=actor)


def release(
    ledger: Ledger, document: Document, *, channel: str = "dmp", actor: str
) -> list[Delivery]:
    return order(ledger, document, RELEASE, channel=channel, actor=actor)


def status(ledger: Ledger, document: Document, *, channels: Iterable[str]) -> dict[str, Any]:
    """What the ledger knows of the document and of its deliveries on ``channels``.

    The DMP identifiers derived from the ledger's ids (entryUUID of the document, uniqueId of
    each submission set) are given too: they are what the DMP's own records show."""
    from pfi.protocols.dmp.submission import entry_uuid, submission_set_unique_id

    wanted = set(channels)
    return {
        "document": {
            "id": document.id,
            "unique_id": document.unique_id,
            "type_code": document.type_code,
            "version": document.version,
            "ins_qualified": document.ins_qualified,
            "replaces": document.replaces_unique_id,
            "entry_uuid": entry_uuid(document.unique_id),
        },
        "deliveries": [
            {
                "id": d.id,
                "channel": d.channel,
                "action": d.action,
                "status": d.status,
                "attempts": d.attempts,
                "next_attempt_at": d.next_attempt_at,
                "sent_at": d.sent_at,
                "partner_ref": d.partner_ref,
                "reason_code": d.reason_code,
                "reason_text": d.reason_text,
                "request_id": str(d.request_id),
                **(
                    {"submission_set_unique_id": submission_set_unique_id(d.request_id)}
                    if d.channel == "dmp"
                    else {}
                ),
                "trail": [
                    {"at": e.at, "kind": e.kind, "actor": e.actor, "detail": e.detail}
                    for e in ledger.events(delivery_id=d.id)
                ],
            }
            for d in ledger.deliveries_of(document.id)
            if d.channel in wanted
        ],
    }


__all__ = ["HOLD", "RELEASE", "find_document", "hold", "order", "release", "status"]
