"""Business acknowledgements (``ZAM``) to the producer: what became of its document request.

Volet "Transmission de document(s) CDA en HL7v2" v2.1, ``profils-messages.md`` §"accusés
métier", ``ack-metier-zam.md`` (table ``AckMetierZAM``), ``error-codes.md`` (table
``SMTPERRORCODE``); official examples ``Volets/TRANS_DOC_CDA_HL7V2/V2.1/ORU/Transmission initiale
ORU/Message metier *`` (spec-facts §1.13). One HL7 2.6 message of structure ``ZAM_Z01``::

    MSH  ZAM^Z01|Z02|Z03^ZAM_Z01, MSH-3..6 swapped from the request, MSH-21 2.1^CISIS_CDA_HL7_V2
    EVN  EVN-2 = when the outcome became known (the examples carry EVN)
    OBX  1, CWE, ACK_RECEPTION_DMP | ACK_RECEPTION_MSS | ACK_LECTURE_MSS ^label^AckMetierZAM,
         OBX-4 = MSH-10 of the request, OBX-5 Y|N^^expandedYes-NoIndicator, OBX-11 F
    OBX  2, XTN, DESTINATAIRE_MSS (Z02) | LECTEUR_MSS (Z03), OBX-4 recipient id (optional),
         OBX-5 ^^X.400^<MSSanté address>                          — MSSanté only
    ERR  when OBX-5 = N: ERR-3 207^Application error^messageErrorCondition, ERR-4 E,
         ERR-5 code^label^table — DMP_ERROR_CODE (Z01), SMTPERRORCODE (Z02),
         applicationErrorCode 900–906 (Z03)

When: ``Z01`` after the DMP answered a feed (accepted or refused) and ``Z02`` after the MSSanté
delivery notification, when the request says ``ACK_RECEPTION=Y``; ``Z03`` after a read/processing
notification when it says ``ACK_LECTURE_MSS=Y`` (:func:`wanted`). The DMP and MSSanté executors
build one with :func:`dmp_receipt`, :func:`mss_receipt` or :func:`mss_read` from the request they
loaded (:func:`pfi.flows.intake.load_request`) and hand it to :func:`emit`: it writes the file into the
source's outbound folder, beside the technical ACKs (:func:`write_zam`), and — when the source
names an MLLP Connection (``[[hl7_source]] zam_mllp``) — also sends it over MLLP
(:mod:`pfi.protocols.mllp`), recording ``zam.sent`` / ``zam.failed`` in the ledger's trail.

Over MLLP, a transient failure (peer down, no answer) is retried within the task
(:data:`MLLP_ATTEMPTS`), then the ZAM is queued under the source's work directory and sent again
once the peer answers: right after the next successful send to that source, or by
:func:`resend_pending` (a sweep for a scheduled task); after :data:`RESEND_WINDOW` it is given up
with a ``zam.failed`` event. A refusal (AE/AR/CE/CR) is final: it is recorded with the peer's
code and not retried. The ledger's delivery channels are not used for this: ``dpi`` is the
channel of received mails forwarded to the DPI, and a ZAM is an answer about a delivery, not a
delivery of its own.

The ZAM's own MSH-10 must be unique and **stable across retries** (a re-run writes the same
file again, not a second acknowledgement): use :func:`zam_control_id` with the delivery id.
Error texts go to the producer and into files: codes and short technical labels only, never
patient data. The MSSanté address of a professional (or of the patient, ``<INS>@patient…``) is
the one piece of personal data a ZAM carries, as the volet requires; it stays out of ``repr``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfi.base.errors import ConfigurationError, TransientError
from pfi.protocols.hl7v2 import constants as c
from pfi.protocols.hl7v2.ack import (
    ERR_APPLICATION,
    AckError,
    MessageHeader,
    codec_for,
    error_segment,
    escape,
    reply_header,
)

if TYPE_CHECKING:
    from pfi.base.settings import Hl7Source
    from pfi.ledger import Ledger
    from pfi.protocols.hl7v2.model import MetaFlags
    from pfi.protocols.mllp import MllpEndpoint

log = logging.getLogger(__name__)

#: MSH-9 events.
Z01_DMP_RECEIPT = c.EVENT_ZAM_DMP
Z02_MSS_RECEIPT = c.EVENT_ZAM_MSS_RECEIPT
Z03_MSS_READ = c.EVENT_ZAM_MSS_READ
EVENTS = (Z01_DMP_RECEIPT, Z02_MSS_RECEIPT, Z03_MSS_READ)
MESSAGE_STRUCTURE = "ZAM_Z01"
ZAM_VERSION = "2.6"
PROFILE = f"{c.PROFILE_CURRENT_VERSION}^{c.PROFILE_CDA_HL7_V2}"

#: ERR-5 coding systems (IG tables; the official example writes ``DMPERRORCODE``, we emit the
#: IG's spelling and read both — see :mod:`pfi.protocols.hl7v2.parser`).
TABLE_DMP_ERROR = "DMP_ERROR_CODE"
TABLE_SMTP_ERROR = "SMTPERRORCODE"
TABLE_APPLICATION_ERROR = "applicationErrorCode"

#: OBX-3 items of each event: (first OBX code, label), (second OBX code, label) or None.
_ITEMS: dict[str, tuple[tuple[str, str], tuple[str, str] | None]] = {
    Z01_DMP_RECEIPT: ((c.ZAM_ACK_RECEPTION_DMP, "Accusé de réception DMP"), None),
    Z02_MSS_RECEIPT: (
        (c.ZAM_ACK_RECEPTION_MSS, "Accusé de réception MSSanté"),
        (c.ZAM_DESTINATAIRE_MSS, "Destinataire MSSanté"),
    ),
    Z03_MSS_READ: (
        (c.ZAM_ACK_LECTURE_MSS, "Accusé de lecture"),
        (c.ZAM_LECTEUR_MSS, "Lecteur du courriel MSSanté"),
    ),
}

#: Table SMTPERRORCODE (``error-codes.md``): SMTP reply codes the volet lists, with its labels.
SMTP_ERROR_LABELS: dict[str, str] = {
    "101": "Le serveur n'arrive pas à se connecter.",
    "111": "Connexion refusée ou impossibilité d'ouvrir un flux SMTP.",
    "251": "Le compte du destinataire n'est pas sur le serveur actuel. L'envoi sera donc "
    "relayé à un autre serveur.",
    "252": "Le serveur ne peut pas vérifier l'utilisateur. Il confirme cependant qu'il "
    "essaiera de transmettre le message malgré tout",
    "420": "« Problème de connexion de temporisation » : il y a eu des problèmes pendant le "
    "transfert du message.",
    "421": "Le service est indisponible en raison d'un problème de connexion.",
    "422": "La boîte aux lettres du destinataire a dépassé sa limite de stockage.",
    "431": "Espace insuffisant sur le disque, ou état de mémoire insuffisante en raison d'une "
    "surcharge de fichiers.",
    "432": "Mot de passe de transition nécessaire",
    "441": "Le serveur du destinataire ne répond pas",
    "442": "La connexion a été interrompue pendant la transmission",
    "450": "Action non effectuée : boîte-aux-lettres non disponible [Ex., bloquée par un autre "
    "utilisateur]",
    "451": "Action arrêtée : erreur de traitement",
    "452": "Action non effectuée : manque de ressources système.",
    "500": "Erreur de syntaxe, commande non reconnue [y compris des erreurs de type « ligne de "
    "commande trop longue »]",
    "501": "Erreur de syntaxe dans des paramètres ou arguments de commande",
    "502": "Commande non implémentée",
    "503": "Mauvaise séquence de commandes",
    "504": "Paramètre de commande non implémenté",
    "510": "Mauvaise adresse courriel",
    "512": "Ce code indique une erreur DNS. Le serveur hôte du nom de domaine du destinataire "
    "est introuvable.",
    "513": "Le type d'adresse est incorrect. Souvent un problème lié à une faute d'orthographe. "
    "Dans de rares cas, il peut être lié à un problème d'authentification.",
    "523": "La taille totale de votre mailing dépasse les limites du serveur destinataire.",
    "530": "L'authentification est requise. Vous devez authentifier votre compte de messagerie "
    "avant d'envoyer un e-mail",
    "541": "L'adresse du destinataire a rejeté votre message. Dans la plupart des cas, c'est "
    "une erreur causée par un filtre anti-spam.",
    "550": "Action non effectuée : boîte aux lettres non disponible (ex. : boîte-aux-lettres "
    "non trouvée, pas d'accès).",
    "551": "Un relais peut être interrompu car votre adresse et celle du destinataire ne sont "
    "pas hébergées localement par le serveur.",
    "552": "Action abandonnée - Allocation de stockage dépassée. La boîte aux lettres du "
    "destinataire a dépassé ses limites.",
    "553": "La commande a été abandonnée car le nom de la boîte aux lettres n'est pas valide.",
    "554": "Cela signifie que l'envoi a échoué. Ce code indique une erreur permanente et le "
    "serveur n'essaiera pas d'envoyer le message à nouveau.",
}

#: Table applicationErrorCode (volet LPS ``error-codes.md``): errors a reader reports in an MDN.
APPLICATION_ERROR_LABELS: dict[str, str] = {
    "900": "Version du document incorrecte lors d'une demande de remplacement/suppression",
    "901": "Auteur non autorisé à remplacer ou supprimer un document",
    "902": "Identifiant patient inconnu",
    "903": "INS non présent dans le document",
    "904": "L'INS transmis ne correspond pas exactement à celui stocké dans la base du "
    "consommateur",
    "905": "L'INS transmis n'est pas complet",
    "906": "Erreur 'Autre'",
}


@dataclass(frozen=True)
class ZamError:
    """The ERR segment of a negative business acknowledgement (ERR-5 ``code^text^table``)."""

    code: str
    text: str
    table: str
    severity: str = "E"


@dataclass(frozen=True)
class BusinessAck:
    """One ZAM, ready to render: which request it answers, the outcome, for whom.

    ``request`` is the MSH of the producer's request (its MSH-10 goes to OBX-4, its
    applications are swapped into the ZAM's MSH); ``positive`` is OBX-5 (``Y``/``N``).
    """

    event: str
    request: MessageHeader
    positive: bool
    control_id: str
    event_time: datetime
    recipient_address: str = field(default="", repr=False)
    recipient_id: str = field(default="", repr=False)
    error: ZamError | None = None

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"ZAM event must be one of {', '.join(EVENTS)}, not {self.event!r}")
        if not self.control_id:
            raise ValueError("a ZAM needs its own control id (MSH-10)")
        if not self.request.control_id:
            raise ValueError("a ZAM answers a request with a control id (MSH-10)")
        if self.event != Z01_DMP_RECEIPT and not self.recipient_address:
            raise ValueError(f"ZAM^{self.event} names the MSSanté mailbox (OBX 2)")
        if self.positive and self.error is not None:
            raise ValueError("a positive ZAM carries no ERR segment")

    @property
    def acknowledged_control_id(self) -> str:
        return self.request.control_id

    @property
    def message_type(self) -> str:
        return f"{c.MSG_ZAM}^{self.event}^{MESSAGE_STRUCTURE}"

    @property
    def item(self) -> str:
        return _ITEMS[self.event][0][0]

    def render(self) -> str:
        """The message as text, segments joined by CR (HL7)."""
        return render(self)

    def encode(self, default_encoding: str = "iso-8859-1") -> bytes:
        """The message in the request's character set (MSH-18), else ``default_encoding``."""
        return self.render().encode(
            codec_for(self.request.charset, default_encoding), errors="replace"
        )


