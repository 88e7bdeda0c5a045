"""The monthly indicators' tables from the ledger's counts, without a database: which row goes
into which column, the grid of months × types, the file's bytes (``pfi.flows.stats``)."""

from datetime import date

from pfi.flows.stats import HEADERS, build_reports, months_covered, parse_month, to_csv
from pfi.ledger.records import IndicatorCount

OCT, SEP = date(2026, 10, 1), date(2026, 9, 1)


def count(basis="outcome", month=OCT, finess="010000032", type_code="11490-0", **fields):
    values = {
        "channel": "dmp",
        "action": "new",
        "status": "sent",
        "historical": False,
        "qualified_ins": False,
        "count": 1,
        **fields,
    }
    return IndicatorCount(basis, month, finess, type_code, **values)


def row(table, month: str, code: str) -> dict:
    found = table[(table["Mois"] == month) & (table["Code type de document"] == code)]
    (record,) = found.to_dict("records")
    return {k: v for k, v in record.items() if k in HEADERS[4:] and v}


def test_each_count_lands_in_its_columns():
    counts = [
        count(count=4),
        count(status="refused", count=2),
        count(status="failed"),
        count(historical=True, count=3),
        count(channel="mss_professional", action="replace", qualified_ins=True),
        count(channel="mss_professional", action="delete", status="refused"),
        count(channel="mss_patient", status="failed"),
        count(channel="dpi", action="replace", basis="received", status="pending", month=SEP),
        count(channel="dpi", action=None, basis="mail_refused", status="refused", type_code=None),
    ]
    (table,) = build_reports(counts, months_covered(OCT), ["010000032"]).values()
    assert row(table, "2026-10", "11490-0") == {
        "DMP flux - succès": 4,
        "DMP flux - échecs": 3,
        "DMP historique - succès": 3,
        "MSSanté professionnels - succès": 1,
        "MSSanté professionnels INS qualifié - succès": 1,
        "MSSanté professionnels - documents mis à jour envoyés": 1,
        "MSSanté professionnels - échecs": 1,
        "MSSanté patient - échecs": 1,
    }
    assert row(table, "2026-09", "11490-0") == {
        "Réception MSSanté - demandes de mise à jour ou suppression reçues": 1
    }
    assert row(table, "2026-10", "") == {"Réception MSSanté - transmis au DPI échecs": 1}
    assert table["Type de document"].iloc[-1] == "Type non déterminé"


def test_pending_and_held_count_nowhere_and_nothing_gives_zeros_for_the_site():
    counts = [count(status="pending"), count(status="held")]
    reports = build_reports(counts, months_covered(OCT), ["010000032", "010000040"])
    assert sorted(reports) == ["010000032", "010000040"]
    for table in reports.values():
        assert len(table) == 22 * 11
        assert int(table[list(HEADERS[4:])].to_numpy().sum()) == 0


def test_types_outside_the_segur_list_follow_it_and_finess_only_in_the_ledger_get_a_file():
    counts = [count(finess="330000019", type_code="11506-3")]
    reports = build_reports(counts, [OCT], ["010000032"])
    assert sorted(reports) == ["010000032", "330000019"]
    other = reports["330000019"]
    assert list(other["Code type de document"])[-1] == "11506-3"
    assert list(other["Type de document"])[-1] == "Hors liste Ségur"
    assert len(reports["010000032"]) == 11


def test_the_bytes_are_the_documented_format():
    (table,) = build_reports([], [OCT], ["010000032"]).values()
    data = to_csv(table)
    assert data.startswith(b"\xef\xbb\xbfFINESS g\xc3\xa9ographique;Mois;")
    assert data.endswith(b"\r\n") and data.count(b"\r\n") == 12
    assert data == to_csv(build_reports([], [OCT], ["010000032"])["010000032"])


def test_months_run_from_january_of_the_previous_year():
    assert months_covered(date(2026, 1, 1))[0] == date(2025, 1, 1)
    assert len(months_covered(date(2026, 1, 1))) == 13
    assert len(months_covered(date(2026, 12, 1), previous_years=2)) == 36
    assert parse_month("2026-10") == OCT
