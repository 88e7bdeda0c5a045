"""ZAMs over MLLP to the devkit peer playing the DPI, over real loopback sockets, with the
ledger on a real PostgreSQL: the client's answers, the ``zam.sent`` / ``zam.failed`` trail, the
in-task retry and the queue caught up when the peer is back. No sleeping: the waits between
attempts are handed a function that brings the peer up."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pfi.base.errors import TransientError
from pfi.base.settings import Hl7Source
from pfi.flows import producer_acks
from pfi.protocols.hl7v2 import zam
from pfi.protocols.hl7v2.ack import MessageHeader
from pfi.protocols.mllp import MllpClient, MllpEndpoint, MllpRefused
from pfi_devkit.mllp_peer import AckError, MllpPeer
from pfi_fixtures.site import source_in

pytestmark = pytest.mark.integration

CONNECTION = "pfi_test_zam_mllp"
REQUEST = MessageHeader(
    sending_application="DPI",
    sending_facility="CH DEMO",
    receiving_application="PFI",
    receiving_facility="CH DEMO",
    message_code="MDM",
    trigger_event="T02",
    control_id="REQ-0042",
    charset="8859/1",
)
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def receipt(number: int, *, accepted: bool = True) -> zam.BusinessAck:
    return zam.dmp_receipt(
        REQUEST,
        accepted=accepted,
        control_id=zam.zam_control_id(zam.Z01_DMP_RECEIPT, number),
        now=NOW,
        error_code="" if accepted else "DMPClosed",
    )


@pytest.fixture
def source(tmp_path: Path) -> Hl7Source:
    return source_in(tmp_path, zam_mllp_connection=CONNECTION)


@pytest.fixture(autouse=True)
def _no_peer_held_down():
    """Each test starts with no peer remembered as down (the hold-down is per process)."""
    producer_acks._PEERS_DOWN.clear()
    yield
    producer_acks._PEERS_DOWN.clear()


def point_to(monkeypatch, host: str, port: int) -> None:
    """The Airflow Connection as the workers see it (``AIRFLOW_CONN_<ID>``, JSON form)."""
    conn = {"conn_type": "mllp", "host": host, "port": port, "extra": {"timeout": 5}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONNECTION.upper()}", json.dumps(conn))


def events(ledger, kind: str) -> list[dict]:
    return [dict(e.detail) for e in ledger.events(kind=kind)]


def queued(source: Hl7Source) -> list[Path]:
    return sorted((source.work_dir / producer_acks.SPOOL_DIR).glob("*.json"))


# -- the client against the peer -------------------------------------------------------------


def test_client_returns_the_peers_aa(mllp_peer):
    message = receipt(1).encode()
    answer = MllpClient(MllpEndpoint(mllp_peer.host, mllp_peer.port)).send(
        message, control_id="PFIZ01D1"
    )
    assert (answer.code, answer.acknowledged_id) == ("AA", "PFIZ01D1")
    assert mllp_peer.exchanges[0].raw == message


def test_client_raises_the_refusal_with_the_peers_code(mllp_peer):
    mllp_peer.ack_code, mllp_peer.ack_error = "AE", AckError.application("902")
    with pytest.raises(MllpRefused) as caught:
        MllpClient(MllpEndpoint(mllp_peer.host, mllp_peer.port)).send(receipt(2).encode())
    assert caught.value.code == "MLLP_AE"
    assert (caught.value.answer.error_code, caught.value.answer.acknowledged_id) == (
        "902",
        "PFIZ01D2",
    )


@pytest.mark.parametrize("mode", ["close", "silent"])
def test_no_answer_is_transient(mllp_peer, mode):
    mllp_peer.mode = mode
    endpoint = MllpEndpoint(mllp_peer.host, mllp_peer.port, read_timeout=0.3)
    with pytest.raises(TransientError) as caught:
        MllpClient(endpoint).send(receipt(3).encode())
    assert caught.value.code == "MLLP_NO_ANSWER"
    assert mllp_peer.wait_received(1)  # it did reach the peer


def test_a_peer_that_is_down_is_transient():
    with pytest.raises(TransientError) as caught:
        MllpClient(MllpEndpoint("127.0.0.1", free_port())).send(receipt(4).encode())
    assert caught.value.code == "MLLP_UNREACHABLE"


# -- producer_acks.emit: file, MLLP, ledger trail ------------------------------------------------------


def test_peer_aa_gives_a_sent_event_and_the_same_bytes_as_the_file(
    fresh_ledger, mllp_peer, source, monkeypatch
):
    point_to(monkeypatch, mllp_peer.host, mllp_peer.port)
    path = producer_acks.emit(source, receipt(5), ledger=fresh_ledger, actor="test")

    assert path.read_bytes() == mllp_peer.exchanges[0].raw  # the file is the audit copy
    (sent,) = events(fresh_ledger, producer_acks.EVENT_SENT)
    assert sent == {
        "event": "Z01",
        "control_id": "PFIZ01D5",
        "source": "dpi",
        "file": path.name,
        "connection": CONNECTION,
        "ack_code": "AA",
        "attempts": 1,
    }
    assert events(fresh_ledger, producer_acks.EVENT_FAILED) == [] and queued(source) == []


def test_peer_ae_gives_a_failed_event_with_the_code_and_no_retry(
    fresh_ledger, mllp_peer, source, monkeypatch
):
    point_to(monkeypatch, mllp_peer.host, mllp_peer.port)
    mllp_peer.ack_code, mllp_peer.ack_error = "AE", AckError.application("902")
    path = producer_acks.emit(source, receipt(6, accepted=False), ledger=fresh_ledger, actor="test")

    assert path.exists() and "DMPClosed" in path.read_text("latin-1")
    (failed,) = events(fresh_ledger, producer_acks.EVENT_FAILED)
    assert (failed["code"], failed["ack_code"], failed["error_code"]) == ("MLLP_AE", "AE", "902")
    assert failed["transient"] is False and failed["attempts"] == 1
    assert len(mllp_peer.received) == 1 and queued(source) == []
    assert producer_acks.resend_pending(fresh_ledger, [source])["sent"] == 0


def test_peer_down_then_up_within_the_task_is_sent_once(fresh_ledger, source, monkeypatch):
    port = free_port()
    point_to(monkeypatch, "127.0.0.1", port)
    peer = MllpPeer(port=port)
    waits: list[float] = []

    def wait(seconds: float) -> None:  # the retry's wait: the DPI comes back meanwhile
        waits.append(seconds)
        peer.start()

    try:
        producer_acks.emit(source, receipt(7), ledger=fresh_ledger, actor="test", sleep=wait)
        assert waits == [producer_acks.MLLP_RETRY_DELAYS[0]]
        assert len(peer.received) == 1
    finally:
        peer.stop()
    (sent,) = events(fresh_ledger, producer_acks.EVENT_SENT)
    assert sent["attempts"] == 2 and events(fresh_ledger, producer_acks.EVENT_FAILED) == []


def test_peer_down_is_queued_then_sent_once_when_it_is_back(fresh_ledger, source, monkeypatch):
    port = free_port()
    point_to(monkeypatch, "127.0.0.1", port)
    waits: list[float] = []
    path = producer_acks.emit(
        source, receipt(8), ledger=fresh_ledger, actor="test", sleep=waits.append
    )

    assert waits == list(producer_acks.MLLP_RETRY_DELAYS) and path.exists()
    (failed,) = events(fresh_ledger, producer_acks.EVENT_FAILED)
    assert (failed["code"], failed["transient"], failed["attempts"]) == (
        "MLLP_UNREACHABLE",
        True,
        producer_acks.MLLP_ATTEMPTS,
    )
    assert len(queued(source)) == 1
    assert (
        producer_acks.resend_pending(fresh_ledger, [source])["failed"] == 1
    )  # still down: one try

    with MllpPeer(port=port) as peer:
        counts = producer_acks.resend_pending(fresh_ledger, [source], actor="test")
        again = producer_acks.resend_pending(fresh_ledger, [source], actor="test")
        assert [e.raw for e in peer.exchanges] == [path.read_bytes()]  # once, as written
    assert counts["sent"] == 1 and again["sent"] == 0
    assert [e["control_id"] for e in events(fresh_ledger, producer_acks.EVENT_SENT)] == ["PFIZ01D8"]
    assert queued(source) == []


def test_a_later_success_catches_up_the_queue(fresh_ledger, source, monkeypatch):
    port = free_port()
    point_to(monkeypatch, "127.0.0.1", port)
    producer_acks.emit(source, receipt(9), ledger=fresh_ledger, actor="test", sleep=lambda _: None)
    producer_acks._PEERS_DOWN.clear()  # a later task run: another process
    with MllpPeer(port=port) as peer:
        producer_acks.emit(source, receipt(10), ledger=fresh_ledger, actor="test")
        ids = [e.control_id for e in peer.exchanges]
    assert sorted(ids) == ["PFIZ01D10", "PFIZ01D9"]
    assert queued(source) == []


def test_a_zam_queued_too_long_is_given_up(fresh_ledger, source, monkeypatch):
    point_to(monkeypatch, "127.0.0.1", free_port())
    producer_acks.emit(source, receipt(11), ledger=fresh_ledger, actor="test", sleep=lambda _: None)
    later = datetime.now(UTC) + producer_acks.RESEND_WINDOW + timedelta(minutes=1)
    counts = producer_acks.resend_pending(fresh_ledger, [source], now=later)

    assert counts["given_up"] == 1 and queued(source) == []
    codes = [e["code"] for e in events(fresh_ledger, producer_acks.EVENT_FAILED)]
    assert codes == ["MLLP_UNREACHABLE", "ZAM_MLLP_GIVEN_UP"]


def test_a_missing_connection_is_a_queued_failure(fresh_ledger, source, monkeypatch):
    monkeypatch.delenv(f"AIRFLOW_CONN_{CONNECTION.upper()}", raising=False)
    path = producer_acks.emit(source, receipt(12), ledger=fresh_ledger, actor="test")
    (failed,) = events(fresh_ledger, producer_acks.EVENT_FAILED)
    assert path.exists() and (failed["code"], failed["transient"]) == ("CONNECTION_MISSING", True)
    assert len(queued(source)) == 1


def test_a_connection_lookup_that_fails_queues_the_zam_and_the_sweep_goes_on(fresh_ledger, source):
    """A secrets backend or the execution API down: the ZAM is queued, as for a missing one."""

    def broken(conn_id: str):
        raise RuntimeError("secrets backend unreachable")

    path = producer_acks.emit(
        source, receipt(15), ledger=fresh_ledger, actor="test", connections=broken
    )
    (failed,) = events(fresh_ledger, producer_acks.EVENT_FAILED)
    assert path.exists() and (failed["code"], failed["transient"]) == (
        "CONNECTION_UNREADABLE",
        True,
    )
    assert len(queued(source)) == 1
    counts = producer_acks.resend_pending(fresh_ledger, [source], connections=broken)
    assert counts["sent"] == 0 and len(queued(source)) == 1
    assert not list(source.work_dir.rglob("*.sending"))


def test_a_source_without_mllp_only_writes_the_file(fresh_ledger, source, mllp_peer):
    path = producer_acks.emit(
        replace(source, zam_mllp_connection=None), receipt(13), ledger=fresh_ledger
    )
    assert path.exists() and mllp_peer.received == []
    assert fresh_ledger.events(kind=producer_acks.EVENT_SENT) == []


def test_a_queued_zam_claimed_by_another_task_is_not_sent_twice(fresh_ledger, source, monkeypatch):
    port = free_port()
    point_to(monkeypatch, "127.0.0.1", port)
    producer_acks.emit(source, receipt(14), ledger=fresh_ledger, actor="test", sleep=lambda _: None)
    (entry,) = queued(source)
    claimed = entry.with_suffix(".sending")
    entry.rename(claimed)  # another task is sending it right now
    with MllpPeer(port=port) as peer:
        assert producer_acks.resend_pending(fresh_ledger, [source])["sent"] == 0
        assert peer.received == []
        old = claimed.stat().st_mtime - producer_acks.CLAIM_STALE.total_seconds() - 60
        os.utime(claimed, (old, old))  # ... and that task died
        assert producer_acks.resend_pending(fresh_ledger, [source])["sent"] == 1
        assert [e.control_id for e in peer.exchanges] == ["PFIZ01D14"]
    assert not claimed.exists() and queued(source) == []


def test_after_a_peer_failed_the_next_zams_of_the_run_are_queued_without_waiting(
    fresh_ledger, source, monkeypatch
):
    port = free_port()
    point_to(monkeypatch, "127.0.0.1", port)
    waits: list[float] = []
    for number in (15, 16, 17):
        producer_acks.emit(
            source, receipt(number), ledger=fresh_ledger, actor="test", sleep=waits.append
        )

    assert waits == list(producer_acks.MLLP_RETRY_DELAYS)  # only the first ZAM waited
    failed = [(e["code"], e["attempts"]) for e in events(fresh_ledger, producer_acks.EVENT_FAILED)]
    assert failed == [("MLLP_UNREACHABLE", 3), ("MLLP_PEER_DOWN", 0), ("MLLP_PEER_DOWN", 0)]
    assert len(queued(source)) == 3
    with MllpPeer(port=port) as peer:
        assert (
            producer_acks.resend_pending(fresh_ledger, [source])["sent"] == 3
        )  # a sweep still tries
        assert [e.control_id for e in peer.exchanges] == ["PFIZ01D15", "PFIZ01D16", "PFIZ01D17"]
