"""pfi.protocols.xdm: pack → read round trips; hostile archives are refused with their code.

The documents packed are official ANS CDA samples (../shared/fixtures/ans-cda-examples and
Vague 2/RIS, see MANIFEST.md); METADATA.XML is checked against the OASIS ebRS 3.0 ``lcm.xsd`` of
../shared/validation/xds (README: ``lcm.xsd`` is the entry point). Hostile archives are built
here with ``zipfile``. The lenient-reading case copies the *structure* of the only ANS XDM
sample (DRIM-M_DATA ``informatif/XDM/KA202401/IHE_XDM/SS000001/METADATA.XML``), not the file.
"""

from __future__ import annotations

import hashlib
import io
import random
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from pfi.base.errors import InvalidInput
from pfi.protocols.cda import read_cda
from pfi.protocols.xdm import (
    Association,
    Author,
    Coded,
    DocumentEntry,
    SubmissionSet,
    XdmLimits,
    finalize_entries,
    metadata_from_cda,
    pack_xdm,
    read_xdm,
    unsafe_name_reason,
    xds_time,
)
from pfi.protocols.xds import ebrim as k

INS_CX = "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
META = "IHE_XDM/SUBSET01/METADATA.XML"
STAMP = (2024, 1, 16, 15, 11, 12)


@pytest.fixture(scope="module")
def samples(fixtures_dir: Path) -> dict[str, bytes]:
    return {
        "n1": (
            fixtures_dir / "ans-hl7v2-exemples/Vague 2/RIS/remplacement_cr_imagerie.xml"
        ).read_bytes(),
        "n3": (fixtures_dir / "ans-cda-examples/LDL-SES_2022.01.xml").read_bytes(),
    }


@pytest.fixture(scope="module")
def lcm_schema(shared_dir: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(shared_dir / "validation/xds/ebRS30/lcm.xsd")))


def full_entry(**changes) -> DocumentEntry:
    """A DocumentEntry with every field the model has, filled."""
    entry = DocumentEntry(
        entry_id="Document01",
        unique_id="1.2.250.1.213.4.5.4.403",
        patient_id=INS_CX,
        mime_type="text/xml",
        title="CR d'imagerie médicale",
        comments="Remplace la version 1",
        class_code=Coded("31", "1.2.250.1.213.1.1.4.1", "Imagerie médicale"),
        type_code=Coded("18748-4", "2.16.840.1.113883.6.1", "CR d'imagerie médicale"),
        format_code=Coded(k.FORMAT_XDS_SD_PDF, k.FORMAT_CODING_SCHEME, "PDF"),
        confidentiality_codes=(
            Coded("N", "2.16.840.1.113883.5.25", "Normal"),
            Coded("MASQUE_PS", "1.2.250.1.213.1.1.4.13", "Masqué aux professionnels de santé"),
        ),
        healthcare_facility_type_code=Coded("SA08", "1.2.250.1.71.4.2.4", "Cabinet de groupe"),
        practice_setting_code=Coded("AMBULATOIRE", "1.2.250.1.213.1.1.4.9", "Ambulatoire"),
        event_codes=(Coded("CT", "1.2.250.1.213.1.1.5.618", "Tomodensitométrie"),),
        authors=(
            Author(
                person="801234560801^BIDEAULT^Jacques^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
                institutions=(
                    "Centre de radiologie^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1750803447",
                ),
                roles=("Référent",),
                specialties=("G15_10/SM44^Médecin - Radio-diagnostic^1.2.250.1.213.1.1.4.5",),
                telecoms=("^^Internet^jacques.bideault@test.mssante.fr",),
            ),
        ),
        legal_authenticator="801234560801^BIDEAULT^Jacques^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
        creation_time="20210108101700",
        service_start_time="20210108092500",
        service_stop_time="20210108101700",
        language_code="fr-FR",
        source_patient_id="1234567890121^^^&1.2.250.1.213.4.5.2.4&ISO^PI",
        source_patient_info=("PID-5|PAT-TROIS^DOMINIQUE^^^^^L", "PID-7|19790328", "PID-8|F"),
        extra_slots=(("urn:ihe:iti:xds:2013:referenceIdList", ("105234751^^^&1.2.3&ISO",)),),
    )
    return replace(entry, **changes)


