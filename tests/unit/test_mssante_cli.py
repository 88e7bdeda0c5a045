"""``pfi mss compose --dry-run``: the .eml files a message would produce, nothing sent; usage
errors of ``check`` and ``traces``."""

import email
import email.policy
from pathlib import Path

import pytest

from pfi.cli import main
from pfi_devkit.samples import ORU_INIT as ORU  # the project's ORU sample

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "pfi.example.toml"


def test_compose_dry_run_writes_one_eml_per_recipient(samples_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PFI_SETTINGS", raising=False)
    argv = ["mss", "compose", str(samples_dir / ORU), "--dry-run", "-o", str(tmp_path)]
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


def test_check_names_an_unknown_mailbox(capsys, monkeypatch):
    monkeypatch.setenv("PFI_SETTINGS", str(EXAMPLE))
    assert main(["mss", "check", "--mailbox", "nope"]) == 2  # used to check nothing and exit 0
    assert "unknown mailbox 'nope'" in capsys.readouterr().err


def test_traces_names_a_bad_date(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["mss", "traces", "--since", "yesterday"])
    assert exit_info.value.code == 2
    assert "invalid ISO date value: 'yesterday'" in capsys.readouterr().err
