"""pfi.protocols.cda: the official ANS CDA samples are read into the right model; defects are reported.

Golden samples (../shared/fixtures, see MANIFEST.md for sources and commits):

- ``ans-cda-examples/`` (TestContenuCDA ``ExemplesCDA/``) and ``ans-hl7v2-exemples/Vague 2/RIS/``
  pass the CI-SIS "Structuration minimale" schematron: same facts as MANIFEST.md, zero defects;
- the CDA documents of the HL7 examples (sibling ``.XML`` files and base64 OBX-5 payloads) are
  known to be defective (missing ``setId``, family qualifier ``SP``…): read, defects reported.
"""

from __future__ import annotations

import base64
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pfi.base.errors import InvalidInput
from pfi.protocols.cda import check_header, parse_ts, read_cda, require_valid_header

N1_TEMPLATES = ["2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1", "1.3.6.1.4.1.19376.1.2.20"]
HEADER = ["2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1"]
INS_TEST_IPP = ["1.2.250.1.213.1.4.10", "1.2.3.4.567.8.9.10"]
INS_TEST_RIS = ["1.2.250.1.213.1.4.10", "1.2.250.1.213.4.5.2.4"]
RPLC_IMG = "90E1C8EC-F951-4B26-A305-A34848818DD6"

#: MANIFEST.md facts: path → (level, code, id, setId, version, RPLC target, patient id roots,
#: templateIds).
GOOD = {
    "ans-cda-examples/BIO-CR-BIO_2021.01_CDA-R2-Niveau-1.xml": (
        1,
        "11502-2",
        "1.2.250.1.213.1.1.1.55.2021.3.1",
        "1.2.250.1.213.1.1.1.55.2021.3",
        1,
        None,
        INS_TEST_IPP,
        N1_TEMPLATES,
    ),
    "ans-cda-examples/BIO-CR-BIO_2024.01_Electrophorese.xml": (
        3,
        "11502-2",
        "1.2.250.1.213.1.1.1.55.2024.5.1",
        "1.2.250.1.213.1.1.1.55.2024.5",
        1,
        None,
        INS_TEST_IPP,
        [*HEADER, "1.3.6.1.4.1.19376.1.3.3", "1.2.250.1.213.1.1.1.55"],
    ),
    "ans-cda-examples/DOC_NON_STRUCTURE_CDA-R2-N1.xml": (
        1,
        "11502-2",
        "1.3.6.1.4.1.19376.1.2.20.12345.1.1",
        "1.3.6.1.4.1.19376.1.2.20.12345.1",
        1,
        None,
        INS_TEST_IPP,
        N1_TEMPLATES,
    ),
    "ans-cda-examples/IMG_CR_IMG_2024.01.xml": (
        3,
        "18748-4",
        "1.2.250.1.213.1.1.1.45.2024.1.1",
        "1.2.250.1.213.1.1.1.45.2024.1",
        2,
        RPLC_IMG,
        INS_TEST_IPP,
        [
            *HEADER,
            "1.2.840.10008.9.1",
            "1.2.840.10008.9.20",
            "1.2.840.10008.9.21",
            "1.2.250.1.213.1.1.1.45",
        ],
    ),
    "ans-cda-examples/IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml": (
        1,
        "18748-4",
        "1.2.250.1.213.1.1.1.45.2024.2.1",
        "1.2.250.1.213.1.1.1.45.2024.2",
        2,
        RPLC_IMG,
        INS_TEST_IPP,
        N1_TEMPLATES,
    ),
    "ans-cda-examples/LDL-EES_2022.01.xml": (
        3,
        "18761-7",
        "1.2.250.1.213.1.1.1.21.2022.1.1",
        "1.2.250.1.213.1.1.1.21.2022.1",
        1,
        None,
        INS_TEST_IPP,
        [*HEADER, "1.2.250.1.213.1.1.1.21"],
    ),
    "ans-cda-examples/LDL-SES_2022.01.xml": (
        3,
        "11490-0",
        "1.2.250.1.213.1.1.1.29.2022.1.1",
        "1.2.250.1.213.1.1.1.29.2022.1",
        1,
        None,
        INS_TEST_IPP,
        [*HEADER, "1.2.250.1.213.1.1.1.29"],
    ),
    "ans-cda-examples/eP-MED-DM_2024.01_PosoStruct.xml": (
        3,
        "57833-6",
        "1.2.250.1.213.1.1.1.39.2024.2.1",
        "1.2.250.1.213.1.1.1.39.2024.2",
        1,
        None,
        INS_TEST_IPP,
        [
            *HEADER,
            "1.3.6.1.4.1.19376.1.9.1.1.1",
            "1.3.6.1.4.1.19376.1.5.3.1.1.1",
            "1.2.250.1.213.1.1.1.39",
        ],
    ),
    "ans-hl7v2-exemples/Vague 2/RIS/transmission_initiale_cr_imagerie.xml": (
        1,
        "18748-4",
        "1.2.250.1.213.4.5.4.402",
        "D52DE737-001D-4031-B571-0A0ED7C42300",
        1,
        None,
        INS_TEST_RIS,
        N1_TEMPLATES,
    ),
    "ans-hl7v2-exemples/Vague 2/RIS/remplacement_cr_imagerie.xml": (
        1,
        "18748-4",
        "1.2.250.1.213.4.5.4.403",
        "D52DE737-001D-4031-B571-0A0ED7C42300",
        2,
        "1.2.250.1.213.4.5.4.402",
        INS_TEST_RIS,
        N1_TEMPLATES,
    ),
    "ans-hl7v2-exemples/Vague 2/RIS/suppression_cr_imagerie.xml": (
        1,
        "18748-4",
        "1.2.250.1.213.4.5.4.403",
        "D52DE737-001D-4031-B571-0A0ED7C42300",
        2,
        "1.2.250.1.213.4.5.4.402",
        INS_TEST_RIS,
        N1_TEMPLATES,
    ),
}

