"""The operator console: find a document, follow its timeline, replay, hold, release — with the
operator's rights checked and every action written to the trail.

The same operations as :mod:`pfi.flows.operations` (which ``pfi dmp hold|release`` use), for a
named operator with a set of rights, so that any face (the Airflow UI plugin, a command) gives
the same answers. The face maps its users onto :class:`Operator` (the Airflow plugin maps
Airflow's auth manager); this module checks the rights again before reading or changing
anything (:class:`Forbidden`).

Rights (:data:`RIGHTS`):

- ``metadata`` — search, timelines, the trail: ids, codes, statuses; the patient's identity is
  masked (the INS, and a patient's own MSSanté address, which is derived from it);
- ``content`` — also the patient's identity (INS, names from the original) and the originals
  (HL7 message, mail); each such view is written to the trail (``operator.viewed``);
- ``replay`` — replay, hold and release deliveries;
- ``admin`` — all of the above, and replays of more than :data:`MAX_BULK` deliveries at once.

**Replay.** A delivery never sent (``failed``, ``refused``; sent_at empty) gets a new attempt:
it becomes ``pending`` again, its attempts counted on, ``<CHANNEL>_REPLAY`` and the
``operator.replay`` line naming who and why. A delivery that was sent (even if a later bounce
turned it ``failed``) could reach its recipient twice: :func:`plan_replay` says so, and only
``force=True`` with a reason replays it, as a new delivery linked to the original
(:meth:`pfi.ledger.Ledger.force_replay`). Pending and held deliveries are already waiting:
nothing to do. Clearing an Airflow task stays what it was: a sent delivery is never claimed again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pfi.flows.operations import HOLD, RELEASE, order_deliveries

if TYPE_CHECKING:
    from pfi.ledger import Delivery, Ledger
    from pfi.ledger.console import Search

METADATA = "metadata"
CONTENT = "content"
REPLAY = "replay"
ADMIN = "admin"
RIGHTS = (METADATA, CONTENT, REPLAY, ADMIN)

#: Deliveries one replay of a filtered set may touch (an administrator's: :data:`MAX_BULK_ADMIN`).
MAX_BULK = 200
MAX_BULK_ADMIN = 2000
#: What a masked value shows.
MASK = "•••"
#: The most bytes of an original the console shows.
MAX_ORIGINAL = 512 * 1024

VIEWED = "operator.viewed"
REPLAYED = "operator.replay"
HELD = "operator.hold"
RELEASED = "operator.release"

#: French labels of the trail's kinds, for the timeline (others are shown as they are).
EVENT_LABELS = {
    "inbound.recorded": "Réception enregistrée",
    "inbound.status": "Statut de la réception",
    "inbound.duplicate_drop": "Dépôt en double",
    "document.recorded": "Document enregistré",
    "delivery.created": "Envoi créé",
    "delivery.claimed": "Envoi pris en charge",
    "delivery.status": "Statut de l'envoi",
    "delivery.sent_again": "Envoyé de nouveau (réponse du partenaire)",
    "delivery.followed_up": "Suite donnée après coup",
    "dmp.request": "Requête DMP",
    "dmp.acknowledged": "Réponse du DMP",
    "dmp.already_registered": "Déjà au DMP",
    "dmp.replaces_instead": "Remplacement de la dernière version reçue",
    "mss.sending": "Courriel en cours d'envoi",
    "mss.sent": "Courriel envoyé",
    "mss.dsn": "Accusé de réception (DSN)",
    "mss.mdn": "Accusé de lecture (MDN)",
    "mss.zam": "ZAM au producteur",
    "mss.error": "Erreur MSSanté",
    "mss.error_mail.sending": "Courriel d'erreur en cours d'envoi",
    "mss.error_mail.sent": "Courriel d'erreur envoyé",
    "mss.mail.moved": "Courriel rangé",
    "zam.sent": "ZAM envoyé",
    "zam.failed": "ZAM en échec",
    VIEWED: "Consultation (identité / contenu)",
    REPLAYED: "Rejeu demandé",
    "operator.replay_forced": "Rejeu forcé (doublon possible)",
    HELD: "Mise en attente",
    RELEASED: "Libération",
}
CHANNEL_LABELS = {
    "dmp": "DMP",
    "mss_professional": "MSSanté professionnel",
    "mss_patient": "MSSanté patient",
    "dpi": "DPI",
}
STATUS_LABELS = {
    "pending": "en file",
    "held": "en attente",
    "sent": "envoyé",
    "failed": "en échec",
    "refused": "refusé",
    "received": "reçu",
    "processing": "en cours",
    "done": "traité",
    "rejected": "rejeté",
    "duplicate": "doublon",
}

_ACTOR = re.compile(
    r"^(?P<dag_id>[^/]+)/(?P<task_id>[^/]+)/(?P<run_id>.+?)(?:\[(?P<index>\d+)\])?$"
)


class Forbidden(PermissionError):
    """The operator lacks the right an operation needs (its ``right``)."""

    def __init__(self, right: str) -> None:
        super().__init__(f"this needs the right {right!r}")
        self.right = right


@dataclass(frozen=True)
class Operator:
    """Who acts, and with which rights (a subset of :data:`RIGHTS`; ``admin`` implies all)."""

    name: str
    rights: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        unknown = set(self.rights) - set(RIGHTS)
        if unknown:
            raise ValueError(f"unknown rights: {sorted(unknown)}")

    @property
    def actor(self) -> str:
        """The trail's actor: ``operator:<name>``."""
        return f"operator:{self.name}"

    def can(self, right: str) -> bool:
        return ADMIN in self.rights or right in self.rights

    def need(self, right: str) -> None:
        if not self.can(right):
            raise Forbidden(right)


