"""The MSSanté executor: send the due deliveries, acknowledge, and read the notifications back.

One code path for first attempts and deferred retries (:func:`pfi.flows.queue.run_due`)::

    counts = deliver_due(ledger, settings, smtp_for, channel="mss_professional", actor=actor)
    counts = poll_notifications(ledger, settings, imap_for, actor=actor)

``smtp_for(mailbox)`` / ``imap_for(mailbox)`` turn a :class:`pfi.base.settings.Mailbox` into a client
(:class:`~pfi.protocols.mssante.smtp.SmtpClient`, :class:`~pfi.protocols.mssante.imap.ImapClient`): the Airflow hook
builds them from the ``pfi_mss_<mailbox>`` Connection, tests from the devkit servers.

For each claimed delivery: if the trail already holds its ``mss.sent`` (a worker sent it and
died before the outcome was recorded), it is recorded as sent without a second mail; else its
document's request is re-read (:func:`pfi.flows.archive.load_request`; the ledger keeps no
content) — who gets a mail is not decided again: the delivery row is intake's routing
decision —, the mail composed (:mod:`pfi.protocols.mssante.compose`) with the
Message-ID fixed by the delivery's request id, sent on the mailbox's SMTP session (one session
per mailbox and run), and the outcome recorded — sent (partner reference = Message-ID), retried
(4xx, network, TLS, configuration) or refused (5xx to this mail, invalid request).

Business acknowledgements (volet v2.1 ``ack-metier-zam.md``; :mod:`pfi.flows.producer_acks`), when the request
asked for them:

- ``ZAM^Z02`` (ACK_RECEPTION=Y): positive when the operator accepted the mail and no DSN was
  requested from it (the server offers no DSN), else when the DSN says ``delivered`` — or, when
  no DSN came within ``[mssante] dsn_wait_hours`` (default 24), on the SMTP acceptance; negative,
  with the SMTP code in ERR-5, when SMTP refused the mail (5xx), when the retries were given up,
  or when a DSN says ``failed`` (the delivery then becomes ``failed`` too). One Z02 per delivery;
  a failure reported after a positive Z02 gets a second one (control id suffix ``N``).
- ``ZAM^Z03`` (ACK_LECTURE_MSS=Y): from the MDN, negative with the volet's error code (900-906)
  when the MDN reports an integration error.

Every step writes the event trail the MSSanté traces are made of (SC.MSS/CONF.17-18,
:mod:`.traces`): ``mss.sending``, ``mss.sent``, ``mss.error``, ``mss.dsn``, ``mss.mdn``,
``mss.zam`` — codes, Message-IDs and mailbox names only, never a document nor a patient's
address (a professional's address is the delivery's own ``recipient``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pfi.base.connections import Lookup, from_environment
from pfi.base.errors import (
    ConfigurationError,
    InvalidInput,
    PfiError,
    TransientError,
    unexpected_summary,
)
from pfi.flows import producer_acks
from pfi.flows.queue import INTERNAL, Outcome, run_due
from pfi.protocols.hl7v2 import zam
from pfi.protocols.ins import InsPolicy
from pfi.protocols.mssante import constants as k
from pfi.protocols.mssante.compose import (
    CHANNELS,
    PROFESSIONAL,
    Mailbox,
    SiteInfo,
    compose,
    order_for_delivery,
)
from pfi.protocols.mssante.config import MssConfig
from pfi.protocols.mssante.notifications import Notification, parse_notifications
from pfi.protocols.mssante.smtp import OutcomeUnknown, SmtpClient, smtp_code_of

if TYPE_CHECKING:
    from pfi.base.settings import Mailbox as MailboxSetting
    from pfi.base.settings import Settings
    from pfi.ledger import Delivery, Document, Ledger
    from pfi.protocols.hl7v2 import Hl7Request
    from pfi.protocols.mssante.imap import ImapClient

log = logging.getLogger(__name__)
#: Parsed requests a sender keeps (a request's mails, then their receipts, come together): all of
#: them, about 300 KB each, grew a task by gigabytes over a wave of thousands of mails.
REQUESTS_KEPT = 32

SmtpFactory = Callable[["MailboxSetting"], SmtpClient]
ImapFactory = Callable[["MailboxSetting"], "ImapClient"]

EVENT_SENDING = "mss.sending"
EVENT_SENT = "mss.sent"
EVENT_ERROR = "mss.error"
EVENT_DSN = "mss.dsn"
EVENT_MDN = "mss.mdn"
EVENT_ZAM = "mss.zam"


def sending_mailbox(
    settings: Settings, config: MssConfig, finess_geo: str | None
) -> MailboxSetting:
    """The application mailbox that sends for a site: ``[mssante] sending_mailbox``, else the
    mailbox of the delivery's FINESS géographique, else the first one."""
    if not settings.mailboxes:
        raise ConfigurationError(
            "no [[mailbox]] configured to send MSSanté mail", code=k.NO_MAILBOX
        )
    if config.sending_mailbox:
        for mailbox in settings.mailboxes:
            if mailbox.name == config.sending_mailbox:
                return mailbox
        raise ConfigurationError(
            f"[mssante] sending_mailbox {config.sending_mailbox!r} is not a [[mailbox]]",
            code=k.NO_MAILBOX,
        )
    for mailbox in settings.mailboxes:
        if finess_geo and mailbox.finess_geo == finess_geo:
            return mailbox
    return settings.mailboxes[0]


