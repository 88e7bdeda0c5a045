"""Receiving by MSSanté: application mailboxes → the volet's MDM to the DPI → error mails.

Volet "Transmission au LPS de documents CDA provenant d'un courriel MSSanté" v1.1 (DSR
PFI.CDA/HL7.01-03, PFI.MSS/UX.11-12; :mod:`pfi.protocols.hl7v2.lps`). Two steps, each safe to
replay:

1. :func:`poll_mailbox` — for one ``[[mailbox]]``: the INBOX's mails, oldest first, bounded. Each
   mail is kept byte for byte (``<data_dir>/mailboxes/<name>/<sha256>.eml``) and recorded in the
   ledger (item of kind ``mail``: source = the mailbox, checksum = SHA-256 of its bytes,
   ``original_ref`` = ``UIDVALIDITY/UID``, ``control_id`` = its Message-ID) **before** it is read.
   Then it is read (:mod:`pfi.protocols.mssante.inbound`), each ``IHE_XDM.ZIP`` with the
   hostile-archive reader, each CDA checked against its XDM entry (unique id, INS matricule and
   OID), and what it brings is recorded in one transaction: one ``document`` and one ``dpi``
   delivery per CDA and mail (``done``; recipient ``<mailbox>#<mail item id>``: the same document
   mailed again in another mail is a new message for the DPI, with that mail's group), or the
   mail refused with the PFI's coded reason (``rejected``: no XDM, unreadable or hostile XDM,
   identity contradicting the metadata), which gets the error mail at once and is moved to the
   errors folder.
2. :func:`deliver_to_dpi` — the due ``dpi`` deliveries through the one delivery queue
   (:func:`pfi.flows.queue.run_due`: backoff, give-up, leases): the MDM built from the kept mail,
   sent over MLLP, the DPI's synchronous ACK read. ``AA`` → sent; ``AE``/``AR`` → refused with
   the DPI's code (ERR-5, else ERR-3) and text; no answer, peer down → retried later (never an
   error mail for a transient fault; given up after ``[receiving.retry]``, the mail stays in the
   INBOX, ``failed`` in the ledger). Once every delivery of a mail is sent or refused, the mail
   moves to the processed folder (all sent) or gets its error mail and moves to the errors
   folder.

Nothing twice: one worker at a time reads a mailbox (a second one finds it busy and leaves it:
a ledger lock, :meth:`~pfi.ledger.Ledger.exclusive`), one at a time answers and moves a mail; a
mail already in the ledger (same bytes: a replay, a move that failed, a
UIDVALIDITY change renumbering the mailbox) is never recorded again — it is only moved where its
outcome says; a delivery is claimed by one worker; the MDM's MSH-10 is fixed by the delivery
(``PFIR<delivery id>``), so a DPI may recognise a resend after a lost ACK; one error mail per
mail, its Message-ID fixed by the mail (:func:`pfi.protocols.mssante.error_mail.reply_message_id`)
and its sending recorded in the trail first (``mss.error_mail.sending``, then ``…sent``). Mails
are moved, never deleted.

Settings (``[receiving]``, all optional; :class:`ReceivingConfig`)::

    processed_folder = "PFI-Traites"   # where a mail goes once every document reached the DPI
    errors_folder = "PFI-Erreurs"      # where a refused mail goes, after its error mail
    batch_size = 20                    # mails read per mailbox and run
    max_mail_bytes = 67108864          # larger mails are refused unread (MSS_MAIL_TOO_LARGE)
    dpi_application = "DPI"            # MSH-5 / MSH-6 of the MDM
    dpi_facility = ""                  # default: the mailbox's FINESS géographique
    [receiving.retry]                  # pfi.base.retry.RetryPolicy.from_mapping
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pfi.base.errors import ConfigurationError, InvalidInput, PfiError, RefusedByPartner
from pfi.base.files import write_atomically
from pfi.base.retry import RetryPolicy
from pfi.base.settings import Mailbox, Settings, section
from pfi.flows.queue import Outcome, run_due
from pfi.protocols.hl7v2 import lps, lps_ack

if TYPE_CHECKING:
    from collections.abc import Callable

    from pfi.ledger import Delivery, InboundItem, Ledger
    from pfi.protocols.mssante.inbound import ReceivedMail
    from pfi.protocols.xds.model import XdmDocument, XdmPackage

log = logging.getLogger(__name__)

CHANNEL = "dpi"
KIND = "mail"
EVENT_ERROR_MAIL_SENDING = "mss.error_mail.sending"
EVENT_ERROR_MAIL_SENT = "mss.error_mail.sent"
EVENT_MOVED = "mss.mail.moved"
#: The PFI's own reasons for refusing a received mail (French text for the human who reads the
#: error mail; the code goes into its subject).
NO_XDM = ("MSS_NO_XDM", "Le courriel ne contient pas de pièce jointe IHE_XDM.ZIP.")
XDM_EMPTY = ("XDM_NO_DOCUMENT", "L'archive IHE_XDM.ZIP ne contient aucun document.")
IDENTITY = ("MSS_IDENTITY_MISMATCH", "Le document CDA ne correspond pas à ses métadonnées XDM.")
_OWN_CODES = {NO_XDM[0], XDM_EMPTY[0], IDENTITY[0], "MSS_MIXED_ACTIONS"}
#: French wording of the other refusals, by code or by code family (the reader's own technical
#: text, English, follows it in the error mail and in the ledger).
REFUSAL_TEXTS = {
    "MSS_MAIL_TOO_LARGE": "Le courriel dépasse la taille maximale acceptée par la plateforme.",
    "MSS_MAIL_UNREADABLE": "Le courriel est illisible (structure MIME invalide ou incomplète).",
    "MSS_MAIL_NO_SENDER": "Le courriel n'indique pas d'expéditeur.",
    "XDM_": "L'archive IHE_XDM.ZIP est illisible ou non conforme ; elle a été refusée.",
    "CDA_": "Le document CDA de l'archive IHE_XDM.ZIP est illisible ou non conforme.",
}
DEFAULT_RETRY = RetryPolicy(
    first_delay=timedelta(minutes=1),
    factor=2.0,
    max_delay=timedelta(minutes=30),
    give_up_after=timedelta(days=3),
)


@section("receiving")
@dataclass(frozen=True)
class ReceivingConfig:
    """The ``[receiving]`` section (see the module docstring)."""

    processed_folder: str = "PFI-Traites"
    errors_folder: str = "PFI-Erreurs"
    batch_size: int = 20
    max_mail_bytes: int = 64 * 1024 * 1024
    dpi_application: str = "DPI"
    dpi_facility: str = ""
    retry: RetryPolicy = field(default=DEFAULT_RETRY)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReceivingConfig:
        raw = dict(settings.extra.get("receiving", {}) or {})
        retry = raw.pop("retry", None)
        known = set(cls.__dataclass_fields__) - {"retry"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigurationError(f"[receiving]: unknown setting(s) {', '.join(unknown)}")
        try:
            config = cls(
                **{
                    **raw,
                    "batch_size": int(raw.get("batch_size", 20)),
                    "max_mail_bytes": int(raw.get("max_mail_bytes", cls.max_mail_bytes)),
                },
                retry=RetryPolicy.from_mapping(retry) if retry else DEFAULT_RETRY,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"[receiving]: {exc}") from None
        if config.batch_size < 1 or config.max_mail_bytes < 1024:
            raise ConfigurationError("[receiving]: batch_size ≥ 1, max_mail_bytes ≥ 1024")
        if not config.processed_folder.strip() or not config.errors_folder.strip():
            raise ConfigurationError("[receiving]: the processed and errors folders are named")
        return config


class Imap(Protocol):
    """What the flow needs of :class:`pfi.protocols.mssante.imap.ImapClient`."""

    def select_folder(self, folder: str | None = None) -> int: ...
    def list_uids(self, limit: int = ..., *, after: int = 0) -> list[int]: ...
    def fetch(self, uid: int, *, max_bytes: int | None = None) -> bytes | None: ...
    def fetch_header(self, uid: int) -> bytes | None: ...
    def move(self, uid: int, folder: str) -> None: ...


class Mllp(Protocol):
    """What the flow needs of :class:`pfi.protocols.mllp.MllpClient`."""

    def exchange(self, message: bytes) -> bytes: ...


class Smtp(Protocol):
    def send(self, mail: Any) -> Any: ...


# --- 1. polling ----------------------------------------------------------------------------------


def poll_mailbox(
    ledger: Ledger,
    settings: Settings,
    mailbox: Mailbox,
    imap: Imap,
    *,
    smtp: Smtp,
    actor: str,
    config: ReceivingConfig | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Take the INBOX's mails of one application mailbox (see the module docstring); counts."""
    config = config or ReceivingConfig.from_settings(settings)
    counts = {"listed": 0, "recorded": 0, "accepted": 0, "refused": 0, "known": 0, "moved": 0}
    with ledger.exclusive(f"mailbox:{mailbox.name}", wait=False) as mine:
        if not mine:  # another worker reads this mailbox now: its mails are in hand
            log.info("mailbox %s is being read by another worker", mailbox.name)
            return counts | {"busy": 1}
        _poll(ledger, settings, config, mailbox, imap, smtp, counts, actor, now)
    return counts


