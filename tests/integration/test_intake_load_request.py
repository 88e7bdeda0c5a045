"""``pfi.flows.archive.load_request``: the request of a ledger item, re-read from its archived original."""

import hashlib
from pathlib import Path

import pytest

from pfi.base.errors import InvalidInput, TransientError
from pfi.flows.archive import load_request
from pfi.flows.intake import message_checksum
from pfi.protocols.hl7v2 import Action, split_file

pytestmark = pytest.mark.integration

ORU = (
    "ans-hl7v2-exemples/Volets/TRANS_DOC_CDA_HL7V2/V2.1/ORU/Transmission initiale ORU/"
    "message_ORU_CR_Bio_INIT_N1_N3.hl7"
)


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


def test_a_message_item_gives_back_its_parsed_request(fresh_ledger, fixtures_dir, tmp_path):
    raw = (fixtures_dir / ORU).read_bytes()
    archived = tmp_path / "archive.hl7"
    archived.write_bytes(raw)
    file_id, message_id = record(fresh_ledger, archived, raw)

    request = load_request(fresh_ledger, message_id, default_encoding="utf-8")
    assert (request.control_id, request.message_type, request.action) == (
        "015",
        "ORU^R01",
        Action.NEW,
    )
    assert len(request.documents) == 2
    assert load_request(fresh_ledger, file_id).control_id == "015"  # a file item: first message


def test_a_changed_or_missing_original_is_reported(fresh_ledger, fixtures_dir, tmp_path):
    raw = (fixtures_dir / ORU).read_bytes()
    archived = tmp_path / "archive.hl7"
    archived.write_bytes(raw)
    _, message_id = record(fresh_ledger, archived, raw)

    archived.write_bytes(raw.replace(b"|015|", b"|016|", 1))
    with pytest.raises(InvalidInput) as changed:
        load_request(fresh_ledger, message_id)
    assert changed.value.code == "INTAKE_ORIGINAL_CHANGED"

    archived.unlink()
    with pytest.raises(TransientError) as missing:
        load_request(fresh_ledger, message_id)
    assert missing.value.code == "INTAKE_ORIGINAL_MISSING"
