"""The monthly indicators over a ledger of 1,000,000 deliveries: time and peak memory of one
month's report (goal ≤ 30 s, ≤ 1 GiB), beside its bound measured in the same run.

The ledger is filled in bulk inside PostgreSQL (``INSERT … SELECT generate_series``, not timed):
``DOCUMENTS`` documents over three FINESS géographiques and the eleven Ségur types plus one other,
and ``DELIVERIES`` deliveries over the four channels (DMP 300k with 10 % historical, MSSanté
professionals 300k, patient 250k, DPI 150k, each DPI one with its received mail), 85 % sent, 5 %
failed, 5 % refused, 5 % pending, their outcomes spread over the 24 months up to October 2026,
plus refused mails. Then, measured (each timing the median of ``REPEAT`` runs, after one
warm-up query):

1. **query alone** — :meth:`pfi.ledger.Ledger.indicator_counts` over the report's 22 months: what
   the report cannot beat (PostgreSQL's scan and aggregation, and the rows brought back);
2. **report** — :func:`pfi.flows.stats.write_monthly_reports` for 2026-10: that query, the pandas
   tables, one CSV per FINESS géographique written atomically; its ratio to the query alone;
3. **peak memory** — the report again under ``tracemalloc`` (Python and numpy allocations), and
   the process's maximum RSS after it.

PostgreSQL: the server on 127.0.0.1:5432 when it answers, else a private one (``pfi_devkit``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
import tracemalloc
from datetime import date
from pathlib import Path

from tests.pfi_fixtures.site import write_settings

from bench.inputs import SPREAD_MOMENT, median_seconds, sql_array

DOCUMENTS = 300_000
#: (channel, how many, recipient expression): 1,000,000 in all.
CHANNELS = (
    ("dmp", 300_000, "NULL"),
    ("mss_professional", 300_000, "'dr' || (g % 97) || '@hopital.mssante.test'"),
    ("mss_patient", 250_000, "NULL"),
    ("dpi", 150_000, "'inbox#' || g"),
)
DELIVERIES = sum(count for _, count, _ in CHANNELS)
REFUSED_MAILS = 2_000
MONTH = date(2026, 10, 1)
REPEAT = 3
FINESS = ("010000032", "010000040", "330000019")
TYPES = (
    "11490-0",
    "18761-7",
    "34874-8",
    "57833-6",
    "PRESC-BIO",
    "11488-4",
    "11502-2",
    "18748-4",
    "34112-3",
    "77436-4",
    "15507-7",
    "11506-3",
)


def _fill(engine) -> None:
    from sqlalchemy import text

    finess, types = sql_array(FINESS), sql_array(TYPES)
    statements = [
        f"""INSERT INTO document (unique_id, type_code, finess_geo, ins_qualified,
                ins_matricule, ins_oid)
            SELECT 'bench.' || g, ({types})[1 + g % {len(TYPES)}], ({finess})[1 + g % 3],
                   g % 4 <> 0,
                   CASE WHEN g % 4 <> 0 THEN lpad(g::text, 15, '1') END,
                   CASE WHEN g % 4 <> 0 THEN '1.2.250.1.213.1.4.10' END
            FROM generate_series(1, {DOCUMENTS}) g""",
        f"""INSERT INTO inbound_item (kind, source, finess_geo, checksum, status, received_at)
            SELECT 'mail', 'inbox', ({finess})[1 + g % 3], md5(g::text) || md5('m' || g),
                   CASE WHEN g > {CHANNELS[3][1]} THEN 'rejected' ELSE 'done' END, {SPREAD_MOMENT}
            FROM generate_series(1, {CHANNELS[3][1] + REFUSED_MAILS}) g""",
    ]
    for channel, count, recipient in CHANNELS:
        historical = "g % 10 = 0" if channel == "dmp" else "false"
        item = "(SELECT min(id) FROM inbound_item) + g - 1" if channel == "dpi" else "NULL"
        statements.append(
            f"""INSERT INTO delivery (document_id, channel, recipient, action, status,
                    next_attempt_at, last_attempt_at, sent_at, request_id, historical,
                    qualified_ins, finess_geo, type_code, inbound_item_id)
                SELECT d.id, '{channel}', {recipient},
                       (ARRAY['new', 'new', 'new', 'new', 'new', 'new', 'replace',
                              'delete'])[1 + g % 8],
                       s.status,
                       CASE WHEN s.status = 'pending' THEN {SPREAD_MOMENT} END,
                       CASE WHEN s.status <> 'pending' THEN {SPREAD_MOMENT} END,
                       CASE WHEN s.status = 'sent' THEN {SPREAD_MOMENT} END,
                       gen_random_uuid(), {historical}, d.ins_qualified, d.finess_geo,
                       d.type_code, {item}
                FROM generate_series(1, {count}) g
                JOIN document d ON d.unique_id = 'bench.' || (1 + (g - 1) % {DOCUMENTS})
                CROSS JOIN LATERAL (SELECT CASE
                    WHEN g % 20 = 1 THEN 'failed' WHEN g % 20 = 2 THEN 'refused'
                    WHEN g % 20 = 3 THEN 'pending' ELSE 'sent' END AS status) s"""
        )
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def run() -> dict:
    from sqlalchemy import text

    from pfi.base.settings import load_settings
    from pfi.flows.stats import months_covered, write_monthly_reports
    from pfi.ledger import Ledger, upgrade
    from pfi_devkit.postgres import find_or_start

    state = Path(tempfile.mkdtemp(prefix="pfi-bench-stats-", dir="/tmp"))
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
        assert count == DELIVERIES, count
        (state / "site" / "in").mkdir(parents=True)
        settings = load_settings(write_settings(state / "site"))
        months = months_covered(MONTH)

        rows = ledger.indicator_counts(months[0], date(2026, 11, 1))  # warm the cache once
        query_s = median_seconds(
            lambda: ledger.indicator_counts(months[0], date(2026, 11, 1)), REPEAT
        )
        report_s = median_seconds(
            lambda: write_monthly_reports(ledger, settings, MONTH, output_dir=state / "out"), REPEAT
        )
        written = sorted((state / "out").iterdir())

        tracemalloc.start()
        write_monthly_reports(ledger, settings, MONTH, output_dir=state / "out2")
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        same = all(p.read_bytes() == (state / "out2" / p.name).read_bytes() for p in written)
        assert same and len(written) == len(FINESS), written
        ledger.dispose()
    finally:
        server.drop_database(url.rsplit("/", 1)[1])
        shutil.rmtree(state, ignore_errors=True)
    import resource

    return {
        "deliveries": DELIVERIES,
        "fill_s": round(fill_s, 1),
        "rows_from_query": len(rows),
        "query_alone_s": round(query_s, 2),
        "report_s": round(report_s, 2),
        "report_to_query_ratio": round(report_s / query_s, 2),
        "report_traced_peak_mib": round(traced_peak / 2**20, 1),
        "process_max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "files": len(written),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
