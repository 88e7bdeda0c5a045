"""``pfi hl7 inspect``: the intake's own checks on a file, as JSON, patient data only on demand."""

import json

import pytest

from pfi.cli import main

V21 = "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1"
ORU_INIT = f"{V21}/ORU/Transmission initiale ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7"
MDM_SHORT = f"{V21}/MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1.er7"


@pytest.fixture(autouse=True)
def no_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("PFI_SETTINGS", str(tmp_path / "absent.toml"))


def inspect(capsys, *args) -> tuple[int, dict]:
    code = main(["hl7", "inspect", *map(str, args)])
    return code, json.loads(capsys.readouterr().out)


def test_an_accepted_request_shows_its_decision_documents_and_deliveries(capsys, fixtures_dir):
    code, report = inspect(capsys, fixtures_dir / ORU_INIT)
    assert code == 0 and report["ins_environment"] == "test"
    [message] = report["messages"]
    assert (message["control_id"], message["message_type"], message["ack"]) == (
        "015",
        "ORU^R01",
        "AA",
    )
    assert message["action"] == "new" and message["flags"]["dest_dmp"] is True
    assert [w["code"] for w in message["warnings"]] == ["HL7_MAIL_BODY_BASE64"]
    assert message["ledger_documents"][0]["unique_id"] == "1.2.250.1.213.1.1.9"
    assert [(d["channel"], d["recipient"]) for d in message["deliveries"]] == [
        ("dmp", None),
        ("mss_professional", "(hidden)"),
        ("mss_patient", None),
    ]
    assert message["patient"] == {
        "has_ins": True,
        "ins_oid": "1.2.250.1.213.1.4.10",
        "ins_qualified": True,
        "identity_reliability": ["VALI"],
    }
    text = json.dumps(report)
    assert "279035121518989" not in text and "PAT-TROIS" not in text


def test_identity_only_with_show_identity(capsys, fixtures_dir):
    _, report = inspect(capsys, fixtures_dir / ORU_INIT, "--show-identity")
    [message] = report["messages"]
    assert message["patient"]["ins"] == "279035121518989"
    assert message["patient"]["birth_name"] == "PAT-TROIS"
    assert message["deliveries"][1]["recipient"] == "adam.hoda@test-ci-sis.mssante.fr"


def test_refusals_are_listed_with_their_codes(capsys, fixtures_dir, tmp_path):
    code, report = inspect(capsys, fixtures_dir / MDM_SHORT)
    assert code == 1
    [message] = report["messages"]
    assert message["ack"] == "AE" and message["reason"]["code"] == "HL7_DOC_FORMAT"
    assert message["reason"]["volet_code"] == "906"

    production = inspect(capsys, fixtures_dir / ORU_INIT, "--environment", "production")[1]
    assert production["messages"][0]["reason"]["code"] == "INS_OID_ENVIRONMENT"

    empty = tmp_path / "empty.hl7"
    empty.write_bytes(b"")
    code, report = inspect(capsys, empty)
    assert code == 1 and report["messages"][0]["reason"]["code"] == "INTAKE_EMPTY_FILE"
