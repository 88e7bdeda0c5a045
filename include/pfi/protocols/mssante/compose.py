"""Compose the MSSanté mail of one delivery: one recipient, one patient, one ``EmailMessage``.

Sources: volet "Transmission de document(s) CDA en HL7v2" v2.1 ``mapping-mss.md`` (From = the
application mailbox, To = PRT ``RCT`` PRT-15.4, Reply-To = PRT ``REPLY``, body = CORPSMAIL_*,
Sender not transmitted), ``meta-dmp-mss.md`` (ACK_RECEPTION, ACK_LECTURE_MSS, NTE ``FIN``);
Référentiel #2 client rules as drafted for Ségur (spec-facts §4.1, §6.2): one patient per mail,
``IHE_XDM.ZIP`` + the same document as PDF (SC.MSS/CONF.23), subject
``XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>`` (SC.MSS/CONF.25), ``X-MSS-INS``
/ ``X-MSS-CODECDA`` / ``X-MSS-NIL`` (SC.MSS/CONF.14-16), ``X-MSS-MES: FIN`` (SC.MSS/CONF.21),
text/plain UTF-8 body ending with the "generated automatically" mention and a contact address
(SC.MSS.12-13), ``Message-ID`` on every mail (SC.MSS.10).

Who gets a mail is **not** decided here: :func:`mail_orders` reads the routing of
:func:`pfi.protocols.hl7v2.rules.decide_request` (the one rule table) and the PRT recipients; the patient's
address is :meth:`pfi.protocols.ins.InsPolicy.patient_mailbox` (``<matricule INS>@patient.mssante.fr``,
qualified INS only, SC.MSS.14).

Decisions where the sources are silent or drafts:

- *One mail per delivery*: the ledger has one delivery per (document, recipient); each mail has
  one ``To`` so that a DSN or MDN names one delivery, and a refusal of one recipient never
  blocks the others. A request carrying two CDAs (an ORU with N1 and N3) therefore gives each
  recipient two mails, one per document, each with its own XDM.
- *Who is the patient*: the PID of the request, whose INS intake checked against the CDA header
  (``INS_MISMATCH_*``): the XDM's ``patientId`` and the subject's name, date of birth come from
  that one patient.
- *Message-ID* = ``<request_id@mailbox domain>``: fixed by the ledger before the first attempt,
  so a retry re-sends the **same** Message-ID (receivers may deduplicate) and every notification
  coming back is matched by it.
- *Acknowledgement requests*: ACK_RECEPTION=Y asks for a DSN (SMTP ``NOTIFY=SUCCESS,FAILURE``,
  ``ENVID`` = request id, RFC 3461, when the server offers DSN) and writes the draft's
  ``Return-Receipt-To`` header; ACK_LECTURE_MSS=Y writes ``Disposition-Notification-To``
  (RFC 8098). Both point to the sending application mailbox, which is polled.
- *Attachments*: the IHE_XDM.ZIP (:func:`pfi.protocols.xdm.pack_xdm`), then the PDF of an N1 CDA, taken
  from its ``nonXMLBody`` (the very bytes the CDA carries, never a second rendering:
  SC.CDA/DD.12). An N3 document goes without a PDF (no rendering engine yet). A deletion goes
  with the XDM only: the withdrawn document is not shown again.
- *Bodies*: the producer's CORPSMAIL_PS / CORPSMAIL_PATIENT when given and readable, else the
  site's template for the audience and action; a replacement or deletion with a producer body
  gets the "annule et remplace" / "doit être supprimé" notice first (SC.MSS.15.PFI, IG
  ``exemples.md``).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime

from pfi.base.errors import InvalidInput
from pfi.protocols import xds
from pfi.protocols.cda import CdaDocument, pdf_of, read_cda
from pfi.protocols.hl7v2.model import Action, Hl7Request
from pfi.protocols.hl7v2.rules import Decision
from pfi.protocols.ins import InsPolicy
from pfi.protocols.mssante import constants as k
from pfi.protocols.mssante.config import MssConfig
from pfi.protocols.xdm import pack_xdm

#: Ledger channels of this module.
PROFESSIONAL = "mss_professional"
PATIENT = "mss_patient"
CHANNELS = (PROFESSIONAL, PATIENT)

#: A plain ``local@domain.tld`` address (what PRT-15.4 must hold; no display name, no spaces).
_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")

_ACTIONS = {"new": Action.NEW, "replace": Action.REPLACE, "delete": Action.DELETE}


@dataclass(frozen=True)
class MailOrder:
    """One mail to send: to whom (channel + address), which document, under which request id."""

    channel: str
    recipient: str = field(repr=False)
    action: Action
    request_id: uuid.UUID
    #: The CDA ``id`` (``root^extension``) of the document; ``None``: the request's first CDA.
    document_unique_id: str | None = None
    delivery_id: int | None = None
    #: The patient's INS is qualified (``X-MSS-INS: O``), as the routing decision found it.
    qualified_ins: bool = False


@dataclass(frozen=True)
class Mailbox:
    """The sending application mailbox (BAL applicative): address, display name, its site."""

    address: str
    display_name: str = ""
    #: FINESS géographique of the mailbox's site: the XDM submission set's author institution
    #: when the request names no sending structure (PRT ``SB`` PRT-8).
    finess_geo: str = ""

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[-1].lower()


@dataclass(frozen=True)
class SiteInfo:
    """The establishment as the mail and its XDM name it (from ``[site]``)."""

    name: str = ""
    structure_oid: str = ""
    software_name: str = "PFI-Airflow"


@dataclass(frozen=True)
class ComposedMail:
    """A mail ready for SMTP: the message and its envelope (sender, one recipient, DSN)."""

    message: EmailMessage = field(repr=False)
    message_id: str
    sender: str
    recipient: str = field(repr=False)
    channel: str
    request_id: uuid.UUID
    document_unique_id: str
    #: SMTP DSN wanted (ACK_RECEPTION=Y): ``NOTIFY=SUCCESS,FAILURE``, ``ENVID`` = request id.
    dsn: bool = False
    #: An MDN was asked for (ACK_LECTURE_MSS=Y).
    mdn: bool = False
    attachments: tuple[str, ...] = ()

    @property
    def envelope_id(self) -> str:
        return str(self.request_id)

    def as_bytes(self) -> bytes:
        """The wire form (CRLF line ends, RFC 5322 folding)."""
        return self.message.as_bytes(policy=SMTP_POLICY)


def message_id_for(request_id: uuid.UUID | str, mailbox: Mailbox | str) -> str:
    """``<request_id@domain>``: the same for every attempt of a delivery."""
    domain = mailbox.domain if isinstance(mailbox, Mailbox) else mailbox.rsplit("@", 1)[-1]
    return f"<{request_id}@{domain.lower()}>"


def request_id_of(message_id: str) -> uuid.UUID | None:
    """The request id inside a Message-ID we wrote (``None`` for anyone else's)."""
    match = re.match(r"^\s*<?([0-9a-fA-F-]{36})@", message_id or "")
    if not match:
        return None
    try:
        return uuid.UUID(match.group(1))
    except ValueError:
        return None


# --- who gets a mail --------------------------------------------------------------------------


def mail_orders(
    request: Hl7Request,
    decision: Decision,
    policy: InsPolicy,
    *,
    request_ids: dict[str, uuid.UUID] | None = None,
) -> list[MailOrder]:
    """The mails a request asks for, from the rule table's routing (never a second table).

    One order per professional PRT ``RCT`` address when the routing says professionals, and one
    to the patient's INS mailbox when it says patient, for the request's first CDA. A refused
    decision raises its first failure (the volet's code). ``request_ids`` (address → uuid) fixes
    the ids; new ones are drawn otherwise (e.g. ``pfi mss compose --dry-run``).
    """
    decision.raise_for_failures()
    ids = request_ids or {}
    qualified = policy.is_qualified(
        request.patient.ins_identity, request.patient.identity_reliability
    )
    orders = []
    if decision.routing.professionals:
        seen: set[str] = set()
        for participant in request.professional_recipients:
            address = participant.address.strip().lower()
            if address in seen:
                continue
            seen.add(address)
            orders.append(
                MailOrder(
                    PROFESSIONAL,
                    address,
                    request.action,
                    ids.get(address, uuid.uuid4()),
                    qualified_ins=qualified,
                )
            )
    if decision.routing.patient:
        address = patient_address(request, policy)
        orders.append(
            MailOrder(
                PATIENT, address, request.action, ids.get(address, uuid.uuid4()), qualified_ins=True
            )
        )
    return orders


def patient_address(request: Hl7Request, policy: InsPolicy) -> str:
    """``<matricule INS>@patient.mssante.fr``; InvalidInput without a qualified INS."""
    patient = request.patient
    try:
        return policy.patient_mailbox(patient.ins_identity, patient.identity_reliability)
    except InvalidInput as exc:
        raise InvalidInput(
            f"no mail to the patient without a qualified INS ({exc.code})", code=k.NO_PATIENT_INS
        ) from None


def _cda_recipients(request: Hl7Request, document_unique_id: str) -> set[str]:
    """The ``informationRecipient`` addresses of the request's CDA ``document_unique_id``, as
    intake took them for a volet v1.2 request without PRT (the patient's own never)."""
    for document in request.documents:
        if document.format != "cda":
            continue
        cda = read_cda(document.content)
        if str(cda.id) == document_unique_id:
            return {a.strip().lower() for a in cda.recipient_addresses}
    return set()


def order_for_delivery(
    delivery, document_unique_id: str, request: Hl7Request, policy: InsPolicy
) -> MailOrder:
    """The mail order of a ledger delivery (``pfi.ledger.Delivery``)."""
    if delivery.channel == PROFESSIONAL:
        addresses = {p.address.strip().lower() for p in request.professional_recipients}
        if not request.professional_recipients:  # volet v1.2: the professionals the CDA names
            addresses = _cda_recipients(request, document_unique_id)
        if delivery.recipient not in addresses:
            raise InvalidInput(
                "the delivery's recipient is neither a PRT RCT address of the request nor, "
                "without PRT, a recipient its CDA names",
                code=k.UNKNOWN_RECIPIENT,
            )
        recipient = delivery.recipient
    elif delivery.channel == PATIENT:
        if not delivery.qualified_ins:
            raise InvalidInput(
                "no mail to the patient without a qualified INS", code=k.NO_PATIENT_INS
            )
        recipient = patient_address(request, policy)
    else:
        raise ValueError(f"not an MSSanté channel: {delivery.channel}")
    return MailOrder(
        delivery.channel,
        recipient,
        _ACTIONS[delivery.action],
        delivery.request_id,
        document_unique_id,
        delivery.id,
        qualified_ins=bool(delivery.qualified_ins),
    )


# --- the mail ---------------------------------------------------------------------------------


def compose(
    request: Hl7Request,
    order: MailOrder,
    mailbox: Mailbox,
    config: MssConfig,
    *,
    site: SiteInfo | None = None,
    now: datetime | None = None,
) -> ComposedMail:
    """Build the mail of one order. Raises InvalidInput when the request cannot be mailed."""
    now = now or datetime.now(UTC)
    if not _ADDRESS.fullmatch(order.recipient or ""):
        raise InvalidInput("the recipient is not a mail address (PRT-15.4)", code=k.BAD_ADDRESS)
    site = site or SiteInfo(name=config.sender_name)
    cda_bytes, cda = _document(request, order.document_unique_id)
    to_patient = order.channel == PATIENT
    flags = request.flags
    values = _placeholders(request, cda, config, site.name)
    if not values["contact"]:
        replies = [p.address for p in request.reply_to if p.address]
        values["contact"] = replies[0] if replies else mailbox.address

    msg = EmailMessage()
    msg["From"] = Address(
        display_name=config.sender_name or mailbox.display_name, addr_spec=mailbox.address
    )
    msg["To"] = order.recipient
    reply_to = [p.address for p in request.reply_to if p.address] or (
        [config.reply_to] if config.reply_to else []
    )
    if reply_to and not (to_patient and flags.patient_reply_closed):
        msg["Reply-To"] = ", ".join(reply_to)
    msg["Subject"] = _one_line(config.template("subject").format_map(values))
    msg["Date"] = format_datetime(now)
    message_id = message_id_for(order.request_id, mailbox)
    msg["Message-ID"] = message_id
    # Statistics headers of the ANS (SC.MSS/CONF.14-16).
    msg[k.X_MSS_INS] = "O" if order.qualified_ins else "N"
    if cda.code is not None and cda.code.code:
        msg[k.X_MSS_CODECDA] = cda.code.code
    msg[k.X_MSS_NIL] = config.software_reference
    if to_patient and flags.patient_reply_closed:
        msg[k.X_MSS_MES] = k.MES_FIN  # SC.MSS/CONF.21: the patient cannot answer
    # A DSN is asked of every mail (where the operator offers DSN): beyond the producer's receipt
    # (ZAM^Z02, ACK_RECEPTION), it tells whether a mail whose sending worker died was taken, so
    # that it is never mailed twice (pfi.flows.mssante). The Return-Receipt-To header only when
    # the producer asked for the receipt.
    dsn = config.request_dsn
    mdn = bool(flags.ack_lecture_mss)
    if dsn and flags.ack_reception:
        msg["Return-Receipt-To"] = mailbox.address
    if mdn:
        msg["Disposition-Notification-To"] = mailbox.address

    msg.set_content(_body(request, order, config, values), subtype="plain", charset="utf-8")
    attachments = [k.XDM_FILENAME]
    msg.add_attachment(
        _xdm(request, order, cda_bytes, cda, mailbox, site, config, now),
        maintype="application",
        subtype="zip",
        filename=k.XDM_FILENAME,
    )
    if order.action is not Action.DELETE and cda.level == 1:
        pdf = pdf_of(cda)  # the N1 body's own bytes (SC.CDA/DD.12): InvalidInput if not a PDF
        name = pdf_filename(cda, values)
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=name)
        attachments.append(name)
    return ComposedMail(
        message=msg,
        message_id=message_id,
        sender=mailbox.address,
        recipient=order.recipient,
        channel=order.channel,
        request_id=order.request_id,
        document_unique_id=str(cda.id),
        dsn=dsn,
        mdn=mdn,
        attachments=tuple(attachments),
    )


