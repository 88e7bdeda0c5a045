"""The operator console's search over a ledger of 1,000,000 deliveries: each query's time (goal
< 1 s) beside a bound measured in the same run, as a ratio.

The ledger is filled in bulk inside PostgreSQL (``INSERT … SELECT generate_series``, not timed):
``DOCUMENTS`` documents over three FINESS géographiques, each brought by an HL7 message of its
own (``MSG<n>`` as MSH-10, sources dpi/sgl/ris); 1,000,000 deliveries over the four channels,
created over the 24 months up to October 2026, 85 % sent, 5 % failed, 5 % refused, 5 % pending;
the mails' Message-IDs as the partner's reference. Then each query of
:func:`pfi.flows.console.search` (one page of 50, as the page asks it) and of the timeline, the
median of ``REPEAT`` runs after one warm-up — including searches nothing matches, the worst
case of a page's scan —, beside the **bound**: one delivery read by its
primary key (:meth:`pfi.ledger.Ledger.get_delivery`), the cheapest round trip the ledger has.

PostgreSQL: the server on 127.0.0.1:5432 when it answers, else a private one (``pfi_devkit``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.inputs import SPREAD_MOMENT, median_seconds, sql_array

DOCUMENTS = 300_000
CHANNELS = (
    ("dmp", 300_000, "NULL"),
    ("mss_professional", 300_000, "'dr' || (g % 97) || '@hopital.mssante.test'"),
    ("mss_patient", 250_000, "NULL"),
    ("dpi", 150_000, "'dpi'"),
)
DELIVERIES = sum(count for _, count, _ in CHANNELS)
FINESS = ("010000032", "010000040", "330000019")
SOURCES = ("dpi", "sgl", "ris")
REPEAT = 5
GOAL_S = 1.0
PARIS = ZoneInfo("Europe/Paris")


def _fill(engine) -> None:
    from sqlalchemy import text

    finess, sources = sql_array(FINESS), sql_array(SOURCES)
    statements = [
        f"""INSERT INTO inbound_item (kind, source, finess_geo, checksum, control_id,
                message_type, status, received_at)
            SELECT 'hl7_message', ({sources})[1 + g % 3], ({finess})[1 + g % 3],
                   md5(g::text) || md5('h' || g), 'MSG' || g, 'MDM^T02^MDM_T02',
                   CASE WHEN g % 50 = 0 THEN 'rejected' ELSE 'done' END, {SPREAD_MOMENT}
            FROM generate_series(1, {DOCUMENTS}) g""",
        f"""INSERT INTO document (unique_id, type_code, finess_geo, ins_qualified,
                ins_matricule, ins_oid, inbound_item_id, created_at)
            SELECT 'bench.' || g, '11490-0', ({finess})[1 + g % 3], g % 4 <> 0,
                   CASE WHEN g % 4 <> 0 THEN lpad(g::text, 15, '1') END,
                   CASE WHEN g % 4 <> 0 THEN '1.2.250.1.213.1.4.10' END,
                   (SELECT min(id) FROM inbound_item) + g - 1, {SPREAD_MOMENT}
            FROM generate_series(1, {DOCUMENTS}) g""",
    ]
    for channel, count, recipient in CHANNELS:
        mail = channel.startswith("mss")
        statements.append(
            f"""INSERT INTO delivery (document_id, channel, recipient, action, status,
                    next_attempt_at, last_attempt_at, sent_at, request_id, partner_ref,
                    reason_code, qualified_ins, finess_geo, type_code, created_at)
                SELECT d.id, '{channel}', {recipient}, 'new', s.status,
                       CASE WHEN s.status = 'pending' THEN {SPREAD_MOMENT} END,
                       CASE WHEN s.status <> 'pending' THEN {SPREAD_MOMENT} END,
                       CASE WHEN s.status = 'sent' THEN {SPREAD_MOMENT} END,
                       gen_random_uuid(),
                       CASE WHEN s.status = 'sent' AND {mail}
                            THEN '<' || g || '.{channel}@pfi.test>' END,
                       CASE WHEN s.status IN ('failed', 'refused')
                            THEN upper('{channel}') || '_' || upper(s.status) END,
                       d.ins_qualified, d.finess_geo, d.type_code, {SPREAD_MOMENT}
                FROM generate_series(1, {count}) g
                JOIN document d ON d.unique_id = 'bench.' || (1 + (g - 1) % {DOCUMENTS})
                CROSS JOIN LATERAL (SELECT CASE
                    WHEN g % 20 = 1 THEN 'failed' WHEN g % 20 = 2 THEN 'refused'
                    WHEN g % 20 = 3 THEN 'pending' ELSE 'sent' END AS status) s"""
        )
    statements.append(
        """INSERT INTO event (kind, document_id, delivery_id, actor, detail)
           SELECT 'delivery.status', document_id, id, 'deliver_dmp/send/bench[0]', '{}'::jsonb
           FROM delivery"""
    )
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def run() -> dict:
    from sqlalchemy import text

    from pfi.flows import console
    from pfi.ledger import Ledger, upgrade
    from pfi.ledger.console import Search
    from pfi_devkit.postgres import find_or_start

    state = Path(tempfile.mkdtemp(prefix="pfi-bench-console-", dir="/tmp"))
    server = find_or_start(state / "pg")
    url = server.create_database()
    try:
        upgrade(url)
        ledger = Ledger.from_url(url)
        started = time.perf_counter()
        _fill(ledger.engine)
        fill_s = time.perf_counter() - started
        with ledger.engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM delivery")).scalar()
            middle = conn.execute(text("SELECT id FROM delivery ORDER BY id OFFSET 500000 LIMIT 1"))
            deep = middle.scalar()
            a_document = conn.execute(
                text("SELECT document_id FROM delivery WHERE id = :id"), {"id": deep}
            ).scalar()
        assert count == DELIVERIES, count
        viewer = console.Operator("bench", frozenset({console.METADATA}))
        admin = console.Operator("bench-admin", frozenset({console.ADMIN}))
        day = datetime(2025, 6, 12, tzinfo=PARIS)
        month = (datetime(2026, 9, 1, tzinfo=PARIS), datetime(2026, 10, 1, tzinfo=PARIS))
        queries = {
            "unique_id": (viewer, Search(unique_id="bench.123456"), "deliveries"),
            "control_id": (viewer, Search(control_id="MSG223344"), "deliveries"),
            "message_id_sent": (
                viewer,
                Search(message_id="<104.mss_professional@pfi.test>"),
                "deliveries",
            ),
            "ins": (admin, Search(ins=str(77777).rjust(15, "1")), "deliveries"),
            "failed_dmp": (viewer, Search(channel="dmp", status="failed"), "deliveries"),
            "refused_finess_month": (
                viewer,
                Search(status="refused", finess_geo=FINESS[1], since=month[0], until=month[1]),
                "deliveries",
            ),
            "failed_dmp_finess_day": (
                viewer,
                Search(
                    channel="dmp",
                    status="failed",
                    finess_geo=FINESS[2],
                    since=day,
                    until=day.replace(day=13),
                ),
                "deliveries",
            ),
            "source_sgl": (viewer, Search(source="sgl"), "deliveries"),
            "sent_one_hour": (
                viewer,
                Search(status="sent", since=day, until=day.replace(hour=1)),
                "deliveries",
            ),
            "no_filter": (viewer, Search(), "deliveries"),
            # nothing matches: the worst case of a scan that stops after a page
            "absent_source": (viewer, Search(source="absent"), "deliveries"),
            "absent_finess_failed": (
                viewer,
                Search(finess_geo="999999999", status="failed"),
                "deliveries",
            ),
            "future_dpi": (
                viewer,
                Search(channel="dpi", since=datetime(2030, 1, 1, tzinfo=PARIS)),
                "deliveries",
            ),
            "items_control_id": (viewer, Search(control_id="MSG42"), "items"),
            "items_rejected_day": (
                viewer,
                Search(status="rejected", since=day, until=day.replace(day=13)),
                "items",
            ),
        }
        bound_s = median_seconds(lambda: ledger.get_delivery(deep), 21, warm_up=True)
        results: dict[str, float] = {}
        for name, (who, criteria, what) in queries.items():
            results[name] = median_seconds(
                lambda who=who, criteria=criteria, what=what: console.search(
                    ledger, who, criteria, what=what, limit=50
                ),
                REPEAT,
                warm_up=True,
            )
        results["page_deep_keyset"] = median_seconds(
            lambda: console.search(ledger, viewer, Search(), before_id=deep, limit=50),
            REPEAT,
            warm_up=True,
        )
        results["timeline"] = median_seconds(
            lambda: console.timeline(ledger, viewer, a_document), REPEAT, warm_up=True
        )
        results["audit_page"] = median_seconds(
            lambda: console.audit(ledger, viewer), REPEAT, warm_up=True
        )
        ledger.dispose()
    finally:
        server.drop_database(url.rsplit("/", 1)[1])
        shutil.rmtree(state, ignore_errors=True)
    slowest = max(results, key=results.__getitem__)
    return {
        "deliveries": DELIVERIES,
        "fill_s": round(fill_s, 1),
        "bound_get_delivery_ms": round(bound_s * 1000, 2),
        **{f"{name}_ms": round(seconds * 1000, 1) for name, seconds in results.items()},
        **{f"{name}_ratio": round(seconds / bound_s, 1) for name, seconds in results.items()},
        "slowest": slowest,
        "slowest_ms": round(results[slowest] * 1000, 1),
        "all_under_1s": all(seconds < GOAL_S for seconds in results.values()),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
