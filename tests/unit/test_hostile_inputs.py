"""Hostile inputs at volume (property-based, hypothesis): the HL7 v2 parser and intake's
evaluation of a message, the MIME reader, the XDM reader and the CDA reader.

Each property: the reader returns, or refuses with one of the project's coded errors whose text
names none of the input's patient data, within a bounded time; never another exception. The
inputs are the project's samples mutated (:mod:`pfi_fixtures.hostile`) and random bytes. In
``make test`` a few dozen derandomized cases each (profile ``ci``); ``make fuzz`` runs 10,000 or
more per property (profile ``fuzz``).
"""

from __future__ import annotations

import pytest
from hypothesis import given

from pfi_fixtures.hostile import (
    MAX_RSS_GROWTH_MB,
    cda_inputs,
    cda_seeds,
    hl7_inputs,
    hl7_seeds,
    leaks,
    mail_inputs,
    mail_seeds,
    peak_rss_mb,
    refusal_is_coded,
    run_property,
    xdm_inputs,
    xdm_seeds,
)

SOURCE_ENCODING = "iso-8859-1"


@pytest.fixture(autouse=True)
def bounded_memory():
    before = peak_rss_mb()
    yield
    assert peak_rss_mb() - before < MAX_RSS_GROWTH_MB


def test_the_seeds_are_accepted_by_the_readers_they_feed():
    from pfi.protocols.cda import read_cda
    from pfi.protocols.hl7v2 import parse_message
    from pfi.protocols.mssante.inbound import read_mail
    from pfi.protocols.xdm import read_xdm

    assert len(hl7_seeds()) == 4 and all(parse_message(raw) for raw in hl7_seeds())
    assert cda_seeds() and all(read_cda(raw).patient for raw in cda_seeds())
    mails = [read_mail(raw) for raw in mail_seeds()]
    assert [len(m.xdm_archives) for m in mails] == [1, 1, 0]
    assert len(xdm_seeds()) == 2 and all(read_xdm(data).documents for data in xdm_seeds())


# --- HL7 v2 -----------------------------------------------------------------------------------


@given(hl7_inputs())
def test_hl7_parser_answers_every_message_of_a_file(raw):
    from pfi.protocols.hl7v2 import Hl7Error, parse_file

    def check(data: bytes) -> None:
        results = parse_file(data, default_encoding=SOURCE_ENCODING)
        assert results
        for result in results:
            if isinstance(result, Hl7Error):
                refusal_is_coded(result, prefixes=("HL7_",))
                result.ack_error()  # the ERR of its ACK can be written

    run_property(check, raw)


@given(hl7_inputs())
def test_intake_evaluates_every_message_without_raising(raw):
    from pfi.flows.intake.evaluate import evaluate
    from pfi.protocols.hl7v2 import split_file

    def check(data: bytes) -> None:
        for index, chunk in enumerate(split_file(data), 1):
            result = evaluate(index, chunk, **_evaluation_context())
            answer = result.answer
            assert answer.code in ("AA", "AE", "AR")
            if not answer.accepted:
                assert answer.reason_code, answer
                text = f"{answer.reason_code} {answer.reason_text}"
                assert not leaks(text), f"patient data in {text[:300]!r}"
                assert answer.errors

    run_property(check, raw)


def _evaluation_context() -> dict:
    from pathlib import Path

    from pfi.base.settings import Hl7Source
    from pfi.flows.intake.evaluate import IntakeOptions
    from pfi.protocols.ins import InsPolicy

    return {
        "source": Hl7Source(
            name="dpi",
            kind="DPI",
            finess_geo="010000032",
            drop_dir=Path("in"),
            outbound_dir=Path("out"),
            archive_dir=Path("archive"),
            quarantine_dir=Path("quarantine"),
            work_dir=Path("work"),
            default_encoding=SOURCE_ENCODING,
        ),
        "policy": InsPolicy.for_environment("test"),
        "options": IntakeOptions(max_message_bytes=1024 * 1024),
        "structure_oid": "1.2.250.1.71.4.2.2",
    }


# --- MIME -------------------------------------------------------------------------------------


@given(mail_inputs())
def test_mime_reader_reads_or_refuses_with_a_code(raw):
    from pfi.protocols.mssante.inbound import read_mail

    def check(data: bytes) -> None:
        try:
            mail = read_mail(data)
        except Exception as exc:
            refusal_is_coded(exc, prefixes=("MSS_",))
            return
        assert not leaks(repr(mail))
        for attachment in mail.attachments:
            assert isinstance(attachment.data, bytes) and not leaks(repr(attachment))

    run_property(check, raw)


# --- XDM --------------------------------------------------------------------------------------


@given(xdm_inputs())
def test_xdm_reader_reads_or_refuses_with_a_code(data):
    from pfi.protocols.xdm import read_xdm

    def check(archive: bytes) -> None:
        try:
            package = read_xdm(archive)
        except Exception as exc:
            refusal_is_coded(exc, prefixes=("XDM_",))
            return
        assert package.documents
        for document in package.documents:
            assert isinstance(document.content, bytes)

    run_property(check, data)


# --- CDA --------------------------------------------------------------------------------------


