"""A ledger of known deliveries and received mails for the monthly indicators' golden files.

:func:`fill_known_ledger` writes, through the ledger's own write path (``record_message``,
``mark_delivery`` with the outcome's time), what :data:`EXPECTED` counts by hand (historical
deliveries as a backfill records them); the one time the ledger takes from the clock, a mail's
``received_at``, is set with SQL afterwards. The report of ``2026-10`` covers 2025-01 to
2026-10; FINESS géographique ``010000032`` and ``010000040`` are the site's (settings of
:func:`site_settings`), ``330000019`` is only in the ledger, ``010000040`` has nothing.

Paris time: summer time until 25 October 2026 (UTC+2), winter time after (UTC+1). So
2026-09-30 21:59 UTC is 23:59 on 30 September, 2026-10-31 22:59 UTC is 23:59 on 31 October and
2026-10-31 23:30 UTC is 00:30 on 1 November: three deliveries, three months.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from pfi.ledger import Ledger
from pfi_fixtures.ledger import record_document
from pfi_fixtures.site import write_settings

A, B, C = "010000032", "010000040", "330000019"
LDL, CRO, CRC, BIO, IMG = "11490-0", "34874-8", "11488-4", "11502-2", "18748-4"
OTHER = "11506-3"  # a LOINC type outside the Ségur list
DR1, DR2 = "dr.un@hopital.mssante.test", "dr.deux@hopital.mssante.test"
INS = "248067504302336"
MAILBOX = "inbox"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


#: The non-zero cells of each report of 2026-10, computed by hand from the fill below:
#: (FINESS, month, type code) → {column header: value}. Every other cell is 0.
EXPECTED: dict[tuple[str, str, str], dict[str, int]] = {
    (A, "2026-10", LDL): {
        # doc-1 new + doc-1 deletion (each delivery is one send); doc-2 refused, doc-3 given up
        "DMP flux - succès": 2,
        "DMP flux - échecs": 2,
        # doc-1 new (qualified), doc-6 replacement (qualified), doc-1 deletion (qualified)
        "MSSanté professionnels - succès": 3,
        "MSSanté professionnels - échecs": 1,  # doc-2 to DR2, refused, INS not qualified
        "MSSanté professionnels INS qualifié - succès": 3,
        "MSSanté professionnels - documents mis à jour envoyés": 1,
        "MSSanté professionnels - documents supprimés envoyés": 1,
        "MSSanté patient - succès": 1,
    },
    (A, "2026-10", CRO): {"DMP flux - succès": 1},  # 2026-10-31 22:59 UTC
    (A, "2026-09", CRO): {"DMP flux - succès": 1},  # 2026-09-30 21:59 UTC
    (A, "2026-10", CRC): {"DMP historique - succès": 1, "DMP historique - échecs": 1},
    (A, "2025-03", IMG): {"DMP flux - succès": 1},
    (A, "2026-10", OTHER): {"MSSanté patient - échecs": 1},
    (A, "2026-10", BIO): {
        "Réception MSSanté - transmis au DPI succès": 2,  # R1 (mail of 5 Oct), R5 (sent 2 Oct)
        "Réception MSSanté - transmis au DPI échecs": 1,  # R2, refused by the DPI
        # R2 (replacement, refused) and R3 (deletion, still pending): received in October
        "Réception MSSanté - demandes de mise à jour ou suppression reçues": 2,
    },
    (A, "2026-09", BIO): {
        # R5: a replacement whose mail came on 30 September (22:00 Paris), sent on 2 October
        "Réception MSSanté - demandes de mise à jour ou suppression reçues": 1,
    },
    (A, "2026-10", ""): {"Réception MSSanté - transmis au DPI échecs": 1},  # mail refused unread
    (C, "2026-10", LDL): {"DMP flux - succès": 1},
}


def site_settings(folder: Path) -> Path:
    """The test site with two FINESS géographiques (A, B) and the application mailbox."""
    (folder / "in").mkdir(parents=True, exist_ok=True)
    mailbox = (
        f'[[mailbox]]\nname = "{MAILBOX}"\naddress = "reception@hopital.mssante.test"\n'
        f'finess_geo = "{A}"\n'
    )
    return write_settings(
        folder,
        mailboxes=[mailbox],
        extra=f'[[site.finess_geo]]\nfiness = "{B}"\nname = "B"\n',
    )


def _sent(ledger: Ledger, recorded, *moments: datetime, status: str = "sent") -> None:
    for delivery_id, moment in zip(recorded.delivery_ids, moments, strict=True):
        ledger.mark_delivery(delivery_id, status, at=moment)


def _mail(
    ledger: Ledger,
    number: int,
    unique_id: str,
    action: str,
    received: datetime,
    *,
    type_code: str = BIO,
) -> tuple[int, int]:
    """A received mail carrying one document: its item id and its dpi delivery's id."""
    outcome = ledger.record_message(
        kind="mail",
        source=MAILBOX,
        checksum=f"{number:064x}",
        finess_geo=A,
        status="done",
        documents=[{"unique_id": unique_id, "type_code": type_code}],
        deliveries=[("dpi", f"{MAILBOX}#{number}", "pending")],
        action=action,
        actor="test",
    )
    _received_at(ledger, outcome.item.id, received)
    (delivery,) = ledger.deliveries_asked_by(outcome.item.id)
    return outcome.item.id, delivery.id


def _received_at(ledger: Ledger, item_id: int, moment: datetime) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(
            text("UPDATE inbound_item SET received_at = :at WHERE id = :id"),
            {"at": moment, "id": item_id},
        )


