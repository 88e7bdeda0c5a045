"""The frozen model of a CDA R2 header, as the PFI needs it.

The PFI never rewrites a producer's CDA: it reads the header to route the document (DMP,
MSSanté), to check it against the HL7 message that carried it (PID-3 = ``recordTarget`` ids,
CI-SIS volet "Transmission de document(s) CDA en HL7v2" §OBX), and to fill the XDS metadata
(``lien-entete-cda-meta-xds``). The model therefore keeps identifiers, codes and times, not the
narrative.

Patient data never appear in a ``repr``: the :class:`Patient` value hides itself and the
document's ``patient`` and body fields are excluded from the document's ``repr``, so a model
logged by mistake or shown in a traceback leaks nothing.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from pfi.base.errors import InvalidInput
from pfi.protocols.cda.constants import INS_OIDS, NAME_QUALIFIER_BIRTH, NAME_QUALIFIER_USED


@dataclass(frozen=True, slots=True)
class Identifier:
    """An HL7 v3 ``II``: an OID or UUID ``root`` and an optional ``extension``."""

    root: str
    extension: str | None = None

    def __str__(self) -> str:
        """``root^extension`` (the XDS uniqueId form) or just ``root``."""
        return f"{self.root}^{self.extension}" if self.extension else self.root


@dataclass(frozen=True, slots=True)
class Code:
    """An HL7 v3 ``CD``/``CE``: a code in a code system, with its display name."""

    code: str
    code_system: str | None = None
    display_name: str | None = None
    code_system_name: str | None = None


@dataclass(frozen=True, slots=True)
class NamePart:
    """One ``family`` or ``given`` part of a name, with its ``@qualifier`` (BR, CL, SP…)."""

    value: str
    qualifier: str | None = None


@dataclass(frozen=True, slots=True)
class PersonName:
    """A ``PN``: family and given parts in document order, prefix and suffix."""

    family: tuple[NamePart, ...] = ()
    given: tuple[NamePart, ...] = ()
    prefix: str | None = None
    suffix: str | None = None


@dataclass(frozen=True, slots=True)
class Organization:
    """An organisation (``representedOrganization``, custodian, service provider)."""

    ids: tuple[Identifier, ...] = ()
    name: str | None = None
    #: ``standardIndustryClassCode`` (TRE_A01 cadre d'exercice): the XDS practiceSettingCode.
    industry_code: Code | None = None


@dataclass(frozen=True, slots=True)
class Participant:
    """An author or the legal authenticator: who, when, for which organisation."""

    time: datetime | None = None
    ids: tuple[Identifier, ...] = ()
    name: PersonName | None = None
    #: ``assignedAuthor/code``: profession and specialty (TRE_G15/R38…), XDS authorSpecialty.
    specialty: Code | None = None
    #: ``functionCode``: role in the care, XDS authorRole.
    function_code: Code | None = None
    organization: Organization | None = None
    #: ``assignedAuthoringDevice/softwareName`` when the author is a system.
    device_name: str | None = None
    #: ``signatureCode/@code`` (legal authenticator: ``S`` = signed).
    signature_code: str | None = None

    @property
    def person_id(self) -> Identifier | None:
        """The first identifier (RPPS/ADELI under ``1.2.250.1.71.4.2.1`` for a professional)."""
        return self.ids[0] if self.ids else None


@dataclass(frozen=True, slots=True, repr=False)
class Patient:
    """``recordTarget/patientRole``: identifiers and the INS traits. Never shown in a ``repr``."""

    ids: tuple[Identifier, ...] = ()
    name: PersonName = field(default_factory=PersonName)
    birth_time: datetime | date | None = None
    gender: str | None = None
    #: ``birthplace/place/addr/county``: INSEE (COG) code of the birthplace.
    birthplace_code: str | None = None

    def __repr__(self) -> str:
        return "<Patient (redacted)>"

    @property
    def ins(self) -> Identifier | None:
        """The INS (matricule in ``extension``, OID in ``root``), if one of the ids is an INS."""
        return next((i for i in self.ids if i.root in INS_OIDS), None)

    @property
    def other_ids(self) -> tuple[Identifier, ...]:
        """The ids that are not the INS (IPP under the establishment's OID…)."""
        ins = self.ins
        return tuple(i for i in self.ids if i != ins)

    @property
    def birth_family_name(self) -> str | None:
        """``family[@qualifier="BR"]``: the birth name (nom de naissance)."""
        return _qualified(self.name.family, NAME_QUALIFIER_BIRTH)

    @property
    def used_family_name(self) -> str | None:
        """``family[@qualifier="CL"]``: the used name (nom utilisé)."""
        return _qualified(self.name.family, NAME_QUALIFIER_USED)

    @property
    def first_given_name(self) -> str | None:
        """``given[@qualifier="BR"]``: the first given name of the birth certificate."""
        return _qualified(self.name.given, NAME_QUALIFIER_BIRTH)

    @property
    def birth_given_names(self) -> str | None:
        """``given`` without qualifier: the list of birth given names (space-separated)."""
        return _qualified(self.name.given, None)


def _qualified(parts: tuple[NamePart, ...], qualifier: str | None) -> str | None:
    return next((p.value for p in parts if p.qualifier == qualifier), None)


@dataclass(frozen=True, slots=True)
class ServiceEvent:
    """``documentationOf/serviceEvent``: the act documented, its dates and performer's setting."""

    ids: tuple[Identifier, ...] = ()
    code: Code | None = None
    start: datetime | None = None
    stop: datetime | None = None
    performer_ids: tuple[Identifier, ...] = ()
    #: ``performer/assignedEntity/representedOrganization/standardIndustryClassCode``.
    practice_setting: Code | None = None


@dataclass(frozen=True, slots=True)
class Encounter:
    """``componentOf/encompassingEncounter``: the stay or visit the document belongs to."""

    ids: tuple[Identifier, ...] = ()
    code: Code | None = None
    start: datetime | None = None
    stop: datetime | None = None
    #: ``location/healthCareFacility/code`` (TRE_R02 secteur d'activité): XDS
    #: healthcareFacilityTypeCode.
    facility_code: Code | None = None
    facility_ids: tuple[Identifier, ...] = ()
    location_name: str | None = None
    service_provider: Organization | None = None


@dataclass(frozen=True, slots=True)
class RelatedDocument:
    """``relatedDocument``: ``type_code`` RPLC (replacement) and the parent document's ids.

    ``parent_set_id`` / ``parent_version`` are the optional ``parentDocument/setId`` and
    ``versionNumber`` (CDA R2 allows them; the CI-SIS examples give the ``id`` only).
    """

    type_code: str
    parent_ids: tuple[Identifier, ...] = ()
    parent_set_id: Identifier | None = None
    parent_version: int | None = None


@dataclass(frozen=True, slots=True)
class CdaDocument:
    """What the PFI reads from a CDA R2 document (N1 or N3).

    ``level`` is 1 for a ``nonXMLBody`` (the PDF, IHE XDS-SD) and 3 for a ``structuredBody``.
    For N1, :meth:`embedded_document` decodes the embedded file on demand.
    """

    id: Identifier
    set_id: Identifier | None
    version_number: int | None
    code: Code | None
    title: str | None
    effective_time: datetime | None
    confidentiality_code: Code | None
    language_code: str | None
    realm_code: str | None
    type_id: Identifier | None
    template_ids: tuple[Identifier, ...]
    level: Literal[1, 3]
    authors: tuple[Participant, ...]
    custodian: Organization | None
    legal_authenticator: Participant | None
    encounter: Encounter | None
    service_events: tuple[ServiceEvent, ...]
    related_documents: tuple[RelatedDocument, ...]
    patient: Patient | None = field(repr=False)
    #: ``nonXMLBody/text/@mediaType`` (N1), e.g. ``application/pdf``.
    media_type: str | None = None
    #: ``nonXMLBody/text/@representation`` (``B64`` for base64).
    representation: str | None = field(default=None, repr=False)
    _body_text: str | None = field(default=None, repr=False)
    #: N3 only: base64 text of the PDF copy in the "FR-Document-attache" entry (templateId
    #: 1.2.250.1.213.1.1.3.18, ``observationMedia/value[@mediaType="application/pdf"]``).
    _attached_pdf: str | None = field(default=None, repr=False)
    #: Size of the CDA document in bytes, as received.
    size: int = 0
    #: MSSanté addresses of the ``informationRecipient/intendedRecipient`` (``telecom`` whose
    #: value is ``mailto:…``), lower-case, in order, without duplicates: where a volet v1.2
    #: message's recipients are ("professionnels indiqués dans le document CDA").
    recipient_addresses: tuple[str, ...] = field(default=(), repr=False)

    @property
    def template_roots(self) -> tuple[str, ...]:
        return tuple(t.root for t in self.template_ids)

    @property
    def replaced_id(self) -> Identifier | None:
        """The id of the document this version replaces (``relatedDocument[@typeCode=RPLC]``)."""
        for rel in self.related_documents:
            if rel.type_code == "RPLC" and rel.parent_ids:
                return rel.parent_ids[0]
        return None

    @property
    def author(self) -> Participant | None:
        return self.authors[0] if self.authors else None

    @property
    def practice_setting(self) -> Code | None:
        """The XDS practiceSettingCode source: the first performer organisation's setting."""
        return next((e.practice_setting for e in self.service_events if e.practice_setting), None)

    @property
    def is_replacement(self) -> bool:
        """True for a new version that replaces another (``relatedDocument`` RPLC)."""
        return self.replaced_id is not None

    @property
    def has_embedded_document(self) -> bool:
        return self.level == 1 and bool(self._body_text)

    @property
    def has_attached_pdf(self) -> bool:
        """N3 with a PDF copy of the document (CI-SIS "FR-Document-attache" entry)."""
        return self.level == 3 and bool(self._attached_pdf)

    def attached_pdf(self) -> bytes:
        """The PDF copy carried by an N3 document (decoded), see :func:`pfi.protocols.cda.pdf_of`."""
        if not self.has_attached_pdf:
            raise InvalidInput("the CDA has no attached PDF copy", code="CDA_NO_PDF")
        return _b64(self._attached_pdf or "")

    def embedded_document(self) -> bytes:
        """The N1 embedded file (the PDF), decoded from base64.

        Raises ``InvalidInput`` ``CDA_NO_EMBEDDED_DOCUMENT`` for an N3 document or an empty
        body, ``CDA_BAD_BASE64`` when the base64 text is not decodable.
        """
        if self.level != 1 or not self._body_text:
            raise InvalidInput(
                "the CDA has no embedded document (not N1, or empty nonXMLBody)",
                code="CDA_NO_EMBEDDED_DOCUMENT",
            )
        if (self.representation or "TXT").upper() != "B64":
            return self._body_text.encode("utf-8")
        return _b64(self._body_text)


def _b64(value: str) -> bytes:
    text = "".join(value.split())
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            "the embedded document is not valid base64", code="CDA_BAD_BASE64"
        ) from None


@dataclass(frozen=True, slots=True)
class Defect:
    """A known header defect found by :func:`pfi.protocols.cda.check_header`.

    ``code`` is usable as an :class:`~pfi.base.errors.InvalidInput` code; ``message`` never contains
    patient data; ``rule`` cites the spec.
    """

    code: str
    message: str
    rule: str = ""
