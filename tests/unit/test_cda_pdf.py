"""pfi.protocols.cda.pdf_of: the mail's PDF attachment is the PDF encapsulated in the N1 CDA (SC.CDA/DD.12).

Samples: the N1 documents of ../shared/fixtures/ans-cda-examples and Vague 2/RIS (MANIFEST.md).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from pfi.base.errors import InvalidInput
from pfi.protocols.cda import pdf_of, read_cda

N1 = [
    "ans-cda-examples/BIO-CR-BIO_2021.01_CDA-R2-Niveau-1.xml",
    "ans-cda-examples/DOC_NON_STRUCTURE_CDA-R2-N1.xml",
    "ans-cda-examples/IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml",
    "ans-hl7v2-exemples/Vague 2/RIS/transmission_initiale_cr_imagerie.xml",
]


def body_text(data: bytes) -> bytes:
    match = re.search(rb"<text[^>]*>(.*?)</text>\s*</nonXMLBody>", data, flags=re.S)
    assert match
    return match.group(1)


@pytest.mark.parametrize("rel", N1)
def test_pdf_is_the_decoded_body(fixtures_dir: Path, rel):
    data = (fixtures_dir / rel).read_bytes()
    pdf = pdf_of(data)
    assert pdf.startswith(b"%PDF-")
    assert b"%%EOF" in pdf[-1024:]
    assert pdf == base64.b64decode(b"".join(body_text(data).split()))
    assert pdf_of(read_cda(data)) == pdf


N3_WITH_COPY = [
    "ans-cda-examples/BIO-CR-BIO_2024.01_Electrophorese.xml",
    "ans-cda-examples/IMG_CR_IMG_2024.01.xml",
    "ans-cda-examples/eP-MED-DM_2024.01_PosoStruct.xml",
    "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/ORU/"
    "Transmission initiale ORU/SEGUR_CR-BIO_2023.01_Electrophorese.xml",
]


@pytest.mark.parametrize("rel", N3_WITH_COPY)
def test_n3_gives_its_attached_pdf_copy(fixtures_dir: Path, rel):
    """Ségur N3 models carry a "FR-Document-attache" entry with the PDF copy (observationMedia)."""
    data = (fixtures_dir / rel).read_bytes()
    doc = read_cda(data)
    assert doc.level == 3 and doc.has_attached_pdf
    pdf = pdf_of(doc)
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-1024:]
    match = re.search(
        rb'<observationMedia[^>]*>\s*<value mediaType="application/pdf"[^>]*>([^<]*)<', data
    )
    assert pdf == base64.b64decode(b"".join(match.group(1).split()))
    assert "attached" not in repr(doc) and "JVBER" not in repr(doc)


def test_n3_has_no_pdf(fixtures_dir: Path):
    data = (fixtures_dir / "ans-cda-examples/LDL-SES_2022.01.xml").read_bytes()
    with pytest.raises(InvalidInput) as info:
        pdf_of(data)
    assert info.value.code == "CDA_NO_PDF"


@pytest.fixture(scope="module")
def n1(fixtures_dir: Path) -> bytes:
    return (fixtures_dir / N1[2]).read_bytes()


def test_other_media_type_is_not_a_pdf(n1):
    data = n1.replace(b'mediaType="application/pdf"', b'mediaType="text/plain"', 1)
    with pytest.raises(InvalidInput) as info:
        pdf_of(data)
    assert info.value.code == "CDA_NOT_PDF"


def test_body_without_pdf_signature_is_refused(n1):
    fake = base64.b64encode(b"MZ\x90\x00 not a pdf").decode()
    data = n1.replace(body_text(n1), fake.encode())
    with pytest.raises(InvalidInput) as info:
        pdf_of(data)
    assert info.value.code == "CDA_NOT_PDF"


def test_empty_and_broken_bodies(n1):
    with pytest.raises(InvalidInput) as info:
        pdf_of(n1.replace(body_text(n1), b""))
    assert info.value.code == "CDA_NO_PDF"
    with pytest.raises(InvalidInput) as info:
        pdf_of(n1.replace(body_text(n1), b"@@@not base64@@@"))
    assert info.value.code == "CDA_BAD_BASE64"


def test_replacement_model(n1):
    doc = read_cda(n1)
    assert doc.is_replacement
    (related,) = doc.related_documents
    assert related.type_code == "RPLC"
    assert related.parent_set_id is None and related.parent_version is None
    parent_id = b'<id root="90E1C8EC-F951-4B26-A305-A34848818DD6"/>'
    with_set = n1.replace(
        parent_id + b"\n    </parentDocument>",
        parent_id + b'<setId root="1.2.3.4"/><versionNumber value="1"/></parentDocument>',
    )
    assert with_set != n1
    (related,) = read_cda(with_set).related_documents
    assert related.parent_set_id.root == "1.2.3.4"
    assert related.parent_version == 1