def _poll(
    ledger: Ledger,
    settings: Settings,
    config: ReceivingConfig,
    mailbox: Mailbox,
    imap: Imap,
    smtp: Smtp,
    counts: dict[str, int],
    actor: str,
    now: datetime | None,
) -> None:
    validity = imap.select_folder("INBOX")
    failures: list[Exception] = []
    for uid in imap.list_uids(config.batch_size):
        counts["listed"] += 1
        try:
            _take_one(
                ledger, settings, config, mailbox, imap, smtp, uid, validity, counts, actor, now
            )
        except Exception as exc:  # this mail stays in the INBOX for the next poll; the others go on
            log.warning(
                "mail UID %s of %s left for the next poll: %s",
                uid,
                mailbox.name,
                getattr(exc, "code", type(exc).__name__),
            )
            failures.append(exc)
    if failures:  # the task turns red once the batch is done (the type and code only)
        raise failures[0]


def _take_one(
    ledger: Ledger,
    settings: Settings,
    config: ReceivingConfig,
    mailbox: Mailbox,
    imap: Imap,
    smtp: Smtp,
    uid: int,
    validity: int,
    counts: dict[str, int],
    actor: str,
    now: datetime | None,
) -> None:
    too_large: InvalidInput | None = None
    try:
        raw = imap.fetch(uid, max_bytes=config.max_mail_bytes)
    except InvalidInput as exc:  # too large to download: refused on its header alone
        too_large, raw = exc, imap.fetch_header(uid)
    if raw is None:  # moved meanwhile by another run
        return
    checksum = hashlib.sha256(raw).hexdigest()
    known = ledger.already_seen(mailbox.name, KIND, checksum)
    if known is not None and known.status in ("done", "rejected"):
        counts["known"] += 1
        if known.status == "rejected":  # its error mail may have failed last time: once
            _error_mail(ledger, mailbox, known, raw, smtp, actor=actor, now=now)
        counts["moved"] += settle(ledger, config, known, imap, uid=uid, actor=actor)
        return
    kept = _keep(settings, mailbox, checksum, raw)
    item_id, created = ledger.record_inbound(
        kind=KIND,
        source=mailbox.name,
        checksum=checksum,
        finess_geo=mailbox.finess_geo,
        original_ref=f"{validity}/{uid}",
        control_id=message_id_of(raw),
        size=len(raw),
        storage_path=str(kept),
        actor=actor,
    )
    counts["recorded"] += int(created)
    item = _take(ledger, settings, mailbox, item_id, checksum, raw, actor=actor, refused=too_large)
    if item.status == "rejected":
        counts["refused"] += 1
        _error_mail(ledger, mailbox, item, raw, smtp, actor=actor, now=now)
        counts["moved"] += settle(ledger, config, item, imap, uid=uid, actor=actor)
    else:
        counts["accepted"] += 1


