"""The vertical slice without Airflow: drop → claim → ledger → ACK → archive/quarantine.

Inputs: the project's MDM samples (``pfi_devkit.samples``, twins of the official v2.1 MDM
examples); the official examples themselves go through intake in ``test_intake_processing``.
"""

import os
import time
from pathlib import Path

import pytest

from pfi.base.settings import load_settings
from pfi.flows.intake import acknowledge_items, claim_and_record
from pfi.protocols.hl7v2.ack import read_header, split_segments
from pfi_devkit.samples import MDM_INIT, MDM_RPLC
from pfi_fixtures.site import drop_sample, hl7_source, ingest, write_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path):
    return load_settings(write_settings(tmp_path, sources=[hl7_source(tmp_path, "ris", "RIS")]))


def drop(settings, sample: Path, name: str | None = None) -> Path:
    return drop_sample(settings.source("ris").drop_dir, sample, name)


def run(ledger, settings):
    return ingest(ledger, settings, batch_size=2, limit=100)


def acks(settings) -> dict[str, list[str]]:
    out = settings.source("ris").outbound_dir
    return {p.name: split_segments(p.read_text("utf-8")) for p in sorted(out.glob("ACK_*"))}


def test_samples_are_recorded_acknowledged_and_archived(fresh_ledger, settings, samples_dir):
    drop(settings, samples_dir / MDM_INIT)
    drop(settings, samples_dir / MDM_RPLC)
    (settings.source("ris").drop_dir / "garbage.hl7").write_bytes(b"this is not HL7")
    os.utime(settings.source("ris").drop_dir / "garbage.hl7", (time.time() - 5,) * 2)

    batches, results = run(fresh_ledger, settings)

    assert [len(b["item_ids"]) for b in batches] == [2, 1]  # bounded batches
    assert sum(r["acknowledged"] for r in results) == 2
    assert sum(r["rejected"] for r in results) == 1
    answers = acks(settings)
    msa = sorted(segments[1] for segments in answers.values())
    expected_ids = {
        read_header((samples_dir / p).read_bytes()).control_id for p in (MDM_INIT, MDM_RPLC)
    }
    assert {line for line in msa if line.startswith("MSA|AA|")} == {
        f"MSA|AA|{c}" for c in expected_ids
    }
    assert any(line.startswith("MSA|AE|") for line in msa)

    items = fresh_ledger.find_inbound(source="ris", kind="hl7_file")
    assert sorted(i.status for i in items) == ["done", "done", "rejected"]
    rejected = next(i for i in items if i.status == "rejected")
    assert rejected.reason_code == "HL7_PARSE"
    assert Path(rejected.storage_path).read_bytes() == b"this is not HL7"
    assert Path(rejected.storage_path + ".reason.txt").read_text().startswith("HL7_PARSE")
    for item in items:
        assert Path(item.storage_path).is_file()  # nothing lost
    assert not list(settings.source("ris").work_dir.iterdir())


def test_replaying_a_batch_does_nothing_twice(fresh_ledger, settings, samples_dir):
    drop(settings, samples_dir / MDM_INIT)
    batches, _ = run(fresh_ledger, settings)
    again = acknowledge_items(fresh_ledger, settings, batches[0], actor="test")
    assert again["skipped"] == 1 and again["acknowledged"] == 0
    assert len(acks(settings)) == 1


def test_the_same_file_dropped_again_is_kept_and_answered_again(
    fresh_ledger, settings, samples_dir
):
    drop(settings, samples_dir / MDM_INIT)
    run(fresh_ledger, settings)
    ack_dir = settings.source("ris").outbound_dir
    for ack in ack_dir.iterdir():
        ack.unlink()  # the producer consumed its ACK... and drops the message again
    drop(settings, samples_dir / MDM_INIT, name="again.er7")
    batches, _ = run(fresh_ledger, settings)

    assert batches == []  # nothing new to process
    items = fresh_ledger.find_inbound(source="ris", kind="hl7_file")
    assert len(items) == 1
    assert [s[1][:7] for s in acks(settings).values()] == ["MSA|AA|"]
    events = fresh_ledger.events(inbound_item_id=items[0].id, kind="inbound.duplicate_drop")
    assert len(events) == 1
    assert (
        Path(events[0].detail["archived_copy"]).read_bytes()
        == (samples_dir / MDM_INIT).read_bytes()
    )


def test_a_crash_after_claiming_is_finished_by_the_next_run(fresh_ledger, settings, samples_dir):
    drop(settings, samples_dir / MDM_INIT)
    claim_and_record(fresh_ledger, settings, batch_size=10, limit=100, actor="test")
    # ... the worker died here: the file is in the work folder, the item is "received"
    batches, results = run(fresh_ledger, settings)
    assert results[0]["acknowledged"] == 1
    assert [i.status for i in fresh_ledger.find_inbound(source="ris", kind="hl7_file")] == ["done"]
