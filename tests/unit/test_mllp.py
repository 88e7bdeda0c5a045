"""pfi.protocols.mllp: framing, reading the peer's ACK, and where the peer is (no socket here)."""

import json

import pytest

from pfi.base.connections import Connection, from_environment
from pfi.base.errors import ConfigurationError, TransientError
from pfi.protocols.mllp import Deframer, MllpEndpoint, frame, parse_answer

ACK_AE = (
    b"MSH|^~\\&|DPI|CH|PFI|CH|20260302080000||ACK^Z01^ACK|ACK000001|P|2.6\r"
    b"MSA|AE|PFIZ01D7\r"
    b"ERR|||207^Application error^messageErrorCondition|E|902^Identifiant patient inconnu"
    b"^applicationErrorCode\r"
)


def test_frame_wraps_in_vt_fs_cr():
    assert frame(b"MSH|x") == b"\x0bMSH|x\x1c\r"


def test_deframer_cuts_messages_across_chunks_and_drops_noise():
    deframer = Deframer()
    stream = b"noise" + frame(b"ONE") + b"\r\n" + frame(b"TWO") + frame(b"THREE")
    got = []
    for i in range(0, len(stream), 3):  # 3-byte chunks: every boundary falls inside a chunk
        deframer.feed(stream[i : i + 3])
        while (message := deframer.next_message()) is not None:
            got.append(message)
    assert got == [b"ONE", b"TWO", b"THREE"]
    assert deframer.pending == 0


def test_deframer_reports_an_unfinished_block_and_its_head():
    deframer = Deframer()
    deframer.feed(b"garbage\x0bMSH|^~\\&|APP")
    assert deframer.next_message() is None
    assert deframer.pending == len(b"MSH|^~\\&|APP")
    assert deframer.pending_head(4) == b"MSH|"


def test_a_lone_fs_inside_a_message_does_not_end_it():
    deframer = Deframer()
    deframer.feed(frame(b"A\x1cB"))
    assert deframer.next_message() == b"A\x1cB"


def test_parse_answer_reads_msa_and_the_application_error():
    answer = parse_answer(ACK_AE)
    assert (answer.code, answer.acknowledged_id, answer.error_code) == ("AE", "PFIZ01D7", "902")
    assert answer.text == "Identifiant patient inconnu"
    assert not answer.accepted


def test_parse_answer_accepts_lf_and_commit_codes():
    answer = parse_answer(b"MSH|^~\\&|DPI|CH|PFI|CH|2026||ACK|1|P|2.6\nMSA|CA|X42\n")
    assert (answer.code, answer.acknowledged_id, answer.error_code) == ("CA", "X42", "")
    assert answer.accepted


def test_parse_answer_falls_back_on_the_err3_condition():
    raw = b"MSH|^~\\&|A|B|C|D|2026||ACK|1|P|2.6\rMSA|AR|X1\rERR|||101^Required field missing\r"
    assert parse_answer(raw).error_code == "101"


@pytest.mark.parametrize("raw", [b"", b"MSH|^~\\&|A|B|C|D|2026||ACK|1|P|2.6\r", b"MSA||X\r"])
def test_an_answer_without_msa_code_is_transient(raw):
    with pytest.raises(TransientError) as caught:
        parse_answer(raw)
    assert caught.value.code == "MLLP_BAD_ANSWER"


def test_endpoint_from_the_json_connection(monkeypatch):
    conn = {"conn_type": "mllp", "host": "dpi.local", "port": 2575, "extra": {"timeout": "7"}}
    monkeypatch.setenv("AIRFLOW_CONN_PFI_DPI_MLLP", json.dumps(conn))
    endpoint = MllpEndpoint.from_connection(from_environment("pfi_dpi_mllp"))
    assert (endpoint.host, endpoint.port, endpoint.read_timeout) == ("dpi.local", 2575, 7.0)
    assert endpoint.connect_timeout == 10.0
    assert endpoint.connection_id == "pfi_dpi_mllp"


def test_endpoint_from_the_uri_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DPI2", "mllp://10.0.0.5:6661?timeout=12&connect_timeout=3")
    endpoint = MllpEndpoint.from_connection(from_environment("dpi2"))
    assert (endpoint.host, endpoint.port) == ("10.0.0.5", 6661)
    assert (endpoint.connect_timeout, endpoint.read_timeout) == (3.0, 12.0)


@pytest.mark.parametrize(
    "value",
    [None, '{"host": "dpi"}', "mllp://dpi:notaport", '{"port": 1}', "mllp://dpi:1?timeout=x"],
)
def test_a_missing_or_incomplete_connection_is_a_configuration_error(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("AIRFLOW_CONN_NOPE", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW_CONN_NOPE", value)
    with pytest.raises(ConfigurationError) as caught:
        MllpEndpoint.from_connection(from_environment("nope"))
    assert "nope" in str(caught.value)


def test_the_endpoint_of_a_connection_given_by_any_lookup():
    conn = Connection("dpi3", "generic", "10.0.0.7", 6662, extra={"connect_timeout": 2})
    endpoint = MllpEndpoint.from_connection(conn)
    assert endpoint == MllpEndpoint("10.0.0.7", 6662, 2.0, 30.0, "dpi3")