def _keep(settings: Settings, mailbox: Mailbox, checksum: str, raw: bytes) -> Path:
    """The mail's bytes under a name fixed by its content (a replay writes the same file)."""
    folder = settings.data_dir / "mailboxes" / mailbox.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{checksum}.eml"
    if not path.exists():
        write_atomically(path, raw)
    return path


def _take(
    ledger: Ledger,
    settings: Settings,
    mailbox: Mailbox,
    item_id: int,
    checksum: str,
    raw: bytes,
    *,
    actor: str,
    refused: InvalidInput | None = None,
) -> InboundItem:
    """Read the mail and record what it brings (documents + dpi deliveries, or its refusal:
    ``refused`` when it is refused before being read, ``raw`` then being its header only)."""
    from pfi.protocols.mssante.inbound import read_mail

    common: dict[str, Any] = {"kind": KIND, "source": mailbox.name, "checksum": checksum}
    try:
        if refused is not None:
            raise refused
        mail = read_mail(raw)
        documents, action = documents_of(mail)
    except InvalidInput as exc:
        outcome = ledger.record_message(
            **common,
            status="rejected",
            reason_code=exc.code,
            reason_text=refusal_text(exc),
            actor=actor,
        )
        return outcome.item
    outcome = ledger.record_message(
        **common,
        status="done",
        control_id=(mail.message_id or "")[:200] or None,
        documents=documents,
        deliveries=[(CHANNEL, f"{mailbox.name}#{item_id}", "pending")],
        action=action,
        actor=actor,
    )
    return outcome.item