def submission(**changes) -> SubmissionSet:
    ss = SubmissionSet(
        entry_id="SubmissionSet01",
        unique_id="1.2.250.1.999.1.1.8121.4.9618",
        source_id="1.2.250.1.999.1.1.8121",
        patient_id=INS_CX,
        submission_time="20240116141112",
        content_type_code=Coded("04", "1.2.250.1.213.2.2", "Hospitalisation de jour"),
        authors=(Author(person="^^^^^^^^&1.2.250.1.71.4.2.1&ISO^U^^^EI", institutions=("X",)),),
        title="Envoi PFI",
        intended_recipients=("|jacques.bideault@test.mssante.fr^^Internet^x@y.fr",),
    )
    return replace(ss, **changes)


@pytest.fixture(scope="module")
def packed(samples) -> tuple[bytes, list, SubmissionSet, list[Association]]:
    documents = [
        (full_entry(), samples["n1"]),
        (
            full_entry(
                entry_id="",
                unique_id="1.2.250.1.213.1.1.1.29.2022.1.1",
                authors=(),
                confidentiality_codes=(),
                extra_slots=(),
                title=None,
                comments=None,
            ),
            samples["n3"],
        ),
    ]
    rplc = [Association("Association99", k.ASSOC_RPLC, "Document01", "urn:uuid:0000-old")]
    data = pack_xdm(documents, submission(), date_time=STAMP, associations=rplc)
    return data, documents, submission(), rplc


# --- round trip -----------------------------------------------------------------------------------


def test_round_trip_gives_back_documents_and_metadata(packed):
    data, documents, ss, rplc = packed
    package = read_xdm(data)
    expected = finalize_entries(documents)
    assert package.submission_set == ss
    assert [d.entry for d in package.documents] == [e for e, _, _ in expected]
    assert [d.content for d in package.documents] == [c for _, c, _ in expected]
    assert [d.path for d in package.documents] == [
        "IHE_XDM/SUBSET01/DOC0001.XML",
        "IHE_XDM/SUBSET01/DOC0002.XML",
    ]
    assert package.documents[1].entry.entry_id == "Document02"
    has_member = [a for a in package.associations if a.type == k.ASSOC_HAS_MEMBER]
    assert [(a.source, a.target, a.status) for a in has_member] == [
        ("SubmissionSet01", "Document01", "Original"),
        ("SubmissionSet01", "Document02", "Original"),
    ]
    assert package.replacements() == [("Document01", "urn:uuid:0000-old")]
    assert package.patient_id == INS_CX
    assert package.subset == "IHE_XDM/SUBSET01"
    assert "PFI" in package.readme


def test_hash_size_and_uri_are_computed(packed, samples):
    package = read_xdm(packed[0])
    entry = package.documents[0].entry
    assert entry.hash == hashlib.sha1(samples["n1"]).hexdigest()
    assert entry.size == len(samples["n1"])
    assert entry.uri == "DOC0001.XML"


def test_layout_and_determinism(packed):
    data, documents, ss, rplc = packed
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        infos = archive.infolist()
    assert names == [
        "INDEX.HTM",
        "README.TXT",
        META,
        "IHE_XDM/SUBSET01/DOC0001.XML",
        "IHE_XDM/SUBSET01/DOC0002.XML",
    ]
    assert {i.date_time for i in infos} == {STAMP}
    assert pack_xdm(documents, ss, date_time=STAMP, associations=rplc) == data
    assert pack_xdm(documents, ss, date_time=(2024, 1, 17, 0, 0, 0)) != data


def test_index_links_the_documents(packed):
    with zipfile.ZipFile(io.BytesIO(packed[0])) as archive:
        index = archive.read("INDEX.HTM").decode()
    assert 'href="IHE_XDM/SUBSET01/DOC0001.XML"' in index
    assert "CR d&#x27;imagerie médicale" in index


def test_metadata_is_schema_valid(packed, lcm_schema):
    with zipfile.ZipFile(io.BytesIO(packed[0])) as archive:
        metadata = archive.read(META)
    root = etree.fromstring(metadata)
    assert lcm_schema.validate(root), lcm_schema.error_log
    assert root.tag == f"{{{k.NS_LCM}}}SubmitObjectsRequest"
    assert metadata.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")


