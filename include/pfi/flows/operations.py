"""The operator's operations on a document and its deliveries: find it, hold, release, report.

One place for what an integration engineer does by hand, so that every face offers the same:
``pfi dmp hold|release|status``, and the operator console in the Airflow UI
(:mod:`pfi.flows.console`). Each change goes through the ledger with the operator as the event's
actor, so the trail says who held what.

- :func:`find_document`: by the CDA's unique id (what the producer and the DMP know), or by its
  ledger id;
- :func:`hold` / :func:`release`: a ``pending`` delivery becomes ``held`` (never claimed by the
  queue) and back; a delivery already sent, refused or failed is left alone;
- :func:`retry_given_up`: a delivery the queue gave up (``failed``, ``DELIVERY_GIVEN_UP``: the
  partner unreachable for the whole retry period, so it never took it) is due again at once,
  with a fresh retry period; a delivery refused by its partner, or failed after being sent (a
  bounce), is left alone — re-sending those is a replay, not a release;
- :func:`status`: the document, its deliveries on the channels asked for, and each one's trail.
  Identifiers and codes only: the patient's identity is not part of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pfi.flows.queue import GIVEN_UP

if TYPE_CHECKING:
    from pfi.ledger import Delivery, Document, Ledger

HOLD = "hold"
RELEASE = "release"
RETRY = "retry"
#: (status before, status after) of each order.
_ORDERS = {HOLD: ("pending", "held"), RELEASE: ("held", "pending"), RETRY: ("failed", "pending")}


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
    return order_deliveries(
        ledger,
        [d for d in ledger.deliveries_of(document.id) if d.channel == channel],
        what,
        actor=actor,
    )


def order_deliveries(
    ledger: Ledger, deliveries: Iterable[Delivery], what: str, *, actor: str
) -> list[Delivery]:
    """Hold, release or retry (``what``) those of ``deliveries`` the order applies to; the
    ones changed. The reason recorded is ``<CHANNEL>_<ORDER>`` (``DMP_HOLD``, ``DPI_RETRY``…)."""
    before, after = _ORDERS[what]
    changed = []
    for delivery in deliveries:
        if delivery.status != before:
            continue
        if what == RETRY and delivery.reason_code != GIVEN_UP:
            continue
        code = f"{delivery.channel.upper()}_{what.upper()}"
        changed.append(ledger.mark_delivery(delivery.id, after, reason_code=code, actor=actor))
    return changed


def hold(ledger: Ledger, document: Document, *, channel: str = "dmp", actor: str) -> list[Delivery]:
    return order(ledger, document, HOLD, channel=channel, actor=actor)


def release(
    ledger: Ledger, document: Document, *, channel: str = "dmp", actor: str
) -> list[Delivery]:
    return order(ledger, document, RELEASE, channel=channel, actor=actor)


def retry_given_up(ledger: Ledger, deliveries: Iterable[Delivery], *, actor: str) -> list[Delivery]:
    return order_deliveries(ledger, deliveries, RETRY, actor=actor)


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


__all__ = [
    "GIVEN_UP",
    "HOLD",
    "RELEASE",
    "RETRY",
    "find_document",
    "hold",
    "order",
    "order_deliveries",
    "release",
    "retry_given_up",
    "status",
]