def message_id_of(raw: bytes) -> str | None:
    """The mail's Message-ID read from its header alone (the mail is recorded with it before it
    is read); None when it has none or the header cannot be read."""
    import email.parser
    import email.policy

    try:
        header = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
        value = " ".join(str(header.get("Message-ID") or "").split())
    except Exception:  # a hostile header: the mail is still recorded, by its bytes
        return None
    return value[:200] or None


def refusal_text(exc: InvalidInput) -> str:
    """The French text of a refusal (what the error mail says), with the technical detail."""
    code, detail = exc.code or "", str(exc)
    if code in _OWN_CODES:  # already said in French
        return detail
    for key in (code, code[:4]):
        if key in REFUSAL_TEXTS:
            return f"{REFUSAL_TEXTS[key]} ({code} : {detail})"
    return detail


def documents_of(mail: ReceivedMail) -> tuple[list[dict[str, Any]], str]:
    """The ledger rows of the mail's documents and the mail's action; InvalidInput with the
    PFI's reason when the mail cannot be taken."""
    if not mail.xdm_archives:
        raise InvalidInput(NO_XDM[1], code=NO_XDM[0])
    rows: list[dict[str, Any]] = []
    actions = set()
    for archive in mail.xdm_archives:
        package = _read_xdm(archive.data)
        for document in package.documents:
            rows.append(_document_row(package, document))
            actions.add(_action(package, document).value)
    if not rows:
        raise InvalidInput(XDM_EMPTY[1], code=XDM_EMPTY[0])
    if len(actions) > 1:
        raise InvalidInput(
            "Le courriel mêle des créations, remplacements ou suppressions de documents.",
            code="MSS_MIXED_ACTIONS",
        )
    return rows, actions.pop()


def _read_xdm(data: bytes) -> XdmPackage:
    from pfi.protocols.xdm import read_xdm

    return read_xdm(data)


