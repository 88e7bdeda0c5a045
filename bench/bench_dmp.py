"""DMP submissions per second to the local endpoint (devkit), sequential and concurrent.

Each submission is what ``deliver_dmp`` sends: a signed VIHF, the XAdES signature document, the
ITI-41 metadata of the project's MDM radiology sample at the size of the official example
(:func:`bench.inputs.mdm_initial`; a distinct uniqueId each time), MTOM over
HTTPS with mutual TLS, and the answer parsed. The endpoint runs in its own process, as strict as
the tests make it (VIHF and signature document verified, DMP metadata required), so its own cost
is part of the figure: read the numbers as an order of magnitude of the PFI's side plus a
checking server on the same machine, not as the DMP's throughput.

Measured: building a request alone (CPU: two RSA signatures, XML), sequential submissions over
one keep-alive connection, and ``WORKERS`` threads each with its own connection (what the Airflow
pool ``dmp`` allows at once: one connection per running task).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = 50
SEQUENTIAL = 100
CONCURRENT = 200
WORKERS = (2, 4)


def _submissions(count: int):
    from bench.inputs import mdm_initial
    from pfi.protocols.cda import Identifier
    from pfi.protocols.dmp import DmpSubmission
    from pfi.protocols.hl7v2 import parse_message

    base = DmpSubmission.from_request(parse_message(mdm_initial()))
    root = base.header.id.root
    for _ in range(count):
        unique = f"{uuid.uuid4().int}"
        yield replace(
            base,
            header=replace(base.header, id=Identifier(f"{root}.{unique}")),
            cda=base.cda + f"<!-- bench {unique} -->".encode(),
        )


def _start_endpoint(pki):
    command = [
        sys.executable,
        "-m",
        "pfi_devkit.dmp",
        "--cert",
        str(pki.server.cert_path),
        "--key",
        str(pki.server.key_path),
        "--ca",
        str(pki.ca_bundle),
        "--verify-vihf",
        "--require-signature-document",
        "--strict-metadata",
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'include'}{os.pathsep}{ROOT}"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    line = process.stdout.readline()
    return process, json.loads(line)


def run() -> dict:
    from pfi.protocols.dmp import DmpClient, DmpEndpoints, Signer, TlsFiles, build_request
    from pfi.protocols.dmp.config import DmpConfig
    from pfi_devkit.pki import build_test_pki

    with tempfile.TemporaryDirectory() as tmp:
        pki = build_test_pki(Path(tmp) / "pki", ["bench@ch-demo.mssante.test"])
        process, info = _start_endpoint(pki)
        try:
            endpoints = DmpEndpoints(info["repository_url"], info["registry_url"])
            tls = TlsFiles(pki.establishment.cert_path, pki.establishment.key_path, pki.ca_bundle)
            signer = Signer.from_files(pki.signing.cert_path, pki.signing.key_path)
            config = DmpConfig(source_id="1.2.250.1.71.4.2.2", structure_name="CH BENCH")

            def build(sub):
                return build_request(
                    sub, config=config, signer=signer, endpoints=endpoints, request_id=uuid.uuid4()
                )

            subs = list(_submissions(BUILD))
            started = time.perf_counter()
            for sub in subs:
                build(sub)
            build_s = time.perf_counter() - started

            subs = list(_submissions(SEQUENTIAL))
            with DmpClient(endpoints, tls, read_timeout=30) as client:
                client.send(build(next(_submissions(1))))  # warm-up: TLS handshake, imports
                started = time.perf_counter()
                for sub in subs:
                    client.send(build(sub))
                sequential_s = time.perf_counter() - started

            concurrent = {}
            for workers in WORKERS:
                subs = list(_submissions(CONCURRENT))
                chunks = [subs[i::workers] for i in range(workers)]

                def worker(chunk):
                    with DmpClient(endpoints, tls, read_timeout=30) as own:
                        for sub in chunk:
                            own.send(build(sub))
                    return len(chunk)

                started = time.perf_counter()
                with ThreadPoolExecutor(workers) as pool:
                    done = sum(pool.map(worker, chunks))
                concurrent[workers] = round(done / (time.perf_counter() - started), 1)
        finally:
            process.terminate()
            process.wait(10)
    result = {
        "build_per_s": round(BUILD / build_s, 1),
        "sequential_submissions": SEQUENTIAL,
        "sequential_per_s": round(SEQUENTIAL / sequential_s, 1),
        "sequential_ms_each": round(1000 * sequential_s / SEQUENTIAL, 1),
    }
    for workers, rate in concurrent.items():
        result[f"concurrent_{workers}_per_s"] = rate
    return result