# --- builders ----------------------------------------------------------------------------------


def zam_control_id(event: str, delivery_id: int) -> str:
    """A ZAM control id stable across retries: one per (event, delivery)."""
    if event not in EVENTS:
        raise ValueError(f"ZAM event must be one of {', '.join(EVENTS)}")
    return f"PFI{event}D{delivery_id}"


def wanted(flags: MetaFlags, event: str) -> bool:
    """Did the producer ask for this business acknowledgement (``meta-dmp-mss.md``)?

    ``ACK_RECEPTION=Y`` → Z01 (DMP) and Z02 (MSSanté receipt); ``ACK_LECTURE_MSS=Y`` → Z03.
    """
    if event in (Z01_DMP_RECEIPT, Z02_MSS_RECEIPT):
        return bool(flags.ack_reception)
    if event == Z03_MSS_READ:
        return bool(flags.ack_lecture_mss)
    raise ValueError(f"ZAM event must be one of {', '.join(EVENTS)}")


def dmp_receipt(
    request: MessageHeader,
    *,
    accepted: bool,
    control_id: str,
    now: datetime,
    error_code: str = "",
    error_text: str = "",
) -> BusinessAck:
    """``ZAM^Z01``: the DMP took the document (``accepted``) or refused it.

    A refusal names the DMP's error code (e.g. ``DMPClosed``, or the registry error of the
    response) in ERR-5 with table ``DMP_ERROR_CODE``; without one the PFI's own reason code
    is expected (``DMP_REFUSED``…).
    """
    error = None
    if not accepted:
        error = ZamError(error_code or "DMP_REFUSED", error_text or "Refus du DMP", TABLE_DMP_ERROR)
    return BusinessAck(Z01_DMP_RECEIPT, request, accepted, control_id, now, error=error)


