"""Business acknowledgements (ZAM): built per the volet, read back by our own parser.

Golden reference: the official ZAM examples (``Volets/TRANS_DOC_CDA_HL7V2/V2.1/ORU/Transmission
initiale ORU/Message metier *``), compared segment by segment except MSH-7/MSH-10/EVN-2 and the
spellings the IG table corrects (``DMP_ERROR_CODE``, "Application error").
"""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pfi.flows import producer_acks
from pfi.protocols.hl7v2 import Hl7Ack, MetaFlags, parse_message, zam
from pfi.protocols.hl7v2.ack import read_header, split_segments
from pfi_fixtures.site import source_in

ZAM_DIR = "ans-hl7v2-exemples/Volets/TRANS_DOC_CDA_HL7V2/V2.1/ORU/Transmission initiale ORU"
ORU = f"{ZAM_DIR}/message_ORU_CR_Bio_INIT_N1_N3.hl7"
NOW = datetime(2021, 10, 5, 15, 29, 8, tzinfo=UTC)


@pytest.fixture(scope="module")
def request_header(fixtures_dir):
    header = read_header((fixtures_dir / ORU).read_bytes())
    assert header.control_id == "015"
    return header


def official(fixtures_dir, name: str) -> list[list[str]]:
    text = (fixtures_dir / ZAM_DIR / name).read_text("utf-8")
    return [s.rstrip("|").split("|") for s in split_segments(text)]


def fields(ack: zam.BusinessAck) -> list[list[str]]:
    return [s.rstrip("|").split("|") for s in split_segments(ack.render())]


def test_dmp_refusal_matches_the_official_example(fixtures_dir, request_header):
    ack = zam.dmp_receipt(
        request_header,
        accepted=False,
        control_id="017",
        now=NOW,
        error_code="DMPClosed",
        error_text="DMP fermé",
    )
    ours, theirs = fields(ack), official(fixtures_dir, "Message metier reception DMP")
    assert [s[0] for s in ours] == [s[0] for s in theirs] == ["MSH", "EVN", "OBX", "ERR"]
    # MSH: applications swapped back to the producer, type, control id, version, charset, profile
    assert ours[0][2:6] == theirs[0][2:6] == ["PFI-X", "Organisation-X", "SIL-Y", "labo"]
    assert ours[0][8] == theirs[0][8] == "ZAM^Z01^ZAM_Z01"
    assert ours[0][9:] == theirs[0][9:]
    assert ours[1] == theirs[1]  # EVN||20211005152908
    assert ours[2] == theirs[2]  # OBX 1: ACK_RECEPTION_DMP, OBX-4 = 015, N
    assert ours[3][:5] == theirs[3][:3] + ["207^Application error^messageErrorCondition", "E"]
    assert ours[3][5] == "DMPClosed^DMP fermé^DMP_ERROR_CODE"


@pytest.mark.parametrize(
    ("builder", "example", "item"),
    [
        (zam.mss_receipt, "Message metier reception MSS", "ACK_RECEPTION_MSS"),
        (zam.mss_read, "Message metier lecture MSS", "ACK_LECTURE_MSS"),
    ],
)
def test_mss_acknowledgements_match_the_official_examples(
    fixtures_dir, request_header, builder, example, item
):
    theirs = official(fixtures_dir, example)
    address = "adam.hoda@test-ci-sis.mssante.fr"
    if builder is zam.mss_receipt:
        ack = builder(
            request_header,
            recipient_address=address,
            delivered=True,
            control_id=theirs[0][9],
            now=NOW,
            recipient_id="801234567897",
        )
    else:
        ack = builder(
            request_header,
            reader_address=address,
            control_id=theirs[0][9],
            now=NOW,
            recipient_id="801234567897",
        )
    ours = fields(ack)
    assert ours[0][8:] == theirs[0][8:]
    assert ours[1:] == theirs[1:]
    assert ack.item == item


def test_every_zam_parses_back_as_an_acknowledgement(request_header):
    built = [
        zam.dmp_receipt(request_header, accepted=True, control_id="PFIZ01D1", now=NOW),
        zam.mss_receipt(
            request_header,
            recipient_address="dr.x@hop.mssante.fr",
            delivered=False,
            control_id="PFIZ02D2",
            now=NOW,
            smtp_code="550",
        ),
        zam.mss_read(
            request_header,
            reader_address="dr.x@hop.mssante.fr",
            control_id="PFIZ03D3",
            now=NOW,
            processed=False,
            error_code="904",
        ),
    ]
    parsed = [parse_message(z.encode()) for z in built]
    assert all(isinstance(p, Hl7Ack) and p.is_business for p in parsed)
    assert [(p.message_type, p.code, p.acknowledged_control_id, p.item) for p in parsed] == [
        ("ZAM^Z01", "Y", "015", "ACK_RECEPTION_DMP"),
        ("ZAM^Z02", "N", "015", "ACK_RECEPTION_MSS"),
        ("ZAM^Z03", "N", "015", "ACK_LECTURE_MSS"),
    ]
    assert [p.control_id for p in parsed] == ["PFIZ01D1", "PFIZ02D2", "PFIZ03D3"]
    assert parsed[0].errors == ()
    assert parsed[1].recipient_address == "dr.x@hop.mssante.fr"
    smtp, read = parsed[1].errors[0], parsed[2].errors[0]
    assert (smtp.condition[0], smtp.application_code, smtp.application_table) == (
        "207",
        "550",
        "SMTPERRORCODE",
    )
    assert smtp.application_text.startswith("Action non effectuée")
    assert (read.application_code, read.application_table) == ("904", "applicationErrorCode")
    assert parsed[0].header.sending_application == request_header.receiving_application
    assert parsed[0].header.receiving_facility == request_header.sending_facility
    assert parsed[0].profile is not None and parsed[0].profile.is_current


