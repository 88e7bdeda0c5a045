"""``pfi dmp run`` and ``pfi dmp status`` on a real ledger, against the devkit DMP endpoint.

The Connections are given as Airflow would read them (``AIRFLOW_CONN_PFI_LEDGER``,
``AIRFLOW_CONN_PFI_DMP`` in JSON form). The document (the project's MDM sample,
``pfi_devkit.samples``) is recorded as intake records it.
"""

import hashlib
import json

import pytest

from pfi.cli import main
from pfi.flows.intake import message_checksum
from pfi.protocols.hl7v2 import split_file
from pfi_devkit.samples import MDM_INIT, MDM_V1_ID
from pfi_fixtures.ledger import record_document
from pfi_fixtures.partners import dmp_tls_extra
from pfi_fixtures.site import use_site, write_settings

pytestmark = pytest.mark.integration

UNIQUE_ID = MDM_V1_ID


@pytest.fixture
def environment(
    tmp_path, monkeypatch, fresh_ledger_url, fresh_ledger, dmp_endpoint, test_pki, samples_dir
):
    extra = {
        "repository_url": dmp_endpoint.repository_url,
        "registry_url": dmp_endpoint.registry_url,
        **dmp_tls_extra(test_pki),
    }
    connection = {"conn_type": "http", "extra": extra}
    use_site(monkeypatch, write_settings(tmp_path), fresh_ledger_url, pfi_dmp=connection)
    # The archived original, as intake keeps it (load_request reads it back by ledger id).
    raw = (samples_dir / MDM_INIT).read_bytes()
    archived = tmp_path / "archive" / "initial.er7"
    archived.parent.mkdir()
    archived.write_bytes(raw)
    ledger = fresh_ledger
    file_id, _ = ledger.record_inbound(
        kind="hl7_file",
        source="dpi",
        checksum=hashlib.sha256(raw).hexdigest(),
        storage_path=str(archived),
        status="done",
    )
    record_document(  # its one message, as intake records it
        ledger,
        UNIQUE_ID,
        "dmp",
        checksum=message_checksum(split_file(raw)[0]),
        parent_id=file_id,
        original_ref="1",
        ins_matricule="279035121518989",
        ins_oid="1.2.250.1.213.1.4.10",
        ins_qualified=True,
    )
    return ledger


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
    assert "dmp.request" in kinds and kinds[-2:] == ["delivery.status", "delivery.followed_up"]
    assert "279035121518989" not in out

    assert main(["dmp", "run"]) == 0  # nothing due any more
    assert json.loads(capsys.readouterr().out)["claimed"] == 0


def test_status_of_an_unknown_document(environment, capsys):
    assert main(["dmp", "status", "1.2.3.4.5"]) == 1
    assert "no document" in capsys.readouterr().err


def test_status_of_a_document_without_dmp_delivery_is_still_one_json_document(environment, capsys):
    record_document(environment, "1.2.250.1.999.1^mail-only")
    assert main(["dmp", "status", "1.2.250.1.999.1^mail-only"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["dmp_deliveries"] == []
    assert "no DMP delivery" in captured.err


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