def fill_known_ledger(ledger: Ledger) -> None:
    """Write the deliveries and mails :data:`EXPECTED` counts (see the module docstring)."""
    qualified = {"ins_matricule": INS, "ins_oid": "1.2.250.1.213.1.4.10", "ins_qualified": True}
    common = {"type_code": LDL, "finess_geo": A}
    # FINESS A, LDL, October 2026
    doc1 = record_document(
        ledger, "1.2.250.1.999.1^1", "dmp", ("mss_professional", DR1), "mss_patient",
        content_sha256="1" * 64, **common, **qualified,
    )  # fmt: skip
    _sent(ledger, doc1, utc(2026, 10, 10, 8), utc(2026, 10, 10, 9), utc(2026, 10, 10, 10))
    doc2 = record_document(ledger, "1.2.250.1.999.2^1", "dmp", ("mss_professional", DR2), **common)
    _sent(ledger, doc2, utc(2026, 10, 11, 8), utc(2026, 10, 11, 9), status="refused")
    doc3 = record_document(ledger, "1.2.250.1.999.3^1", "dmp", **common)
    _sent(ledger, doc3, utc(2026, 10, 12, 8), status="failed")  # given up
    record_document(ledger, "1.2.250.1.999.4^1", "dmp", **common)  # pending: not counted
    record_document(ledger, "1.2.250.1.999.5^1", "dmp", status="held", **common)  # held
    doc6 = record_document(
        ledger, "1.2.250.1.999.6^1", ("mss_professional", DR1), action="replace",
        replaces_unique_id="1.2.250.1.999.1^1", **common, **qualified,
    )  # fmt: skip
    _sent(ledger, doc6, utc(2026, 10, 13, 8))
    deletion = record_document(
        ledger, "1.2.250.1.999.1^1", "dmp", ("mss_professional", DR1), action="delete",
        **common,
    )  # fmt: skip
    _sent(ledger, deletion, utc(2026, 10, 14, 8), utc(2026, 10, 14, 9))
    # FINESS A, CR opératoire: the month boundaries in Paris time
    for n, moment in ((1, utc(2026, 9, 30, 21, 59)), (2, utc(2026, 10, 31, 22, 59))):
        cro = record_document(ledger, f"1.2.250.1.999.7{n}^1", "dmp", type_code=CRO, finess_geo=A)
        _sent(ledger, cro, moment)
    late = record_document(ledger, "1.2.250.1.999.73^1", "dmp", type_code=CRO, finess_geo=A)
    _sent(ledger, late, utc(2026, 10, 31, 23, 30))  # 00:30 on 1 November in Paris
    # FINESS A, historical documents (a backfill's deliveries), October 2026
    for n, status in ((1, "sent"), (2, "refused")):
        old = ledger.record_message(
            source="backfill",
            checksum=f"{80 + n:064x}",
            status="done",
            documents=[{"unique_id": f"1.2.250.1.999.8{n}^1", "type_code": CRC,
                        "finess_geo": A, **qualified}],
            deliveries=[("dmp", None, "pending")],
            historical=True,
            actor="test",
        )  # fmt: skip
        (delivery,) = ledger.deliveries_asked_by(old.item.id)
        assert delivery.historical
        ledger.mark_delivery(delivery.id, status, at=utc(2026, 10, 15, 8))
    # FINESS A: previous year, and before the covered months (2024: not in any column)
    img = record_document(ledger, "1.2.250.1.999.9^1", "dmp", type_code=IMG, finess_geo=A)
    _sent(ledger, img, utc(2025, 3, 15, 8))
    older = record_document(ledger, "1.2.250.1.999.91^1", "dmp", type_code=IMG, finess_geo=A)
    _sent(ledger, older, utc(2024, 12, 31, 22, 30))  # 23:30 on 31 December 2024 in Paris
    # FINESS A: a type outside the Ségur list
    other = record_document(
        ledger, "1.2.250.1.999.10^1", "mss_patient", type_code=OTHER, finess_geo=A, **qualified
    )
    _sent(ledger, other, utc(2026, 10, 16, 8), status="failed")
    # FINESS C: only the ledger names it
    seen = record_document(ledger, "1.2.250.1.999.11^1", "dmp", type_code=LDL, finess_geo=C)
    _sent(ledger, seen, utc(2026, 10, 17, 8))
    # Received by the mailbox of FINESS A: the documents carry no FINESS of their own
    _, r1 = _mail(ledger, 1, "1.2.250.1.888.1^1", "new", utc(2026, 10, 5, 8))
    ledger.mark_delivery(r1, "sent", at=utc(2026, 10, 5, 8, 1))
    _, r2 = _mail(ledger, 2, "1.2.250.1.888.2^1", "replace", utc(2026, 10, 6, 8))
    ledger.mark_delivery(r2, "refused", at=utc(2026, 10, 6, 8, 1), reason_code="DPI_207")
    _mail(ledger, 3, "1.2.250.1.888.3^1", "delete", utc(2026, 10, 20, 8))  # DPI down: pending
    _, r5 = _mail(ledger, 5, "1.2.250.1.888.5^1", "replace", utc(2026, 9, 30, 20))
    ledger.mark_delivery(r5, "sent", at=utc(2026, 10, 2, 8))
    refused = ledger.record_message(
        kind="mail",
        source=MAILBOX,
        checksum=f"{4:064x}",
        finess_geo=A,
        status="rejected",
        reason_code="MSS_NO_XDM",
        reason_text="no IHE_XDM.ZIP",
        actor="test",
    )
    _received_at(ledger, refused.item.id, utc(2026, 10, 7, 8))


__all__ = ["EXPECTED", "fill_known_ledger", "site_settings"]
