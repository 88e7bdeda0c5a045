"""The MLLP inlet over a real socket: stored atomically, committed, then ingested like a drop."""

import socket
import threading

import pytest

from pfi.base.settings import load_settings
from pfi.flows.inlet import InletConfig, MllpInlet, Store, frame, send
from pfi.protocols.hl7v2.ack import split_segments
from pfi_devkit.samples import MDM_INIT, control_id
from pfi_fixtures.site import ingest, write_settings

pytestmark = pytest.mark.integration

CTL = control_id(MDM_INIT)  # MSH-10 of the project's MDM sample (pfi_devkit.samples)


@pytest.fixture
def settings(tmp_path):
    extra = """
[intake]
max_message_bytes = 1048576
[[mllp_inlet]]
source = "dpi"
host = "127.0.0.1"
port = 0
"""
    return load_settings(write_settings(tmp_path, extra=extra))


@pytest.fixture
def inlet(settings):
    with MllpInlet.for_source(settings, "dpi") as running:
        yield running


def msa(answer: bytes) -> list[str]:
    return next(s for s in split_segments(answer.decode("ascii")) if s.startswith("MSA")).split("|")


def test_a_message_is_on_disk_when_committed_and_then_ingested(
    inlet, settings, samples_dir, fresh_ledger
):
    message = (samples_dir / MDM_INIT).read_bytes()
    answer = send(*inlet.address, message)

    assert msa(answer)[:3] == ["MSA", "CA", CTL]
    assert split_segments(answer.decode())[0].split("|")[8] == "ACK^T02^ACK"
    drop_dir = settings.source("dpi").drop_dir
    [stored] = list(drop_dir.iterdir())  # no temporary file left beside it
    assert stored.name.startswith("MLLP_") and stored.read_bytes() == message

    _, [result] = ingest(fresh_ledger, settings)
    assert (result["acknowledged"], result["deliveries"]) == (1, 2)
    [ack] = settings.source("dpi").outbound_dir.glob("ACK_*.hl7")
    assert split_segments(ack.read_text("utf-8"))[1] == f"MSA|AA|{CTL}"


def test_several_messages_on_one_connection_in_arrival_order(inlet, settings, samples_dir):
    message = (samples_dir / MDM_INIT).read_bytes()
    variants = [message.replace(f"|{CTL}|".encode(), f"|A{i}|".encode(), 1) for i in range(3)]
    with socket.create_connection(inlet.address, timeout=10) as connection:
        # noise before the first frame, and all frames in one write
        connection.sendall(b"\r\n" + b"".join(frame(v) for v in variants))
        answers = bytearray()
        while answers.count(b"\x1c\r") < 3:
            answers += connection.recv(65536)
    assert [msa(a)[2] for a in bytes(answers).split(b"\x1c\r")[:3]] == ["A0", "A1", "A2"]
    stored = sorted(settings.source("dpi").drop_dir.iterdir())
    assert [p.read_bytes() for p in stored] == variants


def test_concurrent_producers_are_all_stored(inlet, settings, samples_dir):
    message = (samples_dir / MDM_INIT).read_bytes()
    answers: list[str] = []

    def producer(i: int) -> None:
        answers.append(
            msa(send(*inlet.address, message.replace(f"|{CTL}|".encode(), f"|C{i}|".encode())))[1]
        )

    threads = [threading.Thread(target=producer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == ["CA"] * 8
    assert len(list(settings.source("dpi").drop_dir.glob("MLLP_*.hl7"))) == 8


def test_unreadable_messages_are_stored_for_intake_to_answer(inlet, settings):
    answer = send(*inlet.address, b"not hl7 at all")
    assert msa(answer)[:3] == ["MSA", "CA", ""]
    [stored] = settings.source("dpi").drop_dir.iterdir()
    assert stored.read_bytes() == b"not hl7 at all"


def test_an_oversized_message_is_refused_unstored(inlet, settings, samples_dir):
    message = (samples_dir / MDM_INIT).read_bytes()
    huge = message.rstrip(b"\n") + b"\nNTE|1||" + b"A" * (2 * 1024 * 1024) + b"\n"
    answer = send(*inlet.address, huge)
    fields = msa(answer)
    assert fields[:3] == ["MSA", "CR", CTL] and fields[3].startswith("INTAKE_TOO_LARGE")
    assert not list(settings.source("dpi").drop_dir.iterdir())


class FullDisk(Store):
    def write(self, message: bytes):
        raise OSError(28, "No space left on device")


def test_a_message_that_cannot_be_stored_gets_a_commit_error(settings, samples_dir):
    config = InletConfig("dpi", "127.0.0.1", 0)
    source = settings.source("dpi")
    with MllpInlet(config, source, store=FullDisk(source.drop_dir)) as inlet:
        answer = send(*inlet.address, (samples_dir / MDM_INIT).read_bytes())
    assert msa(answer)[:3] == ["MSA", "CE", CTL]
    assert not list(source.drop_dir.iterdir())


def test_pfi_hl7_listen_serves_until_sigterm(settings, samples_dir):
    import json
    import os
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "pfi", "--settings", str(settings.source_file)]
        + ["hl7", "listen", "dpi", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        started = json.loads(process.stdout.readline())
        assert started["source"] == "dpi" and started["port"] > 0
        answer = send(started["host"], started["port"], (samples_dir / MDM_INIT).read_bytes())
        assert msa(answer)[:3] == ["MSA", "CA", CTL]
        assert len(list(settings.source("dpi").drop_dir.glob("MLLP_*.hl7"))) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert b"stored as MLLP_" in process.stderr.read()
