"""``backfill_dmp_history`` through ``dag.test()`` on PostgreSQL, against the devkit DMP endpoint
over mutual TLS, with the form's values as ``conf`` (what the UI's trigger form sends).

A folder of historical HL7 messages (the project's sample imaging report at other dates, test
identity): a dry run sends nothing; the real run sends the qualified, recent ones once, each lot
named by what it holds; the same form again (a resumed backfill) sends nothing more; a start
more than 5 years before the logical date fails the plan at once.
"""

from datetime import UTC, datetime

import pytest

from pfi_devkit.samples import DOCUMENT_ROOT, PARIS, historical_message
from pfi_fixtures.partners import dmp_tls_extra
from pfi_fixtures.site import load_dag, use_site, write_settings

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

LOGICAL = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
RECENT = datetime(2024, 3, 4, 9, 30, tzinfo=PARIS)
OLD = datetime(2020, 6, 1, 9, 30, tzinfo=PARIS)


@pytest.fixture
def site(tmp_path, monkeypatch, fresh_ledger_url, dmp_endpoint, test_pki, airflow_db):
    settings = write_settings(tmp_path)
    dmp_conn = {
        "conn_type": "http",
        "host": dmp_endpoint.host,
        "port": dmp_endpoint.port,
        "schema": "https",
        "extra": dmp_tls_extra(test_pki),
    }
    use_site(monkeypatch, settings, fresh_ledger_url, pfi_dmp=dmp_conn)
    from airflow.models.pool import Pool

    # what make run does: airflow pools set dmp_backfill 1 "…"
    Pool.create_or_update_pool("dmp_backfill", 1, "Historical DMP backfill", include_deferred=False)
    dmp_endpoint.verify_vihf = True
    dmp_endpoint.require_signature_document = True
    dmp_endpoint.strict_metadata = True
    folder = tmp_path / "history"
    folder.mkdir()
    for serial in (701, 702, 703):
        (folder / f"{serial}.hl7").write_bytes(historical_message(serial, RECENT))
    (folder / "704.hl7").write_bytes(historical_message(704, RECENT, qualified=False))
    (folder / "705.hl7").write_bytes(historical_message(705, OLD))
    return folder


def _conf(folder, **changes) -> dict:
    return {
        "source_kind": "hl7",
        "folder": str(folder),
        "finess_geo": "010000032",
        "start_date": "2022-01-01",
        "batch_size": 10,
        "max_rate": 0,
        **changes,
    }


def _lots(run_id: str) -> list[str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.rendered_map_index)
            .where(TaskInstance.run_id == run_id, TaskInstance.task_id == "send_lot")
            .order_by(TaskInstance.map_index)
        ).all()
    return [row[0] for row in rows]


def test_dry_run_then_backfill_then_resume_sends_each_document_once(site, dmp_endpoint):
    dag = load_dag("backfill_dmp_history")
    dry = dag.test(logical_date=LOGICAL, run_conf=_conf(site, batch_size=3))
    assert dry.state == "success" and dmp_endpoint.requests == 0
    assert _lots(dry.run_id) == ["lot 1/2 · 3 fichiers", "lot 2/2 · 2 fichiers"]

    run = dag.test(
        logical_date=LOGICAL.replace(hour=9), run_conf=_conf(site, dry_run=False, batch_size=3)
    )
    assert run.state == "success"
    expected = sorted(f"{DOCUMENT_ROOT}.{serial}.9" for serial in (701, 702, 703))
    assert sorted(s.entries[0] for s in dmp_endpoint.accepted) == expected

    again = dag.test(logical_date=LOGICAL.replace(hour=10), run_conf=_conf(site, dry_run=False))
    assert again.state == "success"
    assert len(dmp_endpoint.accepted) == 3 and dmp_endpoint.duplicates == 0


def test_a_start_more_than_five_years_back_is_refused(site, dmp_endpoint):
    dag = load_dag("backfill_dmp_history")
    run = dag.test(
        logical_date=LOGICAL, run_conf=_conf(site, dry_run=False, start_date="2021-11-30")
    )
    assert run.state == "failed" and dmp_endpoint.requests == 0
