"""The DMP executor's ZAM^Z01 reaches the DPI over MLLP when the source names a Connection
(``zam_mllp``): ledger on PostgreSQL, devkit DMP endpoint over TLS, devkit MLLP peer; the
document is the project's MDM sample (``pfi_devkit.samples``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pfi.base.retry import RetryPolicy
from pfi.flows import producer_acks
from pfi.flows.dmp import DmpSender
from pfi.flows.queue import run_due
from pfi.protocols.dmp.client import DmpClient, DmpEndpoints, TlsFiles
from pfi.protocols.dmp.config import DmpConfig
from pfi.protocols.dmp.signing import Signer
from pfi.protocols.hl7v2 import zam
from pfi_devkit.mllp_peer import AckError
from pfi_devkit.samples import MDM_INIT as INITIAL
from pfi_fixtures.ledger import record_document

pytestmark = pytest.mark.integration

INS, INS_OID = "279035121518989", "1.2.250.1.213.1.4.10"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
POLICY = RetryPolicy(first_delay=timedelta(minutes=2), give_up_after=timedelta(days=2))


@pytest.fixture
def settings(tmp_path, mllp_peer, monkeypatch):
    from pfi.base.settings import load_settings

    conn = {"conn_type": "mllp", "host": mllp_peer.host, "port": mllp_peer.port}
    monkeypatch.setenv("AIRFLOW_CONN_PFI_DPI_ZAM", json.dumps(conn))
    path = tmp_path / "pfi.toml"
    path.write_text(
        f"""
[site]
name = "CH TEST"
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
work_dir = "{tmp_path / "work"}"
zam_mllp = "pfi_dpi_zam"
"""
    )
    return load_settings(path)


def dmp_delivery(ledger, samples_dir, *, qualified: bool) -> tuple[int, object]:
    """A ``dmp`` delivery as intake records it, for the official initial example asking for a
    receipt (ACK_RECEPTION=Y); returns its id and the parsed request."""
    from pfi.protocols.dmp.submission import DmpSubmission
    from pfi.protocols.hl7v2 import parse_message

    raw = (samples_dir / INITIAL).read_bytes()
    request = parse_message(raw)
    request = replace(request, flags=replace(request.flags, ack_reception=True))
    sub = DmpSubmission.from_request(request)
    recorded = record_document(
        ledger,
        sub.unique_id,
        "dmp",
        action=sub.action,
        due=T0,
        checksum=hashlib.sha256(raw).hexdigest(),
        control_id=request.control_id,
        message_type=request.message_type,
        ins_matricule=INS,
        ins_oid=INS_OID,
        ins_qualified=qualified,
    )
    return recorded.delivery_id, request


@pytest.fixture
def run(fresh_ledger, dmp_endpoint, test_pki, settings):
    requests: dict[int, object] = {}
    tls = TlsFiles(
        test_pki.establishment.cert_path, test_pki.establishment.key_path, test_pki.ca_bundle
    )
    client = DmpClient(DmpEndpoints(dmp_endpoint.repository_url, dmp_endpoint.registry_url), tls)
    sender = DmpSender(
        fresh_ledger,
        client,
        Signer.from_files(test_pki.signing.cert_path, test_pki.signing.key_path),
        DmpConfig(source_id="1.2.250.1.71.4.2.2", structure_name="CH TEST", retry=POLICY),
        load_request=lambda _ledger, item_id: requests[item_id],
        settings=settings,
        actor="test",
    )

    def run_once() -> dict:
        return run_due(
            fresh_ledger, "dmp", sender, policy=POLICY, actor="test", now=T0, after=sender.after
        )

    run_once.requests = requests  # type: ignore[attr-defined]
    yield run_once
    client.close()


def test_the_dmp_receipt_reaches_the_dpi_over_mllp(
    run, fresh_ledger, samples_dir, settings, mllp_peer
):
    delivery_id, request = dmp_delivery(fresh_ledger, samples_dir, qualified=True)
    run.requests[fresh_ledger.get_document(1).inbound_item_id] = request

    assert run()["sent"] == 1
    (exchange,) = mllp_peer.exchanges
    (file,) = settings.source("dpi").outbound_dir.glob("ZAM_*.hl7")
    assert exchange.raw == file.read_bytes()
    assert exchange.control_id == zam.zam_control_id(zam.Z01_DMP_RECEIPT, delivery_id)
    assert "ZAM^Z01^ZAM_Z01" in exchange.text and "|Y^^expandedYes-NoIndicator" in exchange.text
    assert INS not in exchange.text
    (sent,) = fresh_ledger.events(delivery_id=delivery_id, kind=producer_acks.EVENT_SENT)
    assert (sent.detail["ack_code"], sent.detail["connection"]) == ("AA", "pfi_dpi_zam")


def test_a_refused_receipt_is_a_failed_event_and_the_delivery_keeps_its_outcome(
    run, fresh_ledger, samples_dir, mllp_peer
):
    delivery_id, request = dmp_delivery(fresh_ledger, samples_dir, qualified=False)
    run.requests[fresh_ledger.get_document(1).inbound_item_id] = request
    mllp_peer.ack_code, mllp_peer.ack_error = "AR", AckError.application("906")

    assert run()["refused"] == 1
    assert "DMP_INS_NOT_QUALIFIED" in mllp_peer.received[0]
    (failed,) = fresh_ledger.events(delivery_id=delivery_id, kind=producer_acks.EVENT_FAILED)
    assert (failed.detail["code"], failed.detail["error_code"]) == ("MLLP_AR", "906")
    assert fresh_ledger.get_delivery(delivery_id).status == "refused"
    assert fresh_ledger.events(delivery_id=delivery_id, kind="dmp.acknowledged")