@given(cda_inputs())
def test_cda_reader_reads_or_refuses_with_a_code(raw):
    from pfi.protocols.cda import check_header, pdf_of, read_cda

    def check(data: bytes) -> None:
        try:
            document = read_cda(data)
        except Exception as exc:
            refusal_is_coded(exc, prefixes=("CDA_",))
            return
        for defect in check_header(document):  # what the flows record about a header
            assert not leaks(defect.message), defect
        try:
            pdf_of(document)
        except Exception as exc:
            refusal_is_coded(exc, prefixes=("CDA_",))

    run_property(check, raw)


# --- what the properties found (each failed before its fix) ------------------------------------


def test_a_message_whose_msh_runs_into_its_pid_is_refused_without_quoting_the_patient():
    """A lost segment separator puts PID-5 (the patient's name) in MSH-9; the refusal said
    ``PAT-TROIS^DOMINIQUE is not a message of the volet`` (into the ledger and the task log)."""
    from pfi.protocols.hl7v2 import Hl7Error, parse_file

    raw = hl7_seeds()[0]
    pid = raw.index(b"\rPID|") + 1
    merged = b"MSH|^~\\&|DPI-DEMO|" + raw[pid:]
    (result,) = parse_file(merged)
    assert isinstance(result, Hl7Error) and result.code == "HL7_UNSUPPORTED_EVENT"
    assert "(not an HL7 code)" in result.reason
    refusal_is_coded(result)


def test_an_msh_18_holding_a_name_is_refused_without_quoting_it():
    from pfi.protocols.hl7v2 import Hl7Error, parse_file

    raw = hl7_seeds()[0]
    msh, rest = raw.split(b"\r", 1)
    fields = msh.split(b"|") + [b""] * 20
    fields[17] = b"PAT-TROIS DOMINIQUE"
    (result,) = parse_file(b"|".join(fields[:18]) + b"\r" + rest)
    assert isinstance(result, Hl7Error) and result.code == "HL7_CHARSET"
    refusal_is_coded(result)
    fields[17] = b"8859/99"  # a table 0211 shape is still quoted, to help the producer
    (result,) = parse_file(b"|".join(fields[:18]) + b"\r" + rest)
    assert "'8859/99'" in result.reason


def test_a_zip_asking_for_a_newer_zip_version_is_refused_as_not_a_zip():
    """zipfile raises NotImplementedError ("zip file version 6.4") for a central directory entry
    whose version needed to extract is above 6.3; read_xdm let it through, uncoded."""
    from pfi.base.errors import InvalidInput
    from pfi.protocols.xdm import read_xdm

    data = bytearray(xdm_seeds()[0])
    entry = data.index(b"PK\x01\x02")
    data[entry + 6] = 64  # version needed to extract: 6.4
    with pytest.raises(InvalidInput) as refused:
        read_xdm(bytes(data))
    assert refused.value.code == "XDM_NOT_ZIP"


def test_an_msh_21_holding_a_name_is_refused_without_quoting_it():
    """The same lost separator, further on: PID-5 in MSH-21 was quoted as the profile."""
    from pfi.protocols.hl7v2 import Hl7Error, parse_file

    raw = hl7_seeds()[0]
    msh, rest = raw.split(b"\r", 1)
    fields = (msh.split(b"|") + [b""] * 25)[:21]
    fields[20] = b"2.1^DOMINIQUE"
    (result,) = parse_file(b"|".join(fields) + b"\r" + rest)
    assert isinstance(result, Hl7Error) and result.code == "HL7_UNSUPPORTED_PROFILE"
    refusal_is_coded(result)
    fields[20] = b"1.1^CISIS_CDA_HL7_LPS"  # a profile's name is still quoted
    (result,) = parse_file(b"|".join(fields) + b"\r" + rest)
    assert "'CISIS_CDA_HL7_LPS'" in result.reason


def test_no_error_mail_is_made_for_a_sender_address_smtp_cannot_carry():
    """A sender with a non-ASCII local part (no SMTPUTF8 here) made an error mail whose RCPT
    failed with UnicodeEncodeError, a transient error retried at every poll, for ever."""
    from pfi.base.errors import InvalidInput
    from pfi.protocols.mssante.error_mail import error_mail
    from pfi.protocols.mssante.inbound import read_mail

    raw = mail_seeds()[2].replace(b"dr.test@", "dr.tést@".encode(), 1)
    original = read_mail(raw)
    assert original.sender.startswith("dr.tést@")
    with pytest.raises(InvalidInput) as refused:
        error_mail(
            original,
            from_address="pfi@ch-demo.mssante.test",
            code="MSS_NO_XDM",
            text="x",
            message_id="<r@ch.test>",
        )
    assert refused.value.code == "MSS_BAD_ADDRESS"


def test_obx_values_run_into_by_the_pid_are_not_quoted():
    """A duplicated MSH line shifted the segments so that OBX-5.4 (the encoding) held the
    patient's given name: ``OBX-5.4 encoding 'DOMINIQUE' is not Base64, A or Hex``."""
    from pfi.protocols.hl7v2 import Hl7Error, parse_file

    raw = hl7_seeds()[0].replace(b"^text^XML^Base64^", b"^text^XML^DOMINIQUE^", 1)
    (result,) = parse_file(raw.replace(b"OBX|1|ED|", b"OBX|PAT-TROIS|ED|", 1))
    assert isinstance(result, Hl7Error) and result.code == "HL7_ED_ENCODING"
    refusal_is_coded(result)
    assert "OBX ?:" in result.reason
    (result,) = parse_file(raw.replace(b"^text^XML^DOMINIQUE^", b"^text^XML^B64^", 1))
    assert "'B64'" in result.reason  # a code-shaped value is still quoted
