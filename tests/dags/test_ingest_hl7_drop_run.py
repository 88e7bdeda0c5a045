"""The vertical slice run through Airflow: ``dag.test()`` on a PostgreSQL metadata database.

A file dropped in a source's folder is claimed, recorded in the ledger (a PostgreSQL database of
its own) and answered with an ACK file by the real ``ingest_hl7_drop`` DAG, with its Connection
given the way production gives it (``AIRFLOW_CONN_PFI_LEDGER``) and settings from ``PFI_SETTINGS``.
"""

import os
import shutil
import time

import pytest

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

SAMPLE = (
    "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM/"
    "Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7"
)


@pytest.fixture
def site(tmp_path, monkeypatch, postgres_server):
    from pfi.ledger import upgrade

    ledger_url = postgres_server.create_database()
    upgrade(ledger_url)
    settings = tmp_path / "pfi.toml"
    settings.write_text(
        f"""
[site]
name = "CH"
finess_juridique = "010000024"
structure_oid = "1.2.250.1.71.4.2.2"
[[site.finess_geo]]
finess = "010000032"
name = "A"
[paths]
data_dir = "{tmp_path / "data"}"
[[hl7_source]]
name = "dpi"
kind = "DPI"
drop_dir = "{tmp_path / "in"}"
outbound_dir = "{tmp_path / "out"}"
settle_seconds = 0
"""
    )
    monkeypatch.setenv("PFI_SETTINGS", str(settings))
    monkeypatch.setenv("AIRFLOW_CONN_PFI_LEDGER", ledger_url)
    yield tmp_path, ledger_url
    postgres_server.drop_database(ledger_url.rsplit("/", 1)[1])


def test_a_dropped_file_is_recorded_and_acknowledged_by_the_dag(airflow_db, site, fixtures_dir):
    from airflow.dag_processing.dagbag import DagBag

    from pfi.ledger import Ledger

    folder, ledger_url = site
    (folder / "in").mkdir()
    target = folder / "in" / "initial.er7"
    shutil.copyfile(fixtures_dir / SAMPLE, target)
    os.utime(target, (time.time() - 5,) * 2)

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag("ingest_hl7_drop")
    run = dag.test()

    assert run.state == "success"
    acks = list((folder / "out").glob("ACK_*.hl7"))
    assert len(acks) == 1
    assert acks[0].read_bytes().split(b"\r")[1] == b"MSA|AA|015"  # MSH-10 of the official example
    ledger = Ledger.from_url(ledger_url)
    try:
        files = ledger.find_inbound(source="dpi", kind="hl7_file")
        assert [(i.status, i.control_id) for i in files] == [("done", "015")]
        messages = ledger.find_inbound(source="dpi", kind="hl7_message")
        assert [(m.status, m.parent_id, m.original_ref, m.message_type) for m in messages] == [
            ("done", files[0].id, "1", "MDM^T02")
        ]
        actors = {e.actor for e in ledger.events(inbound_item_id=files[0].id)}
        assert any(a.startswith("ingest_hl7_drop/claim_files/") for a in actors)
        assert any(a.startswith("ingest_hl7_drop/acknowledge_batch/") for a in actors)

        # the request's routing became deliveries, due now, for the delivery DAGs
        document = ledger.find_document("1.2.250.1.71.4.2.2.120456789.71024000081")
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
