"""``pfi config check``: the core settings and each flow's own section, one report."""

from pathlib import Path

from pfi.cli import main
from pfi_fixtures.site import write_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "pfi.example.toml"


def settings_with(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "in").mkdir()
    return write_settings(tmp_path, extra=extra)


def test_the_flow_sections_are_checked_by_their_own_parsers(tmp_path, capsys):
    path = settings_with(
        tmp_path,
        """
[intake]
hold_channels = ["fax"]
[mssante]
colour = "blue"
[mssante.retry]
factor = "fast"
[[mllp_inlet]]
source = "lab"
""",
    )

    assert main(["config", "check", "--settings", str(path)]) == 1

    out = capsys.readouterr().out
    assert "problem: [intake]" in out
    assert "problem: [mssante]" in out
    assert "problem: [mssante.retry]" in out
    assert "problem: [[mllp_inlet]]" in out
    assert "4 problem(s)" in out


def test_sound_sections_pass_and_the_option_works_before_or_after_the_group(tmp_path, capsys):
    path = settings_with(tmp_path, '[intake]\nhold_channels = ["dmp"]\n')

    assert main(["config", "check", "--settings", str(path)]) == 0
    assert main(["--settings", str(path), "config", "check"]) == 0
    assert capsys.readouterr().out.count("settings OK") == 2


def test_a_connection_that_does_not_read_is_a_problem_without_its_secret(
    tmp_path, capsys, monkeypatch
):
    path = settings_with(tmp_path, "")
    monkeypatch.setenv("AIRFLOW_CONN_PFI_LEDGER", '{"host": "db", "password": "s3cret", ')
    monkeypatch.setenv("AIRFLOW_CONN_PFI_DMP", "https://dmp.test:443")
    monkeypatch.delenv("AIRFLOW_CONN_PFI_DPI_MLLP", raising=False)

    assert main(["config", "check", "--settings", str(path)]) == 1

    out = capsys.readouterr().out
    assert "connection pfi_ledger: found in the environment, not readable" in out
    assert "problem: connection pfi_ledger:" in out
    assert "connection pfi_dmp: found in the environment\n" in out
    assert "connection pfi_dpi_mllp: not in the environment" in out
    assert "s3cret" not in out