def _document_row(package: XdmPackage, document: XdmDocument) -> dict[str, Any]:
    """The document's ledger row, after checking its CDA against its XDM entry."""
    from pfi.protocols.cda import read_cda

    cda = read_cda(document.content)
    entry = document.entry
    unique_id = str(cda.id)
    if unique_id != entry.unique_id:
        raise InvalidInput(IDENTITY[1] + " (identifiant du document)", code=IDENTITY[0])
    ins = cda.patient.ins if cda.patient else None
    matricule, _, authority = (entry.patient_id or "").partition("^^^")
    if ins is None or ins.extension != matricule or (ins.root or "") not in authority:
        raise InvalidInput(IDENTITY[1] + " (INS du patient)", code=IDENTITY[0])
    replaced = cda.replaced_id
    return {
        "unique_id": unique_id,
        "set_id": str(cda.set_id) if cda.set_id else None,
        "version": cda.version_number,
        "type_code": cda.code.code if cda.code else None,
        "type_display": (cda.code.display_name if cda.code else None) or None,
        "effective_time": cda.effective_time,
        "content_sha256": hashlib.sha256(document.content).hexdigest(),
        "replaces_unique_id": str(replaced) if replaced else None,
        # Its INS as the CDA gives it; whether it is qualified a mail does not say.
        "ins_matricule": ins.extension,
        "ins_oid": ins.root,
    }


def _action(package: XdmPackage, document: XdmDocument) -> lps.Action:
    """The volet's action: the XDM extra-metadata ``action`` (C, D), else RPLC → replace."""
    for slots in (document.entry.extra_slots, package.submission_set.extra_slots):
        for name, values in slots:
            if name.rsplit(":", 1)[-1].lower() == "action" and values:
                return lps.action_of(values[0])
    replaced = {new for new, _ in package.replacements()}
    return lps.Action.REPLACE if document.entry.entry_id in replaced else lps.Action.NEW


# --- 2. to the DPI -------------------------------------------------------------------------------


@dataclass
class DpiSender:
    """The ``send_one`` and ``after`` of the ``dpi`` channel for :func:`run_due`."""

    ledger: Ledger
    settings: Settings
    config: ReceivingConfig
    dpi: Mllp
    smtp_for: Callable[[Mailbox], Smtp]
    imap_for: Callable[[Mailbox], Imap]
    actor: str
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: One IMAP session per mailbox and run (INBOX selected), for the moves.
    _imaps: dict[str, Any] = field(default_factory=dict)

    def imap(self, mailbox: Mailbox) -> Imap:
        if mailbox.name not in self._imaps:
            client = self.imap_for(mailbox)
            client.select_folder("INBOX")
            self._imaps[mailbox.name] = client
        return self._imaps[mailbox.name]

    def close(self) -> None:
        for client in self._imaps.values():
            client.close()
        self._imaps.clear()

    def mailbox(self, name: str) -> Mailbox:
        for mailbox in self.settings.mailboxes:
            if mailbox.name == name:
                return mailbox
        raise ConfigurationError(f"no [[mailbox]] {name!r} in the settings (a mail came there)")

    def send_one(self, delivery: Delivery) -> Outcome:
        item = self.ledger.get_inbound(delivery.inbound_item_id or 0)
        raw = Path(item.storage_path or "").read_bytes()
        message = self.mdm(delivery, item, raw)
        answer = lps_ack.read_ack(self.dpi.exchange(message), control_id=_control_id(delivery))
        if answer.accepted:
            return Outcome.sent(answer.acknowledged_id or _control_id(delivery))
        code = answer.error_code or answer.code
        raise RefusedByPartner(
            answer.application_text or answer.condition_text or answer.label,
            code=f"DPI_{code}",
        )

    def mdm(self, delivery: Delivery, item: InboundItem, raw: bytes) -> bytes:
        from pfi.protocols.mssante.inbound import read_mail

        return mdm_for(
            read_mail(raw),
            self.settings,
            self.config,
            self.mailbox(item.source),
            unique_id=self.ledger.get_document(delivery.document_id).unique_id,
            action=lps.Action(delivery.action),
            control_id=_control_id(delivery),
            received_at=item.received_at,
            now=self.now(),
        )

    def after(self, delivery: Delivery, outcome: Outcome) -> None:
        """Once every delivery of the mail is final: the error mail when the DPI refused one,
        and the mail moved (processed / errors). A delivery given up after its retries (the DPI
        unreachable for ``[receiving.retry] give_up_after_hours``) is no refusal: no error mail,
        the mail stays in the INBOX, ``failed`` in the ledger for the operator."""
        item = self.ledger.get_inbound(delivery.inbound_item_id or 0)
        # Two workers finishing the last two documents of one mail: one answers and moves it.
        with self.ledger.exclusive(f"mail:{item.id}"):
            siblings = self.ledger.deliveries_asked_by(item.id)
            if any(d.status in ("pending", "held", "failed") for d in siblings):
                return
            if self.ledger.events(inbound_item_id=item.id, kind=EVENT_MOVED, limit=1):
                return  # settled by the other one
            mailbox = self.mailbox(item.source)
            failed = [d for d in siblings if d.status == "refused"]
            if failed:
                raw = Path(item.storage_path or "").read_bytes()
                first = failed[0]
                reason = (first.reason_code or "DPI_ERROR", first.reason_text or "")
                with contextlib.closing(self.smtp_for(mailbox)) as smtp:
                    _error_mail(
                        self.ledger, mailbox, item, raw, smtp, actor=self.actor, reason=reason
                    )
            settle(self.ledger, self.config, item, self.imap(mailbox), actor=self.actor)


