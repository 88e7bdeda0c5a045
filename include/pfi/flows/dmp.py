"""The executor of the ``dmp`` deliveries: one attempt per due delivery, driven by the ledger.

:class:`DmpSender` is the ``send_one`` of :func:`pfi.flows.queue.run_due` (first attempts and
deferred retries are one code path) and its ``after`` hook (the ZAM to the producer). For each
claimed delivery:

1. **Already done?** The ledger says whether this document version was already accepted by the
   DMP for this action (:meth:`~pfi.ledger.Ledger.delivery_done`): a replayed or cleared task
   never submits twice.
2. **Qualified INS** only (DSR HOP-PFI, INS/va1.16): otherwise refused ``DMP_INS_NOT_QUALIFIED``.
3. **In order**: a replacement waits (``later``) while the version it replaces is still queued for
   the DMP; a deletion waits while its document's publication is queued, and is refused
   ``DMP_NOT_PUBLISHED`` (the DMP not called) when that publication was refused — or was held
   by the site and never tried: that publication is then withdrawn (``DMP_WITHDRAWN``). A
   replacement of a version the DMP never received names the last one it did, or goes as new.
4. The request is re-read from the archived original (:func:`pfi.flows.archive.load_request`; the ledger
   keeps no content), turned into a signed SOAP request whose submission set uniqueId derives
   from the delivery's ``request_id`` (fixed before the first attempt), and the attempt is written
   to the event trail (``dmp.request``: message id, transaction) **before** it is sent.
5. The DMP's answer: accepted (incl. "already registered" after a lost answer) → ``sent`` with
   the entryUUID as partner reference; refusal → ``refused`` with the registry error code;
   network / 5xx / transient registry error → retried by the queue's backoff.

The business acknowledgement (ZAM^Z01 "Accusé de réception DMP") goes to the producer when its
message asked for it (ACK_RECEPTION = Y), once the delivery is ``sent``, ``refused`` or given up
(``failed``) — never for a retry still queued, and never for a ``historical`` delivery (a
backfill, :mod:`pfi.flows.backfill`: no producer waits for it). A backfill's CDA file (item
``cda_file``) is read back as its DMP submission (:func:`pfi.flows.archive.load_submission`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pfi.base.connections import Lookup, from_environment
from pfi.base.errors import InvalidInput
from pfi.flows.queue import Outcome
from pfi.protocols.dmp.submission import DmpSubmission, build_request, entry_uuid

if TYPE_CHECKING:
    from pfi.base.settings import Settings
    from pfi.ledger import Delivery, Ledger
    from pfi.protocols.dmp.client import DmpClient, DmpEndpoints
    from pfi.protocols.dmp.config import DmpConfig
    from pfi.protocols.dmp.signing import Signer
    from pfi.protocols.hl7v2 import Hl7Request

log = logging.getLogger(__name__)

CHANNEL = "dmp"
INS_NOT_QUALIFIED = "DMP_INS_NOT_QUALIFIED"
WAITING_PREVIOUS = "DMP_WAITING_PREVIOUS"
NOT_PUBLISHED = "DMP_NOT_PUBLISHED"
WITHDRAWN = "DMP_WITHDRAWN"

LoadRequest = Callable[["Ledger", int], "Hl7Request | DmpSubmission"]


def load_original(
    ledger: Ledger, inbound_item_id: int, settings: Settings | None = None
) -> Hl7Request | DmpSubmission:
    """What a DMP delivery's message asked, read back from its kept original: the HL7 request
    (:func:`pfi.flows.archive.load_request`), or a backfill's CDA file as its submission."""
    from pfi.flows.archive import load_request, load_submission

    if ledger.get_inbound(inbound_item_id).kind == "cda_file":
        return load_submission(ledger, inbound_item_id)
    return load_request(ledger, inbound_item_id, settings=settings)


_default_loader = load_original