#: Defective CDA files next to the HL7 examples (MANIFEST "Known defects"): the defects the
#: schematron found, with our codes.
V21 = "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1"
LPS11 = (
    "ans-hl7v2-exemples/Vague 2/Trans_LPS_CDA_MSSanté/"
    "TRANSMISSION_LPS_DOC_CDA_COURRIEL_FROM_MSSANTE_V1.1"
)
DEFECTIVE = {
    f"{V21}/MDM/Transmission initiale MDM/CR_Radio_CDAN1_v1.XML": {
        "CDA_NO_SETID",
        "CDA_NAME_QUALIFIER",
    },
    f"{V21}/MDM/Remplacement MDM/CR_Radio_CDAN1_v2.XML": {"CDA_NO_SETID", "CDA_NAME_QUALIFIER"},
    f"{V21}/ORU/Transmission initiale ORU/SEGUR_CR-BIO_2023.01_Electrophorese.xml": {
        "CDA_NAME_QUALIFIER"
    },
    f"{V21}/ORU/Remplacement ORU/SEGUR_CR_Bio_CDA_Niv3_v2.xml": {"CDA_NAME_QUALIFIER"},
    f"{LPS11}/Transmission initiale MDM/CR_Radio_CDAN1_v1.XML": {"CDA_NO_SETID"},
    f"{LPS11}/Remplacement MDM/CR_Radio_CDAN1_v2.XML": {"CDA_NO_SETID"},
    "ans-hl7v2-exemples/Volets/Trans_LPS_CDA_MSSanté/V1.0/Remplacement MDM/CR_Radio_CDAN1_v2.XML": {
        "CDA_NO_SETID"
    },
}


@pytest.fixture(scope="module")
def read(fixtures_dir: Path):
    cache: dict[str, object] = {}

    def _read(rel: str):
        if rel not in cache:
            cache[rel] = read_cda((fixtures_dir / rel).read_bytes())
        return cache[rel]

    return _read


@pytest.mark.parametrize("rel", sorted(GOOD))
def test_official_samples_match_the_manifest(read, rel):
    level, code, doc_id, set_id, version, rplc, roots, templates = GOOD[rel]
    doc = read(rel)
    assert doc.level == level
    assert doc.code.code == code and doc.code.code_system == "2.16.840.1.113883.6.1"
    assert doc.code.display_name
    assert str(doc.id) == doc_id
    assert str(doc.set_id) == set_id
    assert doc.version_number == version
    assert (str(doc.replaced_id) if doc.replaced_id else None) == rplc
    assert [i.root for i in doc.patient.ids] == roots
    assert list(doc.template_roots) == templates
    assert doc.media_type == ("application/pdf" if level == 1 else None)