def smtp_error(code: str | int | None, text: str = "") -> ZamError:
    """ERR-5 for an SMTP reply code (table SMTPERRORCODE).

    A code outside the table (or none) is reported with the table's generic code of its class:
    ``451`` for a temporary failure (4xx), ``554`` for a permanent one (5xx or unknown).
    ``text`` replaces the table's label when given (no patient data in it).
    """
    value = str(code or "").strip()[:3]
    if value not in SMTP_ERROR_LABELS:
        value = "451" if value.startswith("4") else "554"
    return ZamError(value, text or SMTP_ERROR_LABELS[value], TABLE_SMTP_ERROR)


def mss_receipt(
    request: MessageHeader,
    *,
    recipient_address: str,
    delivered: bool,
    control_id: str,
    now: datetime,
    recipient_id: str = "",
    smtp_code: str | int | None = None,
    error_text: str = "",
) -> BusinessAck:
    """``ZAM^Z02``: the mail reached (``delivered``) or did not reach one MSSanté mailbox.

    Built from the delivery status notification (DSN) or the SMTP answer; a failure carries
    the SMTP reply code in ERR-5 (:func:`smtp_error`). ``recipient_id`` is the RPPS/FINESS the
    request's PRT gave for that recipient, when known.
    """
    error = None if delivered else smtp_error(smtp_code, error_text)
    return BusinessAck(
        Z02_MSS_RECEIPT,
        request,
        delivered,
        control_id,
        now,
        recipient_address=recipient_address,
        recipient_id=recipient_id,
        error=error,
    )


