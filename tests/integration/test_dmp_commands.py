"""``pfi dmp run`` and ``pfi dmp status`` on a real ledger, against the devkit DMP endpoint.

The Connections are given as Airflow would read them (``AIRFLOW_CONN_PFI_LEDGER``,
``AIRFLOW_CONN_PFI_DMP`` in JSON form). The document is recorded as intake records it.
"""

import hashlib
import json

import pytest

from pfi.cli import main

pytestmark = pytest.mark.integration

MDM = "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM"
INITIAL = f"{MDM}/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7"
UNIQUE_ID = "1.2.250.1.71.4.2.2.120456789.71024000081"


@pytest.fixture
def environment(tmp_path, monkeypatch, postgres_server, dmp_endpoint, test_pki, fixtures_dir):
    from pfi.ledger import Ledger, upgrade

    url = postgres_server.create_database()
    upgrade(url)
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
[[hl7_source]]
name = "dpi"
kind = "DPI"
drop_dir = "{tmp_path / "in"}"
outbound_dir = "{tmp_path / "out"}"
"""
    )
    extra = {
        "repository_url": dmp_endpoint.repository_url,
        "registry_url": dmp_endpoint.registry_url,
        "client_cert": str(test_pki.establishment.cert_path),
        "client_key": str(test_pki.establishment.key_path),
        "ca_bundle": str(test_pki.ca_bundle),
        "signing_cert": str(test_pki.signing.cert_path),
        "signing_key": str(test_pki.signing.key_path),
    }
    monkeypatch.setenv("PFI_SETTINGS", str(settings))
    monkeypatch.setenv("AIRFLOW_CONN_PFI_LEDGER", url)
    monkeypatch.setenv("AIRFLOW_CONN_PFI_DMP", json.dumps({"conn_type": "http", "extra": extra}))
    # The archived original, as intake keeps it (load_request reads it back by ledger id).
    raw = (fixtures_dir / INITIAL).read_bytes()
    archived = tmp_path / "archive" / "initial.er7"
    archived.parent.mkdir()
    archived.write_bytes(raw)
    ledger = Ledger.from_url(url)
    file_id, _ = ledger.record_inbound(
        kind="hl7_file",
        source="dpi",
        checksum=hashlib.sha256(raw).hexdigest(),
        storage_path=str(archived),
        status="done",
    )
    document_id, _ = ledger.upsert_document(
        unique_id=UNIQUE_ID,
        ins_matricule="279035121518989",
        ins_oid="1.2.250.1.213.1.4.10",
        ins_qualified=True,
        inbound_item_id=file_id,
    )
    ledger.ensure_delivery(document_id, "dmp")
    yield ledger
    ledger.dispose()
    postgres_server.drop_database(url.rsplit("/", 1)[1])


def test_run_sends_and_status_tells(environment, dmp_endpoint, capsys):
    assert main(["dmp", "run"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert (counts["claimed"], counts["sent"]) == (1, 1)
    assert list(e.unique_id for e in dmp_endpoint.entries.values() if not e.is_signature) == [
        UNIQUE_ID
    ]

    assert main(["dmp", "status", UNIQUE_ID]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    (delivery,) = report["dmp_deliveries"]
    assert delivery["status"] == "sent" and delivery["attempts"] == 1
    assert delivery["partner_ref"] == report["document"]["entry_uuid"]
    kinds = [line["kind"] for line in delivery["trail"]]
    assert "dmp.request" in kinds and kinds[-1] == "delivery.status"
    assert "279035121518989" not in out

    assert main(["dmp", "run"]) == 0  # nothing due any more
    assert json.loads(capsys.readouterr().out)["claimed"] == 0


def test_status_of_an_unknown_document(environment, capsys):
    assert main(["dmp", "status", "1.2.3.4.5"]) == 1
    assert "no document" in capsys.readouterr().err


def test_hold_then_release(environment, dmp_endpoint, capsys):
    assert main(["dmp", "hold", UNIQUE_ID]) == 0
    assert json.loads(capsys.readouterr().out)["hold"]
    assert main(["dmp", "run"]) == 0
    assert json.loads(capsys.readouterr().out)["claimed"] == 0  # held: never claimed
    assert dmp_endpoint.requests == 0
    assert main(["dmp", "release", UNIQUE_ID]) == 0
    capsys.readouterr()
    assert main(["dmp", "run"]) == 0
    assert json.loads(capsys.readouterr().out)["sent"] == 1
    assert main(["dmp", "release", UNIQUE_ID]) == 1  # nothing held any more