@pytest.mark.parametrize("rel", sorted(GOOD))
def test_official_samples_have_no_defect(read, rel):
    assert check_header(read(rel)) == []
    require_valid_header(read(rel))


@pytest.mark.parametrize("rel", sorted(GOOD))
def test_header_details(read, rel):
    doc = read(rel)
    assert doc.title and doc.language_code == "fr-FR" and doc.realm_code == "FR"
    assert doc.confidentiality_code.code == "N"
    assert doc.effective_time.tzinfo is not None  # the samples give +0100
    assert doc.effective_time.utcoffset() == timedelta(hours=1)
    author = doc.author
    assert author.person_id.root == "1.2.250.1.71.4.2.1" and author.person_id.extension
    assert author.time is not None
    assert author.organization and author.organization.name
    assert doc.custodian and doc.custodian.ids
    assert doc.legal_authenticator and doc.legal_authenticator.ids
    patient = doc.patient
    assert patient.ins.root == "1.2.250.1.213.1.4.10"
    assert patient.ins.extension == "279035121518989"
    assert [i.root for i in patient.other_ids] == [r for r in GOOD[rel][6][1:]]
    assert patient.birth_family_name == "PAT-TROIS"
    assert patient.first_given_name == "DOMINIQUE"
    assert patient.birth_given_names
    assert patient.gender == "F"
    assert patient.birth_time == date(1979, 3, 28)
    assert re.fullmatch(r"\d{5}", patient.birthplace_code)


def test_encounter_service_event_and_practice_setting(read):
    doc = read("ans-cda-examples/IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml")
    enc = doc.encounter
    assert enc.code.code == "AMB"
    assert enc.facility_code.code == "SA08"
    assert enc.facility_code.code_system == "1.2.250.1.71.4.2.4"
    assert enc.location_name == "Centre de radiologie Ambroise"
    tz = timezone(timedelta(hours=1))
    assert enc.start == datetime(2021, 1, 8, 10, 25, tzinfo=tz)
    assert enc.stop == datetime(2021, 1, 8, 11, 17, tzinfo=tz)
    assert len(doc.service_events) == 4
    assert doc.service_events[0].code.code == "24727-0"
    assert doc.practice_setting.code == "AMBULATOIRE"
    assert doc.practice_setting.code_system == "1.2.250.1.213.1.1.4.9"
    assert doc.author.specialty.code == "G15_10/SM44"
    assert doc.author.function_code.code == "ATTPHYS"
    assert doc.author.name.family[0].value == "BIDEAULT"


@pytest.mark.parametrize("rel", [r for r, facts in sorted(GOOD.items()) if facts[0] == 1])
def test_n1_embedded_document_is_the_pdf(read, rel):
    doc = read(rel)
    assert doc.has_embedded_document
    pdf = doc.embedded_document()
    assert pdf.startswith(b"%PDF")
    assert len(pdf) > 10_000


def test_n3_has_no_embedded_document(read):
    doc = read("ans-cda-examples/LDL-SES_2022.01.xml")
    assert not doc.has_embedded_document
    with pytest.raises(InvalidInput) as info:
        doc.embedded_document()
    assert info.value.code == "CDA_NO_EMBEDDED_DOCUMENT"


def test_repr_shows_no_patient_data_nor_bytes(read):
    doc = read("ans-hl7v2-exemples/Vague 2/RIS/remplacement_cr_imagerie.xml")
    text = repr(doc) + str(doc) + repr(doc.patient)
    for secret in ("PAT-TROIS", "DOMINIQUE", "279035121518989", "1979", "JVBER", "63220"):
        assert secret not in text
    assert "1.2.250.1.213.4.5.4.403" in text  # the document id is not patient data


