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
notification when it says ``ACK_LECTURE_MSS=Y`` (:func:`wanted`). Built here with
:func:`dmp_receipt`, :func:`mss_receipt` or :func:`mss_read`; written and sent to the producer by
:mod:`pfi.flows.producer_acks`.

The ZAM's own MSH-10 must be unique and **stable across retries** (a re-run writes the same
file again, not a second acknowledgement): use :func:`zam_control_id` with the delivery id.
Error texts go to the producer and into files: codes and short technical labels only, never
patient data. The MSSanté address of a professional (or of the patient, ``<INS>@patient…``) is
the one piece of personal data a ZAM carries, as the volet requires; it stays out of ``repr``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

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
    from pfi.protocols.hl7v2.model import MetaFlags

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


__all__ = [
    "APPLICATION_ERROR_LABELS",
    "EVENTS",
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
    "file_name",
    "mss_read",
    "mss_receipt",
    "render",
    "smtp_error",
    "wanted",
    "zam_control_id",
]
