"""The :class:`Ledger`: one class made of one part per aggregate, each in its own module.

- :mod:`~pfi.ledger.core` — the engine (``from_url``, ``dispose``) and the rules all parts follow;
- :mod:`~pfi.ledger.items` — inbound items, and ``record_message`` (a message's whole outcome);
- :mod:`~pfi.ledger.documents` — documents;
- :mod:`~pfi.ledger.deliveries` — deliveries and the claim queue with its leases;
- :mod:`~pfi.ledger.events` — the append-only trail;
- :mod:`~pfi.ledger.stats` — monthly counts and the trail of deliveries (traces);
- :mod:`~pfi.ledger.backfill` — what a historical DMP backfill reads;
- :mod:`~pfi.ledger.console` — the operator console's search, timeline and forced replay;
- :mod:`~pfi.ledger.alerts` — what the operations alerts count (given up, retry queues, quarantine).

All the ledger's SQL is in these modules: the rest of the PFI calls :class:`Ledger` methods.
"""

from __future__ import annotations

from pfi.ledger.alerts import Alerts
from pfi.ledger.backfill import Backfill
from pfi.ledger.console import Console
from pfi.ledger.deliveries import Deliveries
from pfi.ledger.documents import Documents
from pfi.ledger.events import Events
from pfi.ledger.items import InboundItems
from pfi.ledger.stats import Statistics


class Ledger(InboundItems, Documents, Deliveries, Events, Statistics, Backfill, Console, Alerts):
    """The PFI ledger over a SQLAlchemy :class:`~sqlalchemy.engine.Engine` (PostgreSQL).

    The schema must be at the head revision (:func:`pfi.ledger.upgrade`). ``actor`` arguments name
    who acts, for the trail: ``dag_id/task_id/run_id[map_index]`` of a task, or ``"cli"``.
    """


__all__ = ["Ledger"]