@pytest.mark.parametrize("rel", sorted(DEFECTIVE))
def test_defective_hl7_example_files_are_reported(read, rel):
    doc = read(rel)
    codes = {d.code for d in check_header(doc)}
    assert DEFECTIVE[rel] <= codes
    with pytest.raises(InvalidInput) as info:
        require_valid_header(doc)
    assert info.value.code in codes
    assert "PAT-TROIS" not in str(info.value)
    for defect in check_header(doc):
        assert "PAT-TROIS" not in defect.message and "279035121518989" not in defect.message
        assert defect.rule.startswith("CI-SIS Structuration minimale")


# --- CDA payloads inside the HL7 examples ---------------------------------------------------------


def obx_cda_payloads(message: bytes) -> list[bytes]:
    """Decode the base64 OBX-5.5 of every ``ED`` OBX whose OBX-5.3 is XML.

    A tiny local helper, on purpose (the real HL7 parser is another module): LF or CR segment
    separators, ``|`` and ``^`` delimiters, missing ``=`` padding tolerated (MANIFEST caveats).
    """
    out = []
    for segment in re.split(rb"\r\n|\r|\n", message):
        fields = segment.split(b"|")
        if fields[0] != b"OBX" or len(fields) < 6 or fields[2] != b"ED":
            continue
        parts = fields[5].split(b"^")
        if len(parts) >= 5 and parts[2].upper() == b"XML" and parts[3].upper() == b"BASE64":
            data = parts[4]
            out.append(base64.b64decode(data + b"=" * (-len(data) % 4)))
    return out


def hl7_messages(fixtures_dir: Path) -> list[Path]:
    root = fixtures_dir / "ans-hl7v2-exemples"
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in {".er7", ".hl7"})


def test_cda_payloads_of_hl7_examples_are_read_and_reported(fixtures_dir):
    """Every XML payload is either a CDA with its defects listed, or refused with a code.

    Real CDA payloads (``*_Base64.er7``, v2.1 MDM/ORU, LPS v1.1) all carry defects; the short
    variants' placeholder text and the truncated v1.0 payload are refused as ``CDA_NOT_XML``.
    """
    read_ok = refused = 0
    for path in hl7_messages(fixtures_dir):
        for payload in obx_cda_payloads(path.read_bytes()):
            try:
                doc = read_cda(payload)
            except InvalidInput as exc:
                assert exc.code == "CDA_NOT_XML", path
                assert "PAT-TROIS" not in str(exc)
                refused += 1
                continue
            defects = {d.code for d in check_header(doc)}
            assert defects, f"{path.name}: the MANIFEST lists this payload as defective"
            assert defects <= {
                "CDA_NO_SETID",
                "CDA_NAME_QUALIFIER",
                "CDA_N1_TEMPLATE_IDS",
                "CDA_INS_TRAITS",
            }, (path.name, defects)
            if doc.level == 1:
                assert doc.embedded_document().startswith(b"%PDF")
            read_ok += 1
    assert read_ok >= 15 and refused >= 10


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        (
            f"{V21}/MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7",
            {"CDA_NO_SETID", "CDA_NAME_QUALIFIER"},
        ),
        (
            f"{V21}/ORU/Transmission initiale ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7",
            {"CDA_NAME_QUALIFIER"},
        ),
        (
            f"{V21}/ORU/Remplacement ORU/message_ORU_CR_Bio_RPLC_N3_SEGUR.hl7",
            {"CDA_NAME_QUALIFIER"},
        ),
        (
            f"{LPS11}/Transmission initiale MDM/message_MDM__LPS_MSS_CR_Radio_INIT_N1_Base64.er7",
            {"CDA_NO_SETID"},
        ),
    ],
)
def test_vague2_payload_defects(fixtures_dir, rel, expected):
    (payload,) = obx_cda_payloads((fixtures_dir / rel).read_bytes())
    doc = read_cda(payload)
    assert {d.code for d in check_header(doc)} == expected
    assert doc.code.code in {"18748-4", "11502-2"}


def test_replacement_points_to_the_initial_version(read):
    """The v2.1 ORU sibling files (not the payloads: those are not consistent with each other)."""
    first = read(f"{V21}/ORU/Transmission initiale ORU/SEGUR_CR-BIO_2023.01_Electrophorese.xml")
    second = read(f"{V21}/ORU/Remplacement ORU/SEGUR_CR_Bio_CDA_Niv3_v2.xml")
    assert second.replaced_id == first.id
    assert second.set_id == first.set_id
    assert (first.version_number, second.version_number) == (1, 2)