def mss_read(
    request: MessageHeader,
    *,
    reader_address: str,
    control_id: str,
    now: datetime,
    processed: bool = True,
    recipient_id: str = "",
    error_code: str = "",
    error_text: str = "",
) -> BusinessAck:
    """``ZAM^Z03``: the mailbox ``reader_address`` read / processed the mail (MDN).

    ``processed=False`` when the MDN reports an error (``Disposition: …/error``): ERR-5 is its
    applicationErrorCode (900–906; ``906`` "Autre" when the MDN gives none we know).
    """
    error = None
    if not processed:
        code = error_code if error_code in APPLICATION_ERROR_LABELS else "906"
        error = ZamError(
            code, error_text or APPLICATION_ERROR_LABELS[code], TABLE_APPLICATION_ERROR
        )
    return BusinessAck(
        Z03_MSS_READ,
        request,
        processed,
        control_id,
        now,
        recipient_address=reader_address,
        recipient_id=recipient_id,
        error=error,
    )


# --- rendering and writing ---------------------------------------------------------------------

#: ERR-3 as the IG table writes it (the official example says "Application internal error").
ERR_APPLICATION_IG = (ERR_APPLICATION[0], "Application error")


def render(zam: BusinessAck) -> str:
    """``MSH EVN OBX [OBX] [ERR]`` joined by CR, with the request's separators."""
    original = zam.request
    sep = original.field_separator or "|"
    enc = original.encoding_characters or "^~\\&"
    comp = enc[0]

    def text(value: str) -> str:
        return escape(value, enc, sep)

    stamp = zam.event_time.strftime("%Y%m%d%H%M%S")
    msh = reply_header(
        original,
        (c.MSG_ZAM, zam.event, MESSAGE_STRUCTURE),
        zam.control_id,
        zam.event_time,
        version=ZAM_VERSION,
        profile=PROFILE,
    )
    evn = sep.join(["EVN", "", stamp])
    (code, label), second = _ITEMS[zam.event]
    answer = comp.join([c.YES if zam.positive else c.NO, "", "expandedYes-NoIndicator"])
    segments = [
        msh,
        evn,
        _obx(
            sep,
            "1",
            "CWE",
            comp.join([code, text(label), c.ZAM_TABLE]),
            text(zam.acknowledged_control_id),
            answer,
        ),
    ]
    if second is not None:
        address = comp.join(["", "", c.TELECOM_X400, text(zam.recipient_address)])
        segments.append(
            _obx(
                sep,
                "2",
                "XTN",
                comp.join([second[0], text(second[1]), c.ZAM_TABLE]),
                text(zam.recipient_id),
                address,
            )
        )
    if zam.error is not None:
        error = AckError(
            ERR_APPLICATION_IG,
            severity=zam.error.severity,
            application_code=zam.error.code,
            application_text=zam.error.text,
            application_table=zam.error.table,
        )
        segments.append(error_segment(original, error))
    return "\r".join(segments) + "\r"


