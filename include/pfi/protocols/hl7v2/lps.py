"""The MDM the PFI sends the DPI for a CDA document received by MSSanté, and the DPI's ACK.

CI-SIS volet "Transmission au LPS de documents CDA provenant d'un courriel MSSanté" v1.1 (IG
``ansforge/IG-hl7v2-volet-trans-lps-doc-cda-courriel-mss``: ``profils-messages.md``,
``meta-dmp-mss.md``, ``error-codes.md``, ``lien-entete-cda-meta-xds.md``; spec-facts §2). One
HL7 2.6 message per CDA of the received ``IHE_XDM.ZIP``::

    MSH  PFI → DPI, MDM^T02|T10|T04^MDM_T02, 2.6, FRA, UNICODE UTF-8, MSH-21 1.1^CISIS_CDA_HL7_LPS
    EVN  EVN-2 when the mail was received, EVN-6 the mail's Date
    PID  from the CDA recordTarget: PID-3 = its ids (INS first, ``INS``; others ``PI``), PID-5
         birth name^first given name^birth given names (type L; a used name adds a D
         repetition), PID-7, PID-8, PID-11 the XDM sourcePatientInfo address (if any) and the
         birthplace (BDL), PID-31 N, PID-32 VALI when the CDA carries an INS
    PV1  PV1-2 N (not applicable)
    ORC  NW | RO | CA
    OBR  OBR-4 = the document type (CDA ``code``; LN or TRE_A05)
    TXA  1, type, TEXT, TXA-4 activity (serviceEvent start, else effectiveTime), TXA-12 the CDA id,
         TXA-13 the replaced id (T10, and T04 when the CDA has one), TXA-17 AU, TXA-22 the legal
         authenticator's id
    OBX  1, ED, type, ^text^XML^Base64^<CDA>, OBX-11 F | C | D
    PRT  SB: the mail's sender (PRT-5 person, PRT-8 organisation, PRT-10 device when known,
         PRT-15 ^^X.400^<From>)
    PRT  RCT: each initial recipient served (PRT-8 the organisation behind the mailbox, Note 3)
    PRT  REPLY: each Reply-To address
    OBX  2, ED, <Message-ID>^<subject>, ^text^^Base64^<mail body>, F
    OBX  3–6, CWE, MASQUE_PS / INVISIBLE_PATIENT / INVISIBLE_REP_LEGAUX / MODIF_CONF_CODE
         ^label^MetaDMPMSS, Y|N^^expandedYes-NoIndicator, F

Which event: the XDM extra-metadata "action" (``C`` replace, ``D`` delete, absent: new),
:func:`action_of`. The visibility flags come from the XDM DocumentEntry confidentialityCodes
(TRE_A07, :func:`visibility_flags`); MODIF_CONF_CODE has no XDM source the volet names: the
caller says it. Who sent the mail (PRT-5 "requis si connu", depending on the directory the PFI can
query, Note 1): the identity the caller gives, else the XDM submission set's author, else the
CDA's first author — the official examples show the document's author there.

The DPI answers a synchronous ACK (read by :mod:`pfi.protocols.hl7v2.lps_ack`) (``MSH MSA [ERR]``): :func:`read_ack` reads it with the
project's parser into a :class:`DpiAck` — MSA-1 ``AA``/``AE``/``AR``, ERR-3 (HL7 table 0357),
ERR-5 (the volet's ``applicationErrorCode`` 900–906, labels of
:data:`pfi.protocols.hl7v2.zam.APPLICATION_ERROR_LABELS`). :class:`~pfi.protocols.mllp.MllpAnswer`
keeps one code only (ERR-5.1, else ERR-3.1): :func:`ack_from_answer` reads that back, telling a
volet code (900–906) from an HL7 condition; send with
:meth:`~pfi.protocols.mllp.MllpClient.exchange` and :func:`read_ack` to keep both.

Official examples (``Vague 2/Trans_LPS_CDA_MSSanté/TRANSMISSION_LPS_DOC_CDA_COURRIEL_FROM_MSSANTE_
V1.1``, ``tests/unit/test_lps_mdm.py``): built from each example's own CDA and the mail facts it
carries, every field comes out as in the example except these, kept on purpose:

- *segment separators*: CR, as HL7 requires (the examples use LF);
- *MSH-7*: the time of building, to the second (the examples: ``202106060931``);
- *EVN-5*: empty — the examples name an operator (``PAT^ADMIN PAT-CMEDICAL I…``) copied from the
  producer volet's examples; nobody operates an MSSanté reception;
- *PID-3.8*: empty — the examples' INS effective date ``20101207`` is neither in the CDA nor in
  the XDM metadata;
- *PID-11*: the birthplace repetition only (``^^^^^^BDL^^63220``, identical to the examples'
  second repetition) — their home address ``28 Av de Breteuil^^PARIS^^75007^FRA^H`` is not read
  from the CDA (whose ``addr`` is four free ``streetAddressLine``); it comes from the XDM
  sourcePatientInfo ``PID-11`` when the archive gives one;
- *PID-18*: empty — the examples' account number (``405660^^^AUT-AFFECTATION…``) is a visit of
  the DPI, which the PFI does not know;
- *TXA-4*: the activity time of the CDA (serviceEvent start, else effectiveTime), in French local
  time: ``20230227092827`` for the examples' CDA (``20230227102827+0200``) — the examples'
  ``202212160932`` matches no date of their CDA;
- *TXA-12.2 / TXA-13.2*: empty, as the IG's TXA rule says ("TXA-12.2 ⇐ Non renseigné") — the
  examples add ``Organisation-Y``;
- *OBX 1, OBX-5.5*: base64 with its ``=`` padding — the examples' lacks it (MANIFEST: "bad
  padding"); the decoded bytes are the same;
- *PRT-4.2*: the IG's labels ``Send by`` / ``Result Copies To`` / ``Reply To`` — the examples
  leave PRT-4.2 empty;
- *PRT SB, PRT-5.9.1*: ``ASIP-SANTE-PS`` — the examples write ``ASIP-SANTE- PS`` (stray blank).

The examples' sibling ``.XML`` files are not byte-identical to the CDA inside the messages (CRLF
→ LF, one ``informationRecipient`` address): built from the sibling file, OBX 1 OBX-5.5 differs
and nothing else. The short ``…_INIT_N1.er7`` carries a placeholder instead of a CDA: the
``…_INIT_N1_Base64.er7`` variant is the reference for T02.

Pure: no I/O, no settings, no ledger. Errors are ``ValueError`` for a caller's mistake (a route
holding HL7 delimiters, no Message-ID…) and :class:`~pfi.base.errors.InvalidInput` with a code
for a document the volet cannot carry (``LPS_NO_PATIENT``, ``LPS_NO_PATIENT_ID``,
``LPS_NO_PATIENT_NAME``, ``LPS_NO_TYPE_CODE``, ``LPS_NO_PARENT_ID``, ``LPS_UNKNOWN_ACTION``) or an
answer that is no ACK of the message (``LPS_ACK_NOT_ACK``, ``LPS_ACK_CODE``,
``LPS_ACK_OTHER_MESSAGE``); their texts never quote patient data. Names, subjects, bodies and
addresses stay out of every ``repr``.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pfi.base.errors import InvalidInput
from pfi.protocols.cda import constants as cda_k
from pfi.protocols.cda.model import CdaDocument, Identifier, Participant
from pfi.protocols.cda.model import Patient as CdaPatient
from pfi.protocols.hl7v2 import constants as c
from pfi.protocols.hl7v2.ack import codec_for, escape
from pfi.protocols.hl7v2.model import Action, MetaFlags
from pfi.protocols.xds import constants as xds_k
from pfi.protocols.xds.model import DocumentEntry, SubmissionSet

#: MSH-21 of the volet.
PROFILE = f"{c.PROFILE_LPS_VERSION}^{c.PROFILE_LPS}"
#: HL7 v2 times are local French time (as the project's other builders).
PARIS = ZoneInfo("Europe/Paris")

#: Action → (MSH-9.2 event, OBX-11 of the document, ORC-1), ``profils-messages.md``.
EVENTS: dict[Action, tuple[str, str, str]] = {
    Action.NEW: (c.EVENT_MDM_INITIAL, c.RESULT_FINAL, c.ORDER_NEW),
    Action.REPLACE: (c.EVENT_MDM_REPLACE, c.RESULT_CORRECTED, c.ORDER_REPLACE),
    Action.DELETE: (c.EVENT_MDM_DELETE, c.RESULT_DELETED, c.ORDER_CANCEL),
}

#: PID-3.4.1 namespace beside each INS OID (the examples write ``ASIP-SANTE-INS-NIR`` with the
#: test NIR OID; the OID in PID-3.4.2 is what identifies the authority).
INS_NAMESPACES = {
    cda_k.OID_INS_NIR: c.NAMESPACE_INS_NIR,
    cda_k.OID_INS_NIA: c.NAMESPACE_INS_NIA,
    cda_k.OID_INS_NIR_TEST: c.NAMESPACE_INS_NIR,
    cda_k.OID_INS_NIR_DEMO: c.NAMESPACE_INS_NIR,
}
#: PID-8 (HL7 table 0001) from the CDA ``administrativeGenderCode``.
_SEXES = {"F": "F", "M": "M", "U": "U", "UN": "U"}
#: Visibility codes of the XDM DocumentEntry (TRE_A07; the HL7 spelling accepted too).
_VISIBILITY_CODES = {
    xds_k.VISIBILITY_MASQUE_PS: "masque_ps",
    xds_k.VISIBILITY_INVISIBLE_PATIENT: "invisible_patient",
    xds_k.VISIBILITY_INVISIBLE_REP_LEGAUX: "invisible_rep_legaux",
    c.META_INVISIBLE_REP_LEGAUX: "invisible_rep_legaux",
}
_FLAG_ATTRIBUTES = {
    c.META_MASQUE_PS: "masque_ps",
    c.META_INVISIBLE_PATIENT: "invisible_patient",
    c.META_INVISIBLE_REP_LEGAUX: "invisible_rep_legaux",
    c.META_MODIF_CONF_CODE: "modif_conf_code",
}
#: OBR-4.3 / OBX-3.3 from the code system OID (``profils-messages.md``: LN or TRE_A05).
_CODING_SYSTEMS = {cda_k.CS_LOINC: c.CODING_LOINC, cda_k.CS_TRE_A05: c.CODING_TRE_A05}
_OID = re.compile(r"[0-2](\.\d+)+")
#: Characters that may not appear in a value written as HL7 as is (an HD, a raw XAD).
_DELIMITERS = frozenset("|~\\&\r\n")


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMailFacts:
    """What the received MSSanté mail says: the second OBX group and the PRT addresses.

    ``message_id`` is the ``Message-ID`` header as received (OBX-3.1), ``subject`` the decoded
    ``Subject`` (OBX-3.2), ``body`` the text of the mail (OBX-5, base64 of its UTF-8 bytes);
    ``sender`` the ``From`` address (PRT SB), ``recipients`` the initial recipients the PFI
    serves (PRT RCT: the establishment's mailboxes among ``To``/``Cc``, Note 2), ``reply_to``
    the ``Reply-To`` addresses (PRT REPLY); ``date`` the ``Date`` header (EVN-6) and
    ``received_at`` when the PFI took the mail (EVN-2; the build time when absent).
    """

    message_id: str
    sender: str = field(repr=False)
    recipients: tuple[str, ...] = field(default=(), repr=False)
    subject: str = field(default="", repr=False)
    body: str = field(default="", repr=False)
    date: datetime | None = None
    received_at: datetime | None = None
    reply_to: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if not self.message_id.strip():
            raise ValueError("the mail's Message-ID is required (OBX 2, OBX-3.1)")
        if not self.sender.strip():
            raise ValueError("the mail's sender address is required (PRT SB, PRT-15)")


@dataclass(frozen=True)
class Route:
    """MSH-3..6 (HD, ``^`` between components, e.g. ``PFI`` or ``PFI^1.2.250…^ISO``) and MSH-11."""

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    processing_id: str = "P"

    def __post_init__(self) -> None:
        names = ("sending_application", "sending_facility")
        names += ("receiving_application", "receiving_facility")
        for name in names:
            if not getattr(self, name).strip():
                raise ValueError(f"MSH {name} is required (profils-messages.md)")
        for name in (*names, "processing_id"):
            if _DELIMITERS & set(getattr(self, name)):
                raise ValueError(f"MSH {name} holds an HL7 delimiter other than '^'")


@dataclass(frozen=True)
class PersonRef:
    """PRT-5 (XCN): a professional — id, names, assigning authority (namespace, OID), id type."""

    id: str = field(default="", repr=False)
    family: str = field(default="", repr=False)
    given: str = field(default="", repr=False)
    authority: str = ""
    authority_oid: str = ""
    id_type: str = ""
    name_type: str = c.NAME_TYPE_DISPLAY

    @classmethod
    def from_cda(cls, who: Participant | None) -> PersonRef | None:
        """A CDA ``author``/``legalAuthenticator`` person (``None`` for a device or nobody):
        ``id/@extension`` (RPPS/ADELI under IdNatPs: namespace ``ASIP-SANTE-PS``, type
        ``IDNPS``; any other OID: type ``EI``), first family and given name."""
        if who is None or (who.device_name and not (who.name and who.name.family)):
            return None
        name = who.name
        family = name.family[0].value if name and name.family else ""
        given = name.given[0].value if name and name.given else ""
        ident = who.person_id if who.person_id and who.person_id.extension else None
        if ident is None:
            return cls(family=family, given=given) if family else None
        is_ps = ident.root == cda_k.OID_IDNAT_PS
        return cls(
            id=ident.extension or "",
            family=family,
            given=given,
            authority=c.NAMESPACE_IDNAT_PS if is_ps else "",
            authority_oid=ident.root,
            id_type=c.ID_TYPE_IDNPS if is_ps else c.ID_TYPE_ENTITY,
        )

    @classmethod
    def from_xcn(cls, value: str | None) -> PersonRef | None:
        """An XDS ``authorPerson`` (``id^family^given^^^^^^&OID&ISO^D^^^IDNPS``)."""
        if not value:
            return None
        parts = value.split("^")
        authority, oid = _hd_parts(_part(parts, 8))
        if oid == cda_k.OID_IDNAT_PS and not authority:
            authority = c.NAMESPACE_IDNAT_PS
        ref = cls(
            id=_part(parts, 0),
            family=_part(parts, 1),
            given=_part(parts, 2),
            authority=authority,
            authority_oid=oid,
            id_type=_part(parts, 12),
            name_type=_part(parts, 9) or c.NAME_TYPE_DISPLAY,
        )
        return ref if ref.id or ref.family else None

    def render(self) -> str:
        return _components(
            escape(self.id),
            escape(self.family),
            escape(self.given),
            "",
            "",
            "",
            "",
            "",
            _hd(self.authority, self.authority_oid),
            escape(self.name_type) if (self.family or self.given) else "",
            "",
            "",
            escape(self.id_type) if self.id else "",
        )


@dataclass(frozen=True)
class OrganizationRef:
    """PRT-8 (XON): name, assigning authority (namespace, OID), id type, id (XON.10)."""

    name: str
    id: str = ""
    id_type: str = ""
    authority: str = ""
    authority_oid: str = ""

    @classmethod
    def from_xon(cls, value: str | None) -> OrganizationRef | None:
        """An XDS ``authorInstitution`` (``name^^^^^&OID&ISO^IDNST^^^id``)."""
        if not value:
            return None
        parts = value.split("^")
        authority, oid = _hd_parts(_part(parts, 5))
        ref = cls(
            name=_part(parts, 0),
            id=_part(parts, 9),
            id_type=_part(parts, 6),
            authority=authority,
            authority_oid=oid,
        )
        return ref if ref.name or ref.id else None

    def render(self) -> str:
        return _components(
            escape(self.name),
            "",
            "",
            "",
            "",
            _hd(self.authority, self.authority_oid),
            escape(self.id_type),
            "",
            "",
            escape(self.id),
        )


@dataclass(frozen=True)
class Party:
    """One PRT: an MSSanté address and, when the PFI knows it, who is behind it.

    ``person`` (PRT-5, a professional), ``organization`` (PRT-8: the sender's structure, or for a
    recipient the service/UF/pôle its mailbox stands for, Note 3), ``device`` (PRT-10.1, an
    application sender).
    """

    address: str = field(repr=False)
    person: PersonRef | None = None
    organization: OrganizationRef | None = None
    device: str = ""


@dataclass(frozen=True)
class LpsMdm:
    """Everything one MDM to the DPI says; :meth:`encode` gives its bytes.

    ``cda`` the document as received, ``document`` its header (:func:`pfi.protocols.cda.read_cda`
    of the same bytes), ``mail`` the mail it came with, ``action`` from :func:`action_of`;
    ``control_id`` MSH-10 (unique, stable across retries), ``now`` MSH-7. Optional: ``flags``
    (MetaDMPMSS; default :func:`visibility_flags` of ``entry``), the XDM ``entry`` and
    ``submission_set``, ``sender`` (PRT SB when the PFI knows more than the address; an empty
    address means the mail's) and ``recipients`` (PRT RCT; default one per
    ``mail.recipients``).
    """

    action: Action
    cda: bytes = field(repr=False)
    document: CdaDocument
    mail: ReceivedMailFacts
    route: Route
    control_id: str
    now: datetime
    flags: MetaFlags | None = None
    entry: DocumentEntry | None = None
    submission_set: SubmissionSet | None = None
    sender: Party | None = None
    recipients: tuple[Party, ...] | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "action", Action(self.action))
        except ValueError:
            raise ValueError(
                f"action must be one of {', '.join(a.value for a in EVENTS)}"
            ) from None
        if not self.cda:
            raise ValueError("the MDM carries a CDA document: no bytes given")
        if self.document.size and self.document.size != len(self.cda):
            raise ValueError("the CDA header was not read from these CDA bytes")
        if not self.control_id.strip():
            raise ValueError("the MDM needs its own control id (MSH-10)")

    @property
    def event(self) -> str:
        return EVENTS[self.action][0]

    @property
    def message_type(self) -> str:
        return f"{c.MSG_MDM}^{self.event}^{c.STRUCTURE_MDM}"

    def render(self) -> str:
        """The message as text, segments joined by CR."""
        return render_mdm(self)

    def encode(self) -> bytes:
        """The message in UTF-8, as MSH-18 says."""
        return build_mdm(self)


# --- helpers the flows call --------------------------------------------------------------------


def action_of(value: str | None) -> Action:
    """The action the XDM extra-metadata "action" asks: absent → new, ``C`` → replace, ``D`` →
    delete; ``InvalidInput`` ``LPS_UNKNOWN_ACTION`` otherwise."""
    code = (value or "").strip().upper()
    if not code:
        return Action.NEW
    if code == c.XDM_ACTION_REPLACE:
        return Action.REPLACE
    if code == c.XDM_ACTION_DELETE:
        return Action.DELETE
    raise InvalidInput(
        f"XDM metadata action {code[:10]!r} is neither C nor D", code="LPS_UNKNOWN_ACTION"
    )


def visibility_flags(entry: DocumentEntry | None, *, modif_conf_code: bool = False) -> MetaFlags:
    """MASQUE_PS / INVISIBLE_PATIENT / INVISIBLE_REP_LEGAUX from the DocumentEntry's TRE_A07
    confidentialityCodes (``Y`` when present), MODIF_CONF_CODE as the caller says."""
    found: dict[str, bool] = {name: False for name in set(_VISIBILITY_CODES.values())}
    for code in entry.confidentiality_codes if entry else ():
        attribute = _VISIBILITY_CODES.get(code.code.strip().upper())
        if attribute and code.scheme in ("", xds_k.CS_VISIBILITY):
            found[attribute] = True
    return MetaFlags(**found, modif_conf_code=modif_conf_code)


# --- building ----------------------------------------------------------------------------------


def build_mdm(mdm: LpsMdm) -> bytes:
    """The MDM as bytes: UTF-8 (MSH-18 ``UNICODE UTF-8``), segments ended by CR."""
    return render_mdm(mdm).encode(codec_for(c.CHARSET_UTF8))


def render_mdm(mdm: LpsMdm) -> str:
    """``MSH EVN PID PV1 ORC OBR TXA OBX PRT… OBX OBX×4``, each segment ended by CR."""
    doc = mdm.document
    patient = doc.patient
    if patient is None:
        raise InvalidInput("the CDA has no recordTarget/patientRole", code="LPS_NO_PATIENT")
    event, result_status, order_control = EVENTS[mdm.action]
    type_code = _document_type(doc, mdm.entry)
    parent = doc.replaced_id if mdm.action is not Action.NEW else None
    if mdm.action is Action.REPLACE and parent is None:
        raise InvalidInput(
            "a replacement (MDM^T10) needs the replaced document's id (CDA relatedDocument RPLC)",
            code="LPS_NO_PARENT_ID",
        )
    flags = mdm.flags if mdm.flags is not None else visibility_flags(mdm.entry)
    received = mdm.mail.received_at or mdm.now
    segments = [
        _segment(
            "MSH",
            "^~\\&",
            mdm.route.sending_application,
            mdm.route.sending_facility,
            mdm.route.receiving_application,
            mdm.route.receiving_facility,
            _dtm(mdm.now),
            "",
            _components(c.MSG_MDM, event, c.STRUCTURE_MDM),
            escape(mdm.control_id.strip()),
            mdm.route.processing_id or "P",
            c.LPS_HL7_VERSION,
            "",
            "",
            "",
            "",
            c.COUNTRY_FRANCE,
            c.CHARSET_UTF8,
            "",
            "",
            PROFILE,
        ),
        _segment("EVN", "", _dtm(received), "", "", "", _dtm(mdm.mail.date)),
        _pid(patient, mdm.entry),
        _segment("PV1", "1", c.PATIENT_CLASS_NOT_APPLICABLE),
        _segment("ORC", order_control),
        _segment("OBR", "1", "", "", type_code),
        _txa(doc, type_code, parent),
        _obx(
            "1",
            c.VALUE_TYPE_ED,
            type_code,
            _ed(c.ED_SUBTYPE_XML, mdm.cda),
            result_status,
        ),
        *_participants(mdm),
        _obx(
            "2",
            c.VALUE_TYPE_ED,
            _components(escape(mdm.mail.message_id.strip()), escape(mdm.mail.subject.strip())),
            _ed("", mdm.mail.body.encode("utf-8")),
            c.RESULT_FINAL,
        ),
    ]
    for set_id, item in enumerate(c.LPS_META_ITEMS, start=3):
        value = c.YES if getattr(flags, _FLAG_ATTRIBUTES[item], None) else c.NO
        segments.append(
            _obx(
                str(set_id),
                "CWE",
                _components(item, escape(c.META_LABELS[item]), c.META_TABLE),
                _components(value, "", c.YES_NO_TABLE),
                c.RESULT_FINAL,
            )
        )
    return "".join(segment + "\r" for segment in segments)


def _pid(patient: CdaPatient, entry: DocumentEntry | None) -> str:
    ids = []
    ins = patient.ins
    if ins is not None and ins.extension:
        ids.append(_cx(ins, INS_NAMESPACES.get(ins.root, ""), c.ID_TYPE_INS))
    ids += [_cx(i, "", c.ID_TYPE_PATIENT_INTERNAL) for i in patient.other_ids if i.extension]
    if not ids:
        raise InvalidInput(
            "the CDA recordTarget has no patient identifier (id with an extension)",
            code="LPS_NO_PATIENT_ID",
        )
    name = patient.name
    family = patient.birth_family_name or (name.family[0].value if name.family else "")
    first = patient.first_given_name or (name.given[0].value if name.given else "")
    if not family:
        raise InvalidInput("the CDA recordTarget has no patient name", code="LPS_NO_PATIENT_NAME")
    given_list = " ".join(p.value for p in name.given if p.qualifier is None)
    names = [
        _components(
            escape(family), escape(first), escape(given_list), "", "", "", c.NAME_TYPE_LEGAL
        )
    ]
    used = patient.used_family_name
    if used and used != family:
        used_given = next(
            (p.value for p in name.given if p.qualifier == cda_k.NAME_QUALIFIER_USED), first
        )
        names.append(
            _components(escape(used), escape(used_given), "", "", "", "", c.NAME_TYPE_USED)
        )
    birth = patient.birth_time
    if isinstance(birth, datetime):
        birth = birth.date()
    addresses = list(_source_addresses(entry))
    if patient.birthplace_code:
        addresses.append(
            _components(
                "", "", "", "", "", "", c.ADDRESS_TYPE_BIRTH, "", escape(patient.birthplace_code)
            )
        )
    fields = [""] * 33
    fields[0] = "PID"
    fields[3] = "~".join(ids)
    fields[5] = "~".join(names)
    fields[7] = birth.strftime("%Y%m%d") if birth else ""
    fields[8] = _SEXES.get((patient.gender or "").strip().upper(), "U" if patient.gender else "")
    fields[11] = "~".join(addresses)
    fields[31] = c.IDENTITY_KNOWN
    fields[32] = c.IDENTITY_VALIDATED if ins is not None and ins.extension else ""
    return _segment(*fields)


def _source_addresses(entry: DocumentEntry | None) -> list[str]:
    """The XAD repetitions of the XDM ``sourcePatientInfo`` ``PID-11`` (HL7-encoded already),
    birthplace (BDL) ones left out: the CDA gives that one."""
    found: list[str] = []
    for line in entry.source_patient_info if entry else ():
        if not line.startswith("PID-11|"):
            continue
        for rep in line[len("PID-11|") :].split("~"):
            parts = rep.split("^")
            if not rep.strip("^ ") or set(rep) & set("|\r\n"):
                continue
            if len(parts) > 6 and parts[6].strip().upper() == c.ADDRESS_TYPE_BIRTH:
                continue
            found.append(rep.rstrip("^"))
    return found


def _txa(doc: CdaDocument, type_code: str, parent: Identifier | None) -> str:
    activity = next((e.start for e in doc.service_events if e.start), None) or doc.effective_time
    legal = doc.legal_authenticator.person_id if doc.legal_authenticator else None
    fields = [""] * 23
    fields[0] = "TXA"
    fields[1] = "1"
    fields[2] = type_code.split("^", 1)[0]
    fields[3] = c.PRESENTATION_TEXT
    fields[4] = _dtm(activity)
    fields[12] = _ei(doc.id)
    fields[13] = _ei(parent) if parent else ""
    fields[17] = c.COMPLETION_AUTHENTICATED
    fields[22] = escape(legal.extension or legal.root) if legal else ""
    return _segment(*fields)


def _participants(mdm: LpsMdm) -> list[str]:
    mail = mdm.mail
    given = mdm.sender or Party("")
    author = _submission_author(mdm.submission_set)
    person = given.person or (author[0] if author else None)
    if person is None and not given.device:
        person = next(
            (p for p in map(PersonRef.from_cda, mdm.document.authors) if p is not None), None
        )
    sender = Party(
        given.address.strip() or mail.sender.strip(),
        person,
        given.organization or (author[1] if author else None),
        given.device,
    )
    recipients = (
        mdm.recipients
        if mdm.recipients is not None
        else tuple(Party(a) for a in mail.recipients if a.strip())
    )
    segments = [_prt(c.PARTICIPATION_SENDER, sender)]
    segments += [_prt(c.PARTICIPATION_RECIPIENT, r) for r in recipients]
    segments += [_prt(c.PARTICIPATION_REPLY_TO, Party(a)) for a in mail.reply_to if a.strip()]
    return segments


def _submission_author(
    submission_set: SubmissionSet | None,
) -> tuple[PersonRef | None, OrganizationRef | None] | None:
    """The sender as the XDM submission set names it: its first author's person and institution."""
    if submission_set is None or not submission_set.authors:
        return None
    author = submission_set.authors[0]
    person = PersonRef.from_xcn(author.person)
    organization = OrganizationRef.from_xon(author.institutions[0] if author.institutions else "")
    if person is None and organization is None:
        return None
    return person, organization


def _prt(role: str, party: Party) -> str:
    return _segment(
        "PRT",
        "",
        c.PRT_ACTION_UNCHANGED,
        "",
        _components(role, escape(c.PARTICIPATION_LABELS[role]), c.PARTICIPATION_TABLE),
        party.person.render() if party.person else "",
        "",
        "",
        party.organization.render() if party.organization else "",
        "",
        escape(party.device),
        "",
        "",
        "",
        "",
        _components("", "", c.TELECOM_X400, escape(party.address.strip())),
    )


def _obx(set_id: str, value_type: str, code: str, value: str, status: str) -> str:
    return _segment("OBX", set_id, value_type, code, "", value, "", "", "", "", "", status)


def _ed(subtype: str, data: bytes) -> str:
    """ED ``^text^<subtype>^Base64^<data>`` (OBX-5.1 source application empty)."""
    encoded = base64.b64encode(data).decode("ascii")
    return "^".join(["", c.ED_TYPE_TEXT, subtype, c.ED_BASE64_TEXT, encoded])


def _document_type(doc: CdaDocument, entry: DocumentEntry | None) -> str:
    """OBR-4 / OBX-3 CE: the CDA ``code`` (else the XDM typeCode), ``LN`` or ``TRE_A05``."""
    xds = entry.type_code if entry is not None else None
    if doc.code is not None and doc.code.code:
        code, label, system = doc.code.code, doc.code.display_name, doc.code.code_system
        if not label and xds is not None and xds.code == code:
            label = xds.display_name
    elif xds is not None and xds.code:
        code, label, system = xds.code, xds.display_name, xds.scheme
    else:
        raise InvalidInput("the document has no type code (CDA code)", code="LPS_NO_TYPE_CODE")
    coding = _CODING_SYSTEMS.get(system or "", system or "")
    return _components(escape(code), escape(label or ""), escape(coding))


def _cx(identifier: Identifier, namespace: str, type_code: str) -> str:
    return _components(
        escape(identifier.extension or ""),
        "",
        "",
        _hd(namespace, identifier.root),
        type_code,
    )


def _ei(identifier: Identifier) -> str:
    """TXA-12/13 (``profils-messages.md``): ``extension^^root^ISO``, or the root alone."""
    if identifier.extension:
        return _components(
            escape(identifier.extension), "", escape(identifier.root), c.UNIVERSAL_ID_ISO
        )
    return escape(identifier.root)


def _hd(namespace: str, oid: str) -> str:
    """An HD as sub-components: ``namespace&OID&ISO``, or the namespace alone."""
    parts = [escape(namespace.strip()), escape(oid.strip())]
    if oid.strip():
        parts.append(c.UNIVERSAL_ID_ISO)
    return "&".join(parts).rstrip("&")


def _dtm(value: datetime | date | None) -> str:
    """HL7 DTM in French local time, to the second (an aware time is converted; a naive one is
    taken as local already); a date alone gives ``YYYYMMDD``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(PARIS)
        return value.strftime("%Y%m%d%H%M%S")
    return value.strftime("%Y%m%d")


def _components(*parts: str) -> str:
    return "^".join(parts).rstrip("^")


def _segment(*fields: str) -> str:
    return "|".join(fields).rstrip("|")


def _part(parts: list[str], index: int) -> str:
    return parts[index].strip() if index < len(parts) else ""


def _hd_parts(value: str) -> tuple[str, str]:
    """``namespace&OID&ISO`` → (namespace, OID) of an XDS value (a bare OID is taken as one)."""
    subs = value.split("&")
    namespace, oid = subs[0].strip(), _part(subs, 1)
    if not oid and _OID.fullmatch(namespace):
        return "", namespace
    return namespace, oid


__all__ = [
    "EVENTS",
    "PROFILE",
    "LpsMdm",
    "OrganizationRef",
    "Party",
    "PersonRef",
    "ReceivedMailFacts",
    "Route",
    "action_of",
    "build_mdm",
    "render_mdm",
    "visibility_flags",
]