# --- refusals and synthetic defects ---------------------------------------------------------------


def mutate(data: bytes, old: bytes, new: bytes, count: int = 1) -> bytes:
    assert old in data
    return data.replace(old, new, count)


@pytest.fixture(scope="module")
def n1_bytes(fixtures_dir: Path) -> bytes:
    return (fixtures_dir / "ans-cda-examples/IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml").read_bytes()


def refused(data: bytes, **kwargs) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        read_cda(data, **kwargs)
    assert "PAT-TROIS" not in str(info.value)
    return info.value


def test_refusals(n1_bytes):
    assert refused(b"%PDF-1.7 not xml").code == "CDA_NOT_XML"
    assert refused(n1_bytes[: len(n1_bytes) // 2]).code == "CDA_NOT_XML"
    assert refused(b"<ClinicalDocument/>").code == "CDA_NOT_CDA"
    assert refused(b"<x xmlns='urn:hl7-org:v3'/>").code == "CDA_NOT_CDA"
    assert refused(n1_bytes, max_bytes=1000).code == "CDA_TOO_LARGE"
    no_id = mutate(n1_bytes, b'<id root="1.2.250.1.213.1.1.1.45.2024.2.1"/>', b"")
    assert refused(no_id).code == "CDA_MISSING_ID"
    no_body = re.sub(rb"<component>.*</component>", b"", n1_bytes, flags=re.S)
    assert refused(no_body).code == "CDA_NO_BODY"


def test_cda_with_xxe_is_refused(tmp_path, n1_bytes):
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET")
    start = n1_bytes.index(b"<ClinicalDocument")
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM "file://{secret}">]>'
    ).encode() + mutate(n1_bytes[start:], b"<title>", b"<title>&x;")
    err = refused(xxe)
    assert err.code == "CDA_DTD_FORBIDDEN" and "TOP-SECRET" not in str(err)


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        (b'<setId root="1.2.250.1.213.1.1.1.45.2024.2"/>', b"", "CDA_NO_SETID"),
        (b'<versionNumber value="2"/>', b"", "CDA_NO_VERSION"),
        (b'<family qualifier="CL">', b'<family qualifier="SP">', "CDA_NAME_QUALIFIER"),
        (b'<given qualifier="CL">', b'<given qualifier="XX">', "CDA_NAME_QUALIFIER"),
        (b'<family qualifier="BR">', b'<family qualifier="CL">', "CDA_INS_TRAITS"),
        (
            b'<templateId root="1.3.6.1.4.1.19376.1.2.20"/>',
            b'<templateId root="1.2.250.1.213.1.1.1.45"/>',
            "CDA_N1_TEMPLATE_IDS",
        ),
        (
            b'<templateId root="1.3.6.1.4.1.19376.1.2.20"/>',
            b'<templateId root="1.3.6.1.4.1.19376.1.2.20"/><templateId root="1.2.3"/>',
            "CDA_N1_TEMPLATE_IDS",
        ),
        (
            b'<templateId root="1.2.250.1.213.1.1.1.1"/>',
            b'<templateId root="1.2.3"/>',
            "CDA_TEMPLATE_IDS CDA_N1_TEMPLATE_IDS",
        ),
        (b'<confidentialityCode code="N"', b'<confidentialityCode code="X"', "CDA_CONFIDENTIALITY"),
        (b'<languageCode code="fr-FR"/>', b'<languageCode code="french"/>', "CDA_LANGUAGE"),
        (b'<realmCode code="FR"/>', b"", "CDA_REALM"),
        (b'<birthTime value="19790328"/>', b"", "CDA_INS_TRAITS"),
        (b"<county>51215</county>", b"", "CDA_INS_TRAITS"),
        (b'extension="279035121518989"', b'extension="2790351215"', "CDA_INS_MATRICULE"),
        (
            b'<relatedDocument typeCode="RPLC">',
            b'<relatedDocument typeCode="XFRM">',
            "CDA_RELATED_DOCUMENT",
        ),
        (b"<title>", b"<title/><!--", "CDA_NO_TITLE"),
        (b'<typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>', b"", "CDA_TYPE_ID"),
        (b'<signatureCode code="S"/>', b'<signatureCode code="X"/>', "CDA_NO_LEGAL_AUTHENTICATOR"),
    ],
)
def test_each_defect_is_detected(n1_bytes, old, new, code):
    data = mutate(n1_bytes, old, new)
    if code == "CDA_NO_TITLE":
        data = mutate(data, b"</title>", b"-->")
    defects = check_header(read_cda(data))
    assert [d.code for d in defects] == code.split()