def _obx(sep: str, set_id: str, value_type: str, code: str, sub_id: str, value: str) -> str:
    return sep.join(["OBX", set_id, value_type, code, sub_id, value, "", "", "", "", "", "F"])


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def file_name(zam: BusinessAck) -> str:
    """``ZAM_<event>_<ZAM control id>_<request control id>.hl7`` (same style as the ACKs)."""
    own = _UNSAFE.sub("_", zam.control_id)[:40]
    acknowledged = _UNSAFE.sub("_", zam.acknowledged_control_id)[:40] or "unknown"
    return f"ZAM_{zam.event}_{own}_{acknowledged}.hl7"


def write_zam(source: Hl7Source, zam: BusinessAck) -> Path:
    """Write the ZAM into the source's outbound folder, atomically; return its path.

    The file appears complete or not at all (written beside as a hidden temporary file, then
    renamed), so a producer polling the folder never reads half a message. Writing the same ZAM
    again (a retried task) replaces the file: one acknowledgement per control id.
    """
    source.outbound_dir.mkdir(parents=True, exist_ok=True)
    target = source.outbound_dir / file_name(zam)
    write_atomically(target, zam.encode(source.default_encoding))
    return target


# --- sending over MLLP --------------------------------------------------------------------------

#: Ledger event kinds of the MLLP send (detail: codes, control ids and file names only).
EVENT_SENT = "zam.sent"
EVENT_FAILED = "zam.failed"
#: Attempts within one call, and the waits between them (seconds): a short blip of the DPI's
#: interface engine is absorbed here; a longer outage is caught up later (:func:`resend_pending`).
MLLP_ATTEMPTS = 3
MLLP_RETRY_DELAYS = (2.0, 10.0)
#: How long a transiently failed ZAM stays queued for :func:`resend_pending` before giving up.
RESEND_WINDOW = timedelta(days=2)
#: At most this many queued ZAMs are caught up after a successful send (:func:`emit`).
CATCH_UP_LIMIT = 50
#: The queue of ZAMs to send again, under the source's work directory (one ``.hl7`` copy of the
#: message and one ``.json`` with ledger ids and codes per ZAM; the outbound file may be taken
#: by the producer meanwhile).
SPOOL_DIR = "zam_mllp"
#: After a peer failed all its attempts, the next ZAMs of this process (the same task run) are
#: queued at once for this long instead of each waiting through attempts and timeouts: a
#: DMP run finishing 100 deliveries while the DPI is down is not slowed down by its ZAMs.
PEER_HOLD_DOWN = timedelta(seconds=60)
_PEERS_DOWN: dict[str, float] = {}
#: A claimed queue entry whose task died is queued again after this long.
CLAIM_STALE = timedelta(minutes=15)


