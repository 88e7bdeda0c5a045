"""``deliver_dmp`` through ``dag.test()`` on PostgreSQL, after ``ingest_hl7_drop``, against the
devkit DMP endpoint over mutual TLS.

The official v2.1 MDM initial and replacement messages (DPI) and ORU initial result (laboratory)
are dropped and ingested by the real intake DAG; the DMP is down for the first delivery run and
back for the second: each version is submitted exactly once, the initial one before its
replacement, and the ORU, which asked for a receipt, gets its ZAM^Z01. A third run (a replay)
submits nothing.
Connections are given the way production gives them (``AIRFLOW_CONN_*``), settings through
``PFI_SETTINGS``; the retry delay is set tiny so that the second run finds the retry due
without sleeping.
"""

import json
import os
import shutil
import time

import pytest

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

V21 = "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM"
INITIAL = f"{V21}/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7"
REPLACEMENT = f"{V21}/Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7"
INITIAL_ID = "1.2.250.1.71.4.2.2.120456789.71024000081"
REPLACEMENT_ID = "1.2.250.1.71.4.2.2.120456789.71024000082"
ORU_ID = "1.2.250.1.213.1.1.9"
ORU = (
    "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/ORU/"
    "Transmission initiale ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7"
)


@pytest.fixture
def site(tmp_path, monkeypatch, postgres_server, dmp_endpoint, test_pki, airflow_db):
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
ins_environment = "test"
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
[[hl7_source]]
name = "sgl"
kind = "SGL"
drop_dir = "{tmp_path / "sgl-in"}"
outbound_dir = "{tmp_path / "sgl-out"}"
settle_seconds = 0
[dmp.retry]
first_delay_seconds = 0.01
max_delay_seconds = 0.02
"""
    )
    dmp_conn = {
        "conn_type": "http",
        "host": dmp_endpoint.host,
        "port": dmp_endpoint.port,
        "schema": "https",
        "extra": {
            "client_cert": str(test_pki.establishment.cert_path),
            "client_key": str(test_pki.establishment.key_path),
            "ca_bundle": str(test_pki.ca_bundle),
            "signing_cert": str(test_pki.signing.cert_path),
            "signing_key": str(test_pki.signing.key_path),
        },
    }
    monkeypatch.setenv("PFI_SETTINGS", str(settings))
    monkeypatch.setenv("AIRFLOW_CONN_PFI_LEDGER", ledger_url)
    monkeypatch.setenv("AIRFLOW_CONN_PFI_DMP", json.dumps(dmp_conn))
    _ensure_pool("dmp", 2)
    dmp_endpoint.verify_vihf = True
    dmp_endpoint.require_signature_document = True
    dmp_endpoint.strict_metadata = True
    yield tmp_path, ledger_url
    postgres_server.drop_database(ledger_url.rsplit("/", 1)[1])


def _ensure_pool(name: str, slots: int) -> None:
    """What ``make run`` does with ``airflow pools set dmp 2 "DMP web services"``."""
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(name, slots, "DMP web services", include_deferred=False)


def _dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag(dag_id)


def test_dmp_down_then_back_sends_each_version_once_in_order(site, dmp_endpoint, fixtures_dir):
    from pfi.ledger import Ledger

    folder, ledger_url = site
    drops = (
        ("in", "1-initial.er7", INITIAL),
        ("in", "2-replacement.er7", REPLACEMENT),
        ("sgl-in", "oru.hl7", ORU),  # the laboratory's result, asking for a receipt
    )
    for drop_dir, name, path in drops:
        (folder / drop_dir).mkdir(exist_ok=True)
        target = folder / drop_dir / name
        shutil.copyfile(fixtures_dir / path, target)
        os.utime(target, (time.time() - 5,) * 2)
    assert _dag("ingest_hl7_drop").test().state == "success"

    ledger = Ledger.from_url(ledger_url)
    try:
        documents = {uid: ledger.find_document(uid) for uid in (INITIAL_ID, REPLACEMENT_ID)}
        assert all(documents.values()), "intake recorded both versions"

        def dmp_deliveries():
            return {
                uid: next(d for d in ledger.deliveries_of(doc.id) if d.channel == "dmp")
                for uid, doc in documents.items()
            }

        deliver = _dag("deliver_dmp")
        dmp_endpoint.set_mode("down")
        assert deliver.test().state == "success"  # a DMP outage is a deferral, not a failure
        down = dmp_deliveries()
        assert {d.status for d in down.values()} == {"pending"}
        assert down[INITIAL_ID].reason_code == "DMP_UNREACHABLE"
        assert down[REPLACEMENT_ID].reason_code == "DMP_WAITING_PREVIOUS"
        assert dmp_endpoint.accepted == []

        dmp_endpoint.set_mode("normal")
        assert deliver.test().state == "success"
        sent = dmp_deliveries()
        assert {d.status for d in sent.values()} == {"sent"}
        mdm = [s.entries[0] for s in dmp_endpoint.accepted if s.entries[0] != ORU_ID]
        assert mdm == [INITIAL_ID, REPLACEMENT_ID]
        assert dmp_endpoint.entries[INITIAL_ID].status.endswith("Deprecated")
        assert len(dmp_endpoint.accepted) == 3

        assert deliver.test().state == "success"  # replay: nothing due, nothing submitted
        assert len(dmp_endpoint.accepted) == 3 and dmp_endpoint.duplicates == 0
        actors = {e.actor for e in ledger.events(delivery_id=sent[INITIAL_ID].id)}
        assert any(a.startswith("deliver_dmp/submit_due/") for a in actors)
    finally:
        ledger.dispose()

    # The ORU asked ACK_RECEPTION=Y: one ZAM^Z01 "Y" answering its MSH-10, in the lab's folder;
    # the MDM examples did not ask (ACK_RECEPTION=N): no ZAM for the DPI.
    assert not list((folder / "out").glob("ZAM_*"))
    (zam,) = (folder / "sgl-out").glob("ZAM_Z01_*.hl7")
    segments = zam.read_bytes().split(b"\r")
    assert segments[0].split(b"|")[8] == b"ZAM^Z01^ZAM_Z01"
    obx = next(seg for seg in segments if seg.startswith(b"OBX|1|")).split(b"|")
    assert obx[3].startswith(b"ACK_RECEPTION_DMP^") and obx[4] == b"015"  # the example's MSH-10
    assert obx[5].startswith(b"Y^")
