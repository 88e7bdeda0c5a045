"""End to end through Airflow: documents per second from the drop directory to the DMP and to a
professional's mailbox, latency, memory — beside the partners alone, measured in the same run.

``make bench e2e`` (or ``make e2e``): runs on ``make run``'s stack (started when it does not
run; left running), with its partners (the devkit's DMP endpoint and SMTP relay):

1. **partners alone**: ``DOCUMENTS`` ITI-41 submissions straight to the DMP endpoint with the
   demo's DMP Connection, two at a time (what the Airflow pool ``dmp`` allows), and as many
   mails straight to the SMTP relay over one session with the application mailbox's
   certificate (what one ``deliver_mssante`` task does): the partner-bound limit is the slower;
2. **through Airflow**: ``DOCUMENTS`` MDM samples (each a new document: one DMP submission and
   one professional's mail) written at once into the DPI's drop directory; the event-driven
   DAGs take them (``ingest_hl7_drop`` → ``deliver_dmp`` / ``deliver_mssante``). Completion is
   read from the ledger (each delivery's ``sent_at``); the rate is documents over the time from
   the drop to the last delivery sent, the latency of a document from the drop to its later
   delivery. Memory: the peak of the summed RSS of the Airflow components, sampled.

The ratio is the Airflow rate over the partner-bound limit (goal ≥ 0.5). Each stage's own rate
(``stage_*_per_s``: intake from the drop to its last delivery recorded, each channel from its
first send to its last) shows which one bounds the rest.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = int(os.environ.get("PFI_E2E_DOCUMENTS", "60"))
TIMEOUT = 900.0
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def _stack_env() -> dict[str, str]:
    """The demo's environment (``var/airflow/airflow.env``), ``make run`` first if needed."""
    if not (ROOT / "var/run/scheduler.pid").exists() or not _alive("scheduler"):
        subprocess.run(["make", "run"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    from pfi_devkit.demo import read_env_file

    return read_env_file(ROOT / "var/airflow/airflow.env")


def _alive(component: str) -> bool:
    try:
        os.kill(int((ROOT / f"var/run/{component}.pid").read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


def _dmp_alone(env: dict[str, str]) -> float:
    from pfi.base.connections import Connection
    from pfi.protocols.cda import Identifier
    from pfi.protocols.dmp import DmpSubmission, build_request
    from pfi.protocols.dmp import connection as dmp_connection
    from pfi.protocols.dmp.config import DmpConfig
    from pfi.protocols.hl7v2 import parse_message
    from pfi_devkit import samples

    conn = Connection.from_mapping("pfi_dmp", json.loads(env["AIRFLOW_CONN_PFI_DMP"]))
    signer = dmp_connection.signer(conn)
    config = DmpConfig(source_id="1.2.250.1.71.4.2.2", structure_name="CH BENCH")
    base = DmpSubmission.from_request(parse_message(samples.sample_bytes(samples.MDM_INIT)))
    endpoints = dmp_connection.endpoints(conn)

    def one(client) -> None:
        unique = f"{base.header.id.root}.{uuid.uuid4().int}"
        sub = replace(base, header=replace(base.header, id=Identifier(unique)))
        request = build_request(
            sub, config=config, signer=signer, endpoints=endpoints, request_id=uuid.uuid4()
        )
        client.send(request)

    def worker(count: int) -> int:
        with dmp_connection.client(conn) as client:
            for _ in range(count):
                one(client)
        return count

    worker(1)  # warm-up: handshake, imports
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        done = sum(pool.map(worker, [DOCUMENTS // 2, DOCUMENTS - DOCUMENTS // 2]))
    return done / (time.perf_counter() - started)


def _smtp_alone(env: dict[str, str]) -> float:
    from pfi.base.connections import Connection
    from pfi.protocols.hl7v2 import decide_request, parse_message
    from pfi.protocols.ins import InsPolicy
    from pfi.protocols.mssante import Mailbox, MssConfig, compose, mail_orders
    from pfi.protocols.mssante.connection import endpoints
    from pfi.protocols.mssante.smtp import SmtpClient
    from pfi_devkit import samples

    data = json.loads(env["AIRFLOW_CONN_PFI_MSS_PFI"])
    smtp_endpoint, _ = endpoints(Connection.from_mapping("pfi_mss_pfi", data))
    policy = InsPolicy.for_environment("test")
    request = parse_message(samples.sample_bytes(samples.MDM_INIT))
    (order,) = mail_orders(request, decide_request(request, policy), policy)
    config = MssConfig(software_reference="PFI-BENCH")
    mails = [
        compose(
            request,
            replace(order, request_id=uuid.uuid4()),
            Mailbox(smtp_endpoint.mailbox),
            config,
        )
        for _ in range(DOCUMENTS + 1)
    ]
    with SmtpClient(smtp_endpoint) as smtp:
        smtp.send(mails[0])  # warm-up
        started = time.perf_counter()
        for mail in mails[1:]:
            smtp.send(mail)
        return DOCUMENTS / (time.perf_counter() - started)


def _rss_mib() -> float:
    """Summed RSS of the Airflow components and their children (task processes)."""
    pids = []
    for component in COMPONENTS:
        try:
            pids.append(int((ROOT / f"var/run/{component}.pid").read_text()))
        except (OSError, ValueError):
            continue
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,pgid=,rss="], capture_output=True, text=True, check=True
    ).stdout
    total = 0
    for line in out.splitlines():
        pid, pgid, rss = (int(x) for x in line.split())
        if pgid in pids or pid in pids:
            total += rss
    return total / 1024


def _through_airflow(env: dict[str, str]) -> dict:
    from sqlalchemy import select

    from pfi.ledger import Ledger
    from pfi.ledger.schema import delivery, document
    from pfi_devkit import samples

    ledger = Ledger.from_url(env["AIRFLOW_CONN_PFI_LEDGER"])
    drop = ROOT / "var/demo/hl7/dpi/in"
    # A range of its own per run (10,000 serials a second, clear of the demo's and the chaos
    # campaign's): two runs 100 s apart overlapped and the second counted the first's sends.
    first = 1_000_000_000 + (int(time.time()) % 100_000) * 10_000
    serials = range(first, first + DOCUMENTS)
    wanted = {samples.document_ids(serial)[0] for serial in serials}
    staged = []
    for serial in serials:
        hidden = drop / f".e2e-{serial}.hl7"
        hidden.write_bytes(samples.sample_bytes(samples.MDM_INIT, serial))
        staged.append(hidden)
    dropped_at = time.time()
    for hidden in staged:
        os.rename(hidden, hidden.with_name(hidden.name[1:]))
    query = (
        select(
            document.c.unique_id,
            delivery.c.channel,
            delivery.c.status,
            delivery.c.created_at,
            delivery.c.sent_at,
        )
        .join(delivery, delivery.c.document_id == document.c.id)
        .where(
            document.c.unique_id.in_(wanted), delivery.c.channel.in_(("dmp", "mss_professional"))
        )
    )
    peak = 0.0
    try:
        while True:
            peak = max(peak, _rss_mib())
            with ledger.engine.connect() as conn:
                rows = conn.execute(query).all()
            done = [r for r in rows if r.status == "sent"]
            if len(done) == 2 * DOCUMENTS:
                break
            if time.time() - dropped_at > TIMEOUT:
                raise SystemExit(f"{len(done)} of {2 * DOCUMENTS} deliveries sent in {TIMEOUT} s")
            time.sleep(0.5)
    finally:
        ledger.dispose()
    latest: dict[str, float] = {}
    for row in done:
        at = row.sent_at.timestamp()
        latest[row.unique_id] = max(latest.get(row.unique_id, 0.0), at)
    latencies = sorted(at - dropped_at for at in latest.values())
    elapsed = max(latencies)
    return {
        "per_s": DOCUMENTS / elapsed,
        "stages": _stage_rates(done, dropped_at),
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
        "peak_rss_mib": peak,
    }


def _stage_rates(done: list, dropped_at: float) -> dict[str, float]:
    """Where the time went: each stage's documents per second over its own span — intake from
    the drop to its last delivery recorded, each channel from its first send to its last."""
    created = max(row.created_at.timestamp() for row in done)
    rates = {"intake": DOCUMENTS / max(created - dropped_at, 1e-3)}
    for channel in ("dmp", "mss_professional"):
        sent = sorted(row.sent_at.timestamp() for row in done if row.channel == channel)
        rates[channel] = (len(sent) - 1) / max(sent[-1] - sent[0], 1e-3)
    return {f"stage_{name}_per_s": round(rate, 1) for name, rate in rates.items()}


def run() -> dict:
    sys.path.insert(0, str(ROOT / "include"))
    env = _stack_env()
    os.environ.update({k: v for k, v in env.items() if k.startswith(("AIRFLOW_CONN_", "PFI_"))})
    dmp = _dmp_alone(env)
    smtp = _smtp_alone(env)
    through = _through_airflow(env)
    bound = min(dmp, smtp)
    return {
        "documents": DOCUMENTS,
        "dmp_alone_2_workers_per_s": round(dmp, 1),
        "smtp_alone_one_session_per_s": round(smtp, 1),
        "airflow_documents_per_s": round(through["per_s"], 2),
        "ratio_to_partner_bound": round(through["per_s"] / bound, 2),
        "latency_p50_s": round(through["p50_s"], 1),
        "latency_p95_s": round(through["p95_s"], 1),
        "airflow_peak_rss_mib": round(through["peak_rss_mib"]),
        **through["stages"],
    }


if __name__ == "__main__":
    print(json.dumps({"benchmark": "e2e", **run()}))
