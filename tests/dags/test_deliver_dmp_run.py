"""``deliver_dmp`` through ``dag.test()`` on PostgreSQL, after ``ingest_hl7_drop``, against the
devkit DMP endpoint over mutual TLS.

The project's MDM initial and replacement samples (DPI) and ORU initial result (laboratory),
twins of the official v2.1 examples (``pfi_devkit.samples``), are dropped and ingested by the real intake DAG; the DMP is down for the first delivery run and
back for the second: each version is submitted exactly once, the initial one before its
replacement, and the ORU, which asked for a receipt, gets its ZAM^Z01. A third run (a replay)
submits nothing.
Connections are given the way production gives them (``AIRFLOW_CONN_*``), settings through
``PFI_SETTINGS``; the retry delay is set tiny so that the second run finds the retry due
without sleeping.
"""

import pytest

from pfi_devkit.samples import (
    MDM_INIT,
    MDM_RPLC,
    MDM_V1_ID,
    MDM_V2_ID,
    ORU_ID,
    ORU_INIT,
    control_id,
)
from pfi_fixtures.partners import dmp_tls_extra
from pfi_fixtures.site import (
    drop_sample,
    hl7_source,
    load_dag,
    use_site,
    write_settings,
)

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

INITIAL_ID, REPLACEMENT_ID = MDM_V1_ID, MDM_V2_ID


@pytest.fixture
def site(tmp_path, monkeypatch, fresh_ledger_url, dmp_endpoint, test_pki, airflow_db):
    settings = write_settings(
        tmp_path,
        sources=[
            hl7_source(tmp_path),
            hl7_source(tmp_path, "sgl", "SGL", drop="sgl-in", out="sgl-out"),
        ],
        extra="[dmp.retry]\nfirst_delay_seconds = 0.01\nmax_delay_seconds = 0.02",
    )
    dmp_conn = {
        "conn_type": "http",
        "host": dmp_endpoint.host,
        "port": dmp_endpoint.port,
        "schema": "https",
        "extra": dmp_tls_extra(test_pki),
    }
    use_site(monkeypatch, settings, fresh_ledger_url, pfi_dmp=dmp_conn)
    _ensure_pool("dmp", 2)
    dmp_endpoint.verify_vihf = True
    dmp_endpoint.require_signature_document = True
    dmp_endpoint.strict_metadata = True
    return tmp_path, fresh_ledger_url


def _ensure_pool(name: str, slots: int) -> None:
    """What ``make run`` does with ``airflow pools set dmp 2 "DMP web services"``."""
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(name, slots, "DMP web services", include_deferred=False)


def test_dmp_down_then_back_sends_each_version_once_in_order(site, dmp_endpoint, samples_dir):
    from pfi.ledger import Ledger

    folder, ledger_url = site
    drops = (
        ("in", "1-initial.er7", MDM_INIT),
        ("in", "2-replacement.er7", MDM_RPLC),
        ("sgl-in", "oru.hl7", ORU_INIT),  # the laboratory's result, asking for a receipt
    )
    for drop_dir, name, path in drops:
        drop_sample(folder / drop_dir, samples_dir / path, name)
    assert load_dag("ingest_hl7_drop").test().state == "success"

    ledger = Ledger.from_url(ledger_url)
    try:
        documents = {uid: ledger.find_document(uid) for uid in (INITIAL_ID, REPLACEMENT_ID)}
        assert all(documents.values()), "intake recorded both versions"

        def dmp_deliveries():
            return {
                uid: next(d for d in ledger.deliveries_of(doc.id) if d.channel == "dmp")
                for uid, doc in documents.items()
            }

        deliver = load_dag("deliver_dmp")
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
    # the MDM samples did not ask (ACK_RECEPTION=N): no ZAM for the DPI.
    assert not list((folder / "out").glob("ZAM_*"))
    (zam,) = (folder / "sgl-out").glob("ZAM_Z01_*.hl7")
    segments = zam.read_bytes().split(b"\r")
    assert segments[0].split(b"|")[8] == b"ZAM^Z01^ZAM_Z01"
    obx = next(seg for seg in segments if seg.startswith(b"OBX|1|")).split(b"|")
    assert obx[3].startswith(b"ACK_RECEPTION_DMP^")
    assert obx[4] == control_id(ORU_INIT).encode()  # the sample's MSH-10
    assert obx[5].startswith(b"Y^")