def test_metadata_from_cda_packs_schema_valid(fixtures_dir, lcm_schema):
    docs = []
    for path in sorted((fixtures_dir / "ans-cda-examples").glob("*.xml")):
        data = path.read_bytes()
        docs.append((metadata_from_cda(read_cda(data)), data))
    package_bytes = pack_xdm(docs, submission(), date_time=STAMP)
    package = read_xdm(package_bytes)
    assert len(package.documents) == 8
    with zipfile.ZipFile(io.BytesIO(package_bytes)) as archive:
        assert lcm_schema.validate(etree.fromstring(archive.read(META))), lcm_schema.error_log
    first = package.documents[0].entry
    assert first.unique_id == "1.2.250.1.213.1.1.1.55.2021.3.1"
    assert first.patient_id == INS_CX
    assert first.source_patient_id == "1234567890121^^^&1.2.3.4.567.8.9.10&ISO^PI"
    assert first.type_code == Coded("11502-2", "2.16.840.1.113883.6.1", "CR d'examens biologiques")
    assert first.format_code.code == k.FORMAT_XDS_SD_PDF
    assert first.creation_time == "20210104150527"  # 16:05:27+01:00 in UTC
    assert first.healthcare_facility_type_code.code == "SA25"
    assert first.practice_setting_code.code == "AMBULATOIRE"
    assert first.authors[0].person.endswith("&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS")
    assert first.source_patient_info[1:] == ("PID-7|19790328", "PID-8|F")
    ldl_ses = next(d.entry for d in package.documents if d.entry.type_code.code == "11490-0")
    assert ldl_ses.format_code.code == "urn:asip:ci-sis:ldl-ses:2017"


def test_xds_time():
    from datetime import date, datetime, timedelta, timezone

    tz = timezone(timedelta(hours=1))
    assert xds_time(datetime(2021, 1, 8, 11, 17, tzinfo=tz)) == "20210108101700"
    assert xds_time(date(1979, 3, 28)) == "19790328"


def test_reads_from_a_path_without_extracting(packed, tmp_path):
    target = tmp_path / "IHE_XDM.ZIP"
    target.write_bytes(packed[0])
    package = read_xdm(target)
    assert len(package.documents) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IHE_XDM.ZIP"]


def test_repr_hides_patient_data_and_bytes(packed):
    text = repr(read_xdm(packed[0]))
    for secret in ("279035121518989", "PAT-TROIS", "19790328", "ClinicalDocument"):
        assert secret not in text


# --- hostile archives -----------------------------------------------------------------------------


