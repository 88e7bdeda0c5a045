"""Read a CDA R2 document into :class:`~pfi.protocols.cda.model.CdaDocument`; list its header defects.

Two steps, on purpose:

- :func:`read_cda` refuses only what makes the document unusable — not XML, a DTD, too large,
  not a ``ClinicalDocument``, no ``id``, no body — with an :class:`~pfi.base.errors.InvalidInput`;
- :func:`check_header` lists the breaches of the CI-SIS "Structuration minimale" header rules it
  knows (spec-facts §3: missing ``setId``, name qualifier other than ``BR``/``CL`` with an INS,
  N1 without exactly the three templateIds…). Most CDA documents of the official HL7 examples
  have such defects: they must be reported, and the caller decides (refuse with
  :func:`require_valid_header`, or accept and record).

Parsing goes through :mod:`pfi.protocols.xmlsafe` (no entities, no DTD, no network, bounded size).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

from lxml import etree

from pfi.base.errors import InvalidInput
from pfi.protocols import xmlsafe
from pfi.protocols.cda import constants as c
from pfi.protocols.cda.model import (
    CdaDocument,
    Code,
    Defect,
    Encounter,
    Identifier,
    NamePart,
    Organization,
    Participant,
    Patient,
    PersonName,
    RelatedDocument,
    ServiceEvent,
)

#: Default size bound of a CDA document. libxml2's own limit (huge_tree off) refuses a single
#: text node over 10 MB anyway, i.e. an N1 PDF over about 7.5 MB.
DEFAULT_MAX_BYTES = 20 * 1024 * 1024

_H = "{" + c.NS_HL7 + "}"
_CLINICAL_DOCUMENT = _H + "ClinicalDocument"


def read_cda(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> CdaDocument:
    """Parse a CDA R2 document (bytes, any XML encoding) into the frozen header model.

    Raises ``InvalidInput`` with codes ``CDA_TOO_LARGE``, ``CDA_NOT_XML``,
    ``CDA_DTD_FORBIDDEN``, ``CDA_NOT_CDA`` (root is not ``{urn:hl7-org:v3}ClinicalDocument``),
    ``CDA_MISSING_ID`` (no ``id/@root``), ``CDA_NO_BODY`` (neither ``nonXMLBody`` nor
    ``structuredBody``). Other header problems are left to :func:`check_header`.
    """
    root = xmlsafe.parse(data, max_bytes=max_bytes, code_prefix="CDA", what="CDA document")
    if root.tag != _CLINICAL_DOCUMENT:
        raise InvalidInput(
            "the document is not a CDA R2 ClinicalDocument in the urn:hl7-org:v3 namespace",
            code="CDA_NOT_CDA",
        )
    doc_id = _ii(_one(root, "id"))
    if doc_id is None:
        raise InvalidInput("the CDA has no ClinicalDocument/id/@root", code="CDA_MISSING_ID")

    body = _one(root, "component")
    non_xml = _one(body, "nonXMLBody") if body is not None else None
    structured = _one(body, "structuredBody") if body is not None else None
    if non_xml is None and structured is None:
        raise InvalidInput(
            "the CDA has neither nonXMLBody (N1) nor structuredBody (N3)", code="CDA_NO_BODY"
        )
    media_type = representation = body_text = None
    if non_xml is not None:
        text_el = _one(non_xml, "text")
        if text_el is not None:
            media_type = text_el.get("mediaType")
            representation = text_el.get("representation")
            body_text = text_el.text or ""

    version = _one(root, "versionNumber")
    return CdaDocument(
        id=doc_id,
        set_id=_ii(_one(root, "setId")),
        version_number=_int(version.get("value") if version is not None else None),
        code=_code(_one(root, "code")),
        title=_text(_one(root, "title")),
        effective_time=_ts(_one(root, "effectiveTime")),
        confidentiality_code=_code(_one(root, "confidentialityCode")),
        language_code=_attr(_one(root, "languageCode"), "code"),
        realm_code=_attr(_one(root, "realmCode"), "code"),
        type_id=_ii(_one(root, "typeId")),
        template_ids=tuple(filter(None, (_ii(t) for t in _all(root, "templateId")))),
        level=1 if non_xml is not None else 3,
        authors=tuple(_author(a) for a in _all(root, "author")),
        custodian=_organization(
            _path(root, "custodian", "assignedCustodian", "representedCustodianOrganization")
        ),
        legal_authenticator=_legal_authenticator(_one(root, "legalAuthenticator")),
        encounter=_encounter(_path(root, "componentOf", "encompassingEncounter")),
        service_events=tuple(
            _service_event(e)
            for d in _all(root, "documentationOf")
            if (e := _one(d, "serviceEvent")) is not None
        ),
        related_documents=tuple(_related(r) for r in _all(root, "relatedDocument")),
        patient=_patient(_path(root, "recordTarget", "patientRole")),
        media_type=media_type,
        representation=representation,
        _body_text=body_text,
        _attached_pdf=_attached_pdf(structured) if structured is not None else None,
        size=len(data),
        recipient_addresses=_recipient_addresses(root),
    )


# --- header checks --------------------------------------------------------------------------------

_LANGUAGE = re.compile(r"^[a-z]{2}-[A-Z]{2}$")
_STRUCT_MIN = "CI-SIS Structuration minimale"


def check_header(doc: CdaDocument) -> list[Defect]:
    """The CI-SIS header rules this module knows and ``doc`` breaks (empty list: none found).

    This is not the schematron (run it in the validation tier); it covers the rules the PFI
    depends on and the defects seen in the official examples. Rules: spec-facts §3.1–3.6
    (Structuration minimale ``1.2.250.1.213.1.1.1.1``).
    """
    out: list[Defect] = []

    def add(code: str, message: str, rule: str) -> None:
        out.append(Defect(code, message, f"{_STRUCT_MIN} — {rule}"))

    roots = doc.template_roots
    if doc.realm_code != c.REALM_FR:
        add("CDA_REALM", "realmCode must be FR", "§3.1 skeleton")
    if doc.type_id != Identifier(c.TYPE_ID_ROOT, c.TYPE_ID_EXTENSION):
        add("CDA_TYPE_ID", "typeId must be 2.16.840.1.113883.1.3 / POCD_HD000040", "§3.1")
    missing = sorted(c.REQUIRED_TEMPLATE_IDS - set(roots))
    if missing:
        add("CDA_TEMPLATE_IDS", f"missing header templateId(s) {', '.join(missing)}", "§3.1")
    elif not set(roots) - c.REQUIRED_TEMPLATE_IDS:
        add(
            "CDA_TEMPLATE_IDS",
            "no document-model templateId besides the two header ones (N1: XDS-SD)",
            "§3.1",
        )
    if doc.level == 1 and (len(roots) != 3 or set(roots) != c.N1_TEMPLATE_IDS):
        add(
            "CDA_N1_TEMPLATE_IDS",
            "an N1 (nonXMLBody) document must carry exactly the three templateIds "
            f"{', '.join(sorted(c.N1_TEMPLATE_IDS))} (found {len(roots)})",
            "§3.1 unstructured document",
        )
    if doc.code is None:
        add("CDA_NO_CODE", "ClinicalDocument/code (document type) is missing", "§3.2")
    if not doc.title:
        add("CDA_NO_TITLE", "ClinicalDocument/title is missing or empty", "§3.2")
    if doc.effective_time is None:
        add("CDA_NO_EFFECTIVE_TIME", "effectiveTime is missing or not a valid TS", "§3.2")
    conf = doc.confidentiality_code
    if (
        conf is None
        or conf.code not in c.CONFIDENTIALITY_CODES
        or conf.code_system != c.CS_CONFIDENTIALITY
    ):
        add(
            "CDA_CONFIDENTIALITY",
            "confidentialityCode must be N, R or V in code system 2.16.840.1.113883.5.25",
            "§3.6",
        )
    if not doc.language_code or not _LANGUAGE.match(doc.language_code):
        add("CDA_LANGUAGE", "languageCode is missing or not of the form xx-XX", "§3.2")
    if doc.set_id is None:
        add("CDA_NO_SETID", "setId is missing", "§3.2, §3.5 versioning")
    if doc.version_number is None:
        add("CDA_NO_VERSION", "versionNumber is missing or not an integer", "§3.2, §3.5")
    if not doc.authors:
        add("CDA_NO_AUTHOR", "no author", "§3.2")
    if doc.custodian is None:
        add("CDA_NO_CUSTODIAN", "no custodian organisation", "§3.2")
    if doc.legal_authenticator is None or doc.legal_authenticator.signature_code != "S":
        add("CDA_NO_LEGAL_AUTHENTICATOR", "no legalAuthenticator with signatureCode S", "§3.2")
    if not doc.service_events:
        add("CDA_NO_SERVICE_EVENT", "no documentationOf/serviceEvent", "§3.2")
    elif doc.service_events[0].start is None and doc.service_events[0].stop is None:
        add(
            "CDA_NO_SERVICE_EVENT",
            "the first documentationOf/serviceEvent has no effectiveTime",
            "§3.2",
        )
    if doc.encounter is None:
        add("CDA_NO_ENCOUNTER", "no componentOf/encompassingEncounter", "§3.2")
    if len(doc.related_documents) > 1 or any(
        r.type_code != c.RELATED_REPLACE or not r.parent_ids for r in doc.related_documents
    ):
        add(
            "CDA_RELATED_DOCUMENT",
            "at most one relatedDocument, of typeCode RPLC with a parentDocument/id",
            "§3.2, §3.5",
        )
    if doc.level == 1 and not doc.media_type:
        add("CDA_N1_MEDIA_TYPE", "nonXMLBody/text has no mediaType", "§3.4 N1 body")
    _check_patient(doc.patient, add)
    return out


#: A qualifier quoted in a defect message must look like an HL7 code (``SP``, ``IN``…), not text
#: that could carry a patient's name or INS.
_QUALIFIER_CODE = re.compile(r"^(family|given) [A-Z]{1,5}$")


def _check_patient(patient: Patient | None, add: Callable[[str, str, str], None]) -> None:
    if patient is None:
        add("CDA_NO_RECORD_TARGET", "recordTarget/patientRole is missing", "§3.2")
        return
    found = {f"family {p.qualifier}" for p in patient.name.family if p.qualifier} | {
        f"given {p.qualifier}" for p in patient.name.given if p.qualifier
    }
    bad = sorted(
        found - {f"{part} {q}" for part in ("family", "given") for q in c.ALLOWED_NAME_QUALIFIERS}
    )
    if bad:
        add(
            "CDA_NAME_QUALIFIER",
            f"patient name parts may only be qualified BR or CL (found {', '.join(bad)})"
            if all(_QUALIFIER_CODE.match(b) for b in bad)
            else "patient name parts may only be qualified BR or CL",
            "§3.3 INS traits",
        )
    ins = patient.ins
    if ins is None:
        return
    if not ins.extension or len(ins.extension) != c.INS_MATRICULE_LENGTH:
        add(
            "CDA_INS_MATRICULE",
            f"the INS id under {ins.root} must carry a {c.INS_MATRICULE_LENGTH}-character "
            "matricule in @extension",
            "§3.3 INS",
        )
    missing = [
        label
        for label, value in (
            ("birth name (family BR)", patient.birth_family_name),
            ("first given name (given BR)", patient.first_given_name),
            ("birth given names (given without qualifier)", patient.birth_given_names),
            ("birth date", patient.birth_time),
            ("sex", patient.gender),
            ("birthplace code (birthplace/place/addr/county)", patient.birthplace_code),
        )
        if not value
    ]
    if missing:
        add(
            "CDA_INS_TRAITS",
            f"with an INS the traits are mandatory; missing: {', '.join(missing)}",
            "§3.3 INS traits",
        )


def pdf_of(doc: CdaDocument | bytes) -> bytes:
    """The PDF encapsulated in an N1 document (``nonXMLBody/text``, ``application/pdf``, B64).

    This is the PDF attached to an MSSanté mail beside the XDM archive: taken from the CDA
    itself, so that both come from the same data (SC.CDA/DD.12; SC.MSS/CONF.26 "identique au
    PDF encapsulé dans le CDA R2 N1"). ``doc`` may be the CDA bytes (read with
    :func:`read_cda`).

    An N3 document gives the PDF copy of its CI-SIS "FR-Document-attache" entry (templateId
    1.2.250.1.213.1.1.3.18, the "Copie du document" the Ségur models carry; spec-facts §3.4).

    Raises ``InvalidInput``: ``CDA_NO_PDF`` for an N3 document without a PDF copy (the PFI does
    not render N3 documents) or an empty N1 body, ``CDA_NOT_PDF`` when the N1 media type is not
    ``application/pdf`` or the bytes do not start with the ``%PDF-`` signature,
    ``CDA_BAD_BASE64`` for an undecodable body.
    """
    if isinstance(doc, bytes | bytearray):
        doc = read_cda(bytes(doc))
    if doc.level == 3:
        data = doc.attached_pdf()
        if not data.lstrip(b"\r\n\t ").startswith(b"%PDF-"):
            raise InvalidInput("the attached copy is not a PDF", code="CDA_NOT_PDF")
        return data
    if not doc.has_embedded_document:
        raise InvalidInput(
            "the CDA encapsulates no PDF (not an N1 document, or empty nonXMLBody)",
            code="CDA_NO_PDF",
        )
    if (doc.media_type or "").strip().lower() != c.MEDIA_PDF:
        raise InvalidInput(
            "the N1 document body is not declared application/pdf", code="CDA_NOT_PDF"
        )
    data = doc.embedded_document()
    if not data.lstrip(b"\r\n\t ").startswith(b"%PDF-"):
        raise InvalidInput(
            "the N1 document body does not start with the PDF signature", code="CDA_NOT_PDF"
        )
    return data


def require_valid_header(doc: CdaDocument, *, ignore: frozenset[str] = frozenset()) -> None:
    """Raise ``InvalidInput`` (code of the first defect) unless :func:`check_header` is clean.

    ``ignore`` lists defect codes a caller tolerates (a site policy, e.g. accepting documents
    from a producer known to omit ``setId``).
    """
    defects = [d for d in check_header(doc) if d.code not in ignore]
    if defects:
        more = f" (+{len(defects) - 1} more)" if len(defects) > 1 else ""
        raise InvalidInput(f"CDA header: {defects[0].message}{more}", code=defects[0].code)


# --- element readers ------------------------------------------------------------------------------


def _one(el: etree._Element | None, name: str) -> etree._Element | None:
    return el.find(_H + name) if el is not None else None


def _all(el: etree._Element | None, name: str) -> list[etree._Element]:
    return el.findall(_H + name) if el is not None else []


def _path(el: etree._Element | None, *names: str) -> etree._Element | None:
    for name in names:
        el = _one(el, name)
    return el


def _attr(el: etree._Element | None, name: str) -> str | None:
    if el is None:
        return None
    value = el.get(name)
    return value.strip() if value and value.strip() else None


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    text = " ".join("".join(el.itertext()).split())
    return text or None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _ii(el: etree._Element | None) -> Identifier | None:
    root = _attr(el, "root")
    return Identifier(root, _attr(el, "extension")) if root else None


def _ids(el: etree._Element | None) -> tuple[Identifier, ...]:
    return tuple(filter(None, (_ii(i) for i in _all(el, "id"))))


def _code(el: etree._Element | None) -> Code | None:
    code = _attr(el, "code")
    if code is None:
        return None
    return Code(
        code,
        _attr(el, "codeSystem"),
        _attr(el, "displayName"),
        _attr(el, "codeSystemName"),
    )


_TS = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6})\d*)?"
    r"(?:([+-])(\d{2})(\d{2}))?$"
)


def parse_ts(value: str | None) -> datetime | date | None:
    """Parse an HL7 v3 ``TS`` (``YYYY[MM[DD[hh[mm[ss[.f]]]]]][±ZZZZ]``).

    A date alone gives a :class:`date`; with a time, a :class:`datetime`, timezone-aware when the
    value carries an offset (CI-SIS times usually do: ``20210108111700+0100``). Returns ``None``
    when the value is absent or malformed.
    """
    if not value:
        return None
    m = _TS.match(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, frac, sign, tzh, tzm = m.groups()
    try:
        if hour is None:
            return date(int(year), int(month or 1), int(day or 1))
        tz = None
        if sign:
            offset = timedelta(hours=int(tzh), minutes=int(tzm))
            tz = timezone(-offset if sign == "-" else offset)
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute or 0),
            int(second or 0),
            int((frac or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except (ValueError, TypeError):
        return None


def _as_datetime(value: datetime | date | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day)


def _ts(el: etree._Element | None) -> datetime | None:
    return _as_datetime(parse_ts(_attr(el, "value")))


def _interval(el: etree._Element | None) -> tuple[datetime | None, datetime | None]:
    if el is None:
        return None, None
    if el.get("value"):
        point = _ts(el)
        return point, point
    return _ts(_one(el, "low")), _ts(_one(el, "high"))


def _name(el: etree._Element | None) -> PersonName | None:
    if el is None:
        return None

    def parts(tag: str) -> tuple[NamePart, ...]:
        return tuple(
            NamePart(text, _attr(p, "qualifier")) for p in _all(el, tag) if (text := _text(p))
        )

    return PersonName(
        family=parts("family"),
        given=parts("given"),
        prefix=_text(_one(el, "prefix")),
        suffix=_text(_one(el, "suffix")),
    )


def _organization(el: etree._Element | None) -> Organization | None:
    if el is None:
        return None
    return Organization(
        ids=_ids(el),
        name=_text(_one(el, "name")),
        industry_code=_code(_one(el, "standardIndustryClassCode")),
    )


def _author(el: etree._Element) -> Participant:
    assigned = _one(el, "assignedAuthor")
    return Participant(
        time=_ts(_one(el, "time")),
        ids=_ids(assigned),
        name=_name(_path(assigned, "assignedPerson", "name")),
        specialty=_code(_one(assigned, "code")),
        function_code=_code(_one(el, "functionCode")),
        organization=_organization(_one(assigned, "representedOrganization")),
        device_name=_text(_path(assigned, "assignedAuthoringDevice", "softwareName")),
    )


def _legal_authenticator(el: etree._Element | None) -> Participant | None:
    if el is None:
        return None
    entity = _one(el, "assignedEntity")
    return Participant(
        time=_ts(_one(el, "time")),
        ids=_ids(entity),
        name=_name(_path(entity, "assignedPerson", "name")),
        specialty=_code(_one(entity, "code")),
        organization=_organization(_one(entity, "representedOrganization")),
        signature_code=_attr(_one(el, "signatureCode"), "code"),
    )


def _encounter(el: etree._Element | None) -> Encounter | None:
    if el is None:
        return None
    start, stop = _interval(_one(el, "effectiveTime"))
    facility = _path(el, "location", "healthCareFacility")
    return Encounter(
        ids=_ids(el),
        code=_code(_one(el, "code")),
        start=start,
        stop=stop,
        facility_code=_code(_one(facility, "code")),
        facility_ids=_ids(facility),
        location_name=_text(_path(facility, "location", "name")),
        service_provider=_organization(_one(facility, "serviceProviderOrganization")),
    )


def _service_event(el: etree._Element) -> ServiceEvent:
    start, stop = _interval(_one(el, "effectiveTime"))
    performers = [p for p in _all(el, "performer") if _one(p, "assignedEntity") is not None]
    entities = [_one(p, "assignedEntity") for p in performers]
    setting = next(
        (
            code
            for e in entities
            if (code := _code(_path(e, "representedOrganization", "standardIndustryClassCode")))
        ),
        None,
    )
    return ServiceEvent(
        ids=_ids(el),
        code=_code(_one(el, "code")),
        start=start,
        stop=stop,
        performer_ids=tuple(i for e in entities for i in _ids(e)),
        practice_setting=setting,
    )


def _related(el: etree._Element) -> RelatedDocument:
    parent = _one(el, "parentDocument")
    return RelatedDocument(
        type_code=el.get("typeCode", ""),
        parent_ids=_ids(parent),
        parent_set_id=_ii(_one(parent, "setId")),
        parent_version=_int(_attr(_one(parent, "versionNumber"), "value")),
    )


#: CI-SIS "FR-Document-attache" entry and the "Copie du document" type (LOINC 55108-5).
_ATTACHED_DOCUMENT = "1.2.250.1.213.1.1.3.18"
_COPY_OF_DOCUMENT = "55108-5"


def _recipient_addresses(root: etree._Element) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for recipient in _all(root, "informationRecipient"):
        for telecom in _all(_one(recipient, "intendedRecipient"), "telecom"):
            value = (telecom.get("value") or "").strip()
            if value[:7].lower() == "mailto:" and "@" in value:
                found.setdefault(value[7:].strip().lower(), None)
    return tuple(found)


def _attached_pdf(body: etree._Element) -> str | None:
    """The base64 PDF of the N3 "Document attaché" entries, preferring "Copie du document"."""
    found: list[tuple[bool, str]] = []
    for organizer in body.iter(_H + "organizer"):
        if not any(t.get("root") == _ATTACHED_DOCUMENT for t in _all(organizer, "templateId")):
            continue
        is_copy = any(v.get("code") == _COPY_OF_DOCUMENT for v in organizer.iter(_H + "value"))
        for media in organizer.iter(_H + "observationMedia"):
            value = _one(media, "value")
            if value is not None and (value.get("mediaType") or "").lower() == c.MEDIA_PDF:
                if (value.get("representation") or "").upper() == c.REPRESENTATION_B64:
                    found.append((is_copy, value.text or ""))
    found.sort(key=lambda item: not item[0])
    return found[0][1] if found else None


def _patient(role: etree._Element | None) -> Patient | None:
    if role is None:
        return None
    person = _one(role, "patient")
    birth = parse_ts(_attr(_one(person, "birthTime"), "value"))
    return Patient(
        ids=_ids(role),
        name=_name(_one(person, "name")) or PersonName(),
        birth_time=birth,
        gender=_attr(_one(person, "administrativeGenderCode"), "code"),
        birthplace_code=_text(_path(person, "birthplace", "place", "addr", "county")),
    )
