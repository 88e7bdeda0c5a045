"""The vertical slice run through Airflow: ``dag.test()`` on a PostgreSQL metadata database.

A file dropped in a source's folder is claimed, recorded in the ledger (a PostgreSQL database of
its own) and answered with an ACK file by the real ``ingest_hl7_drop`` DAG, with its Connection
given the way production gives it (``AIRFLOW_CONN_PFI_LEDGER``) and settings from ``PFI_SETTINGS``.
"""

import pytest

from pfi_devkit.samples import MDM_INIT, MDM_V1_ID, control_id
from pfi_fixtures.site import drop_sample, load_dag, use_site, write_settings

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


@pytest.fixture
def site(tmp_path, monkeypatch, fresh_ledger_url):
    use_site(monkeypatch, write_settings(tmp_path), fresh_ledger_url)
    return tmp_path, fresh_ledger_url


def test_a_dropped_file_is_recorded_and_acknowledged_by_the_dag(airflow_db, site, samples_dir):
    from pfi.ledger import Ledger

    folder, ledger_url = site
    drop_sample(folder / "in", samples_dir / MDM_INIT, "initial.er7")

    run = load_dag("ingest_hl7_drop").test()

    assert run.state == "success"
    acks = list((folder / "out").glob("ACK_*.hl7"))
    assert len(acks) == 1
    ours = control_id(MDM_INIT)  # MSH-10 of the sample
    assert acks[0].read_bytes().split(b"\r")[1] == f"MSA|AA|{ours}".encode()
    ledger = Ledger.from_url(ledger_url)
    try:
        files = ledger.find_inbound(source="dpi", kind="hl7_file")
        assert [(i.status, i.control_id) for i in files] == [("done", ours)]
        messages = ledger.find_inbound(source="dpi", kind="hl7_message")
        assert [(m.status, m.parent_id, m.original_ref, m.message_type) for m in messages] == [
            ("done", files[0].id, "1", "MDM^T02")
        ]
        actors = {e.actor for e in ledger.events(inbound_item_id=files[0].id)}
        assert any(a.startswith("ingest_hl7_drop/claim_files/") for a in actors)
        assert any(a.startswith("ingest_hl7_drop/acknowledge_batch/") for a in actors)

        # the request's routing became deliveries, due now, for the delivery DAGs
        document = ledger.find_document(MDM_V1_ID)
        assert document is not None and document.inbound_item_id == messages[0].id
        assert (document.type_code, document.ins_oid, document.ins_qualified) == (
            "18748-4",
            "1.2.250.1.213.1.4.10",
            True,
        )
        deliveries = ledger.deliveries_of(document.id)
        assert sorted((d.channel, d.recipient, d.action, d.status) for d in deliveries) == [
            ("dmp", None, "new", "pending"),
            ("mss_professional", "adam.hoda@test-ci-sis.mssante.fr", "new", "pending"),
        ]
        assert all(d.attempts == 0 and d.finess_geo == files[0].finess_geo for d in deliveries)
    finally:
        ledger.dispose()


def test_recorded_deliveries_start_the_delivery_dags_at_once_and_an_empty_run_does_not(
    airflow_db, site, samples_dir
):
    """``announce_deliveries`` updates ``pfi-dmp-queue`` and ``pfi-mssante-queue`` (what the
    delivery DAGs are scheduled on) when the run recorded deliveries; skipped otherwise."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from pfi_airflow.triggers import DMP_QUEUE_ASSET, MSSANTE_QUEUE_ASSET

    def announced(run) -> tuple[str, list[str]]:
        (ti,) = [t for t in run.get_task_instances() if t.task_id == "announce_deliveries"]
        with create_session() as session:
            events = session.scalars(
                select(AssetEvent).where(
                    AssetEvent.source_run_id == run.run_id,
                    AssetEvent.source_dag_id == "ingest_hl7_drop",
                )
            ).all()
            return ti.state, sorted(e.asset.uri for e in events)

    folder, _ = site
    drop_sample(folder / "in", samples_dir / MDM_INIT, "initial.er7")
    dag = load_dag("ingest_hl7_drop")

    assert announced(dag.test()) == (
        "success",
        sorted([DMP_QUEUE_ASSET.uri, MSSANTE_QUEUE_ASSET.uri]),
    )
    assert announced(dag.test()) == ("skipped", [])  # nothing dropped since