def make_zip(members, *, patch=None, method=zipfile.ZIP_DEFLATED) -> bytes:
    """Members are ``(name or ZipInfo, bytes)``; ``patch(archive)`` runs before the central
    directory is written (to forge flags or sizes there)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, content in members:
            archive.writestr(name, content)
        if patch:
            patch(archive)
    return buffer.getvalue()


def members_of(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(i.filename, archive.read(i)) for i in archive.infolist()]


def refused(data, code: str, **kwargs) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        read_xdm(data, **kwargs)
    assert info.value.code == code, str(info.value)
    for secret in ("PAT-TROIS", "279035121518989"):
        assert secret not in str(info.value)
    return info.value


@pytest.fixture(scope="module")
def good(packed) -> list[tuple[str, bytes]]:
    return members_of(packed[0])


@pytest.mark.parametrize(
    "name",
    [
        "../evil.txt",
        "IHE_XDM/SUBSET01/../../../PAT-TROIS.txt",
        "/etc/passwd",
        "C:/Windows/evil.txt",
        "c:evil.txt",
        "IHE_XDM\\SUBSET01\\evil.txt",
        "IHE_XDM//evil.txt",
        "./evil.txt",
        "IHE_XDM/./SUBSET01/x",
        "evil\x01.txt",
        "x" * 300,
    ],
)
def test_unsafe_names_are_refused(good, name):
    err = refused(make_zip([*good, (name, b"x")]), "XDM_UNSAFE_PATH")
    assert "PAT-TROIS" not in str(err) and "passwd" not in str(err)


def test_nul_in_name_is_refused(good):
    data = make_zip([*good, ("evilXnul.txt", b"x")]).replace(b"evilXnul", b"evil\x00nul")
    refused(data, "XDM_UNSAFE_PATH")


def test_symlink_is_refused(good):
    link = zipfile.ZipInfo("IHE_XDM/SUBSET01/LINK")
    link.create_system = 3
    link.external_attr = 0o120777 << 16
    refused(make_zip([*good, (link, b"/etc/passwd")]), "XDM_SYMLINK")


def test_encrypted_flag_is_refused(good):
    def encrypt(archive):
        archive.filelist[-1].flag_bits |= 0x1

    refused(make_zip(good, patch=encrypt), "XDM_ENCRYPTED")


def test_unsupported_compression_is_refused(good):
    refused(make_zip(good, method=zipfile.ZIP_BZIP2), "XDM_UNSUPPORTED_COMPRESSION")


def test_bomb_by_ratio_is_refused(good):
    refused(
        make_zip([*good, ("IHE_XDM/ZEROS.BIN", bytes(4 * 1024 * 1024))]), "XDM_COMPRESSION_RATIO"
    )


def test_bomb_by_total_size_is_refused(good):
    noise = random.Random(0)
    extra = [(f"IHE_XDM/N{i}.BIN", noise.randbytes(400_000)) for i in range(3)]
    limits = XdmLimits(max_total_bytes=1_000_000)
    refused(make_zip([*good, *extra]), "XDM_TOTAL_TOO_LARGE", limits=limits)


def test_declared_huge_member_is_refused(good):
    def lie(archive):
        archive.filelist[-1].file_size = 10 * 1024**3

    refused(make_zip(good, patch=lie), "XDM_MEMBER_TOO_LARGE")


def test_member_lying_about_its_size_cannot_expand(good):
    def lie(archive):
        archive.filelist[-1].file_size = 10

    refused(make_zip(good, patch=lie), "XDM_CORRUPT")


def test_too_many_members_and_too_large_archive(packed, good):
    refused(packed[0], "XDM_TOO_MANY_MEMBERS", limits=XdmLimits(max_members=3))
    refused(packed[0], "XDM_TOO_LARGE", limits=XdmLimits(max_archive_bytes=1000))
    refused(b"PK\x03\x04 not really a zip", "XDM_NOT_ZIP")
    refused(b"", "XDM_NOT_ZIP")


@pytest.mark.parametrize(
    "duplicate", ["IHE_XDM/SUBSET01/DOC0001.XML", "ihe_xdm/subset01/doc0001.xml", "readme.txt"]
)
def test_duplicate_names_are_refused(good, duplicate):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns on exact duplicates
        data = make_zip([*good, (duplicate, b"other")])
    refused(data, "XDM_DUPLICATE_NAME")


def test_names_differing_only_in_unicode_normalisation_are_duplicates(good):
    composed, decomposed = (
        "IHE_XDM/SUBSET01/r\u00e9sum\u00e9.txt",
        "IHE_XDM/SUBSET01/re\u0301sume\u0301.txt",
    )
    refused(make_zip([*good, (composed, b"one"), (decomposed, b"two")]), "XDM_DUPLICATE_NAME")


def test_missing_metadata_is_refused(good):
    refused(make_zip([(n, c) for n, c in good if n != META]), "XDM_NO_METADATA")
    moved = [(n.replace("IHE_XDM/", "OTHER/"), c) for n, c in good]
    refused(make_zip(moved), "XDM_NO_METADATA")


def test_any_subset_folder_is_accepted(good):
    renamed = [(n.replace("SUBSET01", "SUBSET42"), c) for n, c in good]
    package = read_xdm(make_zip(renamed))
    assert package.subset == "IHE_XDM/SUBSET42"
    assert len(package.documents) == 2


def test_two_subsets_are_refused(good):
    second = [(n.replace("SUBSET01", "SUBSET02"), c) for n, c in good if "SUBSET01" in n]
    refused(make_zip([*good, *second]), "XDM_MULTIPLE_SUBSETS")


def test_missing_document_is_refused(good):
    refused(
        make_zip([(n, c) for n, c in good if not n.endswith("DOC0002.XML")]), "XDM_DOCUMENT_MISSING"
    )


def test_hash_mismatch_is_refused(good):
    def tamper(name, content):
        if name.endswith("DOC0001.XML"):
            return content.replace(b"<title>", b"<titlf>", 1).replace(b"</title>", b"</titlf>", 1)
        return content

    refused(make_zip([(n, tamper(n, c)) for n, c in good]), "XDM_HASH_MISMATCH")


def test_size_mismatch_is_refused(good):
    grown = [(n, c + b"\n" if n.endswith("DOC0001.XML") else c) for n, c in good]
    refused(make_zip(grown), "XDM_SIZE_MISMATCH")


def replace_metadata(good, old: bytes, new: bytes) -> bytes:
    out = []
    for name, content in good:
        if name == META:
            assert old in content
            content = content.replace(old, new)
        out.append((name, content))
    return make_zip(out)


@pytest.mark.parametrize(
    ("uri", "code"),
    [
        (b"../../README.TXT", "XDM_UNSAFE_URI"),
        (b"/etc/passwd", "XDM_UNSAFE_URI"),
        (b"http://evil.example/doc.xml", "XDM_UNSAFE_URI"),
        (b"file:///etc/passwd", "XDM_UNSAFE_URI"),
        (b"..%2F..%2FREADME.TXT", "XDM_UNSAFE_URI"),
        (b"NOWHERE.XML", "XDM_DOCUMENT_MISSING"),
    ],
)
def test_bad_uris(good, uri, code):
    refused(replace_metadata(good, b"<rim:Value>DOC0001.XML<", b"<rim:Value>" + uri + b"<"), code)


def test_metadata_attacks_are_refused(good):
    xxe = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    refused(
        replace_metadata(good, b"<?xml version='1.0' encoding='UTF-8'?>", xxe),
        "XDM_METADATA_DTD_FORBIDDEN",
    )
    refused(
        replace_metadata(good, b"<lcm:SubmitObjectsRequest", b"<lcm:Other"), "XDM_METADATA_NOT_XML"
    )
    not_ebrim = [(n, b"<a/>" if n == META else c) for n, c in good]
    refused(make_zip(not_ebrim), "XDM_METADATA_INVALID")
    no_uri = replace_metadata(good, b'<rim:Slot name="URI">', b'<rim:Slot name="uri">')
    refused(no_uri, "XDM_NO_URI")
    no_unique_id = replace_metadata(good, k.DE_UNIQUE_ID.encode(), b"urn:uuid:other")
    refused(no_unique_id, "XDM_METADATA_INVALID")


def test_one_patient_per_package(samples):
    other = "146026322000196^^^&1.2.250.1.213.1.4.10&ISO^NH"
    two_patients = pack_xdm(
        [(full_entry(), samples["n1"]), (full_entry(entry_id="D2", patient_id=other), b"x")],
        submission(),
    )
    refused(two_patients, "XDM_PATIENT_MISMATCH")
    refused(pack_xdm([(full_entry(), b"x")], submission(patient_id=other)), "XDM_PATIENT_MISMATCH")


def test_unsafe_name_reason():
    assert unsafe_name_reason("IHE_XDM/SUBSET01/DOC0001.XML") is None
    assert unsafe_name_reason("IHE_XDM/") is None
    assert unsafe_name_reason("a/../b") == "parent-directory segment"


# --- lenient reading: the structure of the ANS XDM sample ----------------------------------------


def drim_like_metadata(document: bytes) -> bytes:
    """METADATA.XML shaped like DRIM-M_DATA's SS000001 sample: default rim namespace on the
    list, no prefixes, ``URI`` given relative to ``IHE_XDM/`` and placed after the external
    identifiers, a non-standard ``submissionTime`` slot on the entry, a DICOM document."""
    digest = hashlib.sha1(document).hexdigest()
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<lcm:SubmitObjectsRequest xmlns:lcm="{k.NS_LCM}">
 <RegistryObjectList xmlns="{k.NS_RIM}">
  <RegistryPackage id="SubmissionSet01">
   <Slot name="submissionTime"><ValueList><Value>20240116151112</Value></ValueList></Slot>
   <Classification classificationScheme="{k.SS_CONTENT_TYPE_CODE}"
       classifiedObject="SubmissionSet01" id="cla2" nodeRepresentation="04">
    <Slot name="codingScheme"><ValueList><Value>1.2.250.1.213.2.2</Value></ValueList></Slot>
   </Classification>
   <ExternalIdentifier id="ei2" identificationScheme="{k.SS_SOURCE_ID}"
       registryObject="SubmissionSet01" value="1.2.250.1.999.1.1.8121"/>
   <ExternalIdentifier id="ei3" identificationScheme="{k.SS_UNIQUE_ID}"
       registryObject="SubmissionSet01" value="1.2.250.1.999.1.1.8121.4.9618"/>
  </RegistryPackage>
  <Classification classificationNode="{k.SUBMISSION_SET_NODE}"
      classifiedObject="SubmissionSet01" id="cla3"/>
  <ExtrinsicObject id="DocumentKOS" mimeType="application/dicom"
      objectType="{k.DOCUMENT_ENTRY_STABLE}">
   <Slot name="submissionTime"><ValueList><Value>20240116151112</Value></ValueList></Slot>
   <Slot name="hash"><ValueList><Value>{digest.upper()}</Value></ValueList></Slot>
   <Slot name="size"><ValueList><Value>{len(document)}</Value></ValueList></Slot>
   <ExternalIdentifier id="ei4" identificationScheme="{k.DE_PATIENT_ID}"
       registryObject="DocumentKOS" value="{INS_CX.replace("&", "&amp;")}"/>
   <ExternalIdentifier id="ei5" identificationScheme="{k.DE_UNIQUE_ID}"
       registryObject="DocumentKOS" value="1.3.2.751468943.3.1234"/>
   <Slot name="URI"><ValueList><Value>SS000001/KOS_1_1.DCM</Value></ValueList></Slot>
  </ExtrinsicObject>
  <Association associationType="{k.ASSOC_HAS_MEMBER}" id="a1"
      sourceObject="SubmissionSet01" targetObject="DocumentKOS"/>
 </RegistryObjectList>
</lcm:SubmitObjectsRequest>
""".encode()