def mdm_for(
    mail: ReceivedMail,
    settings: Settings,
    config: ReceivingConfig,
    mailbox: Mailbox,
    *,
    unique_id: str,
    action: lps.Action,
    control_id: str,
    received_at: datetime | None,
    now: datetime,
) -> bytes:
    """The volet's MDM for the document ``unique_id`` of a received mail (pure)."""
    from pfi.protocols.cda import read_cda

    for archive in mail.xdm_archives:
        package = _read_xdm(archive.data)
        for found in package.documents:
            if found.entry.unique_id != unique_id:
                continue
            own = mailbox.address.lower()
            facts = lps.ReceivedMailFacts(
                message_id=mail.message_id or "",
                sender=mail.sender,
                recipients=tuple(r for r in mail.recipients if r.lower() == own),
                subject=mail.subject,
                body=mail.body,
                date=mail.date,
                received_at=received_at,
                reply_to=mail.reply_to,
            )
            route = lps.Route(
                "PFI",
                settings.site.finess_juridique,
                config.dpi_application,
                config.dpi_facility or mailbox.finess_geo,
            )
            return lps.build_mdm(
                lps.LpsMdm(
                    action=action,
                    cda=found.content,
                    document=read_cda(found.content),
                    mail=facts,
                    route=route,
                    control_id=control_id,
                    now=now,
                    entry=found.entry,
                    submission_set=package.submission_set,
                )
            )
    raise InvalidInput("the kept mail no longer holds the document", code="MSS_KEPT_CHANGED")


def deliver_to_dpi(
    ledger: Ledger,
    settings: Settings,
    *,
    dpi: Mllp,
    smtp_for: Callable[[Mailbox], Smtp],
    imap_for: Callable[[Mailbox], Imap],
    actor: str,
    config: ReceivingConfig | None = None,
    limit: int = 50,
    now: datetime | None = None,
    drain_seconds: float = 0.0,
) -> dict[str, Any]:
    """Send the due ``dpi`` deliveries (see the module docstring), ``limit`` at a time, again
    while a claim comes back full for ``drain_seconds``; counts only."""
    config = config or ReceivingConfig.from_settings(settings)
    sender = DpiSender(ledger, settings, config, dpi, smtp_for, imap_for, actor)
    try:
        return run_due(
            ledger,
            CHANNEL,
            sender.send_one,
            policy=config.retry,
            actor=actor,
            limit=limit,
            now=now,
            after=sender.after,
            drain_seconds=drain_seconds,
        )
    finally:
        sender.close()