class DmpSender:
    """``send_one`` and ``after`` of :func:`pfi.flows.queue.run_due` for channel ``dmp``."""

    def __init__(
        self,
        ledger: Ledger,
        client: DmpClient,
        signer: Signer,
        config: DmpConfig,
        *,
        endpoints: DmpEndpoints | None = None,
        load_request: LoadRequest = _default_loader,
        settings: Settings | None = None,
        actor: str = "cli",
        clock: Callable[[], datetime] | None = None,
        connections: Lookup = from_environment,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.signer = signer
        self.config = config
        self.endpoints = endpoints or client.endpoints
        # the sender's settings, not the settings file read again for each delivery
        self.load_request = (
            functools.partial(_default_loader, settings=settings)
            if load_request is _default_loader
            else load_request
        )
        self.settings = settings
        self.actor = actor
        self.clock = clock
        self.connections = connections  # the producers' MLLP Connections of their ZAMs
        self._requests: dict[int, Hl7Request] = {}

    # -- run_due's send_one -----------------------------------------------------------------------

    def __call__(self, delivery: Delivery) -> Outcome:
        ledger = self.ledger
        document = ledger.get_document(delivery.document_id)
        # a forced replay (an operator's second send, :mod:`pfi.flows.console`) goes again
        if delivery.replay_of is None and ledger.delivery_done(
            document.unique_id, CHANNEL, None, delivery.action
        ):
            return Outcome.sent(entry_uuid(document.unique_id))
        waiting = self._waits_for(delivery, document.id, document.replaces_unique_id)
        if waiting is not None:
            return waiting
        item_id = _request_item(delivery, document.inbound_item_id)
        if item_id is None:
            raise InvalidInput("the document has no inbound message", code="DMP_NO_REQUEST")
        request = self.load_request(ledger, item_id)
        if not isinstance(request, DmpSubmission):
            self._requests[delivery.id] = request
        if not document.ins_qualified:
            raise InvalidInput(
                "only a document with a qualified INS may feed the DMP", code=INS_NOT_QUALIFIED
            )
        submission = (
            request
            if isinstance(request, DmpSubmission)
            else DmpSubmission.from_request(
                request,
                unique_id=document.unique_id,
                replaces_unique_id=document.replaces_unique_id,
            )
        )
        if submission.action != delivery.action:
            submission = DmpSubmission(
                delivery.action,  # type: ignore[arg-type]
                submission.cda,
                submission.header,
                submission.flags,
                submission.author,
                submission.patient_class,
                submission.replaces_unique_id,
            )
        if submission.action == "replace" and submission.replaces_unique_id:
            target = self._published_ancestor(submission.replaces_unique_id)
            if target != submission.replaces_unique_id:
                # the version named never reached the DMP: replace the last one that did, or
                # publish this one as new (an RPLC to an entry the DMP lacks is refused)
                submission = dataclasses.replace(
                    submission,
                    action="replace" if target else "new",
                    replaces_unique_id=target,
                )
                ledger.add_event(
                    "dmp.replaces_instead",
                    document_id=document.id,
                    delivery_id=delivery.id,
                    actor=self.actor,
                    detail={"action": submission.action, "replaces_known": target is not None},
                )
        soap = build_request(
            submission,
            config=self.config,
            signer=self.signer,
            endpoints=self.endpoints,
            request_id=delivery.request_id,
            now=self.clock() if self.clock else None,
        )
        ledger.add_event(
            "dmp.request",
            document_id=document.id,
            delivery_id=delivery.id,
            actor=self.actor,
            detail={
                "transaction": soap.transaction,
                "message_id": soap.message_id,
                "request_id": str(delivery.request_id),
                "entry_uuid": entry_uuid(submission.unique_id),
            },
        )
        response = self.client.send(soap)
        if response.already_registered:
            ledger.add_event(
                "dmp.already_registered",
                document_id=document.id,
                delivery_id=delivery.id,
                actor=self.actor,
                detail={"codes": list(response.codes)},
            )
        return Outcome.sent(entry_uuid(submission.unique_id))

    def _published_ancestor(self, unique_id: str) -> str | None:
        """The version a replacement should name: ``unique_id`` itself unless the ledger knows
        that the DMP never held it (its DMP publication was refused, or it was never asked for),
        then the nearest earlier version the DMP may hold; ``None`` when none did."""
        seen: set[str] = set()
        current: str | None = unique_id
        while current is not None and current not in seen:
            seen.add(current)
            document = self.ledger.find_document(current)
            if document is None:
                return current  # not known here (fed before this PFI): the DMP may hold it
            publications = [
                d
                for d in self.ledger.deliveries_of(document.id)
                if d.channel == CHANNEL and d.action != "delete"
            ]
            if any(d.status != "refused" for d in publications):
                return current  # sent, or failed with its answer perhaps lost, or still queued
            current = document.replaces_unique_id
        return None

    def _waits_for(
        self, delivery: Delivery, document_id: int, replaces_unique_id: str | None
    ) -> Outcome | None:
        """``later`` while the DMP delivery this one depends on is still queued."""
        if delivery.action == "replace" and replaces_unique_id:
            previous = self.ledger.find_document(replaces_unique_id)
            depends_on = (
                [d for d in self.ledger.deliveries_of(previous.id) if d.channel == CHANNEL]
                if previous is not None
                else []
            )
        elif delivery.action == "delete":
            depends_on = [
                d
                for d in self.ledger.deliveries_of(document_id)
                if d.channel == CHANNEL and d.action != "delete"
            ]
        else:
            return None
        parked = [d for d in depends_on if d.status == "held" and d.attempts == 0]
        if (
            delivery.action == "delete"
            and parked
            and all(d.status == "refused" or d in parked for d in depends_on)
        ):
            # Held by the site and never tried: the DMP never had it. The producer's deletion
            # withdraws it, so that a later release cannot publish a deleted document.
            for withdrawn in parked:
                self.ledger.mark_delivery(
                    withdrawn.id,
                    "refused",
                    reason_code=WITHDRAWN,
                    reason_text="deleted by the producer before it was sent to the DMP",
                    actor=self.actor,
                )
            return Outcome.refused(
                NOT_PUBLISHED, "the DMP never received this document: nothing to delete"
            )
        if any(d.status in ("pending", "held") for d in depends_on):
            return Outcome.later(
                WAITING_PREVIOUS,
                "waiting for the previous version to reach the DMP",
                self.config.retry.first_delay,
            )
        if (
            delivery.action == "delete"
            and depends_on
            and all(d.status == "refused" for d in depends_on)
        ):
            # Its publication was refused (by the DMP or by our checks): the DMP never held it.
            # A "failed" publication may have been accepted with its answer lost: that one is
            # deleted; a document the ledger never published (fed before the PFI) too.
            return Outcome.refused(
                NOT_PUBLISHED, "the DMP never received this document: nothing to delete"
            )
        return None

    # -- run_due's after --------------------------------------------------------------------------

    def after(self, delivery: Delivery, outcome: Outcome) -> None:
        """ZAM^Z01 to the producer for a final outcome, when its message asked for receipts."""
        request = self._requests.pop(delivery.id, None)
        if delivery.status not in ("sent", "refused", "failed") or self.settings is None:
            return
        if delivery.historical:
            return  # a backfill's: no producer waits for a receipt
        if self.ledger.events(delivery_id=delivery.id, kind="dmp.acknowledged", limit=1):
            return  # already answered (this is a late follow-up: deliveries.follow_up_missed)
        item_id = _request_item(
            delivery, self.ledger.get_document(delivery.document_id).inbound_item_id
        )
        if item_id is None:
            return
        if request is None:
            loaded = self.load_request(self.ledger, item_id)
            if isinstance(loaded, DmpSubmission):
                return
            request = loaded
        from pfi.flows import producer_acks
        from pfi.protocols.hl7v2 import zam

        if not zam.wanted(request.flags, zam.Z01_DMP_RECEIPT):
            return
        source = self.settings.source(self.ledger.get_inbound(item_id).source)
        accepted = delivery.status == "sent"
        ack = zam.dmp_receipt(
            request.header,
            accepted=accepted,
            control_id=zam.zam_control_id(zam.Z01_DMP_RECEIPT, delivery.id),
            now=self.clock() if self.clock else datetime.now(UTC),
            error_code="" if accepted else (delivery.reason_code or ""),
            error_text="" if accepted else _zam_text(delivery, outcome),
        )
        path = producer_acks.emit(
            source,
            ack,
            ledger=self.ledger,
            delivery_id=delivery.id,
            document_id=delivery.document_id,
            inbound_item_id=item_id,
            actor=self.actor,
            connections=self.connections,
        )  # the file, and over MLLP when the source says so (zam.sent / zam.failed events)
        self.ledger.add_event(
            "dmp.acknowledged",
            inbound_item_id=item_id,
            document_id=delivery.document_id,
            delivery_id=delivery.id,
            actor=self.actor,
            detail={"zam": path.name, "positive": accepted, "reason_code": delivery.reason_code},
        )


def _request_item(delivery: Delivery, document_item: int | None) -> int | None:
    """The message that asked for this delivery: the delivery's own (when the ledger records
    it: a deletion arrives in a later message than the document it deletes), else the one that
    brought the document."""
    return delivery.inbound_item_id or document_item


#: ERR-5 labels (French: the producer's staff read them) for the PFI's own reason codes.
_ZAM_TEXTS = {
    INS_NOT_QUALIFIED: "INS non qualifiée : document non envoyé au DMP",
    NOT_PUBLISHED: "Document jamais publié dans le DMP : rien à supprimer",
    WITHDRAWN: "Supprimé par le producteur avant son envoi au DMP",
    "DELIVERY_GIVEN_UP": "DMP injoignable : envoi abandonné après plusieurs tentatives",
    "DMP_UNIQUE_ID_FORMAT": "Identifiant de document OID^extension non accepté par le DMP",
    "DMP_NO_STRUCTURE_ID": "Identifiant de structure absent (PRT SB) : VIHF impossible",
    "XDS_METADATA_INCOMPLETE": "Métadonnées XDS requises par le DMP absentes du CDA",
}


def _zam_text(delivery: Delivery, outcome: Outcome | None = None) -> str:
    code = delivery.reason_code or ""
    if code == "DELIVERY_GIVEN_UP" and outcome is not None and outcome.kind == "later":
        # given up while waiting, never sent: the DMP was not unreachable
        if outcome.reason_code == WAITING_PREVIOUS:
            return "Version précédente jamais parvenue au DMP : envoi abandonné"
        return "Envoi au DMP abandonné sans tentative"
    return _ZAM_TEXTS.get(code) or f"Refus du DMP ({code})"[:80]


def submit_due_deliveries(
    ledger: Ledger,
    client: DmpClient,
    signer: Signer,
    config: DmpConfig,
    *,
    settings: Settings | None = None,
    actor: str = "cli",
    now: datetime | None = None,
    load_request: LoadRequest = _default_loader,
    connections: Lookup = from_environment,
    drain_seconds: float = 0.0,
) -> dict:
    """One batch of the ``dmp`` queue (what the ``deliver_dmp`` DAG and ``pfi dmp run`` do):
    claim up to ``config.batch_size`` due deliveries, submit, record, acknowledge (the ZAMs'
    MLLP Connections looked up with ``connections``); batch after batch while they come full,
    for ``drain_seconds`` (:func:`pfi.flows.queue.run_due`). Counts only."""
    from pfi.flows.queue import run_due

    sender = DmpSender(
        ledger,
        client,
        signer,
        config,
        load_request=load_request,
        settings=settings,
        actor=actor,
        connections=connections,
    )
    return run_due(
        ledger,
        CHANNEL,
        sender,
        policy=config.retry,
        actor=actor,
        limit=config.batch_size,
        now=now,
        after=sender.after,
        drain_seconds=drain_seconds,
    )


__all__ = [
    "CHANNEL",
    "INS_NOT_QUALIFIED",
    "NOT_PUBLISHED",
    "WAITING_PREVIOUS",
    "WITHDRAWN",
    "DmpSender",
    "load_original",
    "submit_due_deliveries",
]
