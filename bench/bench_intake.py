"""HL7 intake: messages parsed and checked per second; files per second through the intake.

1. **Checks alone** (CPU, no I/O): :func:`pfi.flows.intake.evaluate` — parse, INS, CDA/PID comparison
   (CDA header read with lxml), rule table — on the project's samples at realistic sizes
   (:mod:`bench.inputs`) and malformed variants of them (accepted or refused: refusals cost too),
   and on the accepted ones.
2. **Through the intake on PostgreSQL**: ``LAB_FILES`` lab reports (the project's ORU sample at
   the size of the official ORU "SEGUR" initial example, each with its own MSH-10 and CDA id, so
   that each makes its own document and three deliveries) dropped at once, then claimed, recorded and acknowledged exactly as the
   ``ingest_hl7_drop`` DAG does: :func:`~pfi.flows.intake.claim_and_record` then
   :func:`~pfi.flows.intake.acknowledge_items` per batch of ``BATCH`` — once by a single worker, once
   with ``WORKERS`` processes (the DAG's ``max_active_tis_per_dagrun``; each mapped task is a
   process of its own, with its own ledger connection). Airflow's own task
   overhead (seconds per mapped task) is not included: with batches of 50 it is a few seconds per
   50 files on top of these figures.

PostgreSQL: the server on 127.0.0.1:5432 when it answers, else a private one (``pfi_devkit``).
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tests.pfi_fixtures.site import lab_source, write_settings

from bench.inputs import messages, oru_initial
from pfi_devkit import samples as own

ROUNDS = 5
LAB_FILES = 1000
BATCH = 50
WORKERS = 4


def _samples() -> list[bytes]:
    """The four samples, then one refused variant of each kind intake meets: a wrong INS key,
    PID naming another patient than the CDA, a truncated document, an unsupported event, an
    acknowledgement dropped as a request, a request contradicting itself."""
    good = messages()
    mdm = good[0]
    nir = own.INS.encode()
    b64 = re.compile(rb"(\^Base64\^)([A-Za-z0-9+/=]+)")
    refused = [
        mdm.replace(nir, nir[:-2] + b"00", 1),
        mdm.replace(b"PAT-TROIS^DOMINIQUE^DOMINIQUE", b"MARTINEAU^CAMILLE^", 1),
        b64.sub(lambda m: m.group(1) + m.group(2)[: len(m.group(2)) // 2 + 1], mdm, count=1),
        mdm.replace(b"MDM^T02^MDM_T02", b"MDM^T99^MDM_T02", 1),
        b"MSH|^~\\&|DPI|CH|PFI|CH|20260301||ACK^T02^ACK|77|P|2.6\rMSA|AA|12\r",
        mdm.replace(
            b"DESTMSSANTEPAT^Destinataire Patient^MetaDMPMSS||N",
            b"DESTMSSANTEPAT^Destinataire Patient^MetaDMPMSS||Y",
            1,
        ),
    ]
    return good + refused


def _source(base: Path):
    from pfi.base.settings import Hl7Source

    return Hl7Source(
        name="bench",
        kind="SGL",
        finess_geo="010000032",
        drop_dir=base,
        outbound_dir=base,
        archive_dir=base,
        quarantine_dir=base,
        work_dir=base,
        default_encoding="utf-8",
    )


def _checks() -> dict:
    from pfi.flows.intake import IntakeOptions, evaluate
    from pfi.protocols.ins import InsPolicy

    chunks = _samples()
    source = _source(Path(tempfile.gettempdir()))
    policy, options = InsPolicy.for_environment("test"), IntakeOptions()

    def once(selection: list[bytes]) -> list:
        return [
            evaluate(i, c, source=source, policy=policy, options=options, structure_oid="1.2.3")
            for i, c in enumerate(selection, 1)
        ]

    accepted = [c for c, e in zip(chunks, once(chunks), strict=True) if e.answer.accepted]
    rates = {}
    for name, selection in (("all_samples", chunks), ("accepted_samples", accepted)):
        started = time.perf_counter()
        for _ in range(ROUNDS):
            once(selection)
        elapsed = time.perf_counter() - started
        rates[f"checked_per_s_{name}"] = round(len(selection) * ROUNDS / elapsed, 1)
        rates[f"mib_per_s_{name}"] = round(sum(map(len, selection)) * ROUNDS / elapsed / 2**20, 1)
    rates["samples"] = len(chunks)
    rates["accepted"] = len(accepted)
    return rates


def _lab_messages(count: int) -> list[bytes]:
    """The ORU sample, each copy with its own MSH-10 and CDA id (and so its own bytes)."""
    raw = oru_initial()
    obx = re.search(rb"(OBX\|1\|ED\|[^|]*\|\|\^[^^|]*\^[^^|]*\^Base64\^)([^|\r\n]+)", raw)
    assert obx is not None
    cda = base64.b64decode(obx.group(2) + b"=" * (-len(obx.group(2)) % 4))
    document_id = f'<id root="{own.ORU_ID}"/>'.encode()
    control = f"|{own.control_id(own.ORU_INIT)}|".encode()
    assert document_id in cda and control in raw
    out = []
    for n in range(count):
        unique = cda.replace(document_id, f'<id root="{own.ORU_ID}.{n}"/>'.encode())
        body = raw[: obx.start(2)] + base64.b64encode(unique) + raw[obx.end(2) :]
        out.append(body.replace(control, f"|L{n:06d}|".encode(), 1))
    return out


def _acknowledge(job: tuple[str, str, dict]) -> dict:
    """One mapped task: its own process, settings and ledger connection."""
    from pfi.base.settings import load_settings
    from pfi.flows.intake import acknowledge_items
    from pfi.ledger import Ledger

    url, settings_file, batch = job
    ledger = Ledger.from_url(url)
    try:
        return acknowledge_items(ledger, load_settings(settings_file), batch, actor="bench")
    finally:
        ledger.dispose()


def _through_intake(server, workers: int, messages: list[bytes]) -> dict:
    from pfi.base.settings import load_settings
    from pfi.flows.intake import claim_and_record
    from pfi.ledger import Ledger, upgrade

    url = server.create_database()
    try:
        upgrade(url)
        ledger = Ledger.from_url(url)
        with tempfile.TemporaryDirectory() as tmp:
            settings_file = write_settings(Path(tmp), sources=[lab_source(Path(tmp))])
            settings = load_settings(settings_file)
            drop_dir = settings.source("lab").drop_dir
            drop_dir.mkdir(parents=True)
            past = time.time() - 60
            for n, message in enumerate(messages):
                path = drop_dir / f"lab{n:05d}.hl7"
                path.write_bytes(message)
                os.utime(path, (past, past))
            started = time.perf_counter()
            batches = claim_and_record(
                ledger, settings, batch_size=BATCH, limit=len(messages), actor="bench"
            )
            claimed = time.perf_counter()
            jobs = [(url, str(settings_file), b) for b in batches]
            with ProcessPoolExecutor(workers) as pool:
                results = list(pool.map(_acknowledge, jobs))
            done = time.perf_counter()
        ledger.dispose()
    finally:
        server.drop_database(url.rsplit("/", 1)[1])
    accepted = sum(r["messages_accepted"] for r in results)
    deliveries = sum(r["deliveries"] for r in results)
    assert accepted == len(messages), results[:1]
    return {
        f"files_per_s_{workers}_workers": round(len(messages) / (done - started), 1),
        f"claim_record_per_s_{workers}_workers": round(len(messages) / (claimed - started), 1),
        f"deliveries_{workers}_workers": deliveries,
    }


def run() -> dict:
    from pfi_devkit.postgres import find_or_start

    result = _checks()
    messages = _lab_messages(LAB_FILES)
    with tempfile.TemporaryDirectory() as state:
        server = find_or_start(Path(state))
        result["lab_files"] = LAB_FILES
        result["batch"] = BATCH
        for workers in (1, WORKERS):
            result.update(_through_intake(server, workers, messages))
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
