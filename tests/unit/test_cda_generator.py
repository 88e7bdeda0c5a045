"""pfi.protocols.cda.generator: every generated N1 passes the ANS schema and "Structuration minimale".

Checks, per Ségur document type: ``CDA_extended.xsd`` (../shared/validation/ans-cda, TestContenuCDA
@ 7cd489b39368), the StrucMin schematron with zero failed assertion (compiled once per session by
``pfi_fixtures.schematron``), our own header checks, a read back with :func:`pfi.protocols.cda.read_cda`
and the XDS metadata the volet's mapping predicts. The same compiled schematron is run on the
official samples (MANIFEST.md: the 8 ``ans-cda-examples`` and the 3 ``Vague 2/RIS`` pass, the
v1.0 LPS ``CR_Radio_CDAN1_v1.XML`` fails on its missing ``setId``) to show it really checks.
The PDF is the one embedded in the official ``DOC_NON_STRUCTURE_CDA-R2-N1.xml``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from lxml import etree

from pfi.base.errors import InvalidInput
from pfi.protocols import xds
from pfi.protocols.cda import check_header, pdf_of, read_cda
from pfi.protocols.cda.generator import (
    SEGUR_DOCUMENT_TYPES,
    SETTING_AMBULATORY,
    N1Document,
    PatientIdentity,
    Professional,
    Structure,
    build_n1,
    software_of_site,
    structure_of_site,
)
from pfi.protocols.cda.model import Code, Identifier

PARIS = timezone(timedelta(hours=1))
INS = "279035121518989"
DOCTOR = Professional(
    "801234567897",
    "DUPONT",
    "Jean",
    Code("G15_10/SM26", "1.2.250.1.213.1.1.4.5", "Médecin - Qualifié en Médecine Générale (SM)"),
)


@pytest.fixture(scope="module")
def cda_xsd(shared_dir: Path) -> etree.XMLSchema:
    return etree.XMLSchema(
        etree.parse(str(shared_dir / "validation/ans-cda/infrastructure/cda/CDA_extended.xsd"))
    )


@pytest.fixture(scope="module")
def pdf(fixtures_dir: Path) -> bytes:
    return pdf_of((fixtures_dir / "ans-cda-examples/DOC_NON_STRUCTURE_CDA-R2-N1.xml").read_bytes())


@pytest.fixture(scope="module")
def base(pdf) -> N1Document:
    return N1Document(
        pdf=pdf,
        document_type=SEGUR_DOCUMENT_TYPES["cr-operatoire"],
        title="Compte rendu opératoire",
        patient=PatientIdentity(
            ins=INS,
            ins_oid="1.2.250.1.213.1.4.10",
            birth_family_name="PAT-TROIS",
            first_given_name="DOMINIQUE",
            birth_given_names="DOMINIQUE MARIE-LOUISE",
            birth_date=date(1979, 3, 28),
            sex="F",
            birthplace_code="51215",
            used_family_name="PAT-TROIS",
            local_ids=(Identifier("1.2.250.1.71.4.2.2.99.1", "IPP0001"),),
        ),
        organization=Structure("1010000032", "CH de Démonstration - Site principal"),
        effective_time=datetime(2024, 1, 5, 11, 30, tzinfo=PARIS),
        service_start=datetime(2024, 1, 5, 8, 0, tzinfo=PARIS),
        service_stop=datetime(2024, 1, 5, 10, 45, tzinfo=PARIS),
        author=DOCTOR,
        legal_authenticator=DOCTOR,
        document_id=Identifier("1.2.250.1.71.4.2.2.99.2.1"),
        set_id=Identifier("1.2.250.1.71.4.2.2.99.3.1"),
    )


def check_valid(data: bytes, cda_xsd, strucmin) -> None:
    cda_xsd.assertValid(etree.fromstring(data))
    failed = strucmin.failed(data)
    assert failed == [], [f.text for f in failed]
    assert check_header(read_cda(data)) == []


@pytest.mark.parametrize("key", sorted(SEGUR_DOCUMENT_TYPES))
def test_each_segur_type_passes_schema_and_schematron(base, key, cda_xsd, strucmin, pdf):
    doc_type = SEGUR_DOCUMENT_TYPES[key]
    data = build_n1(replace(base, document_type=doc_type, title=doc_type.display_name))
    check_valid(data, cda_xsd, strucmin)
    cda = read_cda(data)
    assert cda.level == 1
    assert cda.code.code == doc_type.code and cda.code.code_system == doc_type.code_system
    assert pdf_of(cda) == pdf
    entry = xds.document_entry(cda, strict=True)  # every DMP-required attribute is filled
    assert entry.class_code == xds.class_code_for(doc_type.code)
    assert entry.format_code.code == "urn:ihe:iti:xds-sd:pdf:2008"


def test_generated_header_reads_back(base, pdf):
    cda = read_cda(build_n1(base))
    assert cda.id == base.document_id and cda.set_id == base.set_id
    assert cda.version_number == 1 and cda.replaced_id is None
    assert cda.title == "Compte rendu opératoire"
    assert cda.effective_time == base.effective_time
    assert cda.confidentiality_code.code == "N"
    patient = cda.patient
    assert patient.ins == Identifier("1.2.250.1.213.1.4.10", INS)
    assert patient.other_ids == (Identifier("1.2.250.1.71.4.2.2.99.1", "IPP0001"),)
    assert (patient.birth_family_name, patient.first_given_name) == ("PAT-TROIS", "DOMINIQUE")
    assert patient.birth_given_names == "DOMINIQUE MARIE-LOUISE"
    assert (patient.birth_time, patient.gender, patient.birthplace_code) == (
        date(1979, 3, 28),
        "F",
        "51215",
    )
    assert cda.author.person_id == Identifier("1.2.250.1.71.4.2.1", "801234567897")
    assert cda.author.specialty == DOCTOR.specialty
    assert cda.custodian.ids == (Identifier("1.2.250.1.71.4.2.2", "1010000032"),)
    assert cda.legal_authenticator.signature_code == "S"
    assert (cda.service_events[0].start, cda.service_events[0].stop) == (
        base.service_start,
        base.service_stop,
    )
    assert cda.practice_setting.code == "ETABLISSEMENT"
    assert cda.encounter.facility_code.code == "SA01"
    assert pdf_of(cda) == pdf


def test_replacement_version(base, cda_xsd, strucmin):
    data = build_n1(
        replace(
            base,
            document_id=Identifier("1.2.250.1.71.4.2.2.99.2.2"),
            version=2,
            replaces=base.document_id,
            confidentiality="R",
            practice_setting=SETTING_AMBULATORY,
        )
    )
    check_valid(data, cda_xsd, strucmin)
    cda = read_cda(data)
    assert cda.replaced_id == base.document_id
    assert (cda.version_number, cda.set_id) == (2, base.set_id)
    assert xds.replaced_unique_id(cda) == str(base.document_id)
    assert cda.confidentiality_code.code == "R"


def test_software_author_from_settings(base, cda_xsd, strucmin):
    settings = SimpleNamespace(
        site=SimpleNamespace(
            name="CH de Démonstration",
            finess_juridique="010000024",
            structure_oid="1.2.250.1.71.4.2.2",
            software_name="PFI-Airflow",
            software_version="0.1.0",
            finess_geo=(
                SimpleNamespace(finess="010000032", name="Site principal"),
                SimpleNamespace(finess="010000040", name="Site de consultations externes"),
            ),
        )
    )
    structure = structure_of_site(settings, "010000040")
    assert structure == Structure("1010000040", "Site de consultations externes")
    assert structure_of_site(settings).id == "1010000032"
    with pytest.raises(InvalidInput):
        structure_of_site(settings, "999999999")
    software = software_of_site(settings)
    data = build_n1(replace(base, author=software, organization=structure))
    check_valid(data, cda_xsd, strucmin)
    cda = read_cda(data)
    assert cda.author.device_name == "PFI-Airflow 0.1.0"
    (author,) = xds.document_entry(cda).authors
    assert author.person == "1010000024^PFI-Airflow 0.1.0^^^^^^^&1.2.250.1.71.4.2.2&ISO^U^^^EI"


def test_bad_inputs_are_refused_without_patient_data(base):
    cases = [
        (replace(base, pdf=b"<html>not a pdf</html>"), "CDA_NOT_PDF"),
        (replace(base, patient=replace(base.patient, ins="12345")), "CDA_BAD_INPUT"),
        (replace(base, patient=replace(base.patient, ins_oid="1.2.3")), "CDA_BAD_INPUT"),
        (replace(base, patient=replace(base.patient, sex="X")), "CDA_BAD_INPUT"),
        (replace(base, confidentiality="Z"), "CDA_BAD_INPUT"),
    ]
    for doc, code in cases:
        with pytest.raises(InvalidInput) as info:
            build_n1(doc)
        assert info.value.code == code
        assert INS not in str(info.value) and "PAT-TROIS" not in str(info.value)
    assert "PAT-TROIS" not in repr(base) and INS not in repr(base)


# --- the schematron itself ------------------------------------------------------------------------


def test_schematron_catches_a_broken_header(base, strucmin):
    data = build_n1(base)
    no_set_id = data.replace(b'<setId root="1.2.250.1.71.4.2.2.99.3.1"/>', b"")
    assert no_set_id != data
    assert any("setId" in f.text for f in strucmin.failed(no_set_id))
    sp = data.replace(b'<family qualifier="BR">', b'<family qualifier="SP">')
    assert strucmin.failed(sp)


OFFICIAL_GOOD = [
    *(
        f"ans-cda-examples/{name}"
        for name in (
            "BIO-CR-BIO_2021.01_CDA-R2-Niveau-1.xml",
            "BIO-CR-BIO_2024.01_Electrophorese.xml",
            "DOC_NON_STRUCTURE_CDA-R2-N1.xml",
            "IMG_CR_IMG_2024.01.xml",
            "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml",
            "LDL-EES_2022.01.xml",
            "LDL-SES_2022.01.xml",
            "eP-MED-DM_2024.01_PosoStruct.xml",
        )
    ),
    "ans-hl7v2-exemples/Vague 2/RIS/remplacement_cr_imagerie.xml",
    "ans-hl7v2-exemples/Vague 2/RIS/suppression_cr_imagerie.xml",
    "ans-hl7v2-exemples/Vague 2/RIS/transmission_initiale_cr_imagerie.xml",
]


@pytest.mark.parametrize("rel", OFFICIAL_GOOD)
def test_official_samples_pass_the_compiled_schematron(fixtures_dir, rel, strucmin):
    assert strucmin.failed((fixtures_dir / rel).read_bytes()) == []


def test_defective_official_sample_fails_the_compiled_schematron(fixtures_dir, strucmin):
    rel = (
        "ans-hl7v2-exemples/Volets/Trans_LPS_CDA_MSSanté/V1.0/"
        "Transmission initiale MDM/CR_Radio_CDAN1_v1.XML"
    )
    failed = strucmin.failed((fixtures_dir / rel).read_bytes())
    assert len(failed) == 1 and "setId" in failed[0].text  # MANIFEST.md: 1 failed assert


# --- a producer that sends a PDF only -------------------------------------------------------------


def test_n1_from_an_hl7_request_carrying_a_pdf(fixtures_dir, cda_xsd, strucmin, pdf):
    """The v2.1 MDM replacement example, its CDA swapped for a bare PDF in OBX-5.5."""
    import base64
    import re

    from pfi.protocols.cda.generator import n1_from_request
    from pfi.protocols.hl7v2 import parse_file

    rel = (
        "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM/"
        "Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7"
    )
    raw = (fixtures_dir / rel).read_bytes()
    obx = next(s for s in re.split(rb"\r\n|\r|\n", raw) if s.startswith(b"OBX|1|"))
    payload = obx.split(b"|")[5].split(b"^")[4]
    (request,) = parse_file(raw.replace(payload, base64.b64encode(pdf)))
    (document,) = request.documents
    assert document.format == "pdf"
    n1 = n1_from_request(
        request,
        document.content,
        organization=Structure("1010000032", "CH de Démonstration"),
        set_id=Identifier("1.2.250.1.71.4.2.2.99.3.7"),
        version=2,
    )
    data = build_n1(n1)
    check_valid(data, cda_xsd, strucmin)
    cda = read_cda(data)
    assert cda.id == Identifier("1.2.250.1.71.4.2.2.120456789.71024000082")  # TXA-12
    assert cda.replaced_id == Identifier("1.2.250.1.71.4.2.2.120456789.71024000081")  # TXA-13
    assert cda.code.code == "18748-4" and cda.version_number == 2
    assert cda.patient.ins == Identifier("1.2.250.1.213.1.4.10", INS)
    assert cda.author.person_id.root == "1.2.250.1.71.4.2.1"  # PRT-5 of SB
    assert cda.effective_time.isoformat() == "2022-12-16T09:32:00+01:00"  # TXA-4, Paris time
    assert pdf_of(cda) == pdf
    no_birthplace = replace(request, patient=replace(request.patient, birthplace_code=""))
    with pytest.raises(InvalidInput) as info:
        n1_from_request(no_birthplace, pdf, organization=n1.organization)
    assert info.value.code == "CDA_BAD_INPUT" and "birthplace" in str(info.value)
    assert INS not in str(info.value)
