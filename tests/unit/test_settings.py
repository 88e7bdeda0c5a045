"""Site settings: the commented example is valid; every problem is reported at once."""

from pathlib import Path

import pytest

from pfi.base.errors import ConfigurationError
from pfi.base.settings import check_settings, finess_key_ok, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "pfi.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pfi.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_example_is_valid():
    settings = load_settings(EXAMPLE)
    assert settings.site.finess_juridique == "010000024"
    assert [s.name for s in settings.sources] == ["dpi", "sgl", "ris"]
    assert settings.source("ris").finess_geo == "010000040"
    assert settings.mailboxes[0].error_mailbox == "integration@ch-demo.mssante.test"
    assert "pfi_mss_pfi" in settings.connection_ids


def test_relative_paths_are_relative_to_the_settings_file_and_defaults_follow_data_dir(tmp_path):
    path = write(
        tmp_path,
        """
[site]
name = "CH"
finess_juridique = "010000024"
structure_oid = "1.2.250.1.71.4.2.2"
[[site.finess_geo]]
finess = "010000032"
name = "A"
[paths]
data_dir = "data"
[[hl7_source]]
name = "dpi"
drop_dir = "in/dpi"
""",
    )
    source = load_settings(path).source("dpi")
    assert source.drop_dir == tmp_path / "in" / "dpi"
    assert source.archive_dir == tmp_path / "data" / "sources" / "dpi" / "archive"
    assert source.finess_geo == "010000032"  # the first ET by default


def test_all_problems_are_listed(tmp_path):
    path = write(
        tmp_path,
        """
[site]
name = ""
finess_juridique = "123456789"
structure_oid = "not-an-oid"
ins_environment = "staging"
[[site.finess_geo]]
finess = "010000032"
name = "A"
[[hl7_source]]
name = "Bad Name"
drop_dir = "x"
[[hl7_source]]
name = "sgl"
finess_geo = "999999999"
[[mailbox]]
name = "pfi"
address = "not-a-mail"
""",
    )
    settings, problems = check_settings(path)
    text = "\n".join(problems)
    for expected in (
        "site.name",
        "finess_juridique",
        "structure_oid",
        "ins_environment",
        "Bad Name",
        "drop_dir is missing",
        "999999999",
        "not a mail address",
    ):
        assert expected in text
    with pytest.raises(ConfigurationError, match="problem"):
        load_settings(path)


def test_missing_file_and_missing_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("PFI_SETTINGS", raising=False)
    with pytest.raises(ConfigurationError, match="PFI_SETTINGS"):
        load_settings()
    with pytest.raises(ConfigurationError, match="not found"):
        load_settings(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    "finess, ok",
    [
        ("750712184", True),
        ("010000024", True),
        ("010000025", False),
        ("2A0000000", True),
        ("12345678", False),
        ("ABCDEFGHI", False),
    ],
)
def test_finess_luhn_key(finess, ok):
    assert finess_key_ok(finess) is ok