def emit(
    source: Hl7Source,
    zam: BusinessAck,
    *,
    ledger: Ledger | None = None,
    delivery_id: int | None = None,
    document_id: int | None = None,
    inbound_item_id: int | None = None,
    actor: str = "pfi",
    endpoint: MllpEndpoint | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Write the ZAM file (always: it is the audit copy) and, when the source has
    ``zam_mllp_connection`` (or ``endpoint`` is given) and a ledger is passed, also send it
    over MLLP.

    The send is tried :data:`MLLP_ATTEMPTS` times within this call on a transient failure
    (unreachable, no answer), waiting :data:`MLLP_RETRY_DELAYS`; once a peer failed that way,
    the next ZAMs of the process are queued without trying for :data:`PEER_HOLD_DOWN`. The
    outcome goes to the ledger's trail: :data:`EVENT_SENT` (``ack_code``, ``attempts``) or :data:`EVENT_FAILED`
    (``code``, ``ack_code``, ``error_code``, ``transient``). A ZAM still failing transiently is
    queued under the source's work directory for :func:`resend_pending`; after a successful
    send the source's queue is caught up (the peer is back). A ZAM already sent (same delivery
    and control id) is not sent again. MLLP problems never raise: the delivery's outcome is
    final and the file is there; they are events (and a warning without patient data).
    """
    path = write_zam(source, zam)
    if ledger is None or (endpoint is None and not source.zam_mllp_connection):
        return path
    if _already_sent(ledger, delivery_id, zam.control_id):
        return path
    entry = _Queued(
        source.name,
        zam.event,
        zam.control_id,
        path.name,
        delivery_id,
        document_id,
        inbound_item_id,
        datetime.now(UTC).isoformat(),
    )
    data = zam.encode(source.default_encoding)
    outcome = _send_recorded(
        ledger, source, entry, data, actor, endpoint, MLLP_ATTEMPTS, sleep, hold_down=True
    )
    if outcome == "transient":
        entry.save(source, data)
    else:
        entry.remove(source)
        if outcome == "sent":
            resend_pending(ledger, [source], actor=actor, endpoint=endpoint, limit=CATCH_UP_LIMIT)
    return path


def resend_pending(
    ledger: Ledger,
    sources: Iterable[Hl7Source],
    *,
    actor: str = "pfi",
    endpoint: MllpEndpoint | None = None,
    now: datetime | None = None,
    window: timedelta = RESEND_WINDOW,
    limit: int = 500,
) -> dict[str, int]:
    """Send again, once each and oldest first, the queued ZAMs of ``sources`` (those whose MLLP
    send failed transiently); stop with a source at its first failure (the peer is still down).
    A ZAM queued longer than ``window`` is given up (:data:`EVENT_FAILED`, ``ZAM_MLLP_GIVEN_UP``).
    For a scheduled task or a command to sweep; :func:`emit` calls it after a success.
    Returns counts: ``sent``, ``refused``, ``failed`` (still transient), ``given_up``,
    ``pending`` (left for later)."""
    counts = {"sent": 0, "refused": 0, "failed": 0, "given_up": 0, "pending": 0}
    oldest = (now or datetime.now(UTC)) - window
    for source in sources:
        if endpoint is None and not source.zam_mllp_connection:
            continue
        queued = sorted(_Queued.load_all(source), key=lambda q: (q.queued_at, q.control_id))
        down = False
        for number, entry in enumerate(queued):
            if down or number >= limit:
                counts["pending"] += 1
                continue
            if datetime.fromisoformat(entry.queued_at) < oldest:
                detail = {**entry.detail(source), "code": "ZAM_MLLP_GIVEN_UP", "transient": False}
                ledger.add_event(EVENT_FAILED, actor=actor, detail=detail, **entry.ids)
                entry.remove(source)
                counts["given_up"] += 1
                continue
            if not entry.claim(source):
                continue  # another task is sending it, or it is gone
            if _already_sent(ledger, entry.delivery_id, entry.control_id):
                entry.remove(source)  # a task sent it, recorded it and died before unqueuing it
                continue
            try:
                data = entry.data_path(source).read_bytes()
            except FileNotFoundError:
                entry.remove(source)
                continue
            outcome = _send_recorded(ledger, source, entry, data, actor, endpoint, 1, time.sleep)
            if outcome == "transient":
                entry.release(source)
                counts["failed"] += 1
                down = True
                continue
            entry.remove(source)
            counts["sent" if outcome == "sent" else "refused"] += 1
    return counts


def _already_sent(ledger: Ledger, delivery_id: int | None, control_id: str) -> bool:
    """Has the ledger's trail a :data:`EVENT_SENT` of this ZAM (same delivery, control id)?"""
    return delivery_id is not None and any(
        e.detail.get("control_id") == control_id
        for e in ledger.events(delivery_id=delivery_id, kind=EVENT_SENT)
    )


