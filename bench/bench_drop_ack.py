"""Claiming dropped files and building technical ACKs, without the ledger (files per second)."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.pfi_fixtures.site import source_in

from pfi.flows.drop import archive, claim_ready_files
from pfi.protocols.hl7v2.ack import read_header, technical_ack

MESSAGE = (
    b"MSH|^~\\&|DPI|CH|PFI|CH|20260101120000||MDM^T02^MDM_T02|{n}|P|2.6|||||FRA|8859/1|||"
    b"2.1^CISIS_CDA_HL7_V2\rEVN||20260101120000\r" + b"OBX|1|ED|x||" + b"A" * 20000 + b"\r"
)
FILES = 2000


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        source = source_in(base, "bench", settle_seconds=0)
        source.drop_dir.mkdir(parents=True)
        for n in range(FILES):
            (source.drop_dir / f"m{n:05d}.hl7").write_bytes(
                MESSAGE.replace(b"{n}", str(n).encode())
            )
        started = time.perf_counter()
        claimed = claim_ready_files(source, limit=FILES)
        claim_s = time.perf_counter() - started
        started = time.perf_counter()
        now = datetime.now(UTC)
        for index, item in enumerate(claimed):
            ack = technical_ack(
                read_header(item.read_bytes()), "AA", control_id=str(index), now=now
            )
            (source.outbound_dir / f"{index}.ack").write_text(ack)
            archive(source, item, when=now)
        ack_s = time.perf_counter() - started
    return {
        "files": FILES,
        "claim_per_s": round(FILES / claim_s),
        "ack_and_archive_per_s": round(FILES / ack_s),
    }
