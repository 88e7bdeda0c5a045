"""The MDM the PFI sends the DPI for a document received by MSSanté (volet LPS v1.1), and the
DPI's ACK.

Golden reference: the three official examples (``Vague 2/Trans_LPS_CDA_MSSanté/…_V1.1``), each
built from its own CDA (the one inside the message) and the mail facts it carries, then compared
field by field; the differences kept on purpose are exactly those of the module docstring
(:data:`KEPT`), each checked for what it is. The project's own samples show, without
``../shared``, that the message is well formed: read back with python-hl7, every value comes out
as it went in.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import hl7
import pytest

from pfi.base.errors import InvalidInput
from pfi.protocols.cda import read_cda
from pfi.protocols.hl7v2 import Action, MetaFlags, parse_message
from pfi.protocols.hl7v2.ack import read_header, split_segments
from pfi.protocols.hl7v2.lps import (
    LpsMdm,
    OrganizationRef,
    Party,
    PersonRef,
    ReceivedMailFacts,
    Route,
    action_of,
    build_mdm,
    visibility_flags,
)
from pfi.protocols.hl7v2.lps_ack import DpiAck, ack_from_answer, read_ack
from pfi.protocols.mllp import MllpAnswer
from pfi.protocols.xds.model import Author, Coded, DocumentEntry, SubmissionSet
from pfi_devkit.samples import MDM_DEL, MDM_INIT, MDM_RPLC

LPS_DIR = (
    "ans-hl7v2-exemples/Vague 2/Trans_LPS_CDA_MSSanté/"
    "TRANSMISSION_LPS_DOC_CDA_COURRIEL_FROM_MSSANTE_V1.1"
)
#: MSH-7 and EVN-2/6 of the examples (EVN: the mail's date and its reception).
BUILT = datetime(2021, 6, 6, 9, 31)
MAIL_DATE = datetime(2021, 10, 5, 15, 29, 8)
SENDER = "thomas.eric@medecin.mssante.fr"
DPI_MAILBOX = "dpi@hopitalA.mssante.fr"
REPLY_TO = "adam.hoda@test-ci-sis.mssante.fr"


@dataclass(frozen=True)
class Example:
    folder: str
    message: str
    sibling: str
    action: Action
    receiving_facility: str
    subject: str
    recipient_service: str
    flags: MetaFlags


def _flags(masque: bool, patient: bool, legal: bool, modified: bool) -> MetaFlags:
    return MetaFlags(
        masque_ps=masque,
        invisible_patient=patient,
        invisible_rep_legaux=legal,
        modif_conf_code=modified,
    )


EXAMPLES = {
    "T02": Example(
        "Transmission initiale MDM",
        "message_MDM__LPS_MSS_CR_Radio_INIT_N1_Base64.er7",
        "CR_Radio_CDAN1_v1.XML",
        Action.NEW,
        "Organisation-X",
        "XDM/1.0/DDM+CR d’examens radiologiques PAT-TROIS DOMINIQUE 07/08/2010",
        "Service d'urolgie",
        _flags(False, True, True, False),
    ),
    "T10": Example(
        "Remplacement MDM",
        "message_MDM__LPS_MSS_CR_Radio_RPLC_N1.er7",
        "CR_Radio_CDAN1_v2.XML",
        Action.REPLACE,
        "Organisation-Y",
        "XDM/1.0/DDM+CR d’examens radiologie PAT-TROIS DOMINIQUE 07/08/2010",
        "Service d'urologie",
        _flags(False, False, False, True),
    ),
    "T04": Example(
        "Suppression MDM",
        "message_MDM__LPS_MSS_CR_Radio_DEL_N1.er7",
        "CR_Radio_CDAN1_v2.XML",
        Action.DELETE,
        "Organisation-Y",
        "XDM/1.0/DDM+CR d’examens de radiologie PAT-TROIS DOMINIQUE 07/08/2010",
        "Service d'urologie",
        _flags(False, False, False, False),
    ),
}

#: The differences kept on purpose (module docstring), by (segment, field): what ours and the
#: example's are, as a check on the pair.
KEPT = {
    ("MSH", 7): lambda ours, theirs: ours == "20210606093100" and theirs == "202106060931",
    ("EVN", 5): lambda ours, theirs: ours == "" and theirs.startswith("PAT^ADMIN"),
    ("PID", 3): lambda ours, theirs: theirs == ours + "^^20101207",
    ("PID", 11): lambda ours, theirs: (
        ours == "^^^^^^BDL^^63220"
        and theirs.split("~") == ["28 Av de Breteuil^^PARIS^^75007^FRA^H^^^^^^^", ours]
    ),
    ("PID", 18): lambda ours, theirs: ours == "" and theirs.startswith("405660^^^"),
    ("TXA", 4): lambda ours, theirs: ours == "20230227092827" and theirs == "202212160932",
    ("TXA", 12): lambda ours, theirs: theirs == ours + "^Organisation-Y" and "^" not in ours,
    ("TXA", 13): lambda ours, theirs: theirs == ours + "^Organisation-Y" and "^" not in ours,
    ("OBX#1", 5): lambda ours, theirs: (
        ours != theirs and ours == theirs + "=" * (-len(theirs.split("^")[4]) % 4)
    ),
    ("PRT#1", 4): lambda ours, theirs: (
        (ours, theirs) == ("SB^Send by^participation", "SB^^participation")
    ),
    ("PRT#1", 5): lambda ours, theirs: ours == theirs.replace("ASIP-SANTE- PS", "ASIP-SANTE-PS"),
    ("PRT#2", 4): lambda ours, theirs: (
        (ours, theirs) == ("RCT^Result Copies To^participation", "RCT^^participation")
    ),
    ("PRT#3", 4): lambda ours, theirs: (
        (ours, theirs) == ("REPLY^Reply To^participation", "REPLY^^participation")
    ),
}


def fields_of(text: str) -> dict[str, list[str]]:
    """Segments by ``ID`` (``ID#n`` for the n-th of a repeated id), fields by HL7 number (MSH-1
    is the separator), trailing empty fields dropped."""
    table: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    ids = [s.split("|", 1)[0] for s in split_segments(text)]
    for segment in split_segments(text):
        fields = segment.rstrip("|").split("|")
        seg_id = fields[0]
        if seg_id == "MSH":
            fields = ["MSH", "|", *fields[1:]]
        counts[seg_id] = counts.get(seg_id, 0) + 1
        label = f"{seg_id}#{counts[seg_id]}" if ids.count(seg_id) > 1 else seg_id
        table[label] = fields
    return table


def differences(ours: str, theirs: str) -> dict[tuple[str, int], tuple[str, str]]:
    mine, official = fields_of(ours), fields_of(theirs)
    assert list(mine) == list(official)  # same segments, same order
    found = {}
    for label, fields in official.items():
        built = mine[label]
        for number in range(1, max(len(fields), len(built))):
            value = built[number] if number < len(built) else ""
            expected = fields[number] if number < len(fields) else ""
            if value != expected:
                found[(label, number)] = (value, expected)
    return found


def example_text(fixtures_dir: Path, example: Example) -> str:
    return (fixtures_dir / LPS_DIR / example.folder / example.message).read_text("utf-8")


def embedded_cda(text: str) -> bytes:
    obx = next(s for s in split_segments(text) if s.startswith("OBX|1|"))
    data = obx.split("|")[5].split("^")[4]
    return base64.b64decode(data + "=" * (-len(data) % 4))


def mail_of(example: Example) -> ReceivedMailFacts:
    return ReceivedMailFacts(
        message_id="1",  # the examples' OBX-3.1 (a placeholder for the Message-ID)
        sender=SENDER,
        recipients=(DPI_MAILBOX,),
        subject=example.subject,
        body="Corps du courriel",
        date=MAIL_DATE,
        received_at=MAIL_DATE,
        reply_to=(REPLY_TO,),
    )


def mdm_of(example: Example, cda: bytes) -> LpsMdm:
    service = OrganizationRef(example.recipient_service, "3435", "UF", "120456789")
    return LpsMdm(
        action=example.action,
        cda=cda,
        document=read_cda(cda),
        mail=mail_of(example),
        route=Route("PFI-Y", "Organisation-Y", "RIS-Y", example.receiving_facility),
        control_id="015",
        now=BUILT,
        flags=example.flags,
        recipients=(Party(DPI_MAILBOX, organization=service),),
    )


# --- the official examples ----------------------------------------------------------------------


@pytest.mark.parametrize("event", EXAMPLES)
def test_the_official_example_comes_out_field_by_field(fixtures_dir, event):
    example = EXAMPLES[event]
    theirs = example_text(fixtures_dir, example)
    raw = build_mdm(mdm_of(example, embedded_cda(theirs)))
    ours = raw.decode("utf-8")
    assert "\n" not in ours and ours.endswith("\r")  # CR separators (the examples use LF)
    found = differences(ours, theirs)
    expected = set(KEPT) - ({("TXA", 13)} if event == "T02" else set())
    assert set(found) == expected
    for where, (value, official) in found.items():
        assert KEPT[where](value, official), where


@pytest.mark.parametrize("event", EXAMPLES)
def test_the_sibling_xml_changes_only_the_embedded_document(fixtures_dir, event):
    example = EXAMPLES[event]
    theirs = example_text(fixtures_dir, example)
    sibling = (fixtures_dir / LPS_DIR / example.folder / example.sibling).read_bytes()
    assert sibling != embedded_cda(theirs)  # MANIFEST: CRLF → LF and one address
    from_payload = build_mdm(mdm_of(example, embedded_cda(theirs))).decode("utf-8")
    from_sibling = build_mdm(mdm_of(example, sibling)).decode("utf-8")
    assert set(differences(from_sibling, from_payload)) == {("OBX#1", 5)}
    assert embedded_cda(from_sibling) == sibling


@pytest.mark.parametrize("event", EXAMPLES)
def test_the_official_ack_is_read(fixtures_dir, event):
    raw = (fixtures_dir / LPS_DIR / EXAMPLES[event].folder / "ack.er7").read_bytes()
    ack = read_ack(raw, control_id="015")
    assert ack == DpiAck("AA", "015")
    assert ack.accepted and ack.error_code == "" and ack.label == ""
    with pytest.raises(InvalidInput) as caught:
        read_ack(raw, control_id="016")
    assert caught.value.code == "LPS_ACK_OTHER_MESSAGE"


# --- the DPI's ACK (examples of profils-messages.md) -------------------------------------------

ACK_MSH = "MSH|^~\\&|DPI|CHU_X|PFI|CHU_X|202310030831||ACK^T02^ACK|12347|P|2.6|||AL|AL|FRA|8859/15"


def test_a_technical_refusal_names_the_hl7_condition():
    raw = "\r".join(
        [
            ACK_MSH,
            "MSA|AE|12345",
            "ERR||MSH^1^12|203^Unsupported version id^messageErrorCondition|E",
        ]
    ).encode("iso-8859-15")
    ack = read_ack(raw, control_id="12345")
    assert not ack.accepted
    assert (ack.code, ack.condition, ack.application_code) == ("AE", "203", "")
    assert (ack.error_code, ack.label) == ("203", "Unsupported version id")
    assert (ack.location, ack.severity) == ("MSH^1^12", "E")


def test_an_application_refusal_names_the_volet_code():
    err = (
        "ERR||PID^1^3|207^Application error^messageErrorCondition| E"
        "|902^Identifiant de patient inconnu^applicationErrorCode"
    )
    raw = "\r".join([ACK_MSH, "MSA|AE|12345", err]).encode("iso-8859-15")
    ack = read_ack(raw)
    assert (ack.condition, ack.application_code, ack.severity) == ("207", "902", "E")
    assert (ack.error_code, ack.label) == ("902", "Identifiant de patient inconnu")
    unlabelled = read_ack(raw.replace(b"^Identifiant de patient inconnu^", b"^^"))
    assert unlabelled.label == "Identifiant patient inconnu"  # the volet's table


def test_an_answer_that_is_no_ack_is_refused():
    zam = "\r".join(
        [
            "MSH|^~\\&|PFI|X|DPI|X|20240101||ZAM^Z01^ZAM_Z01|1|P|2.6",
            "OBX|1|CWE|ACK_RECEPTION_DMP^Accusé^AckMetierZAM|015|Y^^expandedYes-NoIndicator||||||F",
        ]
    ).encode()
    with pytest.raises(InvalidInput) as caught:
        read_ack(zam)
    assert caught.value.code == "LPS_ACK_NOT_ACK"
    with pytest.raises(InvalidInput) as caught:
        read_ack(f"{ACK_MSH}\rMSA|XX|12345\r".encode())
    assert caught.value.code == "LPS_ACK_CODE"


def test_the_mllp_answer_is_read_back_as_far_as_it_goes():
    volet = ack_from_answer(MllpAnswer("AE", "015", "904", ""))
    assert (volet.condition, volet.application_code, volet.error_code) == ("207", "904", "904")
    assert volet.label.startswith("L'INS transmis ne correspond pas")
    technical = ack_from_answer(MllpAnswer("AR", "015", "207", "busy"))
    assert (technical.condition, technical.application_code, technical.label) == (
        "207",
        "",
        "busy",
    )
    assert ack_from_answer(MllpAnswer("AA", "015")).accepted


# --- the project's own samples: well formed, read back ---------------------------------------

SAMPLES = {MDM_INIT: Action.NEW, MDM_RPLC: Action.REPLACE, MDM_DEL: Action.DELETE}
GRAMMAR = re.compile(r"MSH EVN PID PV1 ORC OBR TXA OBX( PRT)+ OBX OBX OBX OBX OBX")
ROUTE = Route("PFI", "CH_DEMO^1.2.250.1.71.4.2.2.1010000032^ISO", "DPI", "CH_DEMO")
TRICKY = "Objet | avec ^ des & délimiteurs ~ et \\ barre"


def sample_cda(samples_dir: Path, name: str) -> bytes:
    request = parse_message((samples_dir / name).read_bytes())
    return request.documents[0].content


def sample_mdm(samples_dir: Path, name: str, **changes) -> LpsMdm:
    cda = sample_cda(samples_dir, name)
    values = dict(
        action=SAMPLES[name],
        cda=cda,
        document=read_cda(cda),
        mail=ReceivedMailFacts(
            message_id="<a1b2@mssante.example>",
            sender="eric.thomas@test-ci-sis.mssante.fr",
            recipients=("dpi@ch-demo.mssante.fr", "imagerie@ch-demo.mssante.fr"),
            subject=TRICKY,
            body="Bonjour,\r\nci-joint le compte rendu.\r\n",
            date=datetime(2024, 5, 14, 8, 30, tzinfo=UTC),
        ),
        route=ROUTE,
        control_id="LPS-1",
        now=datetime(2024, 5, 14, 8, 31, 5, tzinfo=UTC),
    )
    values.update(changes)
    return LpsMdm(**values)


@pytest.mark.parametrize("name", SAMPLES)
def test_a_sample_document_gives_a_well_formed_mdm(samples_dir, name):
    mdm = sample_mdm(samples_dir, name)
    raw = build_mdm(mdm)
    text = raw.decode("utf-8")
    assert "\n" not in text and text.endswith("\r")
    message = hl7.parse(text)
    assert GRAMMAR.fullmatch(" ".join(str(s[0]) for s in message))
    header = read_header(raw)
    event = {Action.NEW: "T02", Action.REPLACE: "T10", Action.DELETE: "T04"}[mdm.action]
    assert (header.message_code, header.trigger_event, header.control_id) == ("MDM", event, "LPS-1")
    assert header.charset == "UNICODE UTF-8" and header.version == "2.6"
    assert header.sending_facility == "CH_DEMO^1.2.250.1.71.4.2.2.1010000032^ISO"
    msh = message.segment("MSH")
    assert str(msh[7]) == "20240514103105"  # local French time
    assert str(msh[9]) == f"MDM^{event}^MDM_T02" and str(msh[21]) == "1.1^CISIS_CDA_HL7_LPS"
    assert str(message.segment("EVN")[6]) == "20240514103000"
    assert str(message.segment("PV1")[2]) == "N"
    assert str(message.segment("ORC")[1]) == {"T02": "NW", "T10": "RO", "T04": "CA"}[event]

    doc = mdm.document
    txa = message.segment("TXA")
    assert str(txa[12]) == doc.id.root and str(txa[17]) == "AU"
    assert str(txa[13]) == (doc.replaced_id.root if event != "T02" else "")
    pid = message.segment("PID")
    assert str(pid[3]).startswith(f"{doc.patient.ins.extension}^^^ASIP-SANTE-INS-NIR&")
    assert str(pid[32]) == "VALI"

    obx = message.segments("OBX")
    assert [str(o[1]) for o in obx] == ["1", "2", "3", "4", "5", "6"]
    document = obx[0][5][0]
    assert (str(document[1]), str(document[2]), str(document[3])) == ("text", "XML", "Base64")
    assert base64.b64decode(str(document[4])) == mdm.cda
    assert str(obx[0][11]) == {"T02": "F", "T10": "C", "T04": "D"}[event]
    assert str(obx[1][3][0][0]) == "<a1b2@mssante.example>"
    assert message.unescape(str(obx[1][3][0][1])) == TRICKY  # escaped, and read back
    assert base64.b64decode(str(obx[1][5][0][4])).decode("utf-8") == mdm.mail.body
    assert [str(o[3][0][0]) for o in obx[2:]] == [
        "MASQUE_PS",
        "INVISIBLE_PATIENT",
        "INVISIBLE_REP_LEGAUX",
        "MODIF_CONF_CODE",
    ]
    assert {str(o[5]) for o in obx[2:]} == {"N^^expandedYes-NoIndicator"}
    prt = message.segments("PRT")
    assert [str(p[4]) for p in prt] == [
        "SB^Send by^participation",
        "RCT^Result Copies To^participation",
        "RCT^Result Copies To^participation",
    ]
    assert [str(p[15]) for p in prt] == [
        "^^X.400^eric.thomas@test-ci-sis.mssante.fr",
        "^^X.400^dpi@ch-demo.mssante.fr",
        "^^X.400^imagerie@ch-demo.mssante.fr",
    ]
    # the sender's identity, without a directory: the document's author
    author = doc.authors[0].person_id
    assert str(prt[0][5]).startswith(f"{author.extension}^")


def test_the_xdm_metadata_fill_what_the_cda_does_not_say(samples_dir):
    entry = DocumentEntry(
        entry_id="urn:uuid:1",
        unique_id="1.2.3",
        patient_id="",
        confidentiality_codes=(
            Coded("N", "2.16.840.1.113883.5.25"),
            Coded("INVISIBLE_PATIENT", "1.2.250.1.213.1.1.4.13"),
            Coded("INVISIBLE_REPRESENTANTS_LEGAUX", "1.2.250.1.213.1.1.4.13"),
        ),
        source_patient_info=(
            "PID-5|PAT-TROIS^DOMINIQUE^^^^^L",
            "PID-11|28 Av de Breteuil^^PARIS^^75007^FRA^H~^^^^^^BDL^^63220",
        ),
    )
    submission_set = SubmissionSet(
        entry_id="urn:uuid:2",
        unique_id="1.2.4",
        source_id="1.2.5",
        authors=(
            Author(
                person="801234567897^HODA^Adam^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
                institutions=("Clinique St Paul^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1120456789",),
            ),
        ),
    )
    mdm = sample_mdm(samples_dir, MDM_INIT, entry=entry, submission_set=submission_set)
    fields = fields_of(mdm.render())
    assert fields["PID"][11] == "28 Av de Breteuil^^PARIS^^75007^FRA^H~^^^^^^BDL^^63220"
    assert [fields[f"OBX#{n}"][5][0] for n in (3, 4, 5, 6)] == ["N", "Y", "Y", "N"]
    assert fields["PRT#1"][5] == (
        "801234567897^HODA^Adam^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    )
    assert fields["PRT#1"][8] == ("Clinique St Paul^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1120456789")
    # what the caller knows wins over the metadata
    known = Party("", PersonRef("10000023084", "AGNES", "Isabelle", "", "", "RPPS"), None, "")
    fields = fields_of(sample_mdm(samples_dir, MDM_INIT, sender=known).render())
    assert fields["PRT#1"][5] == "10000023084^AGNES^Isabelle^^^^^^^D^^^RPPS"
    assert fields["PRT#1"][15] == "^^X.400^eric.thomas@test-ci-sis.mssante.fr"


def test_visibility_and_action_come_from_the_xdm_metadata():
    entry = DocumentEntry(
        entry_id="urn:uuid:1",
        unique_id="1.2.3",
        patient_id="",
        confidentiality_codes=(Coded("MASQUE_PS", "1.2.250.1.213.1.1.4.13"),),
    )
    assert visibility_flags(entry) == MetaFlags(
        masque_ps=True, invisible_patient=False, invisible_rep_legaux=False, modif_conf_code=False
    )
    assert visibility_flags(None, modif_conf_code=True).modif_conf_code is True
    assert [action_of(v) for v in (None, "", "C", " d ")] == [
        Action.NEW,
        Action.NEW,
        Action.REPLACE,
        Action.DELETE,
    ]
    with pytest.raises(InvalidInput) as caught:
        action_of("X")
    assert caught.value.code == "LPS_UNKNOWN_ACTION"


def test_what_the_volet_cannot_carry_is_refused_without_patient_data(samples_dir):
    mdm = sample_mdm(samples_dir, MDM_INIT, action=Action.REPLACE)  # version 1: nothing replaced
    with pytest.raises(InvalidInput) as caught:
        build_mdm(mdm)
    assert caught.value.code == "LPS_NO_PARENT_ID"
    assert "PAT-TROIS" not in str(caught.value) and "279035121518989" not in str(caught.value)
    with pytest.raises(ValueError, match="delimiter"):
        Route("PFI|X", "CH", "DPI", "CH")
    with pytest.raises(ValueError, match="Message-ID"):
        ReceivedMailFacts(message_id=" ", sender="a@b.fr")
    cda = sample_cda(samples_dir, MDM_INIT)
    with pytest.raises(ValueError, match="not read from these"):
        sample_mdm(samples_dir, MDM_INIT, cda=cda + b" ")


def test_no_patient_data_in_a_repr(samples_dir):
    shown = repr(sample_mdm(samples_dir, MDM_INIT))
    for secret in ("PAT-TROIS", "279035121518989", "eric.thomas", "Bonjour", "délimiteurs"):
        assert secret not in shown
    assert "a1b2@mssante.example" in shown  # the Message-ID says which mail, nothing more