@dataclass(frozen=True)
class _Queued:
    """A ZAM waiting for its MLLP peer: ledger ids and codes, no patient data."""

    source: str
    event: str
    control_id: str
    file: str
    delivery_id: int | None
    document_id: int | None
    inbound_item_id: int | None
    queued_at: str

    @property
    def ids(self) -> dict[str, int | None]:
        return {
            "delivery_id": self.delivery_id,
            "document_id": self.document_id,
            "inbound_item_id": self.inbound_item_id,
        }

    def detail(self, source: Hl7Source) -> dict[str, Any]:
        return {
            "event": self.event,
            "control_id": self.control_id,
            "source": self.source,
            "file": self.file,
            "connection": source.zam_mllp_connection or "",
        }

    def _stem(self) -> str:
        return f"{_UNSAFE.sub('_', self.control_id)[:60]}_D{self.delivery_id or 0}"

    def data_path(self, source: Hl7Source) -> Path:
        return source.work_dir / SPOOL_DIR / f"{self._stem()}.hl7"

    def save(self, source: Hl7Source, data: bytes) -> None:
        folder = source.work_dir / SPOOL_DIR
        folder.mkdir(parents=True, exist_ok=True)
        previous = None  # the same ZAM queued before (or being sent): it keeps its queue time
        for known in (folder / f"{self._stem()}.json", folder / f"{self._stem()}.sending"):
            with contextlib.suppress(FileNotFoundError):
                previous = _Queued(**json.loads(known.read_text()))
                break
        kept = self if previous is None else replace(self, queued_at=previous.queued_at)
        write_atomically(self.data_path(source), data)
        write_atomically(folder / f"{self._stem()}.json", json.dumps(asdict(kept)).encode())

    def claim(self, source: Hl7Source) -> bool:
        """Take the entry for one sender (atomic rename ``.json`` → ``.sending``): two tasks
        catching up the same queue never send one ZAM twice."""
        folder = source.work_dir / SPOOL_DIR
        try:
            os.rename(folder / f"{self._stem()}.json", folder / f"{self._stem()}.sending")
            # a rename keeps the queue time as mtime: date the claim, or another sweep would
            # take an entry queued long ago for a dead task's claim (CLAIM_STALE) and send it too
            os.utime(folder / f"{self._stem()}.sending")
        except FileNotFoundError:
            return False
        return True

    def release(self, source: Hl7Source) -> None:
        folder = source.work_dir / SPOOL_DIR
        with contextlib.suppress(FileNotFoundError):
            os.rename(folder / f"{self._stem()}.sending", folder / f"{self._stem()}.json")

    def remove(self, source: Hl7Source) -> None:
        folder = source.work_dir / SPOOL_DIR
        (folder / f"{self._stem()}.json").unlink(missing_ok=True)
        (folder / f"{self._stem()}.sending").unlink(missing_ok=True)
        self.data_path(source).unlink(missing_ok=True)

    @staticmethod
    def load_all(source: Hl7Source) -> list[_Queued]:
        """The queued entries; a claim older than :data:`CLAIM_STALE` (its task died) is
        queued again first."""
        folder = source.work_dir / SPOOL_DIR
        if not folder.is_dir():
            return []
        stale = time.time() - CLAIM_STALE.total_seconds()
        for claimed in folder.glob("*.sending"):
            with contextlib.suppress(FileNotFoundError):
                if claimed.stat().st_mtime < stale:
                    os.rename(claimed, claimed.with_suffix(".json"))
        entries = []
        for path in folder.glob("*.json"):
            with contextlib.suppress(FileNotFoundError):  # claimed meanwhile
                entries.append(_Queued(**json.loads(path.read_text())))
        return entries