@dataclass(frozen=True)
class TaskRef:
    """The Airflow task instance an actor names (``dag_id/task_id/run_id[map_index]``)."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1


def task_of(actor: str) -> TaskRef | None:
    """The task instance behind a trail's actor; ``None`` for ``cli``, an operator, a test."""
    match = _ACTOR.match(actor)
    if match is None or actor.startswith("operator:"):
        return None
    index = match["index"]
    return TaskRef(match["dag_id"], match["task_id"], match["run_id"], int(index) if index else -1)


# -- search -------------------------------------------------------------------------------------


def _masked_recipient(channel: str, recipient: str | None, identity: bool) -> str | None:
    if channel == "mss_patient":
        return "adresse MSSanté du patient (INS)" if not identity else recipient
    return recipient


def search(
    ledger: Ledger,
    operator: Operator,
    criteria: Search,
    *,
    what: str = "deliveries",
    before_id: int | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """One page of deliveries (``what="deliveries"``) or received items (``"items"``) and the
    cursor of the next page (``next_before``, ``None`` on the last page). Searching by INS needs
    the ``content`` right; without it the INS of each row is masked."""
    operator.need(METADATA)
    if criteria.ins:
        operator.need(CONTENT)
    identity = operator.can(CONTENT)
    if what == "deliveries":
        lines = ledger.search_deliveries(criteria, before_id=before_id, limit=limit + 1)
        rows = [
            {
                "id": line.id,
                "document_id": line.document_id,
                "unique_id": line.unique_id,
                "type_code": line.type_code,
                "channel": line.channel,
                "channel_label": CHANNEL_LABELS.get(line.channel, line.channel),
                "recipient": _masked_recipient(line.channel, line.recipient, identity),
                "action": line.action,
                "status": line.status,
                "status_label": STATUS_LABELS.get(line.status, line.status),
                "attempts": line.attempts,
                "reason_code": line.reason_code,
                "finess_geo": line.finess_geo,
                "historical": line.historical,
                "replay_of": line.replay_of,
                "created_at": line.created_at,
                "sent_at": line.sent_at,
                "source": line.source,
                "control_id": line.control_id,
                "ins": (line.ins_matricule if identity else (MASK if line.ins_matricule else None)),
            }
            for line in lines
        ]
    elif what == "items":
        items = ledger.search_items(criteria, before_id=before_id, limit=limit + 1)
        rows = [
            {
                "id": item.id,
                "kind": item.kind,
                "source": item.source,
                "finess_geo": item.finess_geo,
                "control_id": item.control_id,
                "message_type": item.message_type,
                "status": item.status,
                "status_label": STATUS_LABELS.get(item.status, item.status),
                "reason_code": item.reason_code,
                "received_at": item.received_at,
                "parent_id": item.parent_id,
            }
            for item in items
        ]
    else:
        raise ValueError(f"what must be deliveries or items, not {what!r}")
    page = max(1, min(limit, 100))
    more = len(rows) > page
    rows = rows[:page]
    return {
        "what": what,
        "rows": rows,
        "next_before": rows[-1]["id"] if more and rows else None,
        "identity": identity,
    }


def find(ledger: Ledger, operator: Operator, reference: str) -> int | None:
    """The ledger id of the document named by its unique id (or ledger id)."""
    from pfi.flows.operations import find_document

    operator.need(METADATA)
    document = find_document(ledger, reference.strip())
    return document.id if document is not None else None


# -- timeline -----------------------------------------------------------------------------------


def timeline(ledger: Ledger, operator: Operator, document_id: int) -> dict[str, Any]:
    """The document's timeline: its items, its deliveries (with their replays) and every step
    of the trail in order, each with the task instance that wrote it (``task``: a
    :class:`TaskRef`, or ``None``). The INS only for the ``content`` right — and then the view
    is in the trail."""
    operator.need(METADATA)
    found = ledger.timeline(document_id)
    identity = operator.can(CONTENT)
    doc = found.document
    if identity and doc.ins_matricule:
        ledger.add_event(
            VIEWED,
            document_id=doc.id,
            actor=operator.actor,
            detail={"what": "identity", "document": doc.id},
        )
        found = ledger.timeline(document_id)
    deliveries = {d.id: d for d in found.deliveries}
    steps = []
    for line in found.events:
        target = deliveries.get(line.delivery_id) if line.delivery_id else None
        steps.append(
            {
                "id": line.id,
                "at": line.at,
                "kind": line.kind,
                "label": EVENT_LABELS.get(line.kind, line.kind),
                "actor": line.actor,
                "task": task_of(line.actor),
                "operator": line.actor.startswith("operator:"),
                "delivery_id": line.delivery_id,
                "channel_label": CHANNEL_LABELS.get(target.channel) if target else None,
                "inbound_item_id": line.inbound_item_id,
                "detail": _shown_detail(line.detail, identity),
            }
        )
    return {
        "document": {
            "id": doc.id,
            "unique_id": doc.unique_id,
            "set_id": doc.set_id,
            "version": doc.version,
            "type_code": doc.type_code,
            "type_display": doc.type_display,
            "finess_geo": doc.finess_geo,
            "effective_time": doc.effective_time,
            "created_at": doc.created_at,
            "replaces_unique_id": doc.replaces_unique_id,
            "ins": doc.ins_matricule if identity else (MASK if doc.ins_matricule else None),
            "ins_qualified": doc.ins_qualified,
        },
        "identity": identity,
        "items": [
            {
                "id": i.id,
                "kind": i.kind,
                "source": i.source,
                "control_id": i.control_id,
                "message_type": i.message_type,
                "status": i.status,
                "status_label": STATUS_LABELS.get(i.status, i.status),
                "reason_code": i.reason_code,
                "received_at": i.received_at,
                "parent_id": i.parent_id,
            }
            for i in found.items
        ],
        "deliveries": [
            {
                "id": d.id,
                "channel": d.channel,
                "channel_label": CHANNEL_LABELS.get(d.channel, d.channel),
                "recipient": _masked_recipient(d.channel, d.recipient, identity),
                "action": d.action,
                "status": d.status,
                "status_label": STATUS_LABELS.get(d.status, d.status),
                "attempts": d.attempts,
                "reason_code": d.reason_code,
                "reason_text": d.reason_text,
                "sent_at": d.sent_at,
                "partner_ref": d.partner_ref,
                "replay_of": d.replay_of,
                "replay_seq": d.replay_seq,
                "replays": [r.id for r in found.deliveries if r.replay_of == d.id],
                "replay": replay_kind(d),
            }
            for d in found.deliveries
        ],
        "steps": steps,
    }


def _shown_detail(detail: Any, identity: bool) -> dict[str, Any]:
    # details are codes and short technical texts by construction; an address of the patient's
    # mailbox may still appear in a mail's trail
    shown = dict(detail or {})
    if not identity:
        for key, value in list(shown.items()):
            if isinstance(value, str) and "@patient.mssante.fr" in value:
                shown[key] = MASK
    return shown


# -- identity and content ------------------------------------------------------------------------


def identity(ledger: Ledger, operator: Operator, document_id: int) -> dict[str, Any]:
    """The patient's identity as the document's message states it (names, birth date, IPP,
    INS), read from the archived original; the view is written to the trail."""
    operator.need(CONTENT)
    doc = ledger.get_document(document_id)
    shown: dict[str, Any] = {"ins": doc.ins_matricule, "ins_qualified": doc.ins_qualified}
    ledger.add_event(
        VIEWED, document_id=doc.id, actor=operator.actor, detail={"what": "identity_full"}
    )
    if doc.inbound_item_id is not None and ledger.get_inbound(doc.inbound_item_id).kind in (
        "hl7_message",
        "hl7_file",
    ):
        from pfi.base.errors import PfiError
        from pfi.flows.archive import load_request

        try:
            patient = load_request(ledger, doc.inbound_item_id).patient
        except PfiError as exc:
            shown["unavailable"] = getattr(exc, "code", None) or "ORIGINAL_UNAVAILABLE"
        else:
            shown.update(
                birth_name=patient.birth_name,
                given_names=" ".join(patient.given_names) or patient.first_given_name,
                birth_date=patient.birth_date,
                sex=patient.sex,
                ipp=patient.ipp,
            )
    return shown


def original(ledger: Ledger, operator: Operator, item_id: int) -> dict[str, Any]:
    """The original of a received item as text (an HL7 message, a mail; the first
    :data:`MAX_ORIGINAL` bytes); the view is written to the trail."""
    operator.need(CONTENT)
    from pathlib import Path

    from pfi.protocols.hl7v2 import split_file

    item = ledger.get_inbound(item_id)
    ledger.add_event(
        VIEWED, inbound_item_id=item.id, actor=operator.actor, detail={"what": "original"}
    )
    raw: bytes | None = None
    if item.kind == "hl7_message" and item.parent_id is not None:
        for path in (ledger.get_inbound(item.parent_id).storage_path, item.storage_path):
            if path and Path(path).is_file():
                chunks = split_file(Path(path).read_bytes())
                index = int(item.original_ref or "1")
                if 1 <= index <= len(chunks):
                    raw = chunks[index - 1]
                break
    elif item.storage_path and Path(item.storage_path).is_file():
        raw = Path(item.storage_path).read_bytes()
    if raw is None:
        return {"item": item.id, "kind": item.kind, "text": None, "cda": None}
    text = raw[:MAX_ORIGINAL].decode("utf-8", errors="replace").replace("\r", "\n")
    return {
        "item": item.id,
        "kind": item.kind,
        "text": text,
        "truncated": len(raw) > MAX_ORIGINAL,
        "cda": _cda_of(raw) if item.kind == "hl7_message" else None,
    }


def _cda_of(raw: bytes) -> str | None:
    """The CDA an HL7 message carries (its first OBX document in XML), decoded; ``None``."""
    from pfi.base.errors import PfiError
    from pfi.protocols.hl7v2 import Hl7Request, parse_message

    try:
        message = parse_message(raw)
    except (PfiError, ValueError):
        return None
    if not isinstance(message, Hl7Request):
        return None
    for document in message.documents:
        if document.format in ("cda", "xml"):
            return document.content[:MAX_ORIGINAL].decode("utf-8", errors="replace")
    return None


# -- replay, hold, release ----------------------------------------------------------------------


#: The longest reason kept (a reason is written to the trail: codes and short texts, no patient
#: data — the form says so).
MAX_REASON = 500


def _reason(text: str | None) -> str:
    reason = " ".join((text or "").split())
    if len(reason) > MAX_REASON:
        raise ValueError(f"motif trop long ({MAX_REASON} caractères au plus)")
    return reason


def _within_cap(operator: Operator, count: int) -> None:
    """More than :data:`MAX_BULK` deliveries at once needs the ``admin`` right, more than
    :data:`MAX_BULK_ADMIN` a narrower search."""
    if count > MAX_BULK_ADMIN:
        raise ValueError(f"plus de {MAX_BULK_ADMIN} envois : affinez la recherche")
    if count > MAX_BULK and not operator.can(ADMIN):
        raise Forbidden(ADMIN)


def replay_kind(delivery: Delivery) -> str:
    """What a replay of ``delivery`` would do: ``attempt`` (a new attempt, never sent),
    ``duplicate`` (it was sent: only a forced replay, as a new delivery), ``waiting`` (pending
    or held: nothing to do)."""
    if delivery.status in ("pending", "held"):
        return "waiting"
    if delivery.status == "sent" or delivery.sent_at is not None:
        return "duplicate"
    return "attempt"


def plan_replay(ledger: Ledger, operator: Operator, delivery_ids: Iterable[int]) -> dict[str, Any]:
    """What replaying these deliveries would do, for the confirmation: the ids of each kind
    (:func:`replay_kind`)."""
    operator.need(REPLAY)
    plan: dict[str, list[int]] = {"attempt": [], "duplicate": [], "waiting": []}
    for delivery_id in dict.fromkeys(delivery_ids):
        plan[replay_kind(ledger.get_delivery(delivery_id))].append(delivery_id)
    return plan


def replay(
    ledger: Ledger,
    operator: Operator,
    delivery_ids: Sequence[int],
    *,
    reason: str,
    force: bool = False,
) -> dict[str, list[int]]:
    """Replay these deliveries (see the module's docstring): ``{"attempt": [ids made due
    again], "forced": [ids of the new deliveries], "duplicate": [ids left alone, sent before:
    confirm with force], "waiting": [ids already waiting]}``."""
    operator.need(REPLAY)
    reason = _reason(reason)
    if not reason:
        raise ValueError("un motif est obligatoire pour rejouer un envoi")
    ids = list(dict.fromkeys(delivery_ids))
    _within_cap(operator, len(ids))
    done: dict[str, list[int]] = {"attempt": [], "forced": [], "duplicate": [], "waiting": []}
    for delivery_id in ids:
        delivery = ledger.get_delivery(delivery_id)
        kind = replay_kind(delivery)
        if kind == "waiting":
            done["waiting"].append(delivery_id)
        elif kind == "duplicate" and not force:
            done["duplicate"].append(delivery_id)
        elif kind == "duplicate":
            done["forced"].append(
                ledger.force_replay(delivery_id, actor=operator.actor, reason=reason).id
            )
        else:
            ledger.add_event(
                REPLAYED,
                document_id=delivery.document_id,
                delivery_id=delivery.id,
                actor=operator.actor,
                detail={"reason": reason, "from": delivery.status, "attempts": delivery.attempts},
            )
            ledger.mark_delivery(
                delivery.id,
                "pending",
                reason_code=f"{delivery.channel.upper()}_REPLAY",
                attempted=False,
                actor=operator.actor,
            )
            done["attempt"].append(delivery_id)
    return done


def replay_matching(
    ledger: Ledger,
    operator: Operator,
    criteria: Search,
    *,
    reason: str,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, list[int]]:
    """Replay every delivery matching ``criteria`` ("every DMP failure of yesterday for FINESS
    X"), at most :data:`MAX_BULK` (:data:`MAX_BULK_ADMIN` for an administrator: more is
    refused, narrow the search). ``dry_run``: only the plan."""
    operator.need(REPLAY)
    ids: list[int] = []
    before: int | None = None
    while True:
        page = ledger.search_deliveries(criteria, before_id=before, limit=100)
        ids += [line.id for line in page]
        _within_cap(operator, len(ids))
        if len(page) < 100:
            break
        before = page[-1].id
    if dry_run:
        return plan_replay(ledger, operator, ids)
    return replay(ledger, operator, ids, reason=reason, force=force)


def hold_or_release(
    ledger: Ledger,
    operator: Operator,
    delivery_ids: Sequence[int],
    what: str,
    *,
    reason: str = "",
) -> list[int]:
    """Hold (``pending`` → ``held``) or release (``held`` → ``pending``) these deliveries;
    the ids changed, each with its ``operator.hold`` / ``operator.release`` line."""
    operator.need(REPLAY)
    if what not in (HOLD, RELEASE):
        raise ValueError(f"what must be {HOLD} or {RELEASE}")
    deliveries = [ledger.get_delivery(i) for i in dict.fromkeys(delivery_ids)]
    changed = order_deliveries(ledger, deliveries, what, actor=operator.actor)
    for delivery in changed:
        ledger.add_event(
            HELD if what == HOLD else RELEASED,
            document_id=delivery.document_id,
            delivery_id=delivery.id,
            actor=operator.actor,
            detail={"reason": _reason(reason)},
        )
    return [d.id for d in changed]


# -- the operator's trail -------------------------------------------------------------------------


def audit(
    ledger: Ledger, operator: Operator, *, before_id: int | None = None, limit: int = 50
) -> dict[str, Any]:
    """One page of the operator's trail, newest first: who replayed, held, released or viewed
    what, when and why."""
    operator.need(METADATA)
    page = max(1, min(limit, 100))
    lines = ledger.operator_events(before_id=before_id, limit=page + 1)
    rows = [
        {
            "id": e.id,
            "at": e.at,
            "kind": e.kind,
            "label": EVENT_LABELS.get(e.kind, e.kind),
            "operator": e.actor.removeprefix("operator:"),
            "document_id": e.document_id,
            "delivery_id": e.delivery_id,
            "inbound_item_id": e.inbound_item_id,
            "reason": (e.detail or {}).get("reason"),
            "detail": dict(e.detail or {}),
        }
        for e in lines[:page]
    ]
    return {"rows": rows, "next_before": rows[-1]["id"] if len(lines) > page else None}


def parse_day(value: str | None) -> datetime | None:
    """A day typed in a form (``AAAA-MM-JJ``), as midnight Paris time; ``None`` when empty."""
    if not value:
        return None
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(value.strip()).replace(tzinfo=ZoneInfo("Europe/Paris"))


__all__ = [
    "ADMIN",
    "CHANNEL_LABELS",
    "CONTENT",
    "EVENT_LABELS",
    "MASK",
    "MAX_BULK",
    "METADATA",
    "REPLAY",
    "RIGHTS",
    "STATUS_LABELS",
    "Forbidden",
    "Operator",
    "TaskRef",
    "audit",
    "find",
    "hold_or_release",
    "identity",
    "original",
    "plan_replay",
    "replay",
    "replay_kind",
    "replay_matching",
    "search",
    "task_of",
    "timeline",
]