def _document(request: Hl7Request, unique_id: str | None) -> tuple[bytes, CdaDocument]:
    """The CDA of the order (by unique id), read; one patient per mail by construction."""
    candidates = [d for d in request.documents if d.format == "cda"]
    if not candidates:
        raise InvalidInput("the request carries no CDA document to mail", code=k.NO_DOCUMENT)
    for document in candidates:
        cda = read_cda(document.content)
        if unique_id is None or str(cda.id) == unique_id:
            return document.content, cda
    raise InvalidInput("the request does not carry the delivery's document", code=k.NO_DOCUMENT)


def _placeholders(
    request: Hl7Request, cda: CdaDocument, config: MssConfig, site_name: str
) -> dict[str, str]:
    patient = request.patient
    type_label = (cda.code.display_name if cda.code else "") or ""
    return {
        "title": cda.title or type_label or "Document",
        "type_label": type_label,
        "birth_name": (patient.birth_name or "").upper(),
        "given_name": patient.first_given_name or "",
        "birth_date": _french_date(patient.birth_date),
        "site": site_name or config.sender_name,
        "sender_name": config.sender_name,
        "contact": config.contact_address or config.reply_to or "",
        "document_date": _french_date(cda.effective_time),
    }


def _french_date(value: str | date | datetime | None) -> str:
    if isinstance(value, datetime | date):
        return value.strftime("%d/%m/%Y")
    digits = (value or "")[:8]
    if len(digits) == 8 and digits.isdigit():
        return f"{digits[6:8]}/{digits[4:6]}/{digits[0:4]}"
    return ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _producer_body(request: Hl7Request, to_patient: bool) -> str | None:
    raw = request.mail_body_patient if to_patient else request.mail_body_ps
    if not raw:
        return None
    for encoding in ("utf-8", "cp1252"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
        if text and all(ch.isprintable() or ch in "\n\t" for ch in text):
            return text + "\n"
    return None


def _body(request: Hl7Request, order: MailOrder, config: MssConfig, values: dict) -> str:
    to_patient = order.channel == PATIENT
    audience = "patient" if to_patient else "professional"
    own = _producer_body(request, to_patient)
    if own is None:
        body = config.template(f"body_{audience}_{order.action.value}").format_map(values)
    elif order.action is Action.REPLACE:
        body = config.template("replace_notice").format_map(values) + own
    elif order.action is Action.DELETE:
        body = config.template("delete_notice").format_map(values) + own
    else:
        body = own
    closed = to_patient and request.flags.patient_reply_closed
    footer = config.template("footer_no_reply" if closed else "footer").format_map(values)
    return body + footer


def pdf_filename(cda: CdaDocument, values: dict[str, str]) -> str:
    """``AAAAMMJJ_<titre>.pdf`` in ASCII (IG example naming; no patient name in file names)."""
    when = cda.effective_time.strftime("%Y%m%d") if cda.effective_time else ""
    title = unicodedata.normalize("NFKD", values["title"]).encode("ascii", "ignore").decode()
    title = re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")[:60] or "document"
    return f"{when}_{title}.pdf" if when else f"{title}.pdf"


#: The extra-metadata "action" of the XDM (volet LPS): replacement C, deletion D.
_XDM_ACTIONS = {Action.REPLACE: "C", Action.DELETE: "D"}


def _xdm(
    request: Hl7Request,
    order: MailOrder,
    cda_bytes: bytes,
    cda: CdaDocument,
    mailbox: Mailbox,
    site: SiteInfo,
    config: MssConfig,
    now: datetime,
) -> bytes:
    """The IHE_XDM.ZIP of one CDA: the CI-SIS CDA → XDS mapping of :mod:`pfi.protocols.xds`.

    The submission set is this mail: a fresh uniqueId under the site's structure OID, the
    sending structure (PRT ``SB`` PRT-8, else the mailbox's FINESS) and software as author,
    PV1-2 as contentTypeCode, the recipient as ``intendedRecipient``. A replacement carries the
    ``RPLC`` association to the replaced document's uniqueId (IG-CDA ``exemples.md``).

    A replacement or a deletion also carries the extra-metadata "action" (``C`` / ``D``) the
    receiving PFI reads to send its DPI a T10 / T04 (volet LPS ``lien-entete-cda-meta-xds``):
    a slot named ``action`` on the DocumentEntry. The volet names the metadata but not its ebRIM
    encoding (spec-facts §2.5); receivers, this one included, accept any slot name ending in
    ``action``.
    """
    entry = xds.document_entry(cda, flags=request.flags, entry_id="Document01")
    if order.action in _XDM_ACTIONS:
        entry = replace(
            entry,
            extra_slots=(*entry.extra_slots, (k.XDM_ACTION_SLOT, (_XDM_ACTIONS[order.action],))),
        )
    sender = request.sender
    structure_id = (xds.structure_id_of(sender) if sender else "") or (
        f"1{mailbox.finess_geo}" if mailbox.finess_geo else ""
    )
    root = site.structure_oid or k.SOURCE_ID_ROOT
    authors = (
        [
            xds.institution_author(
                site.name or config.sender_name, structure_id, software_name=site.software_name
            )
        ]
        if structure_id
        else []
    )
    submission_set = xds.submission_set(
        unique_id=f"{root}.{order.request_id.int}",
        source_id=root,
        patient_id=entry.patient_id,
        submission_time=now,
        authors=authors,
        patient_class=request.visit.patient_class if request.visit else None,
        intended_recipients=[xds.mail_recipient(order.recipient)],
        title=cda.title,
    )
    associations = []
    replaced = xds.replaced_unique_id(cda)
    if order.action is Action.REPLACE and replaced:
        associations.append(xds.replacement_association(entry.entry_id, replaced))
    readme = (
        f"{site.name or config.sender_name} — {site.software_name} ({config.software_reference})"
    )
    return pack_xdm(
        [(entry, cda_bytes)],
        submission_set,
        date_time=now.astimezone(UTC).replace(tzinfo=None),
        associations=associations,
        readme=readme,
    )


__all__ = [
    "CHANNELS",
    "PATIENT",
    "PROFESSIONAL",
    "ComposedMail",
    "MailOrder",
    "Mailbox",
    "SiteInfo",
    "compose",
    "mail_orders",
    "message_id_for",
    "order_for_delivery",
    "patient_address",
    "pdf_filename",
    "request_id_of",
]
