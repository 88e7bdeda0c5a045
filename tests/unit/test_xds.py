"""pfi.protocols.xds: the XDS metadata of the official ANS CDA samples is what the volet's mapping predicts.

Expected values are read by hand from each sample's header and mapped with IG-CDA
``mapping.md`` ("Mapping XDS / Fiche"): typeCode ← ``code``, classCode ← ASS_X04
(ASS_X04-CorrespondanceType-Classe-CISIS 20240927120000), formatCode ← ASS_A12 (N1 media type)
/ ASS_A11 5.0.0 (N3 model templateId) with the TRE and display name of JDV_J10 / JDV_J60,
healthcareFacilityTypeCode ← ``healthCareFacility/code``, practiceSettingCode ←
``standardIndustryClassCode``, creation and service times ← ``effectiveTime`` (converted to
UTC), author ← ``assignedAuthor``. Samples: ../shared/fixtures/ans-cda-examples (TestContenuCDA
``ExemplesCDA/``) and Vague 2/RIS (see MANIFEST.md). METADATA.XML is validated against ebRS 3.0
``lcm.xsd`` (../shared/validation/xds). The codes of the official metadata examples of
``ansforge/DRIM-M_DATA`` (``informatif/XDS/publication.xml``,
``informatif/XDM/KA202401/IHE_XDM/SS000001/METADATA.XML``) and of the PDSm IG
(``ansforge/IG-FHIR-PDSM4DMP-EEDS``) are restated below as literals, each with its source.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from pfi.base.errors import InvalidInput
from pfi.protocols import xds
from pfi.protocols.cda import read_cda
from pfi.protocols.hl7v2.model import MetaFlags
from pfi.protocols.xdm import build_metadata, metadata_from_cda, pack_xdm, read_xdm
from pfi.protocols.xds import constants as k
from pfi.protocols.xds import ebrim as xk
from pfi.protocols.xds.builder import format_code_value
from pfi.protocols.xds.model import Coded

IHE_PDF = (
    "urn:ihe:iti:xds-sd:pdf:2008",
    k.CS_FORMAT_CODE_IHE,
    "Document à corps non structuré en Pdf/A-1",
)
XD_LAB = (
    "urn:ihe:lab:xd-lab:2008",
    k.CS_FORMAT_CODE_IHE,
    "Compte rendu structuré d'examens de biologie médicale",
)
INS_CX = "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
IPP_CX = "1234567890121^^^&1.2.3.4.567.8.9.10&ISO^PI"

#: sample → (classCode, typeCode, (formatCode, scheme, name), facility, practice setting,
#: creationTime, serviceStartTime, serviceStopTime, authorPerson). classCode from ASS_X04
#: 20240927: 11502-2 → 10, 18748-4 → 31, 18761-7 → 11 (Synthèse), 11490-0 → 10, 57833-6 → 42.
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
        XD_LAB,
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
        (
            "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013",
            k.CS_FORMAT_CODE_IHE,
            "Compte-rendu d'imagerie médicale",
        ),
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
        "11",
        "18761-7",
        (
            "urn:asip:ci-sis:ldl-ees:2017",
            k.CS_FORMAT_CODE_FR,
            "Lettre de Liaison à l'entrée d'un établissement de santé",
        ),
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
        (
            "urn:asip:ci-sis:ldl-ses:2017",
            k.CS_FORMAT_CODE_FR,
            "Lettre de Liaison à la sortie de l'établissement de santé",
        ),
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
        ("urn:ihe:pharm:pre:2010", k.CS_FORMAT_CODE_IHE, "Prescription de médicaments"),
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
    assert (entry.format_code.code, entry.format_code.scheme, entry.format_code.display_name) == fmt
    assert entry.format_code.code in k.FORMAT_CODES_DMP  # JDV_J60: the DMP takes it
    assert entry.class_code.code in k.CLASS_CODES_DMP  # JDV_J57
    assert entry.healthcare_facility_type_code.display_name == k.FACILITY_TYPE_DISPLAY[facility]
    assert entry.practice_setting_code.display_name == k.PRACTICE_SETTING_DISPLAY[setting]
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


def _jdv_j07(shared_dir: Path) -> dict[str, str]:
    """JDV_J07-XdsTypeCode-CISIS 20240927 (the kit's copy): type code → its code system."""
    text = (
        shared_dir / "validation/ans-cda/jeuxDeValeurs/JDV_J07_XdsTypeCode_CISIS.xml"
    ).read_text(encoding="utf-8")
    assert 'dateMaj="20240927120000"' in text  # the version ASS_X04 20240927 goes with
    return dict(re.findall(r'<Concept code="([^"]+)"\s+codeSystem="([^"]+)"', text))


def test_every_type_of_jdv_j07_has_its_ass_x04_class(shared_dir):
    """ASS_X04 20240927 covers JDV_J07 20240927 (E1762 is the signature document, whose
    classCode is the URN of ``pfi.protocols.dmp``); every target is a TRE_A03 class."""
    types = _jdv_j07(shared_dir)
    assert set(types) - set(k.CLASS_BY_TYPE) == {"E1762"}
    assert set(k.CLASS_BY_TYPE.values()) <= set(k.CLASS_DISPLAY)
    assert k.CLASS_CODES_DMP == set(k.CLASS_DISPLAY) - {
        "99"
    }  # JDV_J57: all but "Document technique"
    # LOINC and TRE_A05 codes do not collide: the type code alone is a key
    assert {types[c] for c in types if c in k.CLASS_BY_TYPE} == {k.CS_LOINC, k.CS_TRE_A05}


@pytest.mark.parametrize(
    ("type_code", "klass", "name"),
    [
        # ASS_X04-CorrespondanceType-Classe-CISIS 20240927120000, row by row
        ("11490-0", "10", "Compte rendu"),  # lettre de liaison de sortie: a compte rendu
        ("18761-7", "11", "Synthèse"),  # note de transfert / LDL d'entrée: a synthèse
        ("52040-3", "31", "Imagerie médicale"),  # image d'illustration non DICOM
        ("11488-4", "10", "Compte rendu"),
        ("11502-2", "10", "Compte rendu"),
        ("15507-7", "10", "Compte rendu"),
        ("18748-4", "31", "Imagerie médicale"),
        ("34112-3", "10", "Compte rendu"),
        ("34133-9", "11", "Synthèse"),
        ("34874-8", "10", "Compte rendu"),
        ("57833-6", "42", "Prescription"),
        ("60591-5", "11", "Synthèse"),
        ("77436-4", "10", "Compte rendu"),
        ("PRESC-BIO", "42", "Prescription"),
        ("89601-9", "52", "Certificat, déclaration"),
        ("80565-5", "45", "Traitement administré"),
        ("60593-1", "43", "Dispensation"),
        ("REMB", "60", "Données de remboursement"),
        ("FEUILLE-DE-STYLE", "99", "Document technique"),
    ],
)
def test_class_codes_of_ass_x04(type_code, klass, name):
    assert xds.class_code_for(type_code) == Coded(klass, k.CS_CLASS_CODE, name)


def test_class_code_of_the_drim_m_data_examples():
    """DRIM-M_DATA ``informatif/XDS/publication.xml`` and the XDM ``METADATA.XML``: typeCode
    IMG-KOS (1.2.250.1.213.1.1.4.12) is classified ``31`` / 1.2.250.1.213.1.1.4.1 /
    "Imagerie médicale" — the ANS examples agree with ASS_X04 and TRE_A03."""
    assert xds.class_code_for("IMG-KOS") == Coded(
        "31", "1.2.250.1.213.1.1.4.1", "Imagerie médicale"
    )


def test_segur_document_types_get_dmp_classes():
    """Every type the N1 generator offers (the Ségur list) has an ASS_X04 class of JDV_J57."""
    from pfi.protocols.cda import SEGUR_DOCUMENT_TYPES

    for doc_type in SEGUR_DOCUMENT_TYPES.values():
        klass = xds.class_code_for(doc_type.code)
        assert klass is not None and klass.code in k.CLASS_CODES_DMP, doc_type.code


def test_format_tables_follow_jdv_j10():
    """Each ASS_A11 / ASS_A12 target is a formatCode of TRE_A06 or TRE_A11 (JDV_J10), never
    both, and is written with that TRE's OID; the CI-SIS N3 models the PFI carries and every
    N1 media type give a formatCode the DMP accepts (JDV_J60)."""
    assert not set(k.FORMAT_DISPLAY_TRE_A06) & set(k.FORMAT_DISPLAY_TRE_A11)
    targets = set(k.FORMAT_BY_TEMPLATE.values()) | set(k.FORMAT_BY_MEDIA_TYPE.values())
    assert targets <= set(k.FORMAT_DISPLAY_TRE_A06) | set(k.FORMAT_DISPLAY_TRE_A11)
    for code in targets:
        coded = format_code_value(code)
        expected = k.CS_FORMAT_CODE_FR if code in k.FORMAT_DISPLAY_TRE_A06 else k.CS_FORMAT_CODE_IHE
        assert coded.scheme == expected, code
    # the IHE France N1 formats are TRE_A11 codes, not TRE_A06 ones (JDV_J10, ASS_A12)
    for media in ("text/rtf", "image/jpeg", "image/tiff"):
        assert k.FORMAT_BY_MEDIA_TYPE[media] in k.FORMAT_DISPLAY_TRE_A11
    assert set(k.FORMAT_BY_MEDIA_TYPE.values()) <= k.FORMAT_CODES_DMP
    for template in (
        "1.2.250.1.213.1.1.1.29",
        "1.2.250.1.213.1.1.1.21",
        "1.2.250.1.213.1.1.1.45",
        "1.2.250.1.213.1.1.1.55",
        "1.2.250.1.213.1.1.1.39",
        "1.3.6.1.4.1.19376.1.3.3",
        "1.2.250.1.213.1.1.1.40",
        "1.2.250.1.213.1.1.1.52",
        "1.2.250.1.213.1.1.1.47",
    ):
        assert k.FORMAT_BY_TEMPLATE[template] in k.FORMAT_CODES_DMP, template


def test_cisis_model_wins_over_the_ihe_template(read):
    """A CR-ACP carries the IHE APSR template and the CI-SIS model 1.2.250.1.213.1.1.1.57:
    ASS_A11 maps both, the CI-SIS model gives the formatCode whatever the order."""
    from dataclasses import replace

    from pfi.protocols.cda.model import Identifier

    _, doc = read("ans-cda-examples/IMG_CR_IMG_2024.01.xml")
    both = ("1.3.6.1.4.1.19376.1.8.1.1.1", "1.2.250.1.213.1.1.1.57")

    def with_templates(*roots):
        return replace(doc, template_ids=tuple(Identifier(r) for r in roots))

    for roots in (both, both[::-1]):
        assert xds.format_code_for(with_templates(*roots)).code == "urn:ihe:palm:apsr:2016"
    only_ihe = with_templates("1.3.6.1.4.1.19376.1.8.1.1.1")
    assert xds.format_code_for(only_ihe).code == "urn:ihe:pat:apsr:all:2010"
    assert xds.format_code_for(with_templates("1.2.3")) is None


def test_unknown_type_gives_no_class_and_strict_refuses(read):
    _, doc = read("ans-cda-examples/LDL-SES_2022.01.xml")
    assert xds.class_code_for("00000-0") is None
    assert xds.class_code_for(None) is None
    from dataclasses import replace

    from pfi.protocols.cda import Code

    odd = replace(doc, code=Code("00000-0", k.CS_LOINC, "?"))
    assert xds.document_entry(odd).class_code is None
    with pytest.raises(InvalidInput) as info:
        xds.document_entry(odd, strict=True)
    assert info.value.code == "XDS_METADATA_INCOMPLETE"
    assert "class_code" in str(info.value)


def test_format_codes_by_media_type(read):
    from dataclasses import replace

    _, doc = read("ans-cda-examples/DOC_NON_STRUCTURE_CDA-R2-N1.xml")
    # ASS_A12 5.0.0, names from JDV_J10 / JDV_J60
    expected = {
        "application/pdf": (
            "urn:ihe:iti:xds-sd:pdf:2008",
            "Document à corps non structuré en Pdf/A-1",
        ),
        "text/plain": (
            "urn:ihe:iti:xds-sd:text:2008",
            "Document à corps non structuré en texte brut",
        ),
        "text/rtf": (
            "urn:ihe:iti-fr:xds-sd:rtf:2010",
            "Document à corps non structuré en format rtf",
        ),
        "image/jpeg": (
            "urn:ihe:iti-fr:xds-sd:jpeg:2010",
            "Document à corps non structuré en format jpeg",
        ),
        "IMAGE/TIFF": (
            "urn:ihe:iti-fr:xds-sd:tiff:2010",
            "Document à corps non structuré en format tiff",
        ),
    }
    for media, (code, name) in expected.items():
        assert xds.format_code_for(replace(doc, media_type=media)) == Coded(
            code, k.CS_FORMAT_CODE_IHE, name
        )
    assert xds.format_code_for(replace(doc, media_type="application/zip")) is None


@pytest.mark.parametrize(
    ("pv1_2", "code"),
    [("I", "03"), ("O", "07"), ("R", "19"), ("N", "97"), ("E", "07"), ("x", None), (None, None)],
)
def test_content_type_from_patient_class(pv1_2, code):
    """IG-CDA ``mapping.md``: "I => 03; O => 07; R => 19; N => 97; E => 07" (JDV_J59)."""
    coded = xds.content_type_for(pv1_2)
    assert (coded.code if coded else None) == code
    if coded:
        assert coded.scheme == "1.2.250.1.213.2.2"
        assert coded.display_name == k.CONTENT_TYPE_DISPLAY[code]


def test_content_type_names_of_jdv_j59():
    """JDV_J59-ContentTypeCode-DMP 20240927 (TRE_R209 names); ``04`` as in DRIM-M_DATA."""
    assert k.CONTENT_TYPE_DISPLAY["03"] == (
        "Hospitalisation complète (non compris hospitalisation de semaine)"
    )
    assert k.CONTENT_TYPE_DISPLAY["07"] == "Consultations soins externes"
    assert k.CONTENT_TYPE_DISPLAY["19"] == "Traitement et cure ambulatoire"
    assert k.CONTENT_TYPE_DISPLAY["97"] == "Type d'activité indifférencié"
    # DRIM-M_DATA publication.xml / METADATA.XML: nodeRepresentation 04, 1.2.250.1.213.2.2
    ss = xds.submission_set(
        unique_id="1.2",
        source_id="1.2",
        patient_id=INS_CX,
        submission_time=datetime(2024, 1, 16, tzinfo=UTC),
        content_type=Coded("04", k.CS_CONTENT_TYPE, k.CONTENT_TYPE_DISPLAY["04"]),
    )
    assert ss.content_type_code == Coded("04", "1.2.250.1.213.2.2", "Hospitalisation de jour")
    assert set(k.CONTENT_TYPE_BY_PATIENT_CLASS.values()) <= set(k.CONTENT_TYPE_DISPLAY)


def test_visibility_and_confidentiality_names_match_the_ans_examples():
    """DRIM-M_DATA ``METADATA.XML``: N "Normal" (2.16.840.1.113883.5.25), MASQUE_PS "Masqué
    aux professionnels de santé", INVISIBLE_PATIENT "Non visible par le patient"
    (1.2.250.1.213.1.1.4.13); INVISIBLE_REPRESENTANTS_LEGAUX named as TRE_A07 names it."""
    codes = xds.visibility_codes(MetaFlags(masque_ps=True, invisible_patient=True))
    assert codes == (
        Coded("MASQUE_PS", "1.2.250.1.213.1.1.4.13", "Masqué aux professionnels de santé"),
        Coded("INVISIBLE_PATIENT", "1.2.250.1.213.1.1.4.13", "Non visible par le patient"),
    )
    (legal,) = xds.visibility_codes(MetaFlags(invisible_rep_legaux=True))
    assert legal.display_name == "Non visible par représentants légaux du patient"
    assert k.CONFIDENTIALITY_DISPLAY == {"N": "Normal", "R": "Restreint", "V": "Très restreint"}


def test_names_come_from_the_value_sets_when_the_cda_gives_none(read):
    """A CDA code without ``displayName`` (confidentiality, facility, practice setting) is
    named from TRE_A08 / JDV_J02 / JDV_J04, as DRIM-M_DATA names SA25 and AMBULATOIRE."""
    from dataclasses import replace

    from pfi.protocols.cda import Code

    _, doc = read("ans-cda-examples/BIO-CR-BIO_2024.01_Electrophorese.xml")
    event = replace(
        doc.service_events[0], practice_setting=Code("AMBULATOIRE", k.CS_PRACTICE_SETTING, None)
    )
    bare = replace(
        doc,
        confidentiality_code=Code("N", k.CS_CONFIDENTIALITY, None),
        service_events=(event,),
        encounter=replace(doc.encounter, facility_code=Code("SA25", k.CS_FACILITY_TYPE, None)),
    )
    entry = xds.document_entry(bare)
    assert entry.confidentiality_codes[0] == Coded("N", "2.16.840.1.113883.5.25", "Normal")
    assert entry.healthcare_facility_type_code == Coded(
        "SA25", "1.2.250.1.71.4.2.4", "Laboratoire de biologie médicale"
    )
    assert entry.practice_setting_code == Coded(
        "AMBULATOIRE", "1.2.250.1.213.1.1.4.9", "Ambulatoire"
    )


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
    # PDSm AuthorPersonSystem: 3 + FINESS / id in the structure, PS_IdNat OID, U, RI
    assert author.person == (
        "3010000032/PFI-Airflow^PFI-Airflow^PFI-Airflow^^^^^^&1.2.250.1.71.4.2.1&ISO^U^^^RI"
    )
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
            # ASS_X04: CR d'imagerie → 31, CR de biologie → 10; ASS_A12 / ASS_A11 formats
            assert entry.class_code.code == {"18748-4": "31", "11502-2": "10"}[doc.code.code]
            expected_format = (
                "urn:ihe:iti:xds-sd:pdf:2008" if doc.level == 1 else "urn:ihe:lab:xd-lab:2008"
            )
            assert entry.format_code == format_code_value(expected_format)
            assert entry.format_code.code in k.FORMAT_CODES_DMP
            assert entry.healthcare_facility_type_code.scheme == k.CS_FACILITY_TYPE
            assert entry.practice_setting_code.scheme == k.CS_PRACTICE_SETTING
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
    from pfi.protocols.hl7v2 import parse_file

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


def test_system_author_as_the_pdsm_example():
    """``ansforge/IG-FHIR-PDSM4DMP-EEDS`` ``input/fsh/Example/AuthorDispositif.fsh`` ("Dispositif
    dans une structure de santé FINESS"): the same inputs give the same authorPerson and
    authorInstitution."""
    author = xds.institution_author(
        "Groupe Pitié Salpêtrière",
        "1750100125",
        software_name="Automate de laboratoire X",
        software_id="9762",
        software_model="waralab1000",
    )
    assert author.person == (
        "3750100125/9762^Automate de laboratoire X^waralab1000^^^^^^&1.2.250.1.71.4.2.1&ISO^U^^^RI"
    )
    assert author.institutions == (
        "Groupe Pitié Salpêtrière^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1750100125",
    )
    # IdentifiantSysteme prefixes: SIRET structure 3… → system 5…; a full id is kept
    siret = xds.institution_author("Clinique", "312345678900011", software_name="PFI")
    assert siret.person.startswith("512345678900011/PFI^PFI^PFI^")
    given = xds.institution_author(
        "CH", "1010000032", software_name="PFI", software_id="3010000032/7"
    )
    assert given.person.startswith("3010000032/7^PFI^")
    person = "801234564895^Eric^Thomas^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    assert (
        xds.institution_author("CH", "1010000032", software_name="PFI", person=person).person
        == person
    )
    assert xds.institution_author("CH", "1010000032").person is None


