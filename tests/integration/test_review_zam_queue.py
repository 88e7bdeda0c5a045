"""Review: a ZAM queued long ago and just claimed by one task is not taken by another.

The claim renames ``.json`` → ``.sending``; a rename keeps the file's mtime, so an entry queued
more than :data:`pfi.flows.producer_acks.CLAIM_STALE` ago used to look like a dead task's claim the moment it was
claimed, and a second sweep (ingest_hl7_drop's, or a DMP/MSSanté worker catching up after a
successful send) re-queued and sent it too: the producer got the ZAM twice.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pfi.base.settings import Hl7Source
from pfi.flows import producer_acks
from pfi.protocols.hl7v2 import zam
from pfi.protocols.hl7v2.ack import MessageHeader
from pfi_devkit.mllp_peer import MllpPeer
from pfi_fixtures.ledger import record_document
from pfi_fixtures.site import source_in

pytestmark = pytest.mark.integration

CONNECTION = "pfi_test_review_zam"
REQUEST = MessageHeader(
    sending_application="DPI",
    sending_facility="CH DEMO",
    receiving_application="PFI",
    receiving_facility="CH DEMO",
    message_code="MDM",
    trigger_event="T02",
    control_id="REQ-0077",
    charset="8859/1",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def source(tmp_path: Path) -> Hl7Source:
    return source_in(tmp_path, zam_mllp_connection=CONNECTION)


@pytest.fixture(autouse=True)
def _no_peer_held_down():
    producer_acks._PEERS_DOWN.clear()
    yield
    producer_acks._PEERS_DOWN.clear()


def test_an_old_queued_zam_claimed_by_one_task_is_not_sent_by_another(
    fresh_ledger, source, monkeypatch
):
    port = _free_port()
    conn = {"conn_type": "mllp", "host": "127.0.0.1", "port": port, "extra": {"timeout": 5}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONNECTION.upper()}", json.dumps(conn))
    ack = zam.dmp_receipt(
        REQUEST,
        accepted=True,
        control_id=zam.zam_control_id(zam.Z01_DMP_RECEIPT, 77),
        now=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
    )
    producer_acks.emit(source, ack, ledger=fresh_ledger, actor="test", sleep=lambda _: None)
    folder = source.work_dir / producer_acks.SPOOL_DIR
    (queued,) = folder.glob("*.json")
    hour_ago = queued.stat().st_mtime - 3600
    os.utime(queued, (hour_ago, hour_ago))  # the peer has been down for an hour

    (entry,) = producer_acks._Queued.load_all(source)
    assert entry.claim(source)  # task A takes it and is sending it right now

    with MllpPeer(port=port) as peer:
        counts = producer_acks.resend_pending(
            fresh_ledger, [source], actor="test"
        )  # task B's sweep
        assert peer.received == []
    assert counts["sent"] == 0
    assert list(folder.glob("*.sending")) != []  # still task A's


def test_a_queued_zam_sent_by_a_sweep_that_died_before_unqueuing_it_is_not_sent_again(
    fresh_ledger, source, monkeypatch
):
    port = _free_port()
    conn = {"conn_type": "mllp", "host": "127.0.0.1", "port": port, "extra": {"timeout": 5}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONNECTION.upper()}", json.dumps(conn))
    delivery_id = record_document(fresh_ledger, "1.2.250.1.999.1.1.78", "dmp").delivery_id
    ack = zam.dmp_receipt(
        REQUEST,
        accepted=True,
        control_id=zam.zam_control_id(zam.Z01_DMP_RECEIPT, delivery_id),
        now=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
    )
    producer_acks.emit(
        source,
        ack,
        ledger=fresh_ledger,
        delivery_id=delivery_id,
        actor="test",
        sleep=lambda _: None,
    )
    folder = source.work_dir / producer_acks.SPOOL_DIR

    class Killed(BaseException):
        """The sweeping task is killed right after the send was recorded."""

    def killed(self, source):
        raise Killed

    with MllpPeer(port=port) as peer:
        with monkeypatch.context() as crash:
            crash.setattr(producer_acks._Queued, "remove", killed)
            with pytest.raises(Killed):
                producer_acks.resend_pending(fresh_ledger, [source], actor="test")
        (claimed,) = folder.glob("*.sending")
        old = claimed.stat().st_mtime - producer_acks.CLAIM_STALE.total_seconds() - 60
        os.utime(claimed, (old, old))  # the dead task's claim comes back to the queue
        counts = producer_acks.resend_pending(
            fresh_ledger, [source], actor="test"
        )  # the next sweep
        assert peer.wait_received(1)
        received = [e.control_id for e in peer.exchanges]
    assert received == [ack.control_id]  # the producer gets its ZAM once
    assert counts["sent"] == 0
    assert len(fresh_ledger.events(delivery_id=delivery_id, kind=producer_acks.EVENT_SENT)) == 1
    assert list(folder.iterdir()) == []
