"""The monthly indicators (SC.STAT/ES.02) against golden files: a ledger filled with known
deliveries and mails (:mod:`pfi_fixtures.stats`, counted by hand in ``EXPECTED``) gives, byte for
byte, the CSVs under ``tests/golden/stats/``, one per FINESS géographique; a re-run gives the same
bytes; months are cut at Paris midnight; a month without anything gives zeros, never no file.

To look at a difference: ``pfi stats month 2026-10 --out /tmp/x`` on the same ledger, then diff.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest

from pfi.base.errors import ConfigurationError
from pfi.base.settings import load_settings
from pfi.cli import main
from pfi.flows.stats import (
    HEADERS,
    StatsConfig,
    month_of_interval,
    months_covered,
    write_monthly_reports,
)
from pfi_fixtures.site import use_site, write_settings
from pfi_fixtures.stats import CRO, EXPECTED, A, B, C, fill_known_ledger, site_settings

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "stats"
OCTOBER = date(2026, 10, 1)


def rows_of(path: Path) -> list[dict[str, str]]:
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 with BOM"
    return list(csv.DictReader(io.StringIO(data[3:].decode("utf-8"), newline=""), delimiter=";"))


def cells(path: Path) -> dict[tuple[str, str, str], dict[str, int]]:
    """The non-zero cells of a report, as ``EXPECTED`` writes them."""
    found = {}
    for row in rows_of(path):
        values = {k: int(v) for k, v in row.items() if k in HEADERS[4:] and v != "0"}
        if values:
            key = (row["FINESS géographique"], row["Mois"], row["Code type de document"])
            found[key] = values
    return found


@pytest.fixture
def site(tmp_path):
    return load_settings(site_settings(tmp_path / "site"))


@pytest.fixture
def known(fresh_ledger):
    fill_known_ledger(fresh_ledger)
    return fresh_ledger


def test_each_finess_file_is_the_golden_one_and_the_hand_count(known, site, tmp_path):
    written = write_monthly_reports(known, site, OCTOBER, output_dir=tmp_path / "out")

    names = sorted(path.name for path in written)
    assert names == [f"indicateurs_{f}_2026-10.csv" for f in (A, B, C)]
    for path in written:
        assert path.read_bytes() == (GOLDEN / path.name).read_bytes(), path.name
        finess = path.name.split("_")[1]
        expected = {key: v for key, v in EXPECTED.items() if key[0] == finess}
        assert cells(path) == expected, finess


def test_the_format_is_the_documented_one(known, site, tmp_path):
    (path,) = write_monthly_reports(known, site, OCTOBER, finess=[B], output_dir=tmp_path)
    data = path.read_bytes()
    first_line = data.split(b"\r\n", 1)[0].decode("utf-8-sig")
    assert first_line.split(";") == list(HEADERS)
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    rows = rows_of(path)
    months = [f"{m:%Y-%m}" for m in months_covered(OCTOBER)]
    assert months[0] == "2025-01" and months[-1] == "2026-10" and len(months) == 22
    assert sorted({row["Mois"] for row in rows}) == months
    # every Ségur type, every month, in the list's order, months ascending
    assert len(rows) == 22 * 11
    assert [row["Code type de document"] for row in rows[:2]] == ["11490-0", "18761-7"]
    assert rows[0]["Type de document"].startswith("Lettre de liaison")


def test_a_rerun_writes_the_same_bytes(known, site, tmp_path):
    first = {p.name: p.read_bytes() for p in write_monthly_reports(known, site, OCTOBER)}
    again = {p.name: p.read_bytes() for p in write_monthly_reports(known, site, OCTOBER)}
    assert first == again
    config = StatsConfig.from_settings(site)
    assert config.output_dir == site.data_dir / "stats"
    assert sorted(p.name for p in config.output_dir.iterdir()) == sorted(first)  # no leftovers


def test_months_are_cut_at_paris_midnight(known, site, tmp_path):
    """23:30 UTC on 31 October is November in Paris; 22:59 UTC is still October."""
    (november,) = write_monthly_reports(
        known, site, date(2026, 11, 1), finess=[A], output_dir=tmp_path
    )
    found = cells(november)
    assert found[(A, "2026-11", CRO)] == {"DMP flux - succès": 1}
    assert found[(A, "2026-10", CRO)] == {"DMP flux - succès": 1}
    assert found[(A, "2026-09", CRO)] == {"DMP flux - succès": 1}


def test_an_empty_month_gives_zeros_for_every_site_finess(fresh_ledger, site, tmp_path):
    written = write_monthly_reports(fresh_ledger, site, date(2027, 1, 1), output_dir=tmp_path)
    assert sorted(p.name for p in written) == [f"indicateurs_{f}_2027-01.csv" for f in (A, B)]
    for path in written:
        rows = rows_of(path)
        assert len(rows) == 13 * 11  # 2026-01 … 2027-01, every Ségur type
        assert all(row[h] == "0" for row in rows for h in HEADERS[4:])
    assert written[1].read_bytes() == (GOLDEN / "empty_010000040_2027-01.csv").read_bytes()


def test_the_command_writes_the_same_files(known, site, tmp_path, monkeypatch, fresh_ledger_url):
    use_site(monkeypatch, site.source_file, fresh_ledger_url)
    out = tmp_path / "cli"
    assert main(["stats", "month", "2026-10", "--out", str(out), "--finess", A]) == 0
    (path,) = out.iterdir()
    assert path.read_bytes() == (GOLDEN / f"indicateurs_{A}_2026-10.csv").read_bytes()


def test_the_command_refuses_a_bad_month(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["stats", "month", "2026-13"])
    assert exit_info.value.code == 2
    assert "AAAA-MM" in capsys.readouterr().err


def test_a_run_s_data_interval_is_its_calendar_month_in_paris():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")
    start = datetime(2026, 10, 1, 3, tzinfo=paris)
    end = datetime(2026, 11, 1, 3, tzinfo=paris)
    assert month_of_interval(start, end) == OCTOBER
    with pytest.raises(ValueError):
        month_of_interval(start, datetime(2026, 12, 1, 3, tzinfo=paris))


def test_the_stats_section_is_checked(tmp_path):
    (tmp_path / "in").mkdir()
    bad = load_settings(write_settings(tmp_path, extra="[stats]\nprevious_years = 0\n"))
    with pytest.raises(ConfigurationError, match="previous_years"):
        StatsConfig.from_settings(bad)
    custom = load_settings(
        write_settings(tmp_path, extra=f'[stats]\noutput_dir = "{tmp_path / "x"}"\n')
    )
    assert StatsConfig.from_settings(custom).output_dir == tmp_path / "x"
