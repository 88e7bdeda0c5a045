"""The ledger: what the PFI received, which documents went where, and why — in PostgreSQL.

It is the memory behind the product's principles:

- **nothing lost** — every HL7 file, HL7 message and mail is an ``inbound_item`` *before* it is
  processed; its status says how far it got, and its storage path where the original is kept;
- **nothing sent twice** — one ``delivery`` per (document, channel, recipient, action), created
  once (a unique constraint), with a ``request_id`` fixed before the first attempt; every sending
  step asks :meth:`Ledger.delivery_done` first; a sent delivery never becomes due again;
- **reasons visible** — coded reasons on items and deliveries, and an append-only ``event`` trail
  (a trigger refuses UPDATE, DELETE and TRUNCATE) written in the same transaction as each change;
- **statistics computable** — :meth:`Ledger.monthly_counts` gives the numerators of the monthly
  indicators per FINESS géographique (SC.STAT/ES.02).

The ledger has **its own database** (Airflow Connection ``pfi_ledger``), never Airflow's metadata
database: :func:`upgrade` refuses a database holding Airflow's tables, and the migration version
table is ``pfi_alembic_version``. Migrations are Alembic revisions shipped inside this package
(``migrations/versions``); ``pfi ledger upgrade`` applies them.

Patient data: the ledger keeps the document's INS (matricule, OID, qualified flag) and nothing
else about the patient — see :mod:`pfi.ledger.schema`. Reasons and event details are coded by
the caller and never carry patient data.

::

    from pfi.ledger import Ledger, upgrade

    upgrade(url)
    ledger = Ledger.from_url(url)
    file_id, created = ledger.record_inbound(kind="hl7_file", source="dpi", checksum=sha, ...)
    outcome = ledger.record_message(  # one message, its documents and deliveries: one transaction
        source="dpi", checksum=message_sha, parent_id=file_id, status="done",
        documents=[{"unique_id": "1.2.250…^42", ...}], deliveries=[("dmp", None, "pending")], ...
    )
    for due in ledger.claim_due_deliveries("dmp", limit=20, actor=actor):
        ...  # submit with due.request_id, then:
        ledger.mark_delivery(due.id, "sent", partner_ref=answer_id, actor=actor)
"""

from pfi.ledger.deliveries import DEFAULT_LEASE, delivery_key
from pfi.ledger.items import TERMINAL_INBOUND
from pfi.ledger.migrate import current_revision, downgrade, head_revision, upgrade
from pfi.ledger.records import (
    Delivery,
    DeliveryEvent,
    Document,
    Event,
    InboundItem,
    MonthlyCount,
    MonthlyInboundCount,
)
from pfi.ledger.repository import Ledger
from pfi.ledger.schema import (
    ACTIONS,
    CHANNELS,
    DELIVERY_OUTCOMES,
    DELIVERY_STATUSES,
    INBOUND_FINAL,
    INBOUND_KINDS,
    INBOUND_STATUSES,
)

__all__ = [
    "ACTIONS",
    "CHANNELS",
    "DEFAULT_LEASE",
    "DELIVERY_OUTCOMES",
    "DELIVERY_STATUSES",
    "INBOUND_FINAL",
    "INBOUND_KINDS",
    "INBOUND_STATUSES",
    "Delivery",
    "DeliveryEvent",
    "Document",
    "Event",
    "InboundItem",
    "Ledger",
    "TERMINAL_INBOUND",
    "MonthlyCount",
    "MonthlyInboundCount",
    "current_revision",
    "delivery_key",
    "downgrade",
    "head_revision",
    "upgrade",
]
