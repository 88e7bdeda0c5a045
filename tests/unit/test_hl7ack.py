"""Technical ACK: built from the original MSH per the volet (official example as golden sample)."""

from datetime import datetime

import pytest

from pfi.protocols.hl7v2.ack import (
    ERR_UNSUPPORTED_VERSION,
    AckError,
    codec_for,
    escape,
    read_header,
    split_segments,
    technical_ack,
)

# Source: ansforge/hl7V2-exemples, Vague 2/Trans_Doc-CDA-HL7V2/.../MDM/Remplacement MDM/
# message_MDM_CR_Radio_RPLC_N1.er7 (MSH only) and its ack.er7.
MSH = (
    b"MSH|^~\\&|RIS-Y|Organisation-Y|PFI-Y|Organisation-Y|202106060931||MDM^T10^MDM_T02|015|P|2.6"
    b"|||||FRA|UNICODE UTF-8|||2.1^CISIS_CDA_HL7_V2\nEVN||20211005152908\n"
)
OFFICIAL_ACK = (
    "MSH|^~\\&|PFI-Y|Organisation-Y|RIS-Y|Organisation-Y|202106060932||ACK^T10^ACK|016|P|2.6"
    "|||||FRA|UNICODE UTF-8\rMSA|AA|015\r"
)


def test_header_is_read_whatever_the_segment_separator():
    for raw in (MSH, MSH.replace(b"\n", b"\r"), MSH.replace(b"\n", b"\r\n")):
        header = read_header(raw)
        assert header.control_id == "015"
        assert header.message_type == "MDM^T10"
        assert header.charset == "UNICODE UTF-8"
        assert header.version == "2.6"


def test_ack_matches_the_official_example():
    ack = technical_ack(read_header(MSH), "AA", control_id="016", now=datetime(2021, 6, 6, 9, 32))
    # MSH-7 is written to the second; the example stops at the minute.
    assert ack.replace("202106060932" + "00", "202106060932") == OFFICIAL_ACK


def test_error_ack_carries_err_segment_and_escapes_text():
    ack = technical_ack(
        read_header(MSH),
        "AE",
        control_id="017",
        now=datetime(2021, 6, 6, 9, 32),
        errors=(AckError(condition=ERR_UNSUPPORTED_VERSION, location="MSH^1^12"),),
        text="bad | value",
    )
    segments = split_segments(ack)
    assert segments[1] == "MSA|AE|015|bad \\F\\ value"
    assert segments[2] == "ERR||MSH^1^12|203^Unsupported version id^messageErrorCondition|E"


def test_garbage_gives_an_empty_header_not_an_exception():
    header = read_header(b"\x00\x01 not hl7")
    assert header.control_id == ""
    assert technical_ack(header, "AE", control_id="1", now=datetime(2026, 1, 1)).startswith("MSH|")


def test_ack_code_is_checked():
    with pytest.raises(ValueError):
        technical_ack(read_header(MSH), "OK", control_id="1", now=datetime(2026, 1, 1))


def test_charsets_and_escape():
    assert codec_for("8859/1") == "iso-8859-1"
    assert codec_for("UNICODE UTF-8") == "utf-8"
    assert codec_for("", default="utf-8") == "utf-8"
    assert escape("a^b~c\\d&e") == "a\\S\\b\\R\\c\\E\\d\\T\\e"


def test_reply_header_swaps_applications_and_adds_the_profile_in_the_message_separators():
    from pfi.protocols.hl7v2.ack import reply_header

    original = read_header(MSH.replace(b"|", b"#").replace(b"^", b"$"))
    msh = reply_header(
        original,
        ("ZAM", "Z01", "ZAM_Z01"),
        "A#1",
        datetime(2026, 1, 2, 3, 4, 5),
        version="2.6",
        profile="2.1^CISIS_CDA_HL7_V2",
    )
    fields = msh.split("#")
    assert fields[1] == "$~\\&"
    assert fields[2:6] == ["PFI-Y", "Organisation-Y", "RIS-Y", "Organisation-Y"]
    assert (fields[6], fields[8], fields[9]) == ("20260102030405", "ZAM$Z01$ZAM_Z01", "A\\F\\1")
    assert (fields[17], fields[20]) == ("UNICODE UTF-8", "2.1$CISIS_CDA_HL7_V2")


def test_error_segment_with_alternate_code_and_diagnostic():
    from pfi.protocols.hl7v2.ack import ERR_APPLICATION, error_segment

    err = AckError(
        ERR_APPLICATION,
        location="PID^1^3",
        application_code="906",
        application_text="Erreur 'Autre'",
        application_table="applicationErrorCode",
        alternate_code="INS_KEY",
        alternate_text="clé|NIR",
        alternate_table="PFI",
        diagnostic="INS_KEY: bad key",
    )
    segment = error_segment(read_header(MSH), err)
    assert segment == (
        "ERR||PID^1^3|207^Application internal error^messageErrorCondition|E|906^Erreur 'Autre'"
        "^applicationErrorCode^INS_KEY^clé\\F\\NIR^PFI||INS_KEY: bad key"
    )
    assert error_segment(read_header(MSH), AckError(ERR_UNSUPPORTED_VERSION)) == (
        "ERR|||203^Unsupported version id^messageErrorCondition|E"
    )
