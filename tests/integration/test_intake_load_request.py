"""``pfi.flows.archive.load_request``: the request of a ledger item, re-read from its archived original."""

import hashlib
from pathlib import Path

import pytest

from pfi.base.errors import InvalidInput, TransientError
from pfi.flows.archive import load_request
from pfi.flows.intake import message_checksum
from pfi.protocols.hl7v2 import Action, split_file
from pfi_devkit.samples import ORU_INIT, control_id

pytestmark = pytest.mark.integration

ORU = ORU_INIT  # the project's ORU sample (pfi_devkit.samples)
CONTROL_ID = control_id(ORU)  # its MSH-10


def record(ledger, path: Path, raw: bytes) -> tuple[int, int]:
    file_id, _ = ledger.record_inbound(
        kind="hl7_file",
        source="sgl",
        checksum=hashlib.sha256(raw).hexdigest(),
        storage_path=str(path),
    )
    chunk = split_file(raw)[0]
    message_id, _ = ledger.record_inbound(
        kind="hl7_message",
        source="sgl",
        checksum=message_checksum(chunk),
        parent_id=file_id,
        original_ref="1",
    )
    return file_id, message_id


def test_a_message_item_gives_back_its_parsed_request(fresh_ledger, samples_dir, tmp_path):
    raw = (samples_dir / ORU).read_bytes()
    archived = tmp_path / "archive.hl7"
    archived.write_bytes(raw)
    file_id, message_id = record(fresh_ledger, archived, raw)

    request = load_request(fresh_ledger, message_id, default_encoding="utf-8")
    assert (request.control_id, request.message_type, request.action) == (
        CONTROL_ID,
        "ORU^R01",
        Action.NEW,
    )
    assert len(request.documents) == 1
    assert load_request(fresh_ledger, file_id).control_id == CONTROL_ID  # a file: first message


def test_a_changed_or_missing_original_is_reported(fresh_ledger, samples_dir, tmp_path):
    raw = (samples_dir / ORU).read_bytes()
    archived = tmp_path / "archive.hl7"
    archived.write_bytes(raw)
    _, message_id = record(fresh_ledger, archived, raw)

    archived.write_bytes(raw.replace(f"|{CONTROL_ID}|".encode(), b"|OTHER|", 1))
    with pytest.raises(InvalidInput) as changed:
        load_request(fresh_ledger, message_id)
    assert changed.value.code == "INTAKE_ORIGINAL_CHANGED"

    archived.unlink()
    with pytest.raises(TransientError) as missing:
        load_request(fresh_ledger, message_id)
    assert missing.value.code == "INTAKE_ORIGINAL_MISSING"