def test_device_author_of_a_cda():
    """``assignedAuthoringDevice``: ``…^U^^^RI`` when its id is a system PS_IdNat (PDSm),
    ``…^U^^^EI`` for an id under another OID."""
    from pfi.protocols.cda.model import Identifier, Participant

    system = Participant(
        ids=(Identifier("1.2.250.1.71.4.2.1", "3750100125/9762"),), device_name="X"
    )
    assert xds.xcn(system) == "3750100125/9762^X^^^^^^^&1.2.250.1.71.4.2.1&ISO^U^^^RI"
    local = Participant(ids=(Identifier("1.2.250.1.71.4.2.2", "1010000024"),), device_name="X")
    assert xds.xcn(local) == "1010000024^X^^^^^^^&1.2.250.1.71.4.2.2&ISO^U^^^EI"


def test_sender_author_fallbacks():
    from pfi.protocols.hl7v2.model import Participant

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
    # a device of a FINESS structure is a PDSm system author: 3 + FINESS / PRT-10.1
    ris = xds.sender_author(
        Participant(
            role="SB",
            device_id="RIS-01",
            organization_name="CH",
            organization_id_type="FINEG",
            organization_id="300017985",
        )
    )
    assert ris.person == "3300017985/RIS-01^RIS-01^^^^^^^&1.2.250.1.71.4.2.1&ISO^U^^^RI"
    assert ris.institutions[0].endswith("^IDNST^^^1300017985")
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
