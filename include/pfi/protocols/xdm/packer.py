"""Pack documents and their XDS metadata into an ``IHE_XDM.ZIP`` (IHE ITI-32 media layout).

Layout (ITI TF-2b §3.32.4.1; spec-facts §4.2)::

    INDEX.HTM                       human-readable index of the content
    README.TXT                      who produced the package
    IHE_XDM/SUBSET01/METADATA.XML   ebRIM 3.0 lcm:SubmitObjectsRequest
    IHE_XDM/SUBSET01/DOC0001.XML    the documents, referenced by each entry's URI slot

The caller fills the metadata model (the CDA → XDS mapping of ``lien-entete-cda-meta-xds`` is
:mod:`pfi.protocols.xds`; :func:`metadata_from_cda` delegates to it). The packer computes
what depends on the bytes — ``hash`` (SHA-1 hex), ``size``, ``URI`` — and adds one
``HasMember`` association per document (``SubmissionSetStatus=Original``).

Output is deterministic: member order, names, timestamps (given by the caller), permissions
and ids are fixed, so two packs of the same input are byte-identical and round trips compare.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from lxml import etree

from pfi import __version__
from pfi.base.errors import InvalidInput
from pfi.protocols import xds
from pfi.protocols.cda.model import CdaDocument
from pfi.protocols.xdm import constants as media
from pfi.protocols.xds import ebrim as k
from pfi.protocols.xds.model import Association, Author, Coded, DocumentEntry, SubmissionSet

#: Fixed timestamp used when the caller gives none (the earliest a zip can store).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

_EXTENSIONS = {
    "text/xml": ".XML",
    "application/xml": ".XML",
    "application/pdf": ".PDF",
    "text/plain": ".TXT",
    "application/dicom": ".DCM",
}
_SUBSET = re.compile(r"^[A-Z0-9_]{1,8}$")

_RIM = "{" + k.NS_RIM + "}"
_LCM = "{" + k.NS_LCM + "}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def finalize_entries(
    documents: Sequence[tuple[DocumentEntry, bytes]],
) -> list[tuple[DocumentEntry, bytes, str]]:
    """Fill ``hash``, ``size``, ``uri`` (and a default ``entry_id``) and name each file.

    Returns ``(entry, content, file name)``; file names are ``DOC0001.XML``… (ISO 9660-safe 8.3
    names, extension from the MIME type) and the ``URI`` is relative to ``METADATA.XML``.
    """
    if not documents:
        raise InvalidInput("an XDM package needs at least one document", code="XDM_EMPTY")
    out = []
    seen: set[str] = set()
    for index, (entry, content) in enumerate(documents, start=1):
        if not entry.unique_id:
            raise InvalidInput(
                f"document entry #{index} has no uniqueId", code="XDM_METADATA_INVALID"
            )
        name = f"DOC{index:04d}{_EXTENSIONS.get(entry.mime_type, '.BIN')}"
        entry_id = entry.entry_id or f"Document{index:02d}"
        if entry_id in seen:
            raise InvalidInput(
                f"document entry #{index} repeats an entry id", code="XDM_METADATA_INVALID"
            )
        seen.add(entry_id)
        entry = replace(
            entry,
            entry_id=entry_id,
            hash=hashlib.sha1(content).hexdigest(),
            size=len(content),
            uri=name,
        )
        out.append((entry, bytes(content), name))
    return out


def has_member_associations(
    submission_set: SubmissionSet, entries: Sequence[DocumentEntry]
) -> list[Association]:
    """One ``HasMember`` (submission set → entry, status ``Original``) per entry."""
    return [
        Association(
            id=f"Association{index:02d}",
            type=k.ASSOC_HAS_MEMBER,
            source=submission_set.entry_id,
            target=entry.entry_id,
            status=k.SUBMISSION_SET_STATUS_ORIGINAL,
        )
        for index, entry in enumerate(entries, start=1)
    ]


def pack_xdm(
    documents: Sequence[tuple[DocumentEntry, bytes]],
    submission_set: SubmissionSet,
    *,
    date_time: datetime | tuple[int, int, int, int, int, int] = ZIP_EPOCH,
    associations: Sequence[Association] = (),
    subset: str = media.DEFAULT_SUBSET,
    readme: str | None = None,
) -> bytes:
    """Build the ``IHE_XDM.ZIP`` bytes.

    ``date_time`` is the timestamp of every member (local time as zip stores it; pass the
    submission time for a meaningful value, or keep the fixed default for byte-identical
    output). ``associations`` are added after the generated ``HasMember`` ones, e.g. an RPLC
    from a new entry to the entry it replaces. ``readme`` is the sender's text for README.TXT
    (ITI TF-2b §3.32.4.1.2.2: identify the sending organisation and software).
    """
    if not _SUBSET.match(subset):
        raise InvalidInput("the subset folder name must be an 8.3 name", code="XDM_BAD_SUBSET")
    if not submission_set.entry_id:
        submission_set = replace(submission_set, entry_id="SubmissionSet01")
    finalized = finalize_entries(documents)
    entries = [entry for entry, _, _ in finalized]
    all_associations = [*has_member_associations(submission_set, entries), *associations]
    metadata = build_metadata(submission_set, entries, all_associations)
    stamp = tuple(date_time.timetuple()[:6]) if isinstance(date_time, datetime) else date_time

    folder = f"{media.XDM_ROOT}/{subset}"
    members: list[tuple[str, bytes]] = [
        (media.INDEX_NAME, _index_html(submission_set, finalized, folder)),
        (media.README_NAME, _readme_text(readme)),
        (f"{folder}/{media.METADATA_NAME}", metadata),
        *((f"{folder}/{name}", content) for _, content, name in finalized),
    ]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            archive.writestr(info, content, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    return buffer.getvalue()


# --- METADATA.XML ---------------------------------------------------------------------------------


def build_metadata(
    submission_set: SubmissionSet,
    entries: Sequence[DocumentEntry],
    associations: Sequence[Association],
) -> bytes:
    """Serialise the model as an ebRIM 3.0 ``lcm:SubmitObjectsRequest`` (UTF-8, declared).

    Element order follows ``rim.xsd`` (Slot*, Name, Description, Classification*,
    ExternalIdentifier*) so that the result validates against ``lcm.xsd``.
    """
    root = etree.Element(_LCM + "SubmitObjectsRequest", nsmap={"lcm": k.NS_LCM, "rim": k.NS_RIM})
    objects = etree.SubElement(root, _RIM + "RegistryObjectList")
    counter = _Ids()
    for entry in entries:
        _write_entry(objects, entry, counter)
    _write_submission_set(objects, submission_set, counter)
    for assoc in associations:
        el = etree.SubElement(
            objects,
            _RIM + "Association",
            id=assoc.id,
            associationType=assoc.type,
            sourceObject=assoc.source,
            targetObject=assoc.target,
        )
        if assoc.status:
            _slot(el, k.SLOT_SUBMISSION_SET_STATUS, (assoc.status,))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


class _Ids:
    """Deterministic ids for classifications and external identifiers (``cl01``, ``ei01``…)."""

    def __init__(self) -> None:
        self.count = {"cl": 0, "ei": 0}

    def __call__(self, kind: str) -> str:
        self.count[kind] += 1
        return f"{kind}{self.count[kind]:02d}"


def _slot(parent: etree._Element, name: str, values: Sequence[str]) -> None:
    slot = etree.SubElement(parent, _RIM + "Slot", name=name)
    value_list = etree.SubElement(slot, _RIM + "ValueList")
    for value in values:
        etree.SubElement(value_list, _RIM + "Value").text = value


def _localized(parent: etree._Element, tag: str, value: str) -> None:
    holder = etree.SubElement(parent, _RIM + tag)
    string = etree.SubElement(holder, _RIM + "LocalizedString", charset="UTF-8", value=value)
    string.set(_XML_LANG, "fr-FR")


def _coded(parent: etree._Element, scheme: str, owner: str, coded: Coded, ids: _Ids) -> None:
    cl = etree.SubElement(
        parent,
        _RIM + "Classification",
        id=ids("cl"),
        classificationScheme=scheme,
        classifiedObject=owner,
        nodeRepresentation=coded.code,
    )
    _slot(cl, k.SLOT_CODING_SCHEME, (coded.scheme,))
    _localized(cl, "Name", coded.display_name)


def _author(parent: etree._Element, scheme: str, owner: str, author: Author, ids: _Ids) -> None:
    cl = etree.SubElement(
        parent,
        _RIM + "Classification",
        id=ids("cl"),
        classificationScheme=scheme,
        classifiedObject=owner,
        nodeRepresentation="",
    )
    for name, values in (
        (k.SLOT_AUTHOR_PERSON, (author.person,) if author.person else ()),
        (k.SLOT_AUTHOR_INSTITUTION, author.institutions),
        (k.SLOT_AUTHOR_ROLE, author.roles),
        (k.SLOT_AUTHOR_SPECIALTY, author.specialties),
        (k.SLOT_AUTHOR_TELECOMMUNICATION, author.telecoms),
    ):
        if values:
            _slot(cl, name, values)


def _external_id(
    parent: etree._Element, scheme: str, owner: str, value: str, label: str, ids: _Ids
) -> None:
    ei = etree.SubElement(
        parent,
        _RIM + "ExternalIdentifier",
        id=ids("ei"),
        registryObject=owner,
        identificationScheme=scheme,
        value=value,
    )
    _localized(ei, "Name", label)


def _write_entry(objects: etree._Element, entry: DocumentEntry, ids: _Ids) -> None:
    el = etree.SubElement(
        objects,
        _RIM + "ExtrinsicObject",
        id=entry.entry_id,
        mimeType=entry.mime_type,
        objectType=entry.object_type,
    )
    single = (
        (k.SLOT_CREATION_TIME, entry.creation_time),
        (k.SLOT_LANGUAGE_CODE, entry.language_code),
        (k.SLOT_LEGAL_AUTHENTICATOR, entry.legal_authenticator),
        (k.SLOT_SERVICE_START_TIME, entry.service_start_time),
        (k.SLOT_SERVICE_STOP_TIME, entry.service_stop_time),
        (k.SLOT_SOURCE_PATIENT_ID, entry.source_patient_id),
    )
    for name, value in single:
        if value is not None:
            _slot(el, name, (value,))
    if entry.source_patient_info:
        _slot(el, k.SLOT_SOURCE_PATIENT_INFO, entry.source_patient_info)
    for name, value in (
        (k.SLOT_HASH, entry.hash),
        (k.SLOT_SIZE, None if entry.size is None else str(entry.size)),
        (k.SLOT_URI, entry.uri),
    ):
        if value is not None:
            _slot(el, name, (value,))
    for name, values in entry.extra_slots:
        _slot(el, name, values)
    if entry.title is not None:
        _localized(el, "Name", entry.title)
    if entry.comments is not None:
        _localized(el, "Description", entry.comments)
    owner = entry.entry_id
    for author in entry.authors:
        _author(el, k.DE_AUTHOR, owner, author, ids)
    for scheme, value in (
        (k.DE_CLASS_CODE, entry.class_code),
        *((k.DE_CONFIDENTIALITY_CODE, c) for c in entry.confidentiality_codes),
        *((k.DE_EVENT_CODE, c) for c in entry.event_codes),
        (k.DE_FORMAT_CODE, entry.format_code),
        (k.DE_HEALTHCARE_FACILITY_TYPE_CODE, entry.healthcare_facility_type_code),
        (k.DE_PRACTICE_SETTING_CODE, entry.practice_setting_code),
        (k.DE_TYPE_CODE, entry.type_code),
    ):
        if value is not None:
            _coded(el, scheme, owner, value, ids)
    _external_id(el, k.DE_PATIENT_ID, owner, entry.patient_id, "XDSDocumentEntry.patientId", ids)
    _external_id(el, k.DE_UNIQUE_ID, owner, entry.unique_id, "XDSDocumentEntry.uniqueId", ids)


def _write_submission_set(objects: etree._Element, ss: SubmissionSet, ids: _Ids) -> None:
    el = etree.SubElement(
        objects,
        _RIM + "RegistryPackage",
        id=ss.entry_id,
        objectType=k.OBJECT_TYPE_REGISTRY_PACKAGE,
    )
    if ss.submission_time is not None:
        _slot(el, k.SLOT_SUBMISSION_TIME, (ss.submission_time,))
    if ss.intended_recipients:
        _slot(el, k.SLOT_INTENDED_RECIPIENT, ss.intended_recipients)
    for name, values in ss.extra_slots:
        _slot(el, name, values)
    if ss.title is not None:
        _localized(el, "Name", ss.title)
    if ss.comments is not None:
        _localized(el, "Description", ss.comments)
    for author in ss.authors:
        _author(el, k.SS_AUTHOR, ss.entry_id, author, ids)
    if ss.content_type_code is not None:
        _coded(el, k.SS_CONTENT_TYPE_CODE, ss.entry_id, ss.content_type_code, ids)
    etree.SubElement(
        el,
        _RIM + "Classification",
        id=ids("cl"),
        classificationNode=k.SUBMISSION_SET_NODE,
        classifiedObject=ss.entry_id,
    )
    _external_id(el, k.SS_UNIQUE_ID, ss.entry_id, ss.unique_id, "XDSSubmissionSet.uniqueId", ids)
    _external_id(el, k.SS_SOURCE_ID, ss.entry_id, ss.source_id, "XDSSubmissionSet.sourceId", ids)
    if ss.patient_id is not None:
        _external_id(
            el, k.SS_PATIENT_ID, ss.entry_id, ss.patient_id, "XDSSubmissionSet.patientId", ids
        )


# --- INDEX.HTM and README.TXT ---------------------------------------------------------------------


def _index_html(
    ss: SubmissionSet, finalized: Sequence[tuple[DocumentEntry, bytes, str]], folder: str
) -> bytes:
    rows = "\n".join(
        f'<li><a href="{html.escape(folder)}/{html.escape(name)}">'
        f"{html.escape(entry.title or name)}</a></li>"
        for entry, _, name in finalized
    )
    page = (
        '<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8">'
        "<title>IHE XDM</title></head>\n<body>\n<h1>Documents</h1>\n"
        f"<ul>\n{rows}\n</ul>\n"
        f'<p><a href="{html.escape(folder)}/{media.METADATA_NAME}">{media.METADATA_NAME}</a>, '
        f'<a href="{media.README_NAME}">{media.README_NAME}</a></p>\n</body></html>\n'
    )
    return page.replace("\n", "\r\n").encode("utf-8")


def _readme_text(readme: str | None) -> bytes:
    text = readme or (
        "IHE XDM package (IHE ITI TF-2b 3.32) produced by the PFI "
        f"(Plateforme d'Intermédiation) version {__version__}.\n"
        "Contents: INDEX.HTM, IHE_XDM/<subset>/METADATA.XML and the documents it lists.\n"
    )
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


# --- CDA → XDS mapping (delegated) ---------------------------------------------------------------


def metadata_from_cda(
    doc: CdaDocument,
    *,
    entry_id: str = "",
    class_code: Coded | None = None,
    format_code: Coded | None = None,
    extra_confidentiality: Sequence[Coded] = (),
) -> DocumentEntry:
    """A DocumentEntry filled from a CDA header: kept for callers, delegates to :mod:`pfi.protocols.xds`.

    Same as :func:`pfi.protocols.xds.document_entry` without flags (pass the visibility codes in
    ``extra_confidentiality``, or call :func:`pfi.protocols.xds.document_entry` with ``flags``).
    Raises ``InvalidInput`` ``XDM_NO_PATIENT_ID`` when the CDA carries no INS.
    """
    try:
        return xds.document_entry(
            doc,
            entry_id=entry_id,
            class_code=class_code,
            format_code=format_code,
            extra_confidentiality=extra_confidentiality,
        )
    except InvalidInput as exc:
        if exc.code == "XDS_NO_PATIENT_ID":
            raise InvalidInput(str(exc), code="XDM_NO_PATIENT_ID") from None
        raise