def test_drim_like_package_is_read():
    dicom = b"\x00" * 128 + b"DICM" + b"\x01\x02" * 50
    data = make_zip(
        [
            ("IHE_XDM/SS000001/METADATA.XML", drim_like_metadata(dicom)),
            ("IHE_XDM/SS000001/KOS_1_1.DCM", dicom),
        ]
    )
    package = read_xdm(data)
    (doc,) = package.documents
    assert doc.content == dicom and doc.path == "IHE_XDM/SS000001/KOS_1_1.DCM"
    assert doc.entry.mime_type == "application/dicom"
    assert doc.entry.uri == "SS000001/KOS_1_1.DCM"
    assert doc.entry.patient_id == INS_CX
    assert doc.entry.extra_slots == (("submissionTime", ("20240116151112",)),)
    assert package.submission_set.content_type_code == Coded("04", "1.2.250.1.213.2.2", "")
    assert package.submission_set.patient_id is None
    assert package.patient_id == INS_CX
    assert package.readme is None


# --- hostile packages (review) --------------------------------------------------------------------


def test_entries_repeating_one_file_cannot_multiply_it(good):
    """Many DocumentEntries naming one member: each read counts against max_total_bytes."""
    meta = dict(good)[META]
    root = etree.fromstring(meta)
    objects = root[0]
    first = next(el for el in objects if etree.QName(el).localname == "ExtrinsicObject")
    for n in range(40):
        clone = etree.fromstring(etree.tostring(first))
        clone.set("id", f"Copy{n}")
        objects.append(clone)
    forged = [(n, etree.tostring(root) if n == META else c) for n, c in good]
    total = sum(len(c) for _, c in forged)
    refused(make_zip(forged), "XDM_TOTAL_TOO_LARGE", limits=XdmLimits(max_total_bytes=total))


def test_ratio_is_measured_not_declared(good):
    """A member whose central directory claims a larger compressed size than its real deflate
    stream must not slip under max_ratio: the ratio is measured while decompressing."""
    meta = dict(good)[META]
    padded = meta + b"<!--" + b" " * (4 * 1024 * 1024) + b"-->"
    forged = [(n, padded if n == META else c) for n, c in good]

    def lie(archive):
        info = next(i for i in archive.filelist if i.filename == META)
        assert info.file_size > 100 * info.compress_size  # a real bomb...
        info.compress_size = info.file_size // 50  # ...declared as a mild 50:1

    refused(make_zip(forged, patch=lie), "XDM_COMPRESSION_RATIO")


def test_encryption_flag_in_the_local_header_only_is_refused(good):
    data = bytearray(make_zip(good))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        offset = archive.getinfo(META).header_offset
    data[offset + 6] |= 0x1
    refused(bytes(data), "XDM_ENCRYPTED")


def test_compressed_size_longer_than_the_stream_is_corrupt(good):
    def lie(archive):
        next(i for i in archive.filelist if i.filename == META).compress_size += 7

    refused(make_zip(good, patch=lie), "XDM_CORRUPT")
