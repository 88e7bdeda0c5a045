"""The frozen model of an HL7 v2 message received by the PFI.

:class:`Hl7Request` is what a producer (DPI, SGL, RIS) asks the PFI to do with one or more CDA
documents — volet "Transmission de document(s) CDA en HL7v2" v2.1, ``profils-messages.md``:
MDM^T02/T10/T04 (HL7 2.6) or ORU^R01 (HL7 2.5). :class:`Hl7Ack` is an acknowledgement (technical
``ACK``, business ``ZAM``) read back.

Everything that identifies the patient (matricule, names, dates, addresses) and every document
or mail body is declared ``field(repr=False)``: models end up in logs and tracebacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pfi.protocols.hl7v2 import constants as c
from pfi.protocols.hl7v2.ack import AckError, MessageHeader
from pfi.protocols.ins import PATIENT_MAIL_DOMAIN, InsIdentity


class Action(StrEnum):
    """What the producer asks for (evenements-declenchants.md)."""

    NEW = "new"  # MDM^T02, ORU OBX-11 F, ORC-1 NW
    REPLACE = "replace"  # MDM^T10, ORU OBX-11 C, ORC-1 RO
    DELETE = "delete"  # MDM^T04, ORU OBX-11 D, ORC-1 CA


@dataclass(frozen=True)
class Profile:
    """MSH-21: ``2.1^CISIS_CDA_HL7_V2`` (current), ``2.0^…``, ``1.2^CISIS_CDA_HL7_V1`` (vague 1)."""

    version: str
    name: str

    @property
    def is_current(self) -> bool:
        return self.name == c.PROFILE_CDA_HL7_V2 and self.version == c.PROFILE_CURRENT_VERSION

    @property
    def is_vague1(self) -> bool:
        """Volet v1.x: recipients were taken from the CDA header, not from PRT segments."""
        return self.name == c.PROFILE_CDA_HL7_V1


@dataclass(frozen=True)
class Coded:
    """A CE/CWE value: code, label, coding system."""

    code: str
    label: str = ""
    system: str = ""


@dataclass(frozen=True)
class EntityId:
    """An EI (TXA-12/13): ``id^namespace^universal id^type``.

    The volet writes ``extension^^root^ISO`` when the CDA id has an extension, else the root
    alone in the first component (``profils-messages.md`` §TXA).
    """

    id: str
    namespace: str = ""
    universal_id: str = ""
    universal_id_type: str = ""


@dataclass(frozen=True)
class PatientId:
    """One PID-3 repetition (CX): id, assigning authority (namespace, OID), type code."""

    id: str = field(repr=False)
    authority: str = ""
    authority_oid: str = ""
    type_code: str = ""


@dataclass(frozen=True)
class Patient:
    """PID per PAM-FR 2.11 and the CI-SIS INS annex.

    ``ins``/``ins_oid`` come from the PID-3 repetition typed ``INS``; ``birth_name``,
    ``first_given_name`` and ``given_names`` from the PID-5 repetition typed ``L`` (PID-5.1,
    PID-5.2, PID-5.3 split on blanks); ``birthplace_code`` is XAD.9 of the PID-11 repetition
    typed ``BDL``; ``identity_reliability`` the PID-32 repetitions (``VALI``, ``QUAL``…).
    """

    identifiers: tuple[PatientId, ...] = field(default=(), repr=False)
    ins: str | None = field(default=None, repr=False)
    ins_oid: str | None = None
    ipp: str | None = field(default=None, repr=False)
    ipp_authority: str = ""
    birth_name: str = field(default="", repr=False)
    first_given_name: str = field(default="", repr=False)
    given_names: tuple[str, ...] = field(default=(), repr=False)
    birth_date: str = field(default="", repr=False)
    sex: str = field(default="", repr=False)
    birthplace_code: str = field(default="", repr=False)
    account_number: str = field(default="", repr=False)
    identity_reliability: tuple[str, ...] = ()

    @property
    def ins_identity(self) -> InsIdentity | None:
        """The INS traits as PID states them (``None`` without an INS in PID-3)."""
        if not self.ins:
            return None
        return InsIdentity(
            matricule=self.ins,
            oid=self.ins_oid or "",
            birth_name=self.birth_name,
            first_given_name=self.first_given_name,
            birth_date=self.birth_date,
            sex=self.sex,
            birthplace_code=self.birthplace_code,
            given_names=self.given_names,
        )


@dataclass(frozen=True)
class Visit:
    """PV1 basics: PV1-2 class (I/O/E/R/N), PV1-3 point of care, PV1-19 visit number,
    PV1-44/45 admit/discharge (RE "to compute indicators", ``profils-messages.md``)."""

    patient_class: str = ""
    location: str = ""
    visit_number: str = field(default="", repr=False)
    visit_number_authority: str = ""
    admit_time: str = ""
    discharge_time: str = ""


@dataclass(frozen=True)
class Order:
    """ORC-1 order control and OBR-4 document type (ORC/OBR optional in MDM)."""

    order_control: str = ""
    document_type: Coded | None = None


@dataclass(frozen=True)
class DocumentInfo:
    """TXA (MDM only): TXA-2 type, TXA-4 activity time, TXA-12 unique id, TXA-13 parent id
    (required for a replacement), TXA-17 completion status."""

    document_type: str = ""
    activity_time: str = ""
    unique_id: EntityId | None = None
    parent_id: EntityId | None = None
    completion_status: str = ""


@dataclass(frozen=True)
class Document:
    """One OBX of type ED carrying a document: ``^text^XML^Base64^<CDA>`` (or a PDF).

    ``format`` is sniffed from the decoded bytes (``cda``, ``xml``, ``pdf``, ``unknown``); the
    placeholder text of the short official examples is ``unknown``.
    """

    set_id: str
    type_code: Coded
    result_status: str
    media_type: str
    media_subtype: str
    format: str
    content: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True)
class MetaFlags:
    """The Y/N ``MetaDMPMSS`` OBX (``meta-dmp-mss.md``): ``None`` when the OBX is absent.

    ``patient_reply_closed`` is the NTE ``FIN`` after DESTMSSANTEPAT (``X-MSS-MES: FIN``).
    """

    masque_ps: bool | None = None
    invisible_patient: bool | None = None
    invisible_rep_legaux: bool | None = None
    connexion_secrete: bool | None = None
    modif_conf_code: bool | None = None
    dest_dmp: bool | None = None
    dest_mss_ps: bool | None = None
    dest_mss_patient: bool | None = None
    ack_reception: bool | None = None
    ack_lecture_mss: bool | None = None
    patient_reply_closed: bool = False


@dataclass(frozen=True)
class Participant:
    """A PRT segment (pre-adopted from HL7 v2.9): sender ``SB``, recipient ``RCT``, ``REPLY``.

    PRT-5 person (id, family, given, assigning authority OID, id type), PRT-8 organisation
    (name, authority OID, id type, id — the FINESS géographique for ``SB``), PRT-10.1 device,
    PRT-15.4 MSSanté address. A recipient may be the patient, so names, ids and the address stay
    out of ``repr``.
    """

    role: str
    person_id: str = field(default="", repr=False)
    person_family: str = field(default="", repr=False)
    person_given: str = field(default="", repr=False)
    person_authority_oid: str = ""
    person_id_type: str = ""
    organization_name: str = ""
    organization_authority_oid: str = ""
    organization_id_type: str = ""
    organization_id: str = ""
    device_id: str = ""
    address: str = field(default="", repr=False)

    @property
    def is_patient(self) -> bool:
        return self.person_id_type == c.ID_TYPE_INS or self.address.lower().endswith(
            "@" + PATIENT_MAIL_DOMAIN
        )


@dataclass(frozen=True)
class VihfAuthor:
    """What the volet carries for the VIHF token (``mapping.md``; DSR SC.DMP/CONF.12): the
    structure (PRT-8.10 of ``SB``, FINESS géographique) and the professional (PRT-5) or the
    device (PRT-10.1) at the origin of the DMP feed."""

    structure_id: str
    structure_id_type: str
    subject_id: str
    subject_id_type: str
    subject_name: str = field(repr=False)
    device_id: str = ""


@dataclass(frozen=True)
class Defect:
    """A departure from the volet found while parsing.

    ``blocking`` defects make the request unusable as such (the caller refuses it with
    ``code``); the others are recorded (e.g. a truncated mail body: the PFI writes its default
    body, as the volet allows).
    """

    code: str
    message: str
    location: str = ""
    blocking: bool = False


@dataclass(frozen=True)
class Hl7Request:
    """An MDM/ORU document request, parsed (``profils-messages.md``)."""

    header: MessageHeader
    message_structure: str
    profile: Profile | None
    action: Action
    patient: Patient
    visit: Visit | None
    order: Order | None
    document_info: DocumentInfo | None
    documents: tuple[Document, ...]
    flags: MetaFlags
    participants: tuple[Participant, ...] = ()
    mail_body_ps: bytes | None = field(default=None, repr=False)
    mail_body_patient: bytes | None = field(default=None, repr=False)
    defects: tuple[Defect, ...] = ()

    @property
    def control_id(self) -> str:
        return self.header.control_id

    @property
    def message_type(self) -> str:
        """``MDM^T02``, ``ORU^R01``…"""
        return self.header.message_type

    @property
    def sender(self) -> Participant | None:
        return next((p for p in self.participants if p.role == c.PARTICIPATION_SENDER), None)

    @property
    def recipients(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants if p.role == c.PARTICIPATION_RECIPIENT)

    @property
    def professional_recipients(self) -> tuple[Participant, ...]:
        """RCT other than the patient (whose address the PFI builds from the INS)."""
        return tuple(p for p in self.recipients if not p.is_patient and p.address)

    @property
    def reply_to(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants if p.role == c.PARTICIPATION_REPLY_TO)

    @property
    def blocking_defects(self) -> tuple[Defect, ...]:
        return tuple(d for d in self.defects if d.blocking)

    @property
    def vihf_author(self) -> VihfAuthor | None:
        sender = self.sender
        if sender is None:
            return None
        name = " ".join(part for part in (sender.person_family, sender.person_given) if part)
        return VihfAuthor(
            structure_id=sender.organization_id,
            structure_id_type=sender.organization_id_type,
            subject_id=sender.person_id,
            subject_id_type=sender.person_id_type,
            subject_name=name,
            device_id=sender.device_id,
        )


@dataclass(frozen=True)
class Hl7Ack:
    """An acknowledgement read back: technical ``ACK`` (MSA) or business ``ZAM`` (OBX).

    ``code`` is MSA-1 (``AA``/``AE``/``AR``) or the ZAM OBX-5 (``Y``/``N``);
    ``acknowledged_control_id`` MSA-2 or the ZAM OBX-4 (MSH-10 of the original message);
    ``item`` the ZAM OBX-3 code (``ACK_RECEPTION_DMP``…); ``recipient_*`` the ZAM second OBX
    (``DESTINATAIRE_MSS``/``LECTEUR_MSS``).
    """

    header: MessageHeader
    message_structure: str
    profile: Profile | None
    code: str
    acknowledged_control_id: str
    item: str = ""
    recipient_id: str = ""
    recipient_address: str = ""
    errors: tuple[AckError, ...] = ()

    @property
    def control_id(self) -> str:
        return self.header.control_id

    @property
    def message_type(self) -> str:
        return self.header.message_type

    @property
    def is_business(self) -> bool:
        return self.header.message_code == c.MSG_ZAM


Hl7Message = Hl7Request | Hl7Ack
