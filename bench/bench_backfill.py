"""Historical DMP backfill throughput to the local DMP endpoint, beside the endpoint alone.

Both legs run in the same run, against the same endpoint process (``pfi_devkit.dmp``, as strict
as the tests: VIHF and signature document verified, DMP metadata required), sequentially over
one keep-alive connection — what one ``send_lot`` task does (the ``dmp_backfill`` pool runs
one lot at a time):

- **endpoint alone**: the documents already parsed, each one built (VIHF, XAdES, ITI-41) and
  submitted (:func:`bench.bench_dmp`'s sequential leg, with the backfill's documents);
- **through the flow**: a folder of ``DOCUMENTS`` historical HL7 messages (the project's sample
  imaging report at the size of the official MDM example, test identity; 4 in 5 with a qualified
  INS, 1 in 5 without) planned and sent lot by lot by :mod:`pfi.flows.backfill` — each message
  read by intake's evaluation, recorded in the ledger (PostgreSQL), claimed and sent by the DMP
  sender, its outcome recorded — with no rate limit. Counted over every document looked at
  (sent or skipped: what the operator's progress line counts) and over the documents sent.

``ratio`` = flow documents sent per second / endpoint-alone submissions per second (goal ≥ 0.5).
The local endpoint answers in a few milliseconds, far faster than the national DMP: both legs
are measured again with the endpoint in its ``slow`` mode (``SLOW_DMP_S`` more per request,
``ratio_slow_dmp``), where the PFI's own work per document weighs less.
Also: the dry run's rate (plan + classification, nothing recorded or sent). Not measured here:
the DAG's own overhead (one task process per lot, ~0.2 s each on these machines: negligible
for lots of 250).
"""

from __future__ import annotations

import tempfile
import time
from datetime import date, datetime
from pathlib import Path

from tests.pfi_fixtures.site import write_settings

from bench.bench_dmp import _start_endpoint
from bench.inputs import MDM_PDF_SIZE

DOCUMENTS = 200
LOT = 50
SLOW_DOCUMENTS = 100
SLOW_DMP_S = 0.05
REFERENCE = date(2026, 12, 1)


def _messages(first_serial: int, count: int) -> list[bytes]:
    from pfi_devkit.samples import PARIS, historical_message

    when = datetime(2024, 3, 4, 9, 30, tzinfo=PARIS)
    return [
        historical_message(first_serial + n, when, qualified=bool(n % 5), pdf_size=MDM_PDF_SIZE)
        for n in range(count)
    ]


def _endpoint_alone(messages, endpoints, tls, signer, config) -> float:
    import uuid

    from pfi.protocols.dmp import DmpClient, DmpSubmission, build_request
    from pfi.protocols.hl7v2 import parse_message

    submissions = [DmpSubmission.from_request(parse_message(m)) for m in messages]
    with DmpClient(endpoints, tls, read_timeout=30) as client:
        client.send(
            build_request(
                submissions[0],
                config=config,
                signer=signer,
                endpoints=endpoints,
                request_id=uuid.uuid4(),
            )
        )  # warm-up: TLS handshake, imports
        started = time.perf_counter()
        for submission in submissions[1:]:
            client.send(
                build_request(
                    submission,
                    config=config,
                    signer=signer,
                    endpoints=endpoints,
                    request_id=uuid.uuid4(),
                )
            )
        return (len(submissions) - 1) / (time.perf_counter() - started)


def _set_mode(info: dict, pki, mode: str, delay: float = 0.0) -> None:
    import requests

    answer = requests.post(
        info["control_url"] + "/mode",
        json={"mode": mode, "delay": delay},
        cert=(str(pki.establishment.cert_path), str(pki.establishment.key_path)),
        verify=str(pki.ca_bundle),
        timeout=30,
    )
    answer.raise_for_status()