@pytest.mark.parametrize(
    ("pattern", "code"),
    [
        (rb"<componentOf>.*</componentOf>", "CDA_NO_ENCOUNTER"),
        (rb"<documentationOf>.*</documentationOf>", "CDA_NO_SERVICE_EVENT"),
        (rb"<legalAuthenticator>.*</legalAuthenticator>", "CDA_NO_LEGAL_AUTHENTICATOR"),
        (rb"<custodian .*</custodian>", "CDA_NO_CUSTODIAN"),
        (rb"<author>.*</author>", "CDA_NO_AUTHOR"),
        (rb"<recordTarget>.*</recordTarget>", "CDA_NO_RECORD_TARGET"),
    ],
)
def test_each_missing_part_is_detected(n1_bytes, pattern, code):
    data, count = re.subn(pattern, b"", n1_bytes, count=1, flags=re.S)
    assert count == 1
    assert [d.code for d in check_header(read_cda(data))] == [code]


def test_name_qualifiers_are_checked_without_ins_too(n1_bytes):
    data = mutate(n1_bytes, b'root="1.2.250.1.213.1.4.10"', b'root="1.2.3.4"')
    data = mutate(data, b'<family qualifier="CL">', b'<family qualifier="SP">')
    assert [d.code for d in check_header(read_cda(data))] == ["CDA_NAME_QUALIFIER"]
    assert read_cda(data).patient.ins is None


def test_require_valid_header_ignore_list(fixtures_dir):
    doc = read_cda((fixtures_dir / LPS11 / "Remplacement MDM/CR_Radio_CDAN1_v2.XML").read_bytes())
    with pytest.raises(InvalidInput) as info:
        require_valid_header(doc)
    assert info.value.code == "CDA_NO_SETID"
    require_valid_header(doc, ignore=frozenset({"CDA_NO_SETID"}))


def test_bad_base64_is_reported_on_demand(n1_bytes):
    start = n1_bytes.index(b'representation="B64"')
    gt = n1_bytes.index(b">", start) + 1
    doc = read_cda(n1_bytes[:gt] + b"%%%not-base64%%%" + n1_bytes[n1_bytes.index(b"</text>", gt) :])
    with pytest.raises(InvalidInput) as info:
        doc.embedded_document()
    assert info.value.code == "CDA_BAD_BASE64"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("19790328", date(1979, 3, 28)),
        ("1979", date(1979, 1, 1)),
        ("20210108111700+0100", datetime(2021, 1, 8, 11, 17, tzinfo=timezone(timedelta(hours=1)))),
        (
            "20210409094914.827+0100",
            datetime(2021, 4, 9, 9, 49, 14, 827000, tzinfo=timezone(timedelta(hours=1))),
        ),
        (
            "20230227102827-0330",
            datetime(2023, 2, 27, 10, 28, 27, tzinfo=timezone(-timedelta(hours=3, minutes=30))),
        ),
        ("20050411103328", datetime(2005, 4, 11, 10, 33, 28)),
        ("", None),
        ("2021-01-08", None),
        ("20211340", None),
    ],
)
def test_parse_ts(value, expected):
    assert parse_ts(value) == expected


def test_name_qualifier_defect_does_not_quote_the_document(n1_bytes):
    """A qualifier is document text: a forged one must not carry patient data into the error."""
    secret = b"PAT-TROIS 279035121518989"
    data = mutate(n1_bytes, b'<family qualifier="CL">', b'<family qualifier="' + secret + b'">')
    with pytest.raises(InvalidInput) as info:
        require_valid_header(read_cda(data), ignore=frozenset({"CDA_NO_SETID"}))
    assert info.value.code == "CDA_NAME_QUALIFIER"
    assert "PAT-TROIS" not in str(info.value) and "279035121518989" not in str(info.value)
