"""Generate a CDA R2 level 1 (N1) document around a PDF: the CI-SIS "Structuration minimale".

For producers that send a PDF only, and for support staff (``pfi cda from-pdf``): the header
carries what the CI-SIS "Structuration minimale des documents de santé" requires (spec-facts
§3.1–3.6; schematron ``1.2.250.1.213.1.1.1.1``), the PDF goes base64 into
``component/nonXMLBody/text[@mediaType="application/pdf"]`` (IHE XDS-SD, §3.4):

- skeleton: ``realmCode FR``, ``typeId``, exactly the three N1 templateIds;
- ``id``/``setId``/``versionNumber`` (+ ``relatedDocument`` RPLC for a new version, §3.5);
- ``code`` from the Ségur document types (:data:`SEGUR_DOCUMENT_TYPES`, JDV_J07), ``title``,
  ``effectiveTime``, ``confidentialityCode`` N/R/V, ``languageCode fr-FR``;
- ``recordTarget`` with the INS under its OID and every INS trait (birth name ``BR``, first
  given name ``BR``, birth given names, birth date, sex, birthplace INSEE code; §3.3);
- ``author`` (a professional, or the PFI software as ``assignedAuthoringDevice``) and its
  organisation, ``custodian`` (the establishment, from the settings: :func:`structure_of_site`),
  signed ``legalAuthenticator``;
- ``documentationOf/serviceEvent`` with its time and one performer whose organisation carries
  the practice setting (XDS practiceSettingCode), ``componentOf/encompassingEncounter`` with the
  healthcare facility type (XDS healthcareFacilityTypeCode).

Model → generator, like :mod:`pfi.protocols.cda.reader` reads: frozen inputs (:class:`N1Document`),
one function :func:`build_n1` returning the UTF-8 bytes. The tests validate the output against
``CDA_extended.xsd`` and the "Structuration minimale" schematron.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from pfi.base.errors import InvalidInput
from pfi.protocols.cda import constants as c
from pfi.protocols.cda.model import Code, Identifier

_H = "{" + c.NS_HL7 + "}"
_XSI_TYPE = "{" + c.NS_XSI + "}type"

#: TRE_R02 (healthCareFacility/code) and TRE_A01 (practice setting) defaults of a hospital.
FACILITY_PUBLIC_HOSPITAL = Code("SA01", c.CS_SECTEUR_ACTIVITE, "Etablissement public de santé")
SETTING_HOSPITAL = Code("ETABLISSEMENT", c.CS_CADRE_EXERCICE, "Etablissement de santé")
SETTING_AMBULATORY = Code("AMBULATOIRE", c.CS_CADRE_EXERCICE, "Ambulatoire")
CONFIDENTIALITY_DISPLAY = {"N": "Normal", "R": "Restreint", "V": "Très restreint"}
GENDER_DISPLAY = {"M": "Masculin", "F": "Féminin", "U": "Inconnu"}


@dataclass(frozen=True, slots=True)
class DocumentType:
    """A document type of the Ségur list: ``code`` in JDV_J07 (LOINC, or TRE_A05)."""

    key: str
    code: str
    display_name: str
    code_system: str = c.CS_LOINC

    @property
    def as_code(self) -> Code:
        name = "LOINC" if self.code_system == c.CS_LOINC else None
        return Code(self.code, self.code_system, self.display_name, name)


#: The Ségur document types (spec-facts §3.7; display names of JDV_J07), by CLI key.
SEGUR_DOCUMENT_TYPES = {
    t.key: t
    for t in (
        DocumentType(
            "ldl-sortie", "11490-0", "Lettre de liaison à la sortie d'un établissement de soins"
        ),
        DocumentType(
            "ldl-entree",
            "18761-7",
            "Note de transfert (dont lettre de liaison à l'entrée en établissement de soins)",
        ),
        DocumentType("cr-operatoire", "34874-8", "CR opératoire"),
        DocumentType("prescription", "57833-6", "Prescription de produits de santé"),
        DocumentType(
            "prescription-bio",
            "PRESC-BIO",
            "Prescription d'actes de biologie médicale",
            c.CS_TRE_A05,
        ),
        DocumentType("cr-consultation", "11488-4", "CR ou fiche de consultation ou de visite"),
        DocumentType("cr-biologie", "11502-2", "CR d'examens biologiques"),
        DocumentType("cr-imagerie", "18748-4", "CR d'imagerie médicale"),
        DocumentType("cr-hospitalisation", "34112-3", "CR hospitalier (séjour)"),
        DocumentType("cr-anesthesie", "77436-4", "CR d'anesthésie"),
        DocumentType("cr-urgences", "15507-7", "CR de passage aux urgences"),
    )
}


@dataclass(frozen=True, slots=True, repr=False)
class PatientIdentity:
    """The patient: INS (matricule + OID) and the INS traits; never shown in a ``repr``."""

    ins: str
    ins_oid: str
    birth_family_name: str
    first_given_name: str
    birth_given_names: str
    birth_date: date
    sex: str
    birthplace_code: str
    used_family_name: str | None = None
    used_given_name: str | None = None
    #: Local identifiers (IPP under the establishment's OID).
    local_ids: tuple[Identifier, ...] = ()

    def __repr__(self) -> str:
        return "<PatientIdentity (redacted)>"


@dataclass(frozen=True, slots=True)
class Professional:
    """A health professional: national id (RPPS with its prefix, under IdNatPs), name, specialty."""

    id: str
    family: str
    given: str = ""
    #: ``assignedAuthor/code`` (TRE_G15 profession / savoir-faire, e.g. ``G15_10/SM26``).
    specialty: Code | None = None
    id_root: str = c.OID_IDNAT_PS
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class Structure:
    """An organisation: IdNatStruct (``1`` + FINESS, or ``3`` + SIRET) under OID …4.2.2."""

    id: str
    name: str
    id_root: str = c.OID_IDNAT_STRUCT


@dataclass(frozen=True, slots=True)
class Software:
    """The PFI software as ``assignedAuthoringDevice`` (when no professional is the author)."""

    id: str
    name: str
    id_root: str = c.OID_IDNAT_STRUCT


def new_oid() -> str:
    """A fresh globally unique OID (``2.25.<UUID as integer>``, ITU-T X.667)."""
    return f"2.25.{uuid.uuid4().int}"


@dataclass(frozen=True, slots=True, repr=False)
class N1Document:
    """Everything an N1 document says. Times are aware datetimes (naive = UTC)."""

    pdf: bytes
    document_type: DocumentType
    title: str
    patient: PatientIdentity
    organization: Structure
    effective_time: datetime
    service_start: datetime
    author: Professional | Software
    legal_authenticator: Professional
    custodian: Structure | None = None
    service_stop: datetime | None = None
    encounter_start: datetime | None = None
    encounter_stop: datetime | None = None
    facility_code: Code = FACILITY_PUBLIC_HOSPITAL
    practice_setting: Code = SETTING_HOSPITAL
    confidentiality: str = "N"
    language_code: str = "fr-FR"
    document_id: Identifier = field(default_factory=lambda: Identifier(new_oid()))
    set_id: Identifier = field(default_factory=lambda: Identifier(new_oid()))
    version: int = 1
    #: The id of the version this document replaces (``relatedDocument`` RPLC).
    replaces: Identifier | None = None

    def __repr__(self) -> str:
        return f"<N1Document {self.document_type.code} id={self.document_id}>"


def structure_of_site(settings: Any, finess_geo: str | None = None) -> Structure:
    """The custodian/author organisation from :class:`pfi.base.settings.Settings`.

    The FINESS géographique (``finess_geo``, default the site's first one) as IdNatStruct
    ``1<FINESS>`` under the site's ``structure_oid``, named after that ET (or the site).
    """
    site = settings.site
    sites = {g.finess: g for g in site.finess_geo}
    if finess_geo is None:
        if not site.finess_geo:
            raise InvalidInput("the site has no FINESS géographique", code="CDA_NO_STRUCTURE")
        finess_geo = site.finess_geo[0].finess
    if finess_geo not in sites:
        raise InvalidInput("unknown FINESS géographique for this site", code="CDA_NO_STRUCTURE")
    return Structure(f"1{finess_geo}", sites[finess_geo].name or site.name, site.structure_oid)


def software_of_site(settings: Any) -> Software:
    """The PFI as authoring device: its name and version, under the establishment's id."""
    site = settings.site
    return Software(
        f"1{site.finess_juridique}", f"{site.software_name} {site.software_version}".strip()
    )


# --- generation -----------------------------------------------------------------------------------


def build_n1(doc: N1Document) -> bytes:
    """The N1 CDA document, UTF-8 bytes with an XML declaration.

    Raises ``InvalidInput`` ``CDA_NOT_PDF`` when ``pdf`` does not start with ``%PDF-``,
    ``CDA_BAD_INPUT`` for an INS or a confidentiality code of the wrong shape. The identity
    values are never quoted in the messages.
    """
    if not doc.pdf.lstrip(b"\r\n\t ").startswith(b"%PDF-"):
        raise InvalidInput("the document to encapsulate is not a PDF", code="CDA_NOT_PDF")
    patient = doc.patient
    if len(patient.ins) != c.INS_MATRICULE_LENGTH or patient.ins_oid not in c.INS_OIDS:
        raise InvalidInput(
            "the INS must be a 15-character matricule under an INS OID", code="CDA_BAD_INPUT"
        )
    if doc.confidentiality not in c.CONFIDENTIALITY_CODES:
        raise InvalidInput("confidentiality must be N, R or V", code="CDA_BAD_INPUT")
    if patient.sex not in GENDER_DISPLAY:
        raise InvalidInput("sex must be M, F or U", code="CDA_BAD_INPUT")

    root = etree.Element(_H + "ClinicalDocument", nsmap={None: c.NS_HL7, "xsi": c.NS_XSI})
    _sub(root, "realmCode", code=c.REALM_FR)
    _sub(root, "typeId", root=c.TYPE_ID_ROOT, extension=c.TYPE_ID_EXTENSION)
    for template in (c.TEMPLATE_HL7_FRANCE, c.TEMPLATE_CISIS_STRUCT_MIN, c.TEMPLATE_XDS_SD):
        _sub(root, "templateId", root=template)
    _ii(root, "id", doc.document_id)
    _code(root, "code", doc.document_type.as_code)
    _sub(root, "title").text = doc.title
    _sub(root, "effectiveTime", value=ts(doc.effective_time))
    _sub(
        root,
        "confidentialityCode",
        code=doc.confidentiality,
        displayName=CONFIDENTIALITY_DISPLAY[doc.confidentiality],
        codeSystem=c.CS_CONFIDENTIALITY,
        codeSystemName="Confidentiality",
    )
    _sub(root, "languageCode", code=doc.language_code)
    _ii(root, "setId", doc.set_id)
    _sub(root, "versionNumber", value=str(doc.version))
    _record_target(root, patient)
    _author(root, doc)
    custodian = doc.custodian or doc.organization
    org = _path(root, "custodian", "assignedCustodian", "representedCustodianOrganization")
    _ii(org, "id", Identifier(custodian.id_root, custodian.id))
    _sub(org, "name").text = custodian.name
    _legal_authenticator(root, doc)
    _service_event(root, doc)
    if doc.replaces is not None:
        related = _sub(root, "relatedDocument", typeCode=c.RELATED_REPLACE)
        _ii(_sub(related, "parentDocument"), "id", doc.replaces)
    _encounter(root, doc)
    body = _path(root, "component", "nonXMLBody")
    _sub(
        body, "text", mediaType=c.MEDIA_PDF, representation=c.REPRESENTATION_B64
    ).text = base64.b64encode(doc.pdf).decode("ascii")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def ts(value: datetime | date) -> str:
    """An HL7 v3 ``TS``: ``YYYYMMDDhhmmss±ZZZZ`` (naive datetimes are UTC), or ``YYYYMMDD``."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.strftime("%Y%m%d%H%M%S%z")
    return value.strftime("%Y%m%d")


def _sub(parent: etree._Element, name: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, _H + name, {k: v for k, v in attrs.items() if v is not None})


def _path(parent: etree._Element, *names: str) -> etree._Element:
    for name in names:
        parent = _sub(parent, name)
    return parent


def _ii(parent: etree._Element, name: str, ident: Identifier) -> etree._Element:
    return _sub(parent, name, root=ident.root, extension=ident.extension)


def _code(parent: etree._Element, name: str, code: Code) -> etree._Element:
    return _sub(
        parent,
        name,
        code=code.code,
        displayName=code.display_name,
        codeSystem=code.code_system,
        codeSystemName=code.code_system_name,
    )


def _person_name(parent: etree._Element, who: Professional) -> None:
    name = _path(parent, "assignedPerson", "name")
    if who.prefix:
        _sub(name, "prefix").text = who.prefix
    if who.given:
        _sub(name, "given").text = who.given
    _sub(name, "family").text = who.family


def _organization(parent: etree._Element, tag: str, org: Structure) -> etree._Element:
    el = _sub(parent, tag)
    _ii(el, "id", Identifier(org.id_root, org.id))
    _sub(el, "name").text = org.name
    return el


def _record_target(root: etree._Element, patient: PatientIdentity) -> None:
    role = _path(root, "recordTarget", "patientRole")
    _ii(role, "id", Identifier(patient.ins_oid, patient.ins))
    for local in patient.local_ids:
        _ii(role, "id", local)
    person = _sub(role, "patient", classCode="PSN")
    name = _sub(person, "name")
    _sub(name, "family", qualifier=c.NAME_QUALIFIER_BIRTH).text = patient.birth_family_name
    _sub(name, "given").text = patient.birth_given_names
    _sub(name, "given", qualifier=c.NAME_QUALIFIER_BIRTH).text = patient.first_given_name
    if patient.used_family_name:
        _sub(name, "family", qualifier=c.NAME_QUALIFIER_USED).text = patient.used_family_name
    if patient.used_given_name:
        _sub(name, "given", qualifier=c.NAME_QUALIFIER_USED).text = patient.used_given_name
    _sub(
        person,
        "administrativeGenderCode",
        code=patient.sex,
        displayName=GENDER_DISPLAY[patient.sex],
        codeSystem=c.CS_ADMINISTRATIVE_GENDER,
    )
    _sub(person, "birthTime", value=ts(patient.birth_date))
    addr = _path(person, "birthplace", "place", "addr")
    _sub(addr, "county").text = patient.birthplace_code


def _author(root: etree._Element, doc: N1Document) -> None:
    author = _sub(root, "author")
    _sub(author, "time", value=ts(doc.effective_time))
    assigned = _sub(author, "assignedAuthor")
    who = doc.author
    _ii(assigned, "id", Identifier(who.id_root, who.id))
    if isinstance(who, Professional):
        if who.specialty is not None:
            _code(assigned, "code", who.specialty)
        _person_name(assigned, who)
    else:
        device = _sub(assigned, "assignedAuthoringDevice")
        _sub(device, "manufacturerModelName").text = who.name
        _sub(device, "softwareName").text = who.name
    _organization(assigned, "representedOrganization", doc.organization)


def _legal_authenticator(root: etree._Element, doc: N1Document) -> None:
    legal = _sub(root, "legalAuthenticator")
    _sub(legal, "time", value=ts(doc.effective_time))
    _sub(legal, "signatureCode", code="S")
    entity = _sub(legal, "assignedEntity")
    who = doc.legal_authenticator
    _ii(entity, "id", Identifier(who.id_root, who.id))
    _person_name(entity, who)


def _interval(parent: etree._Element, start: datetime, stop: datetime | None) -> None:
    interval = _sub(parent, "effectiveTime")
    _sub(interval, "low", value=ts(start))
    if stop is not None:
        _sub(interval, "high", value=ts(stop))


def _service_event(root: etree._Element, doc: N1Document) -> None:
    event = _path(root, "documentationOf", "serviceEvent")
    _interval(event, doc.service_start, doc.service_stop)
    performer = _sub(event, "performer", typeCode="PRF")
    entity = _sub(performer, "assignedEntity")
    who = doc.legal_authenticator
    _ii(entity, "id", Identifier(who.id_root, who.id))
    _person_name(entity, who)
    org = _organization(entity, "representedOrganization", doc.organization)
    _code(org, "standardIndustryClassCode", doc.practice_setting)


def _encounter(root: etree._Element, doc: N1Document) -> None:
    encounter = _path(root, "componentOf", "encompassingEncounter")
    _interval(
        encounter, doc.encounter_start or doc.service_start, doc.encounter_stop or doc.service_stop
    )
    facility = _path(encounter, "location", "healthCareFacility")
    _code(facility, "code", doc.facility_code)


# --- from an HL7 v2 request carrying a PDF only ---------------------------------------------------

_HL7_CODING_SYSTEMS = {"LN": c.CS_LOINC, "LOINC": c.CS_LOINC, "TRE_A05": c.CS_TRE_A05}


def document_type_of(code: str, label: str = "", system: str = "") -> DocumentType:
    """The Ségur type of a code (its JDV_J07 label), or a type built from the message's CE."""
    for doc_type in SEGUR_DOCUMENT_TYPES.values():
        if doc_type.code == code:
            return doc_type
    code_system = _HL7_CODING_SYSTEMS.get(system.upper(), system or c.CS_LOINC)
    return DocumentType("", code, label or code, code_system)


def _hl7_id(entity: Any) -> Identifier | None:
    if entity is None or not entity.id:
        return None
    if entity.universal_id:
        return Identifier(entity.universal_id, entity.id)
    return Identifier(entity.id)


def n1_from_request(
    request: Any,
    pdf: bytes,
    *,
    organization: Structure,
    author: Professional | Software | None = None,
    effective_time: datetime | None = None,
    set_id: Identifier | None = None,
    version: int = 1,
) -> N1Document:
    """The N1 document for an HL7 request whose OBX carries a PDF (a producer without CDA).

    Identity from PID (INS, OID and traits, IPP), type from OBR-4 / OBX-3, ids from TXA-12 and
    TXA-13 (MDM), the professional of PRT ``SB`` (PRT-5) as author and legal authenticator
    (``author`` overrides; a :class:`Software` author still needs PRT-5 to sign). ``set_id``
    and ``version`` continue an earlier version (the caller keeps them, e.g. in the ledger).

    Raises ``InvalidInput`` ``CDA_BAD_INPUT`` when an INS trait or the signer is missing.
    """
    from pfi.protocols.cda.reader import parse_ts

    patient = request.patient
    missing = [
        name
        for name, value in (
            ("INS", patient.ins),
            ("INS OID", patient.ins_oid),
            ("birth name", patient.birth_name),
            ("first given name", patient.first_given_name),
            ("birth date", patient.birth_date),
            ("sex", patient.sex),
            ("birthplace code", patient.birthplace_code),
        )
        if not value
    ]
    birth = parse_ts(patient.birth_date) if patient.birth_date else None
    if birth is None and "birth date" not in missing:
        missing.append("birth date")
    sender = getattr(request, "sender", None)
    signer = None
    if sender is not None and sender.person_id:
        signer = Professional(
            sender.person_id,
            sender.person_family,
            sender.person_given,
            id_root=sender.person_authority_oid or c.OID_IDNAT_PS,
        )
    if signer is None and not isinstance(author, Professional):
        missing.append("signing professional (PRT-5 of SB)")
    if missing:
        raise InvalidInput(
            f"cannot build the N1 document, missing: {', '.join(missing)}", code="CDA_BAD_INPUT"
        )
    order = getattr(request, "order", None)
    coded = (order.document_type if order else None) or request.documents[0].type_code
    info = getattr(request, "document_info", None)
    document_id = _hl7_id(info.unique_id if info else None) or Identifier(new_oid())
    replaces = _hl7_id(info.parent_id if info else None)
    activity = parse_ts(info.activity_time) if info and info.activity_time else None
    if isinstance(activity, datetime) and activity.tzinfo is None:
        activity = activity.replace(tzinfo=ZoneInfo("Europe/Paris"))  # HL7 local time
    when = effective_time or (activity if isinstance(activity, datetime) else None)
    when = when or datetime.now(UTC).replace(microsecond=0)
    ipp = (
        (Identifier(patient.ipp_authority, patient.ipp),)
        if patient.ipp and re_oid(patient.ipp_authority)
        else ()
    )
    doc_type = document_type_of(coded.code, coded.label, coded.system)
    signer = signer or author
    return N1Document(
        pdf=pdf,
        document_type=doc_type,
        title=doc_type.display_name,
        patient=PatientIdentity(
            ins=patient.ins,
            ins_oid=patient.ins_oid,
            birth_family_name=patient.birth_name,
            first_given_name=patient.first_given_name,
            birth_given_names=" ".join(patient.given_names) or patient.first_given_name,
            birth_date=birth.date() if isinstance(birth, datetime) else birth,
            sex=patient.sex if patient.sex in GENDER_DISPLAY else "U",
            birthplace_code=patient.birthplace_code,
            local_ids=ipp,
        ),
        organization=organization,
        effective_time=when,
        service_start=when,
        author=author or signer,
        legal_authenticator=signer,
        document_id=document_id,
        set_id=set_id or Identifier(new_oid()),
        version=version,
        replaces=replaces,
    )


def re_oid(value: str) -> bool:
    """True for a dotted OID (an IPP authority must be one to be a CDA ``id/@root``)."""
    parts = value.split(".") if value else []
    return len(parts) > 1 and all(
        p.isdigit() and (p == "0" or not p.startswith("0")) for p in parts
    )