def _control_id(delivery: Delivery) -> str:
    return f"PFIR{delivery.id}"


# --- outcome: error mail, move -------------------------------------------------------------------


def settle(
    ledger: Ledger,
    config: ReceivingConfig,
    item: InboundItem,
    imap: Imap,
    *,
    actor: str,
    uid: int | None = None,
) -> int:
    """Move a mail whose outcome is final to its folder (1), else leave it (0). ``uid`` is the
    mail's UID in the selected folder, else the one recorded when its UIDVALIDITY still holds."""
    if item.status == "rejected":
        folder = config.errors_folder
    else:
        deliveries = ledger.deliveries_asked_by(item.id)
        if not deliveries or any(d.status in ("pending", "held", "failed") for d in deliveries):
            return 0
        all_sent = all(d.status == "sent" for d in deliveries)
        folder = config.processed_folder if all_sent else config.errors_folder
    if uid is None:
        validity, _, recorded = (item.original_ref or "").partition("/")
        if not recorded.isdigit() or str(imap.select_folder("INBOX")) != validity:
            return 0  # renumbered since: the next poll finds it by its bytes and moves it
        uid = int(recorded)
    imap.move(uid, folder)
    ledger.add_event(EVENT_MOVED, inbound_item_id=item.id, actor=actor, detail={"folder": folder})
    return 1


def _error_mail(
    ledger: Ledger,
    mailbox: Mailbox,
    item: InboundItem,
    raw: bytes,
    smtp: Smtp,
    *,
    actor: str,
    reason: tuple[str, str] | None = None,
    now: datetime | None = None,
) -> None:
    """The volet's error mail for this mail, once: to the mailbox's error mailbox, else to the
    sender; an MDN when the mail asked for one."""
    from pfi.protocols.mssante.error_mail import error_mail, reply_message_id
    from pfi.protocols.mssante.inbound import read_mail

    if ledger.events(inbound_item_id=item.id, kind=EVENT_ERROR_MAIL_SENT, limit=1):
        return
    code, text = reason or (item.reason_code or "MSS_REFUSED", item.reason_text or "")
    try:
        original = read_mail(raw)
    except InvalidInput:
        log.warning("mail item %s unreadable: no error mail can answer it", item.id)
        return
    message_id = reply_message_id(original, mailbox.address)
    try:
        reply = error_mail(
            original,
            from_address=mailbox.address,
            to_address=mailbox.error_mailbox,
            code=code.removeprefix("DPI_"),
            text=text,
            message_id=message_id,
            now=now,
        )
    except InvalidInput as exc:  # an automatic mail, no address to answer: said in the trail
        ledger.add_event(
            EVENT_ERROR_MAIL_SENT,
            inbound_item_id=item.id,
            actor=actor,
            detail={"skipped": exc.code},
        )
        return
    detail = {"message_id": message_id, "kind": reply.kind, "code": reply.code}
    ledger.add_event(EVENT_ERROR_MAIL_SENDING, inbound_item_id=item.id, actor=actor, detail=detail)
    try:
        smtp.send(reply)
    except RefusedByPartner as exc:  # e.g. 550 unknown sender: final, never tried again
        log.warning("error mail of mail item %s refused: %s", item.id, exc.code)
        detail = detail | {"refused": exc.code}
    except PfiError as exc:
        log.warning("error mail of mail item %s not sent: %s", item.id, exc.code)
        raise
    ledger.add_event(EVENT_ERROR_MAIL_SENT, inbound_item_id=item.id, actor=actor, detail=detail)


__all__ = [
    "EVENT_ERROR_MAIL_SENT",
    "EVENT_MOVED",
    "DpiSender",
    "ReceivingConfig",
    "deliver_to_dpi",
    "documents_of",
    "mdm_for",
    "poll_mailbox",
    "settle",
]
