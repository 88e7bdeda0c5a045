"""``pfi mss compose --dry-run``: the .eml files a message would produce, nothing sent."""

import email
import email.policy

from pfi.cli import main

ORU = (
    "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/ORU/"
    "Transmission initiale ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7"
)


def test_compose_dry_run_writes_one_eml_per_recipient(fixtures_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PFI_SETTINGS", raising=False)
    argv = ["mss", "compose", str(fixtures_dir / ORU), "--dry-run", "-o", str(tmp_path)]
    assert main([*argv, "--from", "pfi@ch-demo.mssante.test"]) == 0
    files = sorted(tmp_path.glob("*.eml"))
    assert [f.name.split("_", 1)[1].rsplit("_", 1)[0] for f in files] == [
        "mss_professional",
        "mss_patient",
    ]
    recipients = []
    for path in files:
        mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert mail["From"].addresses[0].addr_spec == "pfi@ch-demo.mssante.test"
        assert mail["Message-ID"].startswith("<" + path.stem.rsplit("_", 1)[1] + "@")
        recipients.append(mail["To"])
    assert recipients == ["adam.hoda@test-ci-sis.mssante.fr", "279035121518989@patient.mssante.fr"]
    printed = capsys.readouterr().out
    assert "279035121518989" not in printed  # the patient's address is an INS: not printed
    # Without --dry-run nothing is written: sending goes through the ledger.
    assert main(argv[:3] + ["-o", str(tmp_path / "x"), "--from", "a@b.c"]) == 2
    assert not (tmp_path / "x").exists()