#: Our failure codes without an SMTP reply → the volet's SMTPERRORCODE entry (``error-codes.md``):
#: 101 "Le serveur n'arrive pas à se connecter", 111 "Connexion refusée…", 530 (authentication).
_SMTPERRORCODE_OF = {
    k.CONNECTION: 111,
    k.TIMEOUT: 101,
    k.TLS: 101,
    k.SERVER_CERTIFICATE: 101,
    k.AUTH: 530,
}


class MssSender:
    """``send_one``/``after`` for :func:`pfi.flows.queue.run_due`, with per-run caches."""

    def __init__(
        self,
        ledger: Ledger,
        settings: Settings,
        smtp_for: SmtpFactory,
        *,
        actor: str,
        config: MssConfig | None = None,
        now: Callable[[], datetime] | None = None,
        connections: Lookup = from_environment,
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self.smtp_for = smtp_for
        self.actor = actor
        self.config = config or MssConfig.from_settings(settings)
        self.policy = InsPolicy.for_site(settings.site)
        self.site = SiteInfo(
            name=settings.site.name,
            structure_oid=settings.site.structure_oid,
            software_name=settings.site.software_name,
        )
        self.now = now or (lambda: datetime.now(UTC))
        self.connections = connections  # the producers' MLLP Connections of their ZAMs
        self._clients: dict[str, SmtpClient] = {}
        self._requests: OrderedDict[int, Hl7Request] = OrderedDict()  # the latest few
        self._sent: dict[int, bool] = {}
        #: Trail lines of accepted mails that could not be written (the task turns red).
        self.trail_errors: list[BaseException] = []

    # -- the pieces ------------------------------------------------------------------------

    @staticmethod
    def request_item(delivery: Delivery, document: Document) -> int:
        """The message that asked for the delivery: its own (ledger 0002; a deletion comes in a
        later message than its document), else the one that brought the document."""
        item = getattr(delivery, "inbound_item_id", None) or document.inbound_item_id
        if item is None:
            raise InvalidInput("the delivery has no inbound message", code=k.NO_DOCUMENT)
        return item

    def request_of(self, delivery: Delivery, document: Document) -> Hl7Request:
        from pfi.flows.archive import load_request

        item = self.request_item(delivery, document)
        if item in self._requests:
            self._requests.move_to_end(item)
        else:
            self._requests[item] = load_request(self.ledger, item, settings=self.settings)
            if len(self._requests) > REQUESTS_KEPT:
                self._requests.popitem(last=False)
        return self._requests[item]

    def client(self, mailbox: MailboxSetting) -> SmtpClient:
        if mailbox.name not in self._clients:
            self._clients[mailbox.name] = self.smtp_for(mailbox)
        return self._clients[mailbox.name]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _unanswered_wait(
        self, delivery: Delivery, mail: Any, setting: MailboxSetting
    ) -> Outcome | None:
        """A retry that waits for a DSN, when an earlier attempt handed the mail over and its
        worker died before writing what the server said (``mss.sending`` without ``mss.sent``
        nor ``mss.error``): the operator may have the mail, and its DSN — asked for, since the
        server offers DSN — would record it sent (:func:`poll_notifications`). Sent again only
        once ``[mssante] dsn_wait_hours`` passed without one; at once when the server offers
        no DSN (nothing would ever tell: the one window where a second copy, with the same
        Message-ID, is possible)."""
        trail = self.ledger.events(delivery_id=delivery.id, limit=1000)
        last = next(
            (e for e in reversed(trail) if e.kind in (EVENT_SENDING, EVENT_SENT, EVENT_ERROR)),
            None,
        )
        if last is None or last.kind != EVENT_SENDING:
            return None
        if not (mail.dsn and self.client(setting).offers_dsn()):
            return None
        waited = self.now() - last.at
        if waited >= self.config.dsn_wait:
            return None
        return Outcome.retry(
            k.OUTCOME_UNKNOWN,
            "an earlier attempt may have been taken by the operator: waiting for its DSN",
            delay=self.config.dsn_wait - waited,
        )

    # -- run_due callbacks -----------------------------------------------------------------

    def send_one(self, delivery: Delivery) -> Outcome:
        # A previous worker sent it and died before recording the outcome: never mail twice.
        already = self.ledger.events(delivery_id=delivery.id, kind=EVENT_SENT, limit=1)
        if already:
            self._sent[delivery.id] = bool(already[0].detail.get("dsn_requested"))
            return Outcome.sent(str(already[0].detail.get("message_id") or "") or None)
        document = self.ledger.get_document(delivery.document_id)
        request = self.request_of(delivery, document)
        # The delivery row is intake's routing decision (the one rule table): not decided again.
        setting = sending_mailbox(self.settings, self.config, delivery.finess_geo)
        mailbox = Mailbox(setting.address, self.config.sender_name, setting.finess_geo)
        order = order_for_delivery(delivery, document.unique_id, request, self.policy)
        mail = compose(request, order, mailbox, self.config, site=self.site, now=self.now())
        detail = {"message_id": mail.message_id, "mailbox": setting.name}
        waiting = self._unanswered_wait(delivery, mail, setting)
        if waiting is not None:
            return waiting
        self._event(EVENT_SENDING, delivery, {**detail, "attempt": delivery.attempts + 1})
        try:
            receipt = self.client(setting).send(mail)
        except PfiError as exc:
            smtp_code = getattr(exc, "smtp_code", None)
            self._event(EVENT_ERROR, delivery, {**detail, "code": exc.code, "smtp_code": smtp_code})
            if isinstance(exc, OutcomeUnknown) and exc.dsn_requested:
                # The operator may have the mail: its DSN would say so (and record it sent).
                # Sending again now could give a second copy; the retry waits for the DSN.
                return Outcome.retry(exc.code, exc.reason, delay=self.config.dsn_wait)
            raise
        self._sent[delivery.id] = receipt.dsn_requested
        try:
            self._event(
                EVENT_SENT,
                delivery,
                {**detail, "dsn_requested": receipt.dsn_requested, "mdn_requested": mail.mdn},
            )
        except Exception as exc:  # the mail is accepted: a retry would send it a second time
            self.trail_errors.append(exc)
            log.error(
                "delivery %s: mail %s accepted, its mss.sent line not written (%s)",
                delivery.id,
                mail.message_id,
                unexpected_summary(exc),
            )
        return Outcome.sent(mail.message_id)

    def after(self, delivery: Delivery, outcome: Outcome) -> None:
        """ZAM^Z02 once the outcome is known (see the module docstring)."""
        if delivery.status == "sent" and outcome.kind == "sent":
            if self._dsn_requested(delivery):
                return  # the DSN will tell (or the wait without one: poll_notifications)
            self.receipt(delivery, delivered=True)
        elif delivery.status in ("refused", "failed"):
            code = smtp_code_of(delivery.reason_code) or smtp_code_of(outcome.reason_code)
            if code is None:
                code = _SMTPERRORCODE_OF.get(outcome.reason_code or "")
            self.receipt(delivery, delivered=False, smtp_code=code)

    def _dsn_requested(self, delivery: Delivery) -> bool:
        """Whether the mail asked the operator for a DSN: known by this sender when it sent the
        mail, else from the trail (a late follow-up, or a mail recorded sent per its DSN)."""
        if delivery.id in self._sent:
            return self._sent[delivery.id]
        return any(
            e.detail.get("dsn_requested")
            for e in self.ledger.events(delivery_id=delivery.id, kind=EVENT_SENT)
        )

    # -- acknowledgements ------------------------------------------------------------------

    def receipt(
        self, delivery: Delivery, *, delivered: bool, smtp_code: int | None = None
    ) -> str | None:
        """Write ZAM^Z02 for a delivery if the request asked for it; its file name or None."""
        document = self.ledger.get_document(delivery.document_id)
        request = self.request_of(delivery, document)
        if not zam.wanted(request.flags, zam.Z02_MSS_RECEIPT):
            return None
        written = self._zams(delivery, zam.Z02_MSS_RECEIPT)
        if any(w.get("positive") == delivered for w in written):
            return None
        control_id = zam.zam_control_id(zam.Z02_MSS_RECEIPT, delivery.id) + ("N" if written else "")
        address, recipient_id = self._recipient(delivery, request)
        ack = zam.mss_receipt(
            request.header,
            recipient_address=address,
            recipient_id=recipient_id,
            delivered=delivered,
            control_id=control_id,
            now=self.now(),
            smtp_code=smtp_code,
        )
        return self._write(delivery, document, ack)

    def read_receipt(self, delivery: Delivery, note: Notification) -> str | None:
        """Write ZAM^Z03 from an MDN if the request asked for it."""
        document = self.ledger.get_document(delivery.document_id)
        request = self.request_of(delivery, document)
        if not zam.wanted(request.flags, zam.Z03_MSS_READ):
            return None
        if self._zams(delivery, zam.Z03_MSS_READ):
            return None
        address, recipient_id = self._recipient(delivery, request)
        ack = zam.mss_read(
            request.header,
            reader_address=note.recipient or address,
            recipient_id=recipient_id,
            control_id=zam.zam_control_id(zam.Z03_MSS_READ, delivery.id),
            now=self.now(),
            processed=note.processed_ok,
            error_code=note.error_code,
        )
        return self._write(delivery, document, ack)

    def _recipient(self, delivery: Delivery, request: Hl7Request) -> tuple[str, str]:
        if delivery.channel == PROFESSIONAL and delivery.recipient:
            for participant in request.professional_recipients:
                if participant.address.strip().lower() == delivery.recipient:
                    return delivery.recipient, participant.person_id or participant.device_id
            return delivery.recipient, ""
        from pfi.protocols.mssante.compose import patient_address

        return patient_address(request, self.policy), ""

    def _zams(self, delivery: Delivery, event: str) -> list[dict[str, Any]]:
        return [
            dict(e.detail)
            for e in self.ledger.events(delivery_id=delivery.id, kind=EVENT_ZAM)
            if e.detail.get("event") == event
        ]

    def _write(self, delivery: Delivery, document: Document, ack: zam.BusinessAck) -> str:
        item = self.ledger.get_inbound(self.request_item(delivery, document))
        path = producer_acks.emit(
            self.settings.source(item.source),
            ack,
            ledger=self.ledger,
            delivery_id=delivery.id,
            document_id=delivery.document_id,
            inbound_item_id=item.id,
            actor=self.actor,
            connections=self.connections,
        )  # the file, and over MLLP when the source says so (zam.sent / zam.failed events)
        self._event(
            EVENT_ZAM,
            delivery,
            {
                "event": ack.event,
                "positive": ack.positive,
                "control_id": ack.control_id,
                "error": ack.error.code if ack.error else None,
                "file": path.name,
            },
        )
        return path.name

    def _event(self, kind: str, delivery: Delivery, detail: dict[str, Any]) -> None:
        self.ledger.add_event(
            kind,
            document_id=delivery.document_id,
            delivery_id=delivery.id,
            actor=self.actor,
            detail=detail,
        )


def deliver_due(
    ledger: Ledger,
    settings: Settings,
    smtp_for: SmtpFactory,
    *,
    channel: str,
    actor: str,
    limit: int = 50,
    now: datetime | None = None,
    config: MssConfig | None = None,
    connections: Lookup = from_environment,
    drain_seconds: float = 0.0,
) -> dict[str, Any]:
    """Send the due deliveries of one MSSanté channel, ``limit`` at a time, again while a claim
    comes back full for ``drain_seconds``; counts only (XCom-safe). The ZAMs' MLLP Connections
    are looked up with ``connections``."""
    if channel not in CHANNELS:
        raise ValueError(f"not an MSSanté channel: {channel}")
    config = config or MssConfig.from_settings(settings)
    sender = MssSender(
        ledger, settings, smtp_for, actor=actor, config=config, connections=connections
    )
    try:
        counts = run_due(
            ledger,
            channel,
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
    if sender.trail_errors:
        raise TransientError(
            f"{len(sender.trail_errors)} accepted mail(s) without their mss.sent trail line "
            f"(first: {unexpected_summary(sender.trail_errors[0])}); recorded as sent",
            code=INTERNAL,
        )
    return counts


def find_delivery(ledger: Ledger, request_id: uuid.UUID) -> Delivery | None:
    """The MSSanté delivery whose request id a notification carries."""
    return ledger.delivery_by_request_id(request_id, CHANNELS)


def poll_notifications(
    ledger: Ledger,
    settings: Settings,
    imap_for: ImapFactory,
    *,
    actor: str,
    limit: int = 200,
    config: MssConfig | None = None,
    now: datetime | None = None,
    connections: Lookup = from_environment,
    drain_seconds: float = 0.0,
) -> dict[str, int]:
    """Read the DSN/MDN of every configured mailbox, record them, acknowledge; counts only.

    ``limit`` reports of a mailbox at a time, again while a batch comes back full and some
    were flagged, for ``drain_seconds`` (a wave of mails gives a wave of DSNs: 200 per run
    left thousands waiting, and a mail whose outcome is unknown waits for its DSN).
    A report is flagged processed once recorded; one naming no delivery of ours is counted
    ``unmatched`` and flagged too. A mailbox that cannot be reached is counted in ``errors``
    and does not stop the others (SC.MSS/CONF.08). Deliveries still without a DSN after
    ``[mssante] dsn_wait_hours`` get their positive Z02 from the SMTP acceptance
    (``zam_without_dsn``). The ZAMs' MLLP Connections are looked up with ``connections``.
    """
    sender = MssSender(
        ledger, settings, _no_smtp, actor=actor, config=config, connections=connections
    )
    counts = {"reports": 0, "dsn": 0, "mdn": 0, "unmatched": 0, "zam": 0, "errors": 0}
    counts["zam_without_dsn"] = 0
    unexpected: list[BaseException] = []
    started = time.monotonic()
    for mailbox in settings.mailboxes:
        try:
            with imap_for(mailbox) as imap:
                while True:
                    batch = imap.reports(limit)
                    flagged = 0
                    for uid, raw in batch:
                        counts["reports"] += 1
                        try:
                            for note in parse_notifications(raw):
                                _record(sender, note, counts)
                        except Exception as exc:  # this report only: left unflagged, tried again
                            unexpected.append(exc)
                            counts["errors"] += 1
                            continue
                        imap.mark_processed(uid)
                        flagged += 1
                    if (
                        len(batch) < limit
                        or not flagged
                        or time.monotonic() - started >= drain_seconds
                    ):
                        break
        except PfiError as exc:
            counts["errors"] += 1
            log.warning("mailbox %s not polled: %s %s", mailbox.name, exc.code, exc.reason)
    for delivery in deliveries_without_dsn(
        ledger, older_than=(now or datetime.now(UTC)) - sender.config.dsn_wait, limit=limit
    ):
        try:
            counts["zam_without_dsn"] += bool(sender.receipt(delivery, delivered=True))
        except Exception as exc:  # this delivery only: the others still get their Z02
            unexpected.append(exc)
            counts["errors"] += 1
    if unexpected:
        raise TransientError(
            f"{len(unexpected)} unexpected error(s) while recording MSSanté notifications "
            f"(first: {unexpected_summary(unexpected[0])}); the others were recorded",
            code="MSS_NOTIFICATION_ERROR",
        ) from None  # the cause's message may quote a report (an address, a patient)
    return counts


def deliveries_without_dsn(ledger: Ledger, *, older_than: datetime, limit: int) -> list[Delivery]:
    """Sent deliveries that asked for a DSN, sent before ``older_than``, whose Z02 is still
    unwritten: the operator sent no report (some operators do not send DSN, spec-facts §6.1).
    Their ZAM^Z02 then rests on the operator's acceptance of the mail (SMTP 250)."""
    return ledger.sent_without_answer(
        CHANNELS,
        sent_before=older_than,
        asked=(EVENT_SENT, {"dsn_requested": True}),
        answer=(EVENT_ZAM, {"event": zam.Z02_MSS_RECEIPT}),
        limit=limit,
    )


def _record(sender: MssSender, note: Notification, counts: dict[str, int]) -> None:
    ledger = sender.ledger
    request_id = note.request_id
    delivery = find_delivery(ledger, request_id) if request_id else None
    if delivery is None:
        counts["unmatched"] += 1
        return
    counts[note.kind] += 1
    if note.kind == "dsn":
        sender._event(
            EVENT_DSN,
            delivery,
            {"action": note.action, "status": note.status, "smtp_code": note.smtp_code},
        )
        if delivery.status == "pending" and not note.failed:
            # The operator has the mail although our attempt ended without its "250" (the
            # connection broke after the data): the queue must not send a second copy.
            delivery = _sent_per_dsn(sender, delivery, note)
        if note.delivered:
            counts["zam"] += bool(sender.receipt(delivery, delivered=True))
        elif note.failed:
            code = note.smtp_code or 550
            if delivery.status in ("sent", "pending"):
                delivery = ledger.mark_delivery(
                    delivery.id,
                    "failed",
                    reason_code=f"{k.SMTP_PREFIX}{code}",
                    reason_text=f"DSN failed, status {note.status or 'unknown'}",
                    attempted=False,
                    actor=sender.actor,
                )
            counts["zam"] += bool(sender.receipt(delivery, delivered=False, smtp_code=code))
        return
    sender._event(
        EVENT_MDN,
        delivery,
        {"disposition": note.action, "modifier": note.status, "error_code": note.error_code},
    )
    counts["zam"] += bool(sender.read_receipt(delivery, note))


def _sent_per_dsn(sender: MssSender, delivery: Delivery, note: Notification) -> Delivery:
    """A pending delivery that a DSN (delivered, relayed, delayed…) shows the operator took:
    ``sent``, with the Message-ID of its attempts, and the ``mss.sent`` line of the trail."""
    attempts = sender.ledger.events(delivery_id=delivery.id, kind=EVENT_SENDING)
    message_id = next(
        (str(e.detail["message_id"]) for e in reversed(attempts) if e.detail.get("message_id")),
        note.original_message_id or None,
    )
    sender._event(
        EVENT_SENT,
        delivery,
        {"message_id": message_id, "dsn_requested": True, "per_dsn": note.action},
    )
    return sender.ledger.mark_delivery(
        delivery.id, "sent", partner_ref=message_id, attempted=False, actor=sender.actor
    )


def _no_smtp(mailbox: MailboxSetting) -> SmtpClient:
    raise ConfigurationError("no SMTP while polling notifications", code=k.NO_MAILBOX)


__all__ = [
    "EVENT_DSN",
    "EVENT_ERROR",
    "EVENT_MDN",
    "EVENT_SENDING",
    "EVENT_SENT",
    "EVENT_ZAM",
    "MssSender",
    "deliver_due",
    "find_delivery",
    "poll_notifications",
    "sending_mailbox",
]
