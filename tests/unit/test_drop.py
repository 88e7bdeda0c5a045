"""Drop directories: only settled files are claimed, atomically; nothing is ever lost."""

import os
import time
from pathlib import Path

import pytest

from pfi.base.settings import Hl7Source
from pfi.flows.drop import NAME_BYTES, archive, batches, claim_ready_files, quarantine
from pfi_fixtures.site import source_in


@pytest.fixture
def source(tmp_path: Path) -> Hl7Source:
    return source_in(tmp_path / "dpi", settle_seconds=2.0)


def drop(source: Hl7Source, name: str, data: bytes, age: float = 10.0) -> Path:
    source.drop_dir.mkdir(parents=True, exist_ok=True)
    path = source.drop_dir / name
    path.write_bytes(data)
    past = time.time() - age
    os.utime(path, (past, past))
    return path


def test_only_settled_visible_matching_files_are_claimed(source):
    drop(source, "a.hl7", b"A")
    drop(source, "b.er7", b"BB")
    drop(source, "fresh.hl7", b"C", age=0)  # the producer may still be writing it
    drop(source, ".hidden.hl7", b"D")
    drop(source, "writing.hl7.part", b"E")
    drop(source, "notes.pdf", b"F")
    claimed = claim_ready_files(source)
    assert sorted(c.original_name for c in claimed) == ["a.hl7", "b.er7"]
    assert all(c.path.parent == source.work_dir for c in claimed)
    assert sorted(p.name for p in source.drop_dir.iterdir()) == [
        ".hidden.hl7",
        "fresh.hl7",
        "notes.pdf",
        "writing.hl7.part",
    ]
    by_name = {c.original_name: c for c in claimed}
    assert by_name["b.er7"].size == 2
    assert len(by_name["a.hl7"].sha256) == 64


def test_files_left_by_a_crashed_run_are_claimed_again_first(source):
    drop(source, "a.hl7", b"A")
    first = claim_ready_files(source)
    drop(source, "b.hl7", b"B")
    second = claim_ready_files(source)  # the first run died before archiving a.hl7
    assert [c.original_name for c in second] == ["a.hl7", "b.hl7"]
    assert second[0].path == first[0].path


def test_a_name_too_long_for_the_work_folder_is_claimed_under_its_end(source):
    long = "CR_" + "é" * 120 + ".hl7"  # 247 bytes: with the claim prefix, over 255
    drop(source, long, b"A")
    drop(source, "short.hl7", b"B")

    claimed = claim_ready_files(source)

    (kept,) = [c.original_name for c in claimed if c.original_name != "short.hl7"]
    assert len(claimed) == 2 and not list(source.drop_dir.iterdir())
    assert len(kept.encode()) <= NAME_BYTES and long.endswith(kept) and kept.endswith("é.hl7")


def test_limit_bounds_a_run(source):
    for i in range(5):
        drop(source, f"m{i}.hl7", b"x", age=10 + i)
    assert len(claim_ready_files(source, limit=3)) == 3
    assert len(list(source.drop_dir.iterdir())) == 2


def test_archive_and_quarantine_keep_the_original_by_date(source):
    drop(source, "a.hl7", b"A")
    drop(source, "b.hl7", b"B")
    a, b = sorted(claim_ready_files(source), key=lambda c: c.original_name)
    archived = archive(source, a)
    assert archived.read_bytes() == b"A"
    assert archived.parent.parent.parent.parent == source.archive_dir
    kept = quarantine(source, b, "HL7_PARSE", "MSH segment missing")
    assert kept.read_bytes() == b"B"
    reason = kept.with_name(kept.name + ".reason.txt").read_text()
    assert reason.startswith("HL7_PARSE\nMSH segment missing\n")
    assert not list(source.work_dir.iterdir())


def test_same_name_twice_in_a_day_does_not_overwrite(source):
    drop(source, "a.hl7", b"first")
    first = archive(source, claim_ready_files(source)[0])
    drop(source, "a.hl7", b"second")
    second = archive(source, claim_ready_files(source)[0])
    assert first != second
    assert first.read_bytes() == b"first" and second.read_bytes() == b"second"


def test_batches_are_bounded():
    assert batches(["1", "2", "3", "4", "5"], 2) == [["1", "2"], ["3", "4"], ["5"]]
    assert batches([], 2) == []
    with pytest.raises(ValueError):
        batches(["1"], 0)
