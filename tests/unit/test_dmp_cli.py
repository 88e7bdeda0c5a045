"""``pfi dmp submit --dry-run``: the request printed, patient data masked unless asked. Inputs:
the project's MDM samples (``pfi_devkit.samples``)."""

import pytest

from pfi.cli import main
from pfi_devkit.samples import MDM_DEL as DELETION
from pfi_devkit.samples import MDM_INIT as INITIAL

IDENTITY = ("279035121518989", "PAT-TROIS", "DOMINIQUE")


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch):
    monkeypatch.delenv("PFI_SETTINGS", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_PFI_DMP", raising=False)


def test_dry_run_prints_the_iti41_with_patient_data_masked(samples_dir, capsys):
    assert main(["dmp", "submit", str(samples_dir / INITIAL), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# ITI-41 urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b")
    assert "saml2:Assertion" in out and "ProvideAndRegisterDocumentSetRequest" in out
    assert "throw-away key" in out and "patient data masked" in out
    for value in IDENTITY:
        assert value.lower() not in out.lower()


def test_show_identity_prints_the_request_as_sent(samples_dir, capsys, test_pki):
    argv = ["dmp", "submit", str(samples_dir / INITIAL), "--dry-run", "--show-identity"]
    argv += ["--signing-cert", str(test_pki.signing.cert_path)]
    argv += ["--signing-key", str(test_pki.signing.key_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "279035121518989^^^&amp;1.2.250.1.213.1.4.10&amp;ISO^NH" in out
    assert "signed with given" in out


def test_a_deletion_prints_an_iti57(samples_dir, capsys):
    assert main(["dmp", "submit", str(samples_dir / DELETION), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# ITI-57 urn:ihe:iti:2010:UpdateDocumentSet")
    assert "urn:asip:ci-sis:2010:StatusType:Deleted" in out


def test_submit_without_dry_run_sends_nothing(samples_dir, capsys):
    assert main(["dmp", "submit", str(samples_dir / INITIAL)]) == 2
    assert "pfi dmp run" in capsys.readouterr().err


def _settings_naming(tmp_path, monkeypatch, conn_id: str) -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "config" / "pfi.example.toml"
    text = example.read_text(encoding="utf-8").replace('dmp = "pfi_dmp"', f'dmp = "{conn_id}"')
    assert f'dmp = "{conn_id}"' in text
    settings = tmp_path / "pfi.toml"
    settings.write_text(text, encoding="utf-8")
    monkeypatch.setenv("PFI_SETTINGS", str(settings))


def test_the_connection_named_by_the_settings_is_used(samples_dir, capsys, tmp_path, monkeypatch):
    _settings_naming(tmp_path, monkeypatch, "site_dmp")
    monkeypatch.setenv("AIRFLOW_CONN_PFI_DMP", '{"extra": {"repository_url": "https://wrong/r"}}')
    monkeypatch.setenv(
        "AIRFLOW_CONN_SITE_DMP",
        '{"conn_type": "http", "extra": {"repository_url": "https://dmp.site/r",'
        ' "registry_url": "https://dmp.site/g"}}',
    )
    assert main(["dmp", "submit", str(samples_dir / INITIAL), "--dry-run"]) == 0
    assert "# POST https://dmp.site/r" in capsys.readouterr().out
    # dmp run names the Connection it looks for (it used to read AIRFLOW_CONN_PFI_DMP only).
    monkeypatch.delenv("AIRFLOW_CONN_SITE_DMP")
    assert main(["dmp", "run", "--url", "postgresql://nobody@invalid/x"]) == 2
    assert "AIRFLOW_CONN_SITE_DMP" in capsys.readouterr().err


def test_the_dry_run_reads_the_connection_as_the_dag_does(samples_dir, capsys, monkeypatch):
    """Host-based default URLs and the URI form, as ``DmpHook`` (one mapping for both)."""
    monkeypatch.setenv("AIRFLOW_CONN_PFI_DMP", '{"conn_type": "http", "host": "dmp.site"}')
    assert main(["dmp", "submit", str(samples_dir / INITIAL), "--dry-run"]) == 0
    assert "# POST https://dmp.site/si-dmp-server/v2/services/repository" in capsys.readouterr().out
    monkeypatch.setenv("AIRFLOW_CONN_PFI_DMP", "http://dmp.site:8443/https?registry_url=x")
    assert main(["dmp", "submit", str(samples_dir / DELETION), "--dry-run"]) == 0
    assert "# POST x" in capsys.readouterr().out


def test_dmp_run_names_the_missing_extra_of_its_connection(tmp_path, capsys, monkeypatch):
    _settings_naming(tmp_path, monkeypatch, "site_dmp")
    monkeypatch.setenv("AIRFLOW_CONN_SITE_DMP", '{"host": "dmp.site", "extra": {"x": 1}}')
    assert main(["dmp", "run", "--url", "postgresql://nobody@invalid/x"]) == 2
    assert "Connection site_dmp: extra.signing_cert is missing" in capsys.readouterr().err
