"""Reading the ebRIM metadata of a request: slots, external identifiers, coded classifications,
the submission set, associations, the documents' bytes (inline base64 or an MTOM part), and what
``strict_metadata`` requires of each entry (the DMP's mandatory metadata).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lxml import etree

from pfi_devkit.dmp.constants import (
    DMP_REQUIRED_ENTRY_METADATA,
    DMP_REQUIRED_ENTRY_SLOTS,
    NS_RIM,
    NSMAP,
    SS_CONTENT_TYPE_CODE,
    SS_PATIENT_ID,
    SS_SOURCE_ID,
    SS_UNIQUE_ID,
    SUBMISSION_SET_NODE,
    XDS_MISSING_DOCUMENT,
    XDS_REGISTRY_METADATA_ERROR,
    XDS_REPOSITORY_METADATA_ERROR,
    qname,
)
from pfi_devkit.dmp.model import Code, Errors, RegistryFailure
from pfi_devkit.dmp.soap import content_id


def slots_of(node: etree._Element) -> dict[str, tuple[str, ...]]:
    return {
        slot.get("name", ""): tuple(
            (v.text or "").strip() for v in slot.iterfind("rim:ValueList/rim:Value", NSMAP)
        )
        for slot in node.iterfind("rim:Slot", NSMAP)
    }


def external_id_of(node: etree._Element, scheme: str) -> str:
    for ext in node.iterfind("rim:ExternalIdentifier", NSMAP):
        if ext.get("identificationScheme") == scheme:
            return (ext.get("value") or "").strip()
    return ""


def codes_of(node: etree._Element, scheme: str) -> tuple[Code, ...]:
    found = []
    for cl in node.iterfind("rim:Classification", NSMAP):
        if cl.get("classificationScheme") == scheme:
            coding = slots_of(cl).get("codingScheme", ("",))
            found.append(Code(cl.get("nodeRepresentation", ""), coding[0] if coding else ""))
    return tuple(found)


def code_of(node: etree._Element, scheme: str) -> Code | None:
    codes = codes_of(node, scheme)
    return codes[0] if codes else None


@dataclass(frozen=True)
class Package:
    id: str
    unique_id: str
    patient_id: str
    source_id: str


def submission_set_of(objects: etree._Element) -> Package:
    """The RegistryPackage classified as XDSSubmissionSet (classification inside or beside)."""
    ids = {
        cl.get("classifiedObject")
        for cl in objects.iter(qname(NS_RIM, "Classification"))
        if cl.get("classificationNode") == SUBMISSION_SET_NODE
    }
    for package in objects.iterfind("rim:RegistryPackage", NSMAP):
        if package.get("id") in ids:
            return Package(
                package.get("id", ""),
                external_id_of(package, SS_UNIQUE_ID),
                external_id_of(package, SS_PATIENT_ID),
                external_id_of(package, SS_SOURCE_ID),
            )
    raise RegistryFailure.one(
        XDS_REGISTRY_METADATA_ERROR,
        f"no RegistryPackage classified as XDSSubmissionSet ({SUBMISSION_SET_NODE})",
    )


@dataclass(frozen=True)
class Association:
    type: str
    source: str
    target: str
    slots: Mapping[str, tuple[str, ...]]


def associations_of(objects: etree._Element) -> list[Association]:
    return [
        Association(
            a.get("associationType", ""),
            a.get("sourceObject", ""),
            a.get("targetObject", ""),
            slots_of(a),
        )
        for a in objects.iterfind("rim:Association", NSMAP)
    ]


def document_bytes(document: etree._Element, attachments: Mapping[str, bytes]) -> bytes:
    include = document.find("xop:Include", NSMAP)
    if include is not None:
        cid = content_id(include.get("href", ""))
        if cid not in attachments:
            raise RegistryFailure.one(
                XDS_MISSING_DOCUMENT,
                f"xop:Include cid:{cid} has no MIME part",
                document.get("id", ""),
            )
        return attachments[cid]
    try:
        return base64.b64decode("".join((document.text or "").split()), validate=True)
    except binascii.Error as exc:
        raise RegistryFailure.one(
            XDS_REPOSITORY_METADATA_ERROR,
            f"xds:Document is not base64: {exc}",
            document.get("id", ""),
        ) from exc


# -- what strict_metadata requires -----------------------------------------------------------------


def check_dmp_metadata(
    objects: etree._Element,
    extrinsics: Sequence[etree._Element],
    package: Package,
    errors: Errors,
) -> None:
    """``strict_metadata``: what the DMP requires of each entry and of the submission set."""
    for extrinsic in extrinsics:
        oid = extrinsic.get("id", "")
        schemes = {
            c.get("classificationScheme") for c in extrinsic.iterfind("rim:Classification", NSMAP)
        }
        slots = slots_of(extrinsic)
        missing = [name for name, scheme in DMP_REQUIRED_ENTRY_METADATA if scheme not in schemes]
        missing += [name for name in DMP_REQUIRED_ENTRY_SLOTS if not any(slots.get(name, ()))]
        if missing:
            errors.add(
                XDS_REGISTRY_METADATA_ERROR,
                f"document entry lacks what the DMP requires: {', '.join(missing)}",
                oid,
            )
    ss = next(
        (p for p in objects.iterfind("rim:RegistryPackage", NSMAP) if p.get("id") == package.id),
        None,
    )
    if ss is not None and not codes_of(ss, SS_CONTENT_TYPE_CODE):
        errors.add(
            XDS_REGISTRY_METADATA_ERROR, "submission set lacks its contentTypeCode", package.id
        )