def _flow(ledger, settings, folder: Path, client, signer, config, *, dry_run: bool = False):
    """Plan and run every lot of a backfill of ``folder``; (totals, seconds)."""
    from pfi.flows import backfill

    params = {
        "source_kind": "hl7",
        "folder": str(folder),
        "finess_geo": "010000032",
        "start_date": "2022-01-01",
        "batch_size": LOT,
        "dry_run": dry_run,
    }
    request = backfill.BackfillRequest.from_params(params, reference=REFERENCE, settings=settings)
    started = time.perf_counter()
    results = [
        backfill.run_batch(
            ledger, settings, lot, client=client, signer=signer, config=config, actor="bench"
        )
        for lot in backfill.plan(ledger, request, reference=REFERENCE)
    ]
    return backfill.summarize(results), time.perf_counter() - started


def _folder(base: Path, name: str, first_serial: int, count: int) -> Path:
    folder = base / name
    folder.mkdir()
    for n, message in enumerate(_messages(first_serial, count)):
        (folder / f"{n:06d}.hl7").write_bytes(message)
    return folder


def run() -> dict:
    from pfi.base.settings import load_settings
    from pfi.ledger import Ledger, upgrade
    from pfi.protocols.dmp import DmpClient, DmpEndpoints, Signer, TlsFiles
    from pfi.protocols.dmp.config import DmpConfig
    from pfi_devkit.pki import build_test_pki
    from pfi_devkit.postgres import find_or_start

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        pki = build_test_pki(base / "pki", ["bench@ch-demo.mssante.test"])
        server = find_or_start(base / "pg")
        url = server.create_database()
        process, info = _start_endpoint(pki)
        try:
            upgrade(url)
            ledger = Ledger.from_url(url)
            settings = load_settings(write_settings(base, name="CH BENCH"))
            endpoints = DmpEndpoints(info["repository_url"], info["registry_url"])
            tls = TlsFiles(pki.establishment.cert_path, pki.establishment.key_path, pki.ca_bundle)
            signer = Signer.from_files(pki.signing.cert_path, pki.signing.key_path)
            config = DmpConfig(source_id="1.2.250.1.71.4.2.2", structure_name="CH BENCH")

            alone = _endpoint_alone(
                [m for i, m in enumerate(_messages(10_000, DOCUMENTS // 2)) if i % 5],
                endpoints,
                tls,
                signer,
                config,
            )

            folder = _folder(base, "history", 20_000, DOCUMENTS)
            _, dry_s = _flow(ledger, settings, folder, None, None, None, dry_run=True)
            with DmpClient(endpoints, tls, read_timeout=30) as client:
                total, flow_s = _flow(ledger, settings, folder, client, signer, config)

            _set_mode(info, pki, "slow", SLOW_DMP_S)
            slow_alone = _endpoint_alone(
                [m for i, m in enumerate(_messages(30_000, SLOW_DOCUMENTS // 2)) if i % 5],
                endpoints,
                tls,
                signer,
                config,
            )
            slow_folder = _folder(base, "history-slow", 40_000, SLOW_DOCUMENTS)
            with DmpClient(endpoints, tls, read_timeout=30) as client:
                slow, slow_s = _flow(ledger, settings, slow_folder, client, signer, config)
            ledger.dispose()
        finally:
            process.terminate()
            process.wait(10)
            server.drop_database(url.rsplit("/", 1)[1])
    sent_rate = total["sent"] / flow_s
    slow_rate = slow["sent"] / slow_s
    return {
        "documents": DOCUMENTS,
        "lot": LOT,
        "sent": total["sent"],
        "skipped": sum(total["skipped"].values()),
        "endpoint_alone_per_s": round(alone, 1),
        "flow_sent_per_s": round(sent_rate, 1),
        "flow_documents_per_s": round(DOCUMENTS / flow_s, 1),
        "ratio": round(sent_rate / alone, 2),
        "dry_run_documents_per_s": round(DOCUMENTS / dry_s, 1),
        "slow_dmp_s": SLOW_DMP_S,
        "endpoint_alone_slow_per_s": round(slow_alone, 1),
        "flow_sent_slow_per_s": round(slow_rate, 1),
        "ratio_slow_dmp": round(slow_rate / slow_alone, 2),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
