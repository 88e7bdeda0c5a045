"""``report_monthly_stats`` run through ``dag.test()`` on PostgreSQL for October 2026: its data
interval (03:00 on 1 October to 03:00 on 1 November, Paris) gives the October report, the same
golden files as ``pfi stats month 2026-10`` (``tests/integration/test_monthly_stats.py``)."""

from pathlib import Path

import pendulum
import pytest

from pfi_fixtures.site import load_dag, use_site
from pfi_fixtures.stats import A, B, C, fill_known_ledger, site_settings

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "stats"


def test_one_run_writes_the_month_s_golden_files(
    airflow_db, tmp_path, monkeypatch, fresh_ledger_url
):
    from pfi.ledger import Ledger

    settings = site_settings(tmp_path)
    use_site(monkeypatch, settings, fresh_ledger_url)
    ledger = Ledger.from_url(fresh_ledger_url)
    try:
        fill_known_ledger(ledger)
    finally:
        ledger.dispose()

    dag = load_dag("report_monthly_stats")
    run = dag.test(logical_date=pendulum.datetime(2026, 11, 1, 12, tz="Europe/Paris"))

    assert run.state == "success"
    assert pendulum.instance(run.data_interval_start).in_timezone("Europe/Paris") == (
        pendulum.datetime(2026, 10, 1, 3, tz="Europe/Paris")
    )
    out = tmp_path / "data" / "stats"
    names = sorted(path.name for path in out.iterdir())
    assert names == [f"indicateurs_{f}_2026-10.csv" for f in (A, B, C)]
    for name in names:
        assert (out / name).read_bytes() == (GOLDEN / name).read_bytes(), name
