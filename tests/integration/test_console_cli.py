"""``pfi console …`` on a real ledger: search, timeline, replay (forced or not), trail."""

from __future__ import annotations

import json

import pytest

from pfi.cli import main
from pfi_fixtures.ledger import record_document

pytestmark = pytest.mark.integration

INS = "279035121518989"


@pytest.fixture
def ledger(fresh_ledger, fresh_ledger_url, monkeypatch):
    monkeypatch.setenv("PFI_LEDGER_URL", fresh_ledger_url)
    monkeypatch.delenv("PFI_SETTINGS", raising=False)
    return fresh_ledger


def run(capsys, *argv: str) -> tuple[int, object]:
    code = main(["console", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_search_timeline_replay_and_trail(ledger, capsys):
    recorded = record_document(
        ledger,
        "1.2.250.1.999.7^cli",
        "dmp",
        control_id="CLI-1",
        finess_geo="750712184",
        ins_matricule=INS,
        ins_oid="1.2.250.1.213.1.4.10",
        ins_qualified=True,
        actor="deliver_dmp/submit_due/manual__1[0]",
    )
    ledger.mark_delivery(recorded.delivery_id, "sent", partner_ref="urn:1")

    code, page = run(capsys, "search", "--control-id", "CLI-1", "--operator", "ana")
    assert code == 0 and [r["id"] for r in page["rows"]] == [recorded.delivery_id]
    assert page["rows"][0]["ins"] == "•••"
    code, page = run(capsys, "search", "--ins", INS, "--show-identity", "--operator", "ana")
    assert page["rows"][0]["ins"] == INS

    code, found = run(capsys, "timeline", "1.2.250.1.999.7^cli", "--operator", "ana")
    assert code == 0 and found["document"]["ins"] == "•••"
    assert {
        "dag_id": "deliver_dmp",
        "task_id": "submit_due",
        "run_id": "manual__1",
        "map_index": 0,
    } in [s["task"] for s in found["steps"]]

    code, done = run(
        capsys, "replay", str(recorded.delivery_id), "--reason", "perdu", "--operator", "ana"
    )
    assert code == 1 and done["duplicate"] == [recorded.delivery_id]  # sent: not without --force
    code, done = run(
        capsys,
        "replay",
        str(recorded.delivery_id),
        "--reason",
        "perdu",
        "--force",
        "--operator",
        "ana",
    )
    assert code == 0 and len(done["forced"]) == 1
    code, trail = run(capsys, "audit")
    kinds = {(r["kind"], r["operator"]) for r in trail["rows"]}
    assert ("operator.replay_forced", "ana") in kinds
    assert main(["console", "timeline", "nothing-such"]) == 1
