"""Traces of the MSSanté exchanges (DSR SC.MSS/CONF.17-18): who, to whom, when, which document,
what came of it — read from the ledger's deliveries and their event trail.

Each trace line is one action on an application mailbox, as :mod:`pfi.flows.mssante` wrote it:
an attempt (``mss.sending``), its result (``mss.sent`` / ``mss.error`` with the code), a
notification read back (``mss.dsn`` / ``mss.mdn``), an acknowledgement to the producer
(``mss.zam``). The ledger's trail is append-only (a trigger refuses updates and deletions), so
the traces cannot be rewritten; their retention is the ledger's.

No document content, and no patient identity: the document is named by its unique id and type,
a professional recipient by the address the delivery row holds, the patient as ``patient``
(their address is an INS).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pfi.protocols.mssante.compose import CHANNELS, PATIENT

if TYPE_CHECKING:
    from pfi.ledger import Ledger

PATIENT_LABEL = "patient"

_KINDS = {
    "mss.sending": "attempt",
    "mss.sent": "sent",
    "mss.error": "error",
    "mss.dsn": "delivery-notification",
    "mss.mdn": "read-notification",
    "mss.zam": "acknowledgement",
}


@dataclass(frozen=True)
class MssTrace:
    """One action on an MSSanté mailbox."""

    at: datetime
    what: str
    actor: str
    mailbox: str
    channel: str
    recipient: str
    document: str
    document_type: str
    action: str
    outcome: str
    message_id: str
    delivery_id: int


def _outcome(kind: str, detail: dict[str, Any]) -> str:
    if kind == "mss.sending":
        return f"attempt {detail.get('attempt', '')}".strip()
    if kind == "mss.sent":
        asked = [n for n in ("dsn", "mdn") if detail.get(f"{n}_requested")]
        return "accepted" + (f" ({'+'.join(asked)} requested)" if asked else "")
    if kind == "mss.error":
        return str(detail.get("code") or "error")
    if kind == "mss.dsn":
        return f"{detail.get('action', '')} {detail.get('status', '')}".strip()
    if kind == "mss.mdn":
        modifier = detail.get("modifier")
        error = detail.get("error_code")
        text = str(detail.get("disposition", ""))
        if modifier:
            text += f"/{modifier}"
        return text + (f" {error}" if error else "")
    if kind == "mss.zam":
        sign = "Y" if detail.get("positive") else "N"
        error = f" ERR {detail['error']}" if detail.get("error") else ""
        return f"ZAM^{detail.get('event', '')} {sign}{error}"
    return ""


def mss_traces(
    ledger: Ledger,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    channel: str | None = None,
    document_unique_id: str | None = None,
    recipient: str | None = None,
    delivery_id: int | None = None,
    limit: int = 10000,
) -> list[MssTrace]:
    """Trace lines in time order, filtered by period, channel, document, recipient, delivery."""
    rows = ledger.delivery_events(
        tuple(_KINDS),
        channels=CHANNELS,
        since=since,
        until=until,
        channel=channel,
        document_unique_id=document_unique_id,
        recipient=recipient,
        delivery_id=delivery_id,
        limit=limit,
    )
    return [
        MssTrace(
            at=row.at,
            what=_KINDS[row.kind],
            actor=row.actor,
            mailbox=str(row.detail.get("mailbox") or ""),
            channel=row.channel,
            recipient=PATIENT_LABEL if row.channel == PATIENT else (row.recipient or ""),
            document=row.unique_id,
            document_type=row.type_code or "",
            action=row.action,
            outcome=_outcome(row.kind, dict(row.detail)),
            message_id=str(row.detail.get("message_id") or row.partner_ref or ""),
            delivery_id=row.delivery_id,
        )
        for row in rows
    ]


def traces_csv(traces: Iterable[MssTrace]) -> str:
    """CSV (``;``-separated, as French spreadsheets open it) with a header line."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    names = [f.name for f in fields(MssTrace)]
    writer.writerow(names)
    for trace in traces:
        row = [getattr(trace, name) for name in names]
        row[0] = trace.at.isoformat(timespec="seconds")
        writer.writerow(row)
    return out.getvalue()


__all__ = ["PATIENT_LABEL", "MssTrace", "mss_traces", "traces_csv"]
