"""pfi.xds: the XDS metadata of the official ANS CDA samples is what the volet's mapping predicts.

Expected values are read by hand from each sample's header and mapped with IG-CDA
``mapping.md`` ("Mapping XDS / Fiche"): typeCode ← ``code``, classCode ← ASS_X04 (JDV_J57),
formatCode ← ASS_A12 (N1 media type) / ASS_A11 (N3 model templateId), healthcareFacilityTypeCode
← ``healthCareFacility/code``, practiceSettingCode ← ``standardIndustryClassCode``, creation and
service times ← ``effectiveTime`` (converted to UTC), author ← ``assignedAuthor``. Samples:
../shared/fixtures/ans-cda-examples (TestContenuCDA ``ExemplesCDA/``) and Vague 2/RIS (see
MANIFEST.md). METADATA.XML is validated against ebRS 3.0 ``lcm.xsd`` (../shared/validation/xds).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from pfi import xds
from pfi.cda import read_cda
from pfi.errors import InvalidInput
from pfi.hl7v2.model import MetaFlags
from pfi.xdm import build_metadata, metadata_from_cda, pack_xdm, read_xdm
from pfi.xdm import constants as xk
from pfi.xds import constants as k

IHE_PDF = ("urn:ihe:iti:xds-sd:pdf:2008", k.CS_FORMAT_CODE_IHE)
INS_CX = "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
IPP_CX = "1234567890121^^^&1.2.3.4.567.8.9.10&ISO^PI"

#: sample → (classCode, typeCode, (formatCode, scheme), facility, practice setting,
#: creationTime, serviceStartTime, serviceStopTime, authorPerson)
EXPECTED = {
    "ans-cda-examples/BIO-CR-BIO_2021.01_CDA-R2-Niveau-1.xml": (
        "10",
        "11502-2",
        IHE_PDF,
        "SA25",
        "AMBULATOIRE",
        None,
        "20210104082200",
        "20210104150500",
        "801234534765^CAMPARINI^",
    ),
    "ans-cda-examples/BIO-CR-BIO_2024.01_Electrophorese.xml": (
        "10",
        "11502-2",
        ("urn:ihe:lab:xd-lab:2008", k.CS_FORMAT_CODE_IHE),
        "SA25",
        "AMBULATOIRE",
        None,
        "20240104082200",
        "20240104150500",
        "801234534765^CAMPARINI^",
    ),
    "ans-cda-examples/DOC_NON_STRUCTURE_CDA-R2-N1.xml": (
        "10",
        "11502-2",
        IHE_PDF,
        "SA07",
        "AMBULATOIRE",
        None,
        "20210104124700",
        "20210104125500",
        "801234534765^CAMPARINI^",
    ),
    "ans-cda-examples/IMG_CR_IMG_2024.01.xml": (
        "31",
        "18748-4",
        ("urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013", k.CS_FORMAT_CODE_IHE),
        "SA08",
        "AMBULATOIRE",
        None,
        "20210108092500",
        "20210108101700",
        "801234560801^BIDEAULT^",
    ),
    "ans-cda-examples/IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml": (
        "31",
        "18748-4",
        IHE_PDF,
        "SA08",
        "AMBULATOIRE",
        "20210108101700",
        "20210108092500",
        "20210108101700",
        "801234560801^BIDEAULT^",
    ),
    "ans-cda-examples/LDL-EES_2022.01.xml": (
        "10",
        "18761-7",
        ("urn:asip:ci-sis:ldl-ees:2017", k.CS_FORMAT_CODE_FR),
        "SA01",
        "ETABLISSEMENT",
        None,
        "20191029101700",
        None,
        "801234567897^BOILEAU^",
    ),
    "ans-cda-examples/LDL-SES_2022.01.xml": (
        "10",
        "11490-0",
        ("urn:asip:ci-sis:ldl-ses:2017", k.CS_FORMAT_CODE_FR),
        "SA01",
        "ETABLISSEMENT",
        None,
        "20191029101700",
        "20191203123000",
        "801234567897^DAVID^",
    ),
    "ans-cda-examples/eP-MED-DM_2024.01_PosoStruct.xml": (
        "42",
        "57833-6",
        ("urn:ihe:pharm:pre:2010", k.CS_FORMAT_CODE_IHE),
        "SA07",
        "AMBULATOIRE",
        None,
        "20231201081000",
        "20240730081000",
        "801234567897^PIOU^",
    ),
    "ans-hl7v2-exemples/Vague 2/RIS/transmission_initiale_cr_imagerie.xml": (
        "31",
        "18748-4",
        IHE_PDF,
        "SA08",
        "AMBULATOIRE",
        None,
        "20210108092500",
        "20210108101700",
        "801234560801^BIDEAULT^",
    ),
}


@pytest.fixture(scope="module")
def read(fixtures_dir: Path):
    cache: dict[str, tuple[bytes, object]] = {}

    def get(rel: str):
        if rel not in cache:
            data = (fixtures_dir / rel).read_bytes()
            cache[rel] = (data, read_cda(data))
        return cache[rel]

    return get


@pytest.fixture(scope="module")
def lcm_schema(shared_dir: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(shared_dir / "validation/xds/ebRS30/lcm.xsd")))


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_official_samples_map_as_the_volet_predicts(read, rel):
    _, doc = read(rel)
    klass, type_code, fmt, facility, setting, creation, start, stop, person = EXPECTED[rel]
    entry = xds.document_entry(doc, entry_id="Document01", strict=True)
    assert entry.class_code == xds.class_code_for(type_code)
    assert (entry.class_code.code, entry.class_code.scheme) == (klass, k.CS_CLASS_CODE)
    assert entry.class_code.display_name == k.CLASS_DISPLAY[klass]
    assert (entry.type_code.code, entry.type_code.scheme) == (type_code, k.CS_LOINC)
    assert (entry.format_code.code, entry.format_code.scheme) == fmt
    assert entry.format_code.display_name
    assert (
        entry.healthcare_facility_type_code.code,
        entry.healthcare_facility_type_code.scheme,
    ) == (
        facility,
        k.CS_FACILITY_TYPE,
    )
    assert (entry.practice_setting_code.code, entry.practice_setting_code.scheme) == (
        setting,
        k.CS_PRACTICE_SETTING,
    )
    assert [(c.code, c.scheme) for c in entry.confidentiality_codes] == [
        ("N", k.CS_CONFIDENTIALITY)
    ]
    assert entry.unique_id == str(doc.id)
    assert entry.title == doc.title
    assert entry.language_code == "fr-FR"
    assert entry.mime_type == "text/xml"
    assert entry.creation_time == xds_utc(doc.effective_time)
    if creation:
        assert entry.creation_time == creation
    assert (entry.service_start_time, entry.service_stop_time) == (start, stop)
    assert entry.patient_id == INS_CX
    assert entry.source_patient_id in {IPP_CX, "IPP101^^^&1.2.250.1.213.4.5.2.4&ISO^PI"}
    assert entry.source_patient_info[1:] in (("PID-7|19790328", "PID-8|F"),)
    assert entry.source_patient_info[0].startswith("PID-5|PAT-TROIS^DOMINIQUE")
    assert len(entry.authors) == len(doc.authors)  # one XDS author per CDA author
    author = entry.authors[0]
    assert author.person.startswith(person)
    assert author.person.endswith("^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS")
    assert re.fullmatch(
        r"[^^]+\^\^\^\^\^&1\.2\.250\.1\.71\.4\.2\.2&ISO\^IDNST\^\^\^\d+", author.institutions[0]
    )
    assert author.specialties[0].startswith("G15_10/SM")
    assert author.specialties[0].endswith("^1.2.250.1.213.1.1.4.5")
    assert entry.legal_authenticator.endswith("&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS")
    assert xds.missing_required(entry) == []


def xds_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def test_author_role_from_function_code(read):
    _, doc = read("ans-cda-examples/IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml")
    (author,) = xds.document_entry(doc).authors
    assert author.roles == ("Référent - Responsable du patient dans la structure de soins",)


# --- visibility (MetaDMPMSS) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "codes"),
    [
        (MetaFlags(), []),
        (None, []),
        (MetaFlags(masque_ps=False, invisible_patient=False, invisible_rep_legaux=False), []),
        (MetaFlags(masque_ps=True), ["MASQUE_PS"]),
        (MetaFlags(invisible_patient=True), ["INVISIBLE_PATIENT"]),
        (MetaFlags(invisible_rep_legaux=True), ["INVISIBLE_REPRESENTANTS_LEGAUX"]),
        (
            MetaFlags(masque_ps=True, invisible_patient=True, invisible_rep_legaux=True),
            ["MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"],
        ),
        # CONNEXION_SECRETE is a VIHF attribute, not a document confidentialityCode
        (MetaFlags(connexion_secrete=True, modif_conf_code=True, dest_dmp=True), []),
    ],
)
def test_visibility_codes(flags, codes):
    result = xds.visibility_codes(flags)
    assert [c.code for c in result] == codes
    assert all(c.scheme == "1.2.250.1.213.1.1.4.13" and c.display_name for c in result)


def test_secret_connection_code():
    assert xds.secret_connection_code(MetaFlags()) is None
    assert xds.secret_connection_code(MetaFlags(connexion_secrete=False)) is None
    code = xds.secret_connection_code(MetaFlags(connexion_secrete=True))
    assert (code.code, code.scheme) == ("INVISIBLE_REPRESENTANTS_LEGAUX", k.CS_VISIBILITY)


def test_flags_follow_the_cda_confidentiality(read):
    _, doc = read("ans-cda-examples/LDL-SES_2022.01.xml")
    entry = xds.document_entry(
        doc, flags=MetaFlags(masque_ps=True, invisible_patient=True, connexion_secrete=True)
    )
    assert [(c.code, c.scheme) for c in entry.confidentiality_codes] == [
        ("N", k.CS_CONFIDENTIALITY),
        ("MASQUE_PS", k.CS_VISIBILITY),
        ("INVISIBLE_PATIENT", k.CS_VISIBILITY),
    ]


# --- tables -------------------------------------------------------------------------------------


def test_class_table_codes_are_document_types_of_jdv_j07_and_classes_of_jdv_j57(shared_dir):
    """Every type of the ASS_X04-like table is in JDV_J07 (the kit's value set)."""
    jdv = (shared_dir / "validation/ans-cda/jeuxDeValeurs/JDV_J07_XdsTypeCode_CISIS.xml").read_text(
        encoding="utf-8"
    )
    types = set(re.findall(r'<Concept code="([^"]+)"', jdv))
    assert set(k.CLASS_BY_TYPE) <= types
    assert set(k.CLASS_BY_TYPE.values()) <= set(k.CLASS_DISPLAY)


def test_unknown_type_gives_no_class_and_strict_refuses(read):
    _, doc = read("ans-cda-examples/LDL-SES_2022.01.xml")
    assert xds.class_code_for("00000-0") is None
    assert xds.class_code_for(None) is None
    from dataclasses import replace

    from pfi.cda import Code

    odd = replace(doc, code=Code("00000-0", k.CS_LOINC, "?"))
    assert xds.document_entry(odd).class_code is None
    with pytest.raises(InvalidInput) as info:
        xds.document_entry(odd, strict=True)
    assert info.value.code == "XDS_METADATA_INCOMPLETE"
    assert "class_code" in str(info.value)


def test_format_codes_by_media_type(read):
    from dataclasses import replace

    _, doc = read("ans-cda-examples/DOC_NON_STRUCTURE_CDA-R2-N1.xml")
    assert xds.format_code_for(replace(doc, media_type="text/plain")).code == (
        "urn:ihe:iti:xds-sd:text:2008"
    )
    rtf = xds.format_code_for(replace(doc, media_type="text/rtf"))
    assert (rtf.code, rtf.scheme) == ("urn:ihe:iti-fr:xds-sd:rtf:2010", k.CS_FORMAT_CODE_FR)
    assert xds.format_code_for(replace(doc, media_type="application/zip")) is None


@pytest.mark.parametrize(
    ("pv1_2", "code"),
    [("I", "03"), ("O", "07"), ("R", "19"), ("N", "97"), ("E", "07"), ("x", None), (None, None)],
)
def test_content_type_from_patient_class(pv1_2, code):
    coded = xds.content_type_for(pv1_2)
    assert (coded.code if coded else None) == code
    if coded:
        assert coded.scheme == "1.2.250.1.213.2.2"


def test_no_ins_is_refused_without_patient_data(fixtures_dir):
    data = (fixtures_dir / "ans-cda-examples/LDL-SES_2022.01.xml").read_bytes()
    data = data.replace(b'root="1.2.250.1.213.1.4.10"', b'root="1.2.3.4"')
    doc = read_cda(data)
    with pytest.raises(InvalidInput) as info:
        xds.document_entry(doc)
    assert info.value.code == "XDS_NO_PATIENT_ID"
    assert "279035121518989" not in str(info.value)
    with pytest.raises(InvalidInput) as info:
        metadata_from_cda(doc)
    assert info.value.code == "XDM_NO_PATIENT_ID"
    given = xds.document_entry(doc, patient_id=INS_CX)
    assert given.patient_id == INS_CX


def test_metadata_from_cda_delegates(read):
    _, doc = read("ans-cda-examples/IMG_CR_IMG_2024.01.xml")
    assert metadata_from_cda(doc, entry_id="D1") == xds.document_entry(doc, entry_id="D1")


# --- submission set, replacement, METADATA.XML --------------------------------------------------


def make_submission_set(entry, **changes):
    params = dict(
        unique_id="1.2.250.1.71.4.2.2.99.1",
        source_id="1.2.250.1.71.4.2.2.99",
        patient_id=entry.patient_id,
        submission_time=datetime(2024, 1, 16, 15, 11, 12, tzinfo=UTC),
        authors=[
            xds.institution_author("CH de Démonstration", "1010000032", software_name="PFI-Airflow")
        ],
        patient_class="I",
        intended_recipients=[xds.mail_recipient("dr.x@hopital.mssante.fr")],
        title="Envoi PFI",
    )
    params.update(changes)
    return xds.submission_set(**params)


def test_submission_set(read):
    _, doc = read("ans-cda-examples/LDL-SES_2022.01.xml")
    entry = xds.document_entry(doc, entry_id="Document01")
    ss = make_submission_set(entry)
    assert ss.submission_time == "20240116151112"
    assert (ss.content_type_code.code, ss.content_type_code.scheme) == ("03", "1.2.250.1.213.2.2")
    (author,) = ss.authors
    assert author.institutions == (
        "CH de Démonstration^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1010000032",
    )
    assert author.person == "1010000032^PFI-Airflow^^^^^^^&1.2.250.1.71.4.2.2&ISO^U^^^EI"
    assert ss.intended_recipients == ("||^^Internet^dr.x@hopital.mssante.fr",)
    explicit = make_submission_set(entry, content_type=xds.content_type_for("O"))
    assert explicit.content_type_code.code == "07"


def test_replacement_packs_an_rplc_and_reads_back(read, lcm_schema):
    data, doc = read("ans-cda-examples/IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml")
    assert xds.replaced_unique_id(doc) == "90E1C8EC-F951-4B26-A305-A34848818DD6"
    entry = xds.document_entry(doc, entry_id="Document01", flags=MetaFlags(invisible_patient=True))
    ss = make_submission_set(entry)
    rplc = xds.replacement_association("Document01", xds.replaced_unique_id(doc))
    assert rplc.type == xk.ASSOC_RPLC
    archive = pack_xdm([(entry, data)], ss, associations=[rplc])
    package = read_xdm(archive)
    assert package.replacements() == [("Document01", "90E1C8EC-F951-4B26-A305-A34848818DD6")]
    (read_back,) = package.documents
    assert read_back.content == data
    assert read_back.entry.class_code == entry.class_code
    assert read_back.entry.confidentiality_codes == entry.confidentiality_codes
    assert read_back.entry.authors == entry.authors
    assert package.submission_set.content_type_code == ss.content_type_code
    assert package.submission_set.intended_recipients == ss.intended_recipients
    metadata = archive_member(archive, "IHE_XDM/SUBSET01/METADATA.XML")
    lcm_schema.assertValid(etree.fromstring(metadata))


def archive_member(archive: bytes, name: str) -> bytes:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        return z.read(name)


def test_every_official_sample_gives_schema_valid_metadata(read, lcm_schema):
    for rel in sorted(EXPECTED):
        _, doc = read(rel)
        entry = xds.document_entry(doc, entry_id="Document01", flags=MetaFlags(masque_ps=True))
        ss = make_submission_set(entry)
        finalized = entry.__class__(
            **{**_fields(entry), "hash": "0" * 40, "size": 1, "uri": "D.XML"}
        )
        xml = build_metadata(ss, [finalized], [])
        lcm_schema.assertValid(etree.fromstring(xml))
        text = xml.decode()
        for scheme in (
            xk.DE_CLASS_CODE,
            xk.DE_FORMAT_CODE,
            xk.DE_TYPE_CODE,
            xk.SS_CONTENT_TYPE_CODE,
        ):
            assert scheme in text


def _fields(entry) -> dict:
    return {name: getattr(entry, name) for name in entry.__dataclass_fields__}


# --- the CDA documents carried by the official HL7 examples ---------------------------------------


def test_cda_payloads_of_hl7_examples_map_to_xds(fixtures_dir):
    """Header defects (missing setId, SP qualifier…) do not stop the XDS mapping.

    Every readable CDA payload of the HL7 examples (MANIFEST.md: defective headers) maps to a
    DocumentEntry whose codes follow the tables; the ones whose INS is present get a patientId.
    """
    import base64

    mapped = 0
    for path in sorted((fixtures_dir / "ans-hl7v2-exemples").rglob("*")):
        if path.suffix.lower() not in {".er7", ".hl7"}:
            continue
        for segment in re.split(rb"\r\n|\r|\n", path.read_bytes()):
            fields = segment.split(b"|")
            if fields[0] != b"OBX" or len(fields) < 6 or fields[2] != b"ED":
                continue
            parts = fields[5].split(b"^")
            if not (len(parts) >= 5 and parts[2].upper() == b"XML"):
                continue
            data = base64.b64decode(parts[4] + b"=" * (-len(parts[4]) % 4))
            try:
                doc = read_cda(data)
            except InvalidInput:
                continue  # placeholder text or truncated payload: refused by the reader
            entry = xds.document_entry(doc, entry_id="Document01")
            assert entry.type_code.code == doc.code.code
            assert entry.class_code == xds.class_code_for(doc.code.code) is not None
            assert entry.format_code == xds.format_code_for(doc) is not None
            assert entry.patient_id.endswith("&ISO^NH")
            assert "PID-8|" in entry.source_patient_info[-1]
            mapped += 1
    assert mapped >= 15


def test_all_official_samples_round_trip_in_one_package(read, lcm_schema):
    """pack → read: same bytes, same DocumentEntries (plus hash/size/URI), same SubmissionSet."""
    from dataclasses import replace

    documents, associations = [], []
    for index, rel in enumerate(sorted(EXPECTED), start=1):
        data, doc = read(rel)
        entry = xds.document_entry(
            doc, entry_id=f"Document{index:02d}", flags=MetaFlags(invisible_rep_legaux=True)
        )
        documents.append((entry, data))
        if doc.replaced_id:
            associations.append(
                xds.replacement_association(
                    entry.entry_id, str(doc.replaced_id), association_id=f"Rplc{index:02d}"
                )
            )
    ss = make_submission_set(documents[0][0])
    archive = pack_xdm(documents, ss, associations=associations)
    lcm_schema.assertValid(
        etree.fromstring(archive_member(archive, "IHE_XDM/SUBSET01/METADATA.XML"))
    )
    package = read_xdm(archive)
    assert package.submission_set == ss
    assert len(package.documents) == len(documents)
    for (entry, data), got in zip(documents, package.documents, strict=True):
        assert got.content == data
        assert replace(got.entry, hash=None, size=None, uri=None) == entry
    assert len(package.replacements()) == len(associations) == 2


# --- from the HL7 v2 request ----------------------------------------------------------------------

V21_MDM = "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM"


def test_request_gives_flags_patient_id_sender_and_content_type(fixtures_dir):
    """MDM INIT Base64 (v2.1): INVISIBLE_PATIENT and INVISIBLE_REP_LEGAUX = Y, PV1-2 = I,
    PRT SB = 801234564895 / Organisation-Y FINESS géographique 300017985."""
    from pfi.hl7v2 import parse_file

    rel = f"{V21_MDM}/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7"
    (request,) = parse_file((fixtures_dir / rel).read_bytes())
    (document,) = request.documents
    cda = read_cda(document.content)
    entry = xds.document_entry_for_request(request, cda, entry_id="Document01")
    assert [c.code for c in entry.confidentiality_codes] == [
        "N",
        "INVISIBLE_PATIENT",
        "INVISIBLE_REPRESENTANTS_LEGAUX",
    ]
    assert entry.patient_id == INS_CX
    ss = xds.submission_set_for_request(
        request,
        unique_id="1.2.3.4.1",
        source_id="1.2.3.4",
        patient_id=entry.patient_id,
        submission_time=datetime(2024, 1, 16, 15, 11, 12, tzinfo=UTC),
    )
    (author,) = ss.authors
    assert author.person == "801234564895^Eric^Thomas^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    assert author.institutions == ("Organisation-Y^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1300017985",)
    assert ss.content_type_code.code == "03"  # PV1-2 = I


def test_sender_author_fallbacks():
    from pfi.hl7v2.model import Participant

    assert xds.sender_author(None) is None
    assert xds.sender_author(Participant(role="SB")) is None
    device = xds.sender_author(Participant(role="SB", device_id="RIS-01"))
    assert device.person.startswith("RIS-01^") and device.person.endswith("^U^^^EI")
    siret = xds.sender_author(
        Participant(
            role="SB",
            organization_name="Clinique",
            organization_id_type="SIRET",
            organization_id="12345678900011",
        )
    )
    assert siret.institutions[0].endswith("^IDNST^^^312345678900011")
    fallback = xds.institution_author("CH", "1010000032", software_name="PFI")
    ss = xds.submission_set_for_request(
        type("R", (), {"sender": None, "visit": None})(),
        unique_id="1.2",
        source_id="1.2",
        patient_id=INS_CX,
        submission_time=datetime(2024, 1, 1, tzinfo=UTC),
        fallback_authors=[fallback],
    )
    assert ss.authors == (fallback,) and ss.content_type_code is None
