"""``pfi ins check``: coded answers, never the matricule or a name in the output."""

import json

import pytest

from pfi.cli import main

CDA = "ans-hl7v2-exemples/Vague 2/RIS/transmission_initiale_cr_imagerie.xml"
TRAITS = [
    "--birth-name",
    "PAT-TROIS",
    "--first-given",
    "DOMINIQUE",
    "--birth-date",
    "19790328",
    "--sex",
    "F",
    "--birthplace",
    "63220",
]


@pytest.fixture(autouse=True)
def no_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("PFI_SETTINGS", str(tmp_path / "absent.toml"))


def check(capsys, *args) -> tuple[int, dict]:
    code = main(["ins", "check", *args])
    out = capsys.readouterr().out
    assert "279035121518989" not in out and "PAT-TROIS" not in out
    return code, json.loads(out)


def test_a_valid_qualified_test_ins(capsys):
    code, report = check(capsys, "--ins", "279035121518989", "--status", "VALI", *TRAITS)
    assert code == 0
    assert report["valid"] and report["qualified"] and report["dmp_allowed"]
    assert report["oid"] == "1.2.250.1.213.1.4.10"


def test_a_bad_key_and_a_production_oid_on_a_test_site(capsys):
    code, report = check(capsys, "--ins", "279035121518988", "--oid", "1.2.250.1.213.1.4.8")
    assert code == 1
    assert [f["code"] for f in report["failures"]] == ["INS_KEY", "INS_OID_ENVIRONMENT"]
    # The intake refuses such a message (AE): nothing goes out, not even professional mail.
    assert not report["dmp_allowed"] and not report["professional_mail_allowed"]


def test_corsica_keys_and_unqualified_status(capsys):
    from pfi.protocols.ins import ins_key

    matricule = "180092A123456"
    matricule += ins_key(matricule)
    code, report = check(capsys, "--ins", matricule, "--status", "PROV")
    assert code == 0 and report["valid"] and not report["qualified"]
    assert [f["code"] for f in report["not_qualified_because"]] == [
        "INS_TRAIT_MISSING",
        "INS_NOT_QUALIFIED",
    ]


def test_comparison_with_a_cda_header(capsys, fixtures_dir):
    cda = str(fixtures_dir / CDA)
    assert check(capsys, "--ins", "279035121518989", *TRAITS, "--cda", cda)[0] == 0
    other = [t if t != "DOMINIQUE" else "CLAUDE" for t in TRAITS]
    code, report = check(capsys, "--ins", "279035121518989", *other, "--cda", cda)
    assert code == 1
    assert [m["code"] for m in report["cda_mismatches"]] == ["INS_MISMATCH_GIVEN_NAME"]
    assert report["valid"]  # the INS itself is fine, but the intake refuses the mismatch
    assert not report["dmp_allowed"] and not report["patient_mailbox_allowed"]
    assert not report["professional_mail_allowed"]


def test_a_valid_unqualified_ins_still_allows_professional_mail(capsys):
    code, report = check(capsys, "--ins", "279035121518989", "--status", "PROV", *TRAITS)
    assert code == 0 and not report["qualified"]
    assert not report["dmp_allowed"] and report["professional_mail_allowed"]