def test_smtp_codes_outside_the_table_fall_back_to_their_class():
    assert zam.smtp_error("550").code == "550"
    assert zam.smtp_error(421).code == "421"
    assert zam.smtp_error("471").code == "451"  # temporary, not in the table
    assert zam.smtp_error("599").code == "554"  # permanent, not in the table
    assert zam.smtp_error(None).code == "554"
    assert zam.smtp_error("550", "boîte inconnue").text == "boîte inconnue"


def test_unknown_mdn_error_codes_become_906(request_header):
    ack = zam.mss_read(
        request_header,
        reader_address="a@b.mssante.fr",
        control_id="X",
        now=NOW,
        processed=False,
        error_code="42",
    )
    assert ack.error == zam.ZamError("906", "Erreur 'Autre'", "applicationErrorCode")


def test_error_texts_are_escaped(request_header):
    ack = zam.dmp_receipt(
        request_header,
        accepted=False,
        control_id="X",
        now=NOW,
        error_code="E|1",
        error_text="a^b&c",
    )
    err = split_segments(ack.render())[-1]
    assert err.endswith("|E\\F\\1^a\\S\\b\\T\\c^DMP_ERROR_CODE")
    parsed = parse_message(ack.encode())
    assert parsed.errors[0].application_code == "E|1"
    assert parsed.errors[0].application_text == "a^b&c"


def test_inconsistent_zams_are_refused(request_header):
    with pytest.raises(ValueError, match="names the MSSanté mailbox"):
        zam.mss_receipt(
            request_header, recipient_address="", delivered=True, control_id="X", now=NOW
        )
    with pytest.raises(ValueError, match="own control id"):
        zam.dmp_receipt(request_header, accepted=True, control_id="", now=NOW)
    with pytest.raises(ValueError, match="ZAM event"):
        zam.zam_control_id("Z09", 1)


def test_the_address_stays_out_of_repr(request_header):
    ack = zam.mss_receipt(
        request_header,
        recipient_address="279035121518989@patient.mssante.fr",
        delivered=True,
        control_id="X",
        now=NOW,
    )
    assert "279035121518989" not in repr(ack)


def test_wanted_follows_the_request_flags():
    flags = MetaFlags(ack_reception=True, ack_lecture_mss=False)
    assert zam.wanted(flags, zam.Z01_DMP_RECEIPT) and zam.wanted(flags, zam.Z02_MSS_RECEIPT)
    assert not zam.wanted(flags, zam.Z03_MSS_READ)
    assert not zam.wanted(MetaFlags(), zam.Z01_DMP_RECEIPT)


def test_write_zam_writes_once_per_control_id_in_the_request_charset(tmp_path, request_header):
    source = source_in(tmp_path, "sgl", "SGL")
    control = zam.zam_control_id(zam.Z01_DMP_RECEIPT, 42)
    ack = zam.dmp_receipt(request_header, accepted=True, control_id=control, now=NOW)
    first = producer_acks.write_zam(source, ack)
    again = producer_acks.write_zam(source, ack)  # a retried task
    assert first == again == tmp_path / "out" / "ZAM_Z01_PFIZ01D42_015.hl7"
    assert [p.name for p in (tmp_path / "out").iterdir()] == [first.name]  # no temporary left
    data = Path(first).read_bytes()
    assert "Accusé de réception DMP".encode() in data  # MSH-18 UNICODE UTF-8
    assert data.count(b"\r") == 3 and b"\n" not in data


def test_emit_without_mllp_or_ledger_only_writes_the_file(tmp_path, request_header):
    source = source_in(tmp_path, zam_mllp_connection="pfi_dpi_mllp")
    ack = zam.dmp_receipt(request_header, accepted=True, control_id="PFIZ01D1", now=NOW)
    path = producer_acks.emit(source, ack)  # no ledger to record a send in: the file only
    assert path.read_bytes() == ack.encode()
    assert not (tmp_path / "work").exists()  # nothing queued


def test_msh_and_err_come_from_the_shared_builders(request_header):
    from pfi.protocols.hl7v2.ack import AckError, error_segment, reply_header

    ack = zam.dmp_receipt(
        request_header, accepted=False, control_id="PFIZ01D9", now=NOW, error_code="DMPClosed"
    )
    segments = split_segments(ack.render())
    assert segments[0] == reply_header(
        request_header,
        ("ZAM", "Z01", "ZAM_Z01"),
        "PFIZ01D9",
        NOW,
        version="2.6",
        profile=zam.PROFILE,
    )
    error = AckError(
        zam.ERR_APPLICATION_IG,
        application_code="DMPClosed",
        application_text="Refus du DMP",
        application_table=zam.TABLE_DMP_ERROR,
    )
    assert segments[-1] == error_segment(request_header, error)