def _send_recorded(
    ledger: Ledger,
    source: Hl7Source,
    entry: _Queued,
    data: bytes,
    actor: str,
    endpoint: MllpEndpoint | None,
    attempts: int,
    sleep: Callable[[float], None],
    *,
    hold_down: bool = False,
) -> str:
    """Send one ZAM over MLLP (up to ``attempts`` times), record the outcome in the ledger and
    return it: ``sent``, ``refused`` or ``transient``. With ``hold_down``, a peer that failed
    within :data:`PEER_HOLD_DOWN` in this process is not tried (``MLLP_PEER_DOWN``)."""
    from pfi.protocols.mllp import MllpClient, MllpEndpoint, MllpRefused

    failure: dict[str, Any] = {}
    tried = 0
    try:
        chosen = endpoint or MllpEndpoint.from_env(source.zam_mllp_connection or "")
        peer = f"{chosen.host}:{chosen.port}"
        if hold_down and _PEERS_DOWN.get(peer, 0.0) > time.monotonic():
            attempts = 0  # failed moments ago in this process: queue without waiting again
            failure = {"code": "MLLP_PEER_DOWN", "transient": True}
        client = MllpClient(chosen)
        for tried in range(1, attempts + 1):
            try:
                answer = client.send(data, control_id=entry.control_id)
            except TransientError as exc:
                failure = {"code": exc.code, "transient": True}
                if tried < attempts:
                    sleep(MLLP_RETRY_DELAYS[min(tried, len(MLLP_RETRY_DELAYS)) - 1])
                else:
                    _PEERS_DOWN[peer] = time.monotonic() + PEER_HOLD_DOWN.total_seconds()
                continue
            _PEERS_DOWN.pop(peer, None)
            detail = {**entry.detail(source), "ack_code": answer.code, "attempts": tried}
            ledger.add_event(EVENT_SENT, actor=actor, detail=detail, **entry.ids)
            log.info(
                "ZAM %s sent over MLLP for %s (%s)", entry.control_id, source.name, answer.code
            )
            return "sent"
    except MllpRefused as exc:
        failure = {
            "code": exc.code,
            "ack_code": exc.answer.code,
            "error_code": exc.answer.error_code or None,
            "transient": False,
        }
    except ConfigurationError as exc:  # the Connection is missing: fixable, so queued
        failure = {"code": exc.code, "transient": True}
    detail = {**entry.detail(source), **failure, "attempts": tried}
    ledger.add_event(EVENT_FAILED, actor=actor, detail=detail, **entry.ids)
    log.warning(
        "ZAM %s not sent over MLLP for %s: %s", entry.control_id, source.name, failure["code"]
    )
    return "transient" if failure.get("transient") else "refused"


def write_atomically(target: Path, data: bytes, *, sync_directory: bool = False) -> None:
    """Write ``data`` to ``target`` through a hidden temporary file, fsync, rename.

    ``sync_directory`` also fsyncs the folder, so that the new name survives a power cut (the
    MLLP inlet needs it before answering its commit acknowledgement).
    """
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    if sync_directory:
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


__all__ = [
    "APPLICATION_ERROR_LABELS",
    "EVENTS",
    "EVENT_FAILED",
    "EVENT_SENT",
    "SMTP_ERROR_LABELS",
    "TABLE_APPLICATION_ERROR",
    "TABLE_DMP_ERROR",
    "TABLE_SMTP_ERROR",
    "Z01_DMP_RECEIPT",
    "Z02_MSS_RECEIPT",
    "Z03_MSS_READ",
    "BusinessAck",
    "ZamError",
    "dmp_receipt",
    "emit",
    "file_name",
    "mss_read",
    "mss_receipt",
    "render",
    "resend_pending",
    "smtp_error",
    "wanted",
    "write_atomically",
    "write_zam",
    "zam_control_id",
]
