"""CDA header (+ MetaDMPMSS flags) → XDS DocumentEntry and SubmissionSet (ebRIM 3.0 model).

One builder for every document type: the CDA → XDS correspondence of the CI-SIS annex
"Lien entre l'en-tête CDA et les métadonnées XDS" (IG-CDA ``lien-entete-cda-meta-xds.md`` →
``mapping.md`` "Mapping XDS / Fiche"; spec-facts §5.4) is written once, field by field, and
every code comes from the tables of :mod:`pfi.protocols.xds.constants` (ASS_X04 classCode, ASS_A11 /
ASS_A12 formatCode with its TRE_A06 / TRE_A11 scheme, TRE_A07 visibility, JDV_J59
contentTypeCode; each table cites its source and version). The result is the frozen
:class:`~pfi.protocols.xds.model.DocumentEntry` / :class:`~pfi.protocols.xds.model.SubmissionSet` that
:func:`pfi.protocols.xdm.build_metadata` serialises with the XDS.b scheme UUIDs (ITI TF-3 §4.2.5) and
:func:`pfi.protocols.xdm.pack_xdm` packs; the DMP client puts the same model in its ITI-41 body.

Mapping (DocumentEntry ← CDA):

=============================  ===============================================================
uniqueId                       ``id`` (``root^extension`` — the DMP refuses an extension:
                               producers send root-only ids for the DMP, spec-facts §1.6)
patientId                      the INS of ``recordTarget/patientRole/id`` (CX, type ``NH``)
sourcePatientId                the first other id (IPP, type ``PI``), else the INS
sourcePatientInfo              PID-5 birth name^first given name, PID-7, PID-8
title, typeCode                ``title``, ``code``
classCode                      ``code`` through :data:`~pfi.protocols.xds.constants.CLASS_BY_TYPE`
                               (ASS_X04)
formatCode                     N1: ``nonXMLBody/text/@mediaType`` (ASS_A12);
                               N3: model templateId (ASS_A11, a CI-SIS model first)
confidentialityCode            ``confidentialityCode`` + :func:`visibility_codes` (flags)
creationTime                   ``effectiveTime``
serviceStart/StopTime          first ``documentationOf/serviceEvent/effectiveTime`` low/high
healthcareFacilityTypeCode     ``componentOf/…/healthCareFacility/code`` (name: JDV_J02)
practiceSettingCode            ``serviceEvent/performer/…/standardIndustryClassCode``
                               (name: JDV_J04)
languageCode                   ``languageCode``
author (one per ``author``)    authorPerson ← assignedAuthor (XCN), authorInstitution ←
                               representedOrganization (XON), authorRole ←
                               ``functionCode/@displayName``, authorSpecialty ←
                               ``assignedAuthor/code``
legalAuthenticator             ``legalAuthenticator/assignedEntity`` (XCN)
hash, size, URI                computed from the bytes by the packer
=============================  ===============================================================

The IG notes that the DMP over-constrains the DocumentEntry ``authorInstitution`` to equal the
SubmissionSet's (PRT-8 of the ``SB`` participant) and asks for that rule to be dropped; this
builder follows the CI-SIS CDA mapping (``representedOrganization``). A caller that must meet
the DMP constraint replaces the entry's authors (``dataclasses.replace``).

A replacement (``relatedDocument[@typeCode=RPLC]``) is an XDS ``RPLC`` association from the
new entry to the entry of the replaced version (:func:`replacement_association`); for the DMP
the target is the replaced entry's entryUUID, which only the registry knows (PDSM TD2.1).

Patient data stay in the model (never logged); errors carry codes and no patient data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pfi.base.errors import InvalidInput
from pfi.protocols.cda.model import (
    CdaDocument,
    Code,
    Identifier,
    Organization,
    Participant,
    Patient,
)
from pfi.protocols.xds import constants as k
from pfi.protocols.xds.ebrim import ASSOC_RPLC
from pfi.protocols.xds.model import (
    Association,
    Author,
    Coded,
    DocumentEntry,
    SubmissionSet,
    xds_time,
)

# --- codes ----------------------------------------------------------------------------------------


def coded(code: Code | None, *, display: dict[str, str] | None = None) -> Coded | None:
    """A CDA code as an XDS coded value (code, codingScheme, display name)."""
    if code is None:
        return None
    name = code.display_name or (display or {}).get(code.code, "")
    return Coded(code.code, code.code_system or "", name)


def class_code_for(type_code: Code | str | None) -> Coded | None:
    """The classCode (TRE_A03) of a document type through ASS_X04; ``None`` if unknown."""
    value = type_code.code if isinstance(type_code, Code) else type_code
    klass = k.CLASS_BY_TYPE.get(value or "")
    if klass is None:
        return None
    return Coded(klass, k.CS_CLASS_CODE, k.CLASS_DISPLAY[klass])


def format_code_value(code: str) -> Coded:
    """A formatCode with its coding scheme and name: TRE_A06 or TRE_A11 as JDV_J10 files it.

    A code in neither table is TRE_A06 when it has a CI-SIS prefix (``urn:asip:``,
    ``urn:ans:``), else TRE_A11, with no display name.
    """
    if code in k.FORMAT_DISPLAY_TRE_A06:
        return Coded(code, k.CS_FORMAT_CODE_FR, k.FORMAT_DISPLAY_TRE_A06[code])
    if code in k.FORMAT_DISPLAY_TRE_A11:
        return Coded(code, k.CS_FORMAT_CODE_IHE, k.FORMAT_DISPLAY_TRE_A11[code])
    scheme = k.CS_FORMAT_CODE_FR if code.startswith(k.FORMAT_FR_PREFIXES) else k.CS_FORMAT_CODE_IHE
    return Coded(code, scheme, "")


def format_code_for(doc: CdaDocument) -> Coded | None:
    """ASS_A12 for an N1 document (by media type), ASS_A11 for N3.

    An N3 document may carry several templateIds of ASS_A11 (a CI-SIS model and the IHE
    profile it derives from): the CI-SIS model (TRE_R220 root ``1.2.250.1.213.1.1.1.``) wins,
    then the first known one in document order.
    """
    if doc.level == 1:
        code = k.FORMAT_BY_MEDIA_TYPE.get((doc.media_type or "").lower())
    else:
        known = [t for t in doc.template_roots if t in k.FORMAT_BY_TEMPLATE]
        known.sort(key=lambda t: not t.startswith(k.CISIS_MODEL_ROOT))  # stable: order kept
        code = k.FORMAT_BY_TEMPLATE[known[0]] if known else None
    return format_code_value(code) if code else None


def confidentiality_code(doc: CdaDocument) -> Coded | None:
    """The CDA ``confidentialityCode`` (N/R/V), first occurrence of the XDS confidentialityCode."""
    return coded(doc.confidentiality_code, display=k.CONFIDENTIALITY_DISPLAY)


def visibility_codes(flags: Any) -> tuple[Coded, ...]:
    """The DMP visibility codes (TRE_A07) for the MetaDMPMSS flags set to ``Y``.

    ``flags`` is a :class:`pfi.protocols.hl7v2.MetaFlags` (or anything with the same boolean attributes;
    ``None`` gives no code). ``MASQUE_PS`` → ``MASQUE_PS``, ``INVISIBLE_PATIENT`` →
    ``INVISIBLE_PATIENT``, ``INVISIBLE_REP_LEGAUX`` → ``INVISIBLE_REPRESENTANTS_LEGAUX``, each an
    extra XDS confidentialityCode after the CDA one (IG-CDA ``mapping.md``: "les autres
    occurrences … OBX-5 avec OBX-3.3 = MetaDMPMSS"; DRIM-M_DATA shows ``N`` + ``MASQUE_PS`` +
    ``INVISIBLE_PATIENT``). ``CONNEXION_SECRETE`` is not a document code: it is the VIHF
    attribute given by :func:`secret_connection_code`.
    """
    if flags is None:
        return ()
    return tuple(
        Coded(code, k.CS_VISIBILITY, k.VISIBILITY_DISPLAY[code])
        for attribute, code in k.VISIBILITY_BY_FLAG
        if getattr(flags, attribute, None) is True
    )


def secret_connection_code(flags: Any) -> Coded | None:
    """The VIHF ``…:resource:patient:hl7:confidentiality-code`` for ``CONNEXION_SECRETE = Y``.

    The DMP "connexion secrète" hides the access traces from the patient's legal
    representatives: the value is ``INVISIBLE_REPRESENTANTS_LEGAUX`` (TRE_A07), the only code of
    the ANS value set "Restriction d'audience pour les traces des VIHF" (the VIHF value format
    itself is in the non-public DMP guide, spec-facts §5.3). ``None`` when the flag is not ``Y``.
    """
    if flags is None or getattr(flags, "connexion_secrete", None) is not True:
        return None
    code = k.VISIBILITY_INVISIBLE_REP_LEGAUX
    return Coded(code, k.CS_VISIBILITY, k.VISIBILITY_DISPLAY[code])


def content_type_for(patient_class: str | None) -> Coded | None:
    """SubmissionSet contentTypeCode (JDV_J59) from PV1-2 (IG-CDA ``mapping.md`` proposal)."""
    code = k.CONTENT_TYPE_BY_PATIENT_CLASS.get((patient_class or "").strip().upper())
    if code is None:
        return None
    return Coded(code, k.CS_CONTENT_TYPE, k.CONTENT_TYPE_DISPLAY.get(code, ""))


# --- HL7 v2 data types of the XDS values (ITI TF-3 §4.2.3.1.7) ------------------------------------


def cx(identifier: Identifier, type_code: str = k.CX_TYPE_INS) -> str:
    """``id^^^&OID&ISO^type`` (patientId ``NH`` for the INS, sourcePatientId ``PI``)."""
    return f"{identifier.extension or ''}^^^&{identifier.root}&ISO^{type_code}"


def xcn(who: Participant) -> str | None:
    """authorPerson / legalAuthenticator ``XCN``.

    A professional: ``id^family^given^^^^^^&OID&ISO^D^^^IDNPS`` (type ``IDNPS`` under the
    RPPS/ADELI OID, ``EI`` under any other OID); a system (``assignedAuthoringDevice``):
    ``id^software^^^^^^^&OID&ISO^U^^^RI`` when its id is a system PS_IdNat (under
    1.2.250.1.71.4.2.1, PDSm ``AuthorPersonSystem``), ``…^U^^^EI`` under any other OID (an
    entity identifier of the producer's own). ``None`` when there is nothing to say.
    """
    person = who.person_id
    name = who.name
    family = name.family[0].value if name and name.family else ""
    given = name.given[0].value if name and name.given else ""
    if who.device_name and not family:
        family, name_type = who.device_name, k.XCN_NAME_TYPE_SYSTEM
        id_type = k.XCN_TYPE_SYSTEM if person and person.root == k.OID_IDNAT_PS else "EI"
    else:
        name_type = "D"
        id_type = k.XCN_TYPE_PS if person and person.root == k.OID_IDNAT_PS else "EI"
    if person is None:
        return f"^{family}^{given}" if family or given else None
    return (
        f"{person.extension or ''}^{family}^{given}^^^^^^&{person.root}&ISO^{name_type}^^^{id_type}"
    )


def xon(org: Organization) -> str | None:
    """authorInstitution ``XON``: ``name^^^^^&OID&ISO^IDNST^^^id`` (IdNatStruct), or the name."""
    if not org.ids:
        return org.name or None
    ident = org.ids[0]
    return f"{org.name or ''}^^^^^&{ident.root}&ISO^{k.XON_TYPE_STRUCT}^^^{ident.extension or ''}"


def _specialty(code: Code) -> str:
    return f"{code.code}^{code.display_name or ''}^{code.code_system or ''}"


def xds_author(author: Participant) -> Author:
    """One XDS author classification from a CDA ``author``."""
    institution = xon(author.organization) if author.organization else None
    role = author.function_code
    person = xcn(author)
    return Author(
        person=person,
        institutions=(institution,) if institution else (),
        roles=(role.display_name,) if role and role.display_name else (),
        specialties=(_specialty(author.specialty),) if author.specialty else (),
    )


def source_patient_info(patient: Patient) -> tuple[str, ...]:
    """``PID-5`` (birth name^first given name, type ``L``), ``PID-7`` birth date, ``PID-8`` sex."""
    info = []
    family, given = patient.birth_family_name, patient.first_given_name
    if not family and patient.name.family:
        family = patient.name.family[0].value
    if not given and patient.name.given:
        given = patient.name.given[0].value
    if family or given:
        info.append(f"PID-5|{family or ''}^{given or ''}^^^^^L")
    if patient.birth_time:
        info.append(f"PID-7|{patient.birth_time.strftime('%Y%m%d')}")
    if patient.gender:
        info.append(f"PID-8|{patient.gender}")
    return tuple(info)


# --- DocumentEntry --------------------------------------------------------------------------------

#: DocumentEntry attributes the DMP requires (IG-CDA ``mapping.md`` "Fiche", constraint
#: "requis"); hash/size/URI are left to the packer.
REQUIRED_FIELDS = (
    "unique_id",
    "patient_id",
    "source_patient_id",
    "title",
    "class_code",
    "type_code",
    "format_code",
    "confidentiality_codes",
    "healthcare_facility_type_code",
    "practice_setting_code",
    "authors",
    "legal_authenticator",
    "creation_time",
    "service_start_time",
    "language_code",
)


def missing_required(entry: DocumentEntry) -> list[str]:
    """Names of the required DocumentEntry attributes that are empty (DMP constraints)."""
    return [name for name in REQUIRED_FIELDS if not getattr(entry, name)]


def document_entry(
    doc: CdaDocument,
    *,
    flags: Any = None,
    entry_id: str = "",
    patient_id: str | None = None,
    extra_confidentiality: Sequence[Coded] = (),
    class_code: Coded | None = None,
    format_code: Coded | None = None,
    mime_type: str = "text/xml",
    comments: str | None = None,
    strict: bool = False,
) -> DocumentEntry:
    """The XDS DocumentEntry of a CDA document (mapping table in the module docstring).

    ``flags`` (:class:`pfi.protocols.hl7v2.MetaFlags`) adds the visibility codes; ``patient_id``
    overrides the CX built from the CDA's INS (e.g. PID-3 already formatted); ``class_code`` /
    ``format_code`` override the tables; ``extra_confidentiality`` is appended after the
    visibility codes. ``strict`` raises ``InvalidInput`` ``XDS_METADATA_INCOMPLETE`` naming the
    required attributes that could not be filled (use it before a DMP submission).

    Raises ``InvalidInput`` ``XDS_NO_PATIENT_ID`` when the CDA carries no INS and no
    ``patient_id`` is given.
    """
    patient = doc.patient
    ins = patient.ins if patient else None
    if patient_id is None:
        if ins is None or not ins.extension:
            raise InvalidInput(
                "the CDA has no INS in recordTarget/patientRole/id: no XDS patientId",
                code="XDS_NO_PATIENT_ID",
            )
        patient_id = cx(ins, k.CX_TYPE_INS)
    others = [i for i in (patient.other_ids if patient else ()) if i.extension]
    if others:
        source_id: str | None = cx(others[0], k.CX_TYPE_LOCAL)
    elif ins is not None:
        source_id = cx(ins, k.CX_TYPE_INS)
    else:
        source_id = patient_id
    event = doc.service_events[0] if doc.service_events else None
    start = event.start if event else None
    stop = event.stop if event else None
    conf = confidentiality_code(doc)
    encounter = doc.encounter
    entry = DocumentEntry(
        entry_id=entry_id,
        unique_id=str(doc.id),
        patient_id=patient_id,
        mime_type=mime_type,
        title=doc.title,
        comments=comments,
        class_code=class_code or class_code_for(doc.code),
        type_code=coded(doc.code),
        format_code=format_code or format_code_for(doc),
        confidentiality_codes=(
            *((conf,) if conf else ()),
            *visibility_codes(flags),
            *extra_confidentiality,
        ),
        healthcare_facility_type_code=(
            coded(encounter.facility_code, display=k.FACILITY_TYPE_DISPLAY) if encounter else None
        ),
        practice_setting_code=coded(doc.practice_setting, display=k.PRACTICE_SETTING_DISPLAY),
        authors=tuple(xds_author(a) for a in doc.authors),
        legal_authenticator=xcn(doc.legal_authenticator) if doc.legal_authenticator else None,
        creation_time=xds_time(doc.effective_time) if doc.effective_time else None,
        service_start_time=xds_time(start) if start else None,
        service_stop_time=xds_time(stop) if stop else None,
        language_code=doc.language_code,
        source_patient_id=source_id,
        source_patient_info=source_patient_info(patient) if patient else (),
    )
    if strict:
        missing = missing_required(entry)
        if missing:
            raise InvalidInput(
                f"XDS metadata incomplete, missing: {', '.join(missing)}",
                code="XDS_METADATA_INCOMPLETE",
            )
    return entry


# --- SubmissionSet --------------------------------------------------------------------------------


def system_identifier(structure_id: str, local_id: str) -> str:
    """The IdentifiantSysteme of a system of a structure (PDSm ``IdentifiantSysteme``).

    ``<system prefix><structure id without its Struct_IdNat prefix>/<local id>`` (FINESS
    ``1…`` → ``3…``, SIRET ``3…`` → ``5…``: :data:`~pfi.protocols.xds.constants.SYSTEM_ID_PREFIX_BY_STRUCT_PREFIX`);
    a ``local_id`` holding a ``/`` is already the whole id.
    """
    if "/" in local_id:
        return local_id
    prefix = k.SYSTEM_ID_PREFIX_BY_STRUCT_PREFIX.get(structure_id[:1])
    owner = prefix + structure_id[1:] if prefix and len(structure_id) > 9 else structure_id
    return f"{owner}/{local_id}"


def system_xcn(system_id: str, name: str, model: str = "", *, oid: str | None = None) -> str:
    """authorPerson of a system (PDSm ``AuthorPersonSystem``): ``id^name^model^…^U^^^RI``."""
    return (
        f"{system_id}^{name}^{model}^^^^^^&{oid or k.OID_IDNAT_PS}&ISO^"
        f"{k.XCN_NAME_TYPE_SYSTEM}^^^{k.XCN_TYPE_SYSTEM}"
    )


def institution_author(
    structure_name: str,
    structure_id: str,
    *,
    software_name: str | None = None,
    software_id: str | None = None,
    software_oid: str | None = None,
    software_model: str | None = None,
    person: str | None = None,
) -> Author:
    """The SubmissionSet author "establishment + software" (IG-CDA ``mapping.md``, lot).

    ``structure_id`` is the Struct_IdNat of the sending structure (``1`` + FINESS, as PRT-8 of
    the ``SB`` participant gives it), written under OID 1.2.250.1.71.4.2.2 (XON ``IDNST``).
    ``person`` is a ready XCN (PRT-5 of ``SB``) when a person is known; otherwise the software
    is the author, as the ANS PDSm IG writes a system author (``AuthorPersonSystem``, example
    ``AuthorDispositif``)::

        3<FINESS>/<id in the structure>^<software>^<model>^^^^^^&1.2.250.1.71.4.2.1&ISO^U^^^RI

    The id is the IdentifiantSysteme: the structure's id with its Struct_IdNat prefix turned
    into the system prefix (FINESS ``1`` → ``3``, SIRET ``3`` → ``5``…), ``/``, then
    ``software_id`` (default the software name without spaces); a ``software_id`` that already
    holds a ``/`` is taken as the whole id. XCN-3 is ``software_model`` (default the software
    name: "dénomination pour les autres systèmes"); ``software_oid`` overrides the assigning
    authority (default PS_IdNat, "OID de gestion de personnes/systèmes").
    """
    institution = (
        f"{structure_name}^^^^^&{k.OID_IDNAT_STRUCT}&ISO^{k.XON_TYPE_STRUCT}^^^{structure_id}"
    )
    if person is None and software_name:
        system_id = system_identifier(structure_id, software_id or "".join(software_name.split()))
        person = system_xcn(
            system_id, software_name, software_model or software_name, oid=software_oid
        )
    return Author(person=person, institutions=(institution,))


def submission_set(
    *,
    unique_id: str,
    source_id: str,
    patient_id: str,
    submission_time: datetime,
    authors: Iterable[Author] = (),
    content_type: Coded | None = None,
    patient_class: str | None = None,
    intended_recipients: Sequence[str] = (),
    title: str | None = None,
    comments: str | None = None,
    entry_id: str = "SubmissionSet01",
) -> SubmissionSet:
    """The XDS SubmissionSet (IG-CDA ``mapping.md`` "Lot de soumission"; spec-facts §5.4).

    ``source_id`` is the OID of the sending system (the site's ``structure_oid``);
    ``unique_id`` an OID unique per submission (e.g. ``<source_id>.<ledger id>``);
    ``content_type`` wins over ``patient_class`` (PV1-2 → JDV_J59 through
    :func:`content_type_for`). ``intended_recipients`` are XDM ``XON|XCN|XTN`` values (ITI
    TF-3 §4.2.3.3.7); :func:`mail_recipient` makes one for an MSSanté mailbox.
    """
    return SubmissionSet(
        entry_id=entry_id,
        unique_id=unique_id,
        source_id=source_id,
        patient_id=patient_id,
        submission_time=xds_time(submission_time),
        content_type_code=content_type or content_type_for(patient_class),
        authors=tuple(authors),
        title=title,
        comments=comments,
        intended_recipients=tuple(intended_recipients),
    )


def mail_recipient(address: str) -> str:
    """An ``intendedRecipient`` value for a mailbox: ``|^^Internet^address`` (XON|XCN empty)."""
    return f"||^^Internet^{address}"


def replacement_association(
    new_entry_id: str, replaced: str, *, association_id: str = "AssociationRPLC"
) -> Association:
    """The ``RPLC`` association of a replacement: new entry → replaced entry (entryUUID).

    For XDM, ``replaced`` may be the replaced document's uniqueId when its entryUUID is not
    known (the reader of :mod:`pfi.protocols.xdm` accepts either); for the DMP it must be the entryUUID
    returned by the registry.
    """
    return Association(id=association_id, type=ASSOC_RPLC, source=new_entry_id, target=replaced)


def replaced_unique_id(doc: CdaDocument) -> str | None:
    """``root^extension`` of the document a CDA replaces (``relatedDocument`` RPLC), if any."""
    replaced = doc.replaced_id
    return str(replaced) if replaced else None


# --- from the HL7 v2 request (IG-CDA ``mapping.md``: the data the message gives) ----------------


def structure_id_of(sender: Any) -> str:
    """The IdNatStruct of a PRT participant's PRT-8 organisation: a FINESS or SIRET gets its
    ``1``/``3`` prefix (once); ``""`` without an organisation."""
    struct_id = sender.organization_id or ""
    prefix = k.STRUCT_PREFIX_BY_ORG_ID_TYPE.get((sender.organization_id_type or "").upper(), "")
    if struct_id and prefix and not (len(struct_id) > 9 and struct_id.startswith(prefix)):
        struct_id = prefix + struct_id
    return struct_id


def sender_author(sender: Any) -> Author | None:
    """The SubmissionSet author from the PRT ``SB`` participant (a :class:`pfi.protocols.hl7v2.Participant`).

    authorPerson ← PRT-5 (XCN, ``IDNPS`` under the RPPS/ADELI OID) or PRT-10.1 (a device:
    a system author :func:`system_xcn` whose id is :func:`system_identifier` of the PRT-8
    structure; without a structure, ``id^^^^^^^^&1.2.250.1.71.4.2.2&ISO^U^^^EI``);
    authorInstitution ← PRT-8 (XON ``IDNST``; a FINESS/SIRET becomes its IdNatStruct ``1…``/
    ``3…``). ``None`` without a sender or anything to say.
    """
    if sender is None:
        return None
    person = None
    if sender.person_id:
        oid = sender.person_authority_oid or k.OID_IDNAT_PS
        id_type = k.XCN_TYPE_PS if oid == k.OID_IDNAT_PS else (sender.person_id_type or "EI")
        person = (
            f"{sender.person_id}^{sender.person_family}^{sender.person_given}^^^^^^"
            f"&{oid}&ISO^D^^^{id_type}"
        )
    institutions: tuple[str, ...] = ()
    struct_id = ""
    if sender.organization_id:
        struct_id = structure_id_of(sender)
        oid = sender.organization_authority_oid or k.OID_IDNAT_STRUCT
        institutions = (
            f"{sender.organization_name}^^^^^&{oid}&ISO^{k.XON_TYPE_STRUCT}^^^{struct_id}",
        )
    if person is None and sender.device_id:
        if struct_id[:1] in k.SYSTEM_ID_PREFIX_BY_STRUCT_PREFIX and len(struct_id) > 9:
            system_id = system_identifier(struct_id, sender.device_id)
            person = system_xcn(system_id, sender.device_id)
        else:
            person = f"{sender.device_id}^^^^^^^^&{k.OID_IDNAT_STRUCT}&ISO^U^^^EI"
    if person is None and not institutions:
        return None
    return Author(person=person, institutions=institutions)


def document_entry_for_request(
    request: Any, doc: CdaDocument, *, entry_id: str = "", strict: bool = False
) -> DocumentEntry:
    """:func:`document_entry` for a CDA of an :class:`pfi.protocols.hl7v2.Hl7Request`.

    The request's MetaDMPMSS flags give the visibility codes; patientId is PID-3's INS when
    the message has one (the mapping's source; intake checked it equals the CDA's).
    """
    patient = getattr(request, "patient", None)
    patient_id = None
    if patient is not None and patient.ins and patient.ins_oid:
        patient_id = cx(Identifier(patient.ins_oid, patient.ins), k.CX_TYPE_INS)
    return document_entry(
        doc, flags=request.flags, entry_id=entry_id, patient_id=patient_id, strict=strict
    )


def submission_set_for_request(
    request: Any,
    *,
    unique_id: str,
    source_id: str,
    patient_id: str,
    submission_time: datetime,
    fallback_authors: Iterable[Author] = (),
    content_type: Coded | None = None,
    intended_recipients: Sequence[str] = (),
    title: str | None = None,
) -> SubmissionSet:
    """:func:`submission_set` for an :class:`pfi.protocols.hl7v2.Hl7Request`.

    Author ← PRT ``SB`` (:func:`sender_author`), else ``fallback_authors`` (the establishment
    and the PFI: :func:`institution_author`); contentTypeCode ← ``content_type`` or PV1-2.
    """
    author = sender_author(getattr(request, "sender", None))
    visit = getattr(request, "visit", None)
    return submission_set(
        unique_id=unique_id,
        source_id=source_id,
        patient_id=patient_id,
        submission_time=submission_time,
        authors=(author,) if author else tuple(fallback_authors),
        content_type=content_type,
        patient_class=visit.patient_class if visit else None,
        intended_recipients=intended_recipients,
        title=title,
    )
