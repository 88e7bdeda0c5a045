"""``python -m pfi_devkit audit``: a clone's logs searched for the patient data of what its stack
received — found by kind, the datum never printed; partial tokens are no hit; a clean tree exits 0.

A fake clone root (no env file: the databases are not scanned, no server is started)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pfi_devkit import samples
from pfi_devkit.__main__ import main as devkit_main
from pfi_devkit.audit import (
    PatientData,
    audit,
    collect_from_stack,
    collect_patient_data,
    scan_files,
)
from pfi_devkit.demo import read_env_file as read_env

INS = samples.INS
#: Lines operators may see that name no patient: a longer number holding the INS, a partial
#: name, a timestamp starting with the birth date, the INS without its first digit.
CLEAN_LINES = [
    "[2026-12-03T16:10:00] file item 12: 1 message(s), 1 accepted, 0 refused, kept in archive",
    f"control id 9{INS}1 at 197903281200 uid 1.2.250.1.71.4.2.2.1010000032.7.3",
    "patient PAT, DOMINIQUES, TROISIEME, 1979, 03-28",
    f"checksum {INS[1:]}",
]


def clone(tmp_path: Path, *, leak: str | None = None) -> Path:
    """A clone root as ``make run`` leaves it: a dropped sample archived, a message the DPI
    received, logs (``var/log``, an Airflow task log of JSON lines) — ``leak`` in the task log."""
    root = tmp_path / "clone"
    archive = root / "var/demo/data/sources/dpi/archive"
    archive.mkdir(parents=True)
    (archive / "chaos-100001.hl7").write_bytes(samples.sample_bytes(samples.ORU_INIT, 100_001))
    (root / "var/devkit/dpi-received").mkdir(parents=True)
    (root / "var/devkit/dpi-received/00001-MSG1.hl7").write_bytes(
        samples.sample_bytes(samples.MDM_INIT, 7)
    )
    (root / "var/log").mkdir()
    (root / "var/log/scheduler.log").write_text("\n".join(CLEAN_LINES) + "\n")
    task_log = root / "var/airflow/logs/dag_id=intake_dpi/run_id=x/task_id=acknowledge"
    task_log.mkdir(parents=True)
    lines = [
        {"timestamp": "2026-12-03T16:10:00Z", "level": "info", "event": text}
        for text in CLEAN_LINES
    ]
    if leak is not None:
        lines.append({"level": "error", "event": f"Traceback (most recent call last):\n{leak}"})
    (task_log / "attempt=1.log").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root


def test_the_stack_s_inputs_give_the_patient_data(tmp_path):
    collected = collect_from_stack(clone(tmp_path))
    assert collected.messages >= 2 + len(samples.NAMES)
    tokens = collected.data.tokens
    for datum in (INS, INS[:13], "pat-trois", "dominique", "19790328", "1979-03-28"):
        assert datum in tokens, datum
    assert tokens[f"{INS}@patient.mssante.fr"] == "PRT patient address"  # PRT-15
    assert collected.data.slices


@pytest.mark.parametrize(
    ("leak", "kind"),
    [
        (f"ValueError: no mailbox for {INS}", "PID-3 INS"),
        (f"ValueError: no mailbox for {INS[:13]}", "PID-3 INS without key"),
        ("InvalidInput: patient Pat-Trois not found", "PID-5 name"),
        ("birth 1979-03-28 differs", "PID-7 birth date"),
        (f"refused {INS}@patient.mssante.fr", "PRT patient address"),
    ],
)
def test_a_planted_datum_is_reported_by_kind_never_printed(tmp_path, leak, kind):
    root = clone(tmp_path, leak=leak)
    out = io.StringIO()
    assert audit(root, out=out) == 1
    text = out.getvalue()
    task_log = "var/airflow/logs/dag_id=intake_dpi/run_id=x/task_id=acknowledge/attempt=1.log"
    assert f"  {task_log}:{len(CLEAN_LINES) + 1} : {kind}\n" in text, text
    assert "scheduler.log" not in text  # the clean lines, in both logs, are no hit
    for datum in (INS, INS[:13], "PAT-TROIS", "Pat-Trois", "DOMINIQUE", "19790328", "1979-03-28"):
        assert datum not in text, datum


def test_a_clean_tree_exits_0_and_says_what_was_scanned(tmp_path, capsys):
    root = clone(tmp_path)
    assert devkit_main(["audit", "--root", str(root)]) == 0
    text = capsys.readouterr().out
    assert "scanned: 2 log files (8 lines)" in text
    assert "databases not scanned: no var/airflow/airflow.env" in text
    assert text.endswith("no patient datum found\n")


def test_the_file_scan_alone_and_a_content_slice(tmp_path):
    root = clone(tmp_path)
    data = PatientData()
    collect_patient_data(samples.sample_bytes(samples.MDM_INIT), data)
    piece = next(iter(data.slices))
    with (root / "var/log/scheduler.log").open("a") as log:
        log.write(f"payload: xx{piece}yy\n")
    scan = scan_files(root, data)
    assert [(h.source, h.kind) for h in scan.hits] == [
        (f"var/log/scheduler.log:{len(CLEAN_LINES) + 1}", "document base64 (content slice)")
    ]
    assert (scan.files, scan.lines) == (2, 2 * len(CLEAN_LINES) + 1)


def test_short_tokens_are_not_searched():
    data = PatientData()
    data.token("IPP", "123")
    data.token("given name", "Li")
    assert data.tokens == {}
    assert data.kinds_in("IPP 123, Li") == []


def test_no_var_is_a_usage_error(tmp_path):
    assert devkit_main(["audit", "--root", str(tmp_path)]) == 2


def test_the_env_file_is_read_as_run_sh_sources_it(tmp_path):
    env = tmp_path / "airflow.env"
    env.write_text(
        "# comment\nAIRFLOW__DATABASE__SQL_ALCHEMY_CONN='postgresql+psycopg2://u:p@h/db'\n"
    )
    assert read_env(env) == {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://u:p@h/db"
    }
