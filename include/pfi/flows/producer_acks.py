"""Returning the business acknowledgements (ZAM) to the producer: file, then MLLP.

The DMP and MSSanté deliveries build a ZAM with :mod:`pfi.protocols.hl7v2.zam` from the request
they loaded (:func:`pfi.flows.archive.load_request`) and hand it to :func:`emit`: it writes the
file into the source's outbound folder, beside the technical ACKs (:func:`write_zam`), and — when
the source names an MLLP Connection (``[[hl7_source]] zam_mllp``) — also sends it over MLLP
(:mod:`pfi.protocols.mllp`), recording ``zam.sent`` / ``zam.failed`` in the ledger's trail.
That Connection comes from the ``connections`` lookup the caller passes
(:mod:`pfi.base.connections`): ``AIRFLOW_CONN_<ID>`` by default, as the ``pfi`` command has it;
Airflow's own in a DAG's task.

Over MLLP, a transient failure (peer down, no answer) is retried within the task
(:data:`MLLP_ATTEMPTS`), then the ZAM is queued under the source's work directory and sent again
once the peer answers: right after the next successful send to that source, or by
:func:`resend_pending` (a sweep for a scheduled task); after :data:`RESEND_WINDOW` it is given up
with a ``zam.failed`` event. A refusal (AE/AR/CE/CR) is final: it is recorded with the peer's
code and not retried. The ledger's delivery channels are not used for this: ``dpi`` is the
channel of received mails forwarded to the DPI, and a ZAM is an answer about a delivery, not a
delivery of its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfi.base.connections import Connection, Lookup, from_environment
from pfi.base.errors import ConfigurationError, TransientError
from pfi.base.files import write_atomically
from pfi.protocols.hl7v2.zam import BusinessAck, file_name

if TYPE_CHECKING:
    from pfi.base.settings import Hl7Source
    from pfi.ledger import Ledger
    from pfi.protocols.mllp import MllpEndpoint

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


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
    connections: Lookup = from_environment,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Write the ZAM file (always: it is the audit copy) and, when the source has
    ``zam_mllp_connection`` (or ``endpoint`` is given) and a ledger is passed, also send it
    over MLLP, to the endpoint of that Connection as ``connections`` gives it.

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
        ledger,
        source,
        entry,
        data,
        actor,
        endpoint,
        MLLP_ATTEMPTS,
        sleep,
        connections=connections,
        hold_down=True,
    )
    if outcome == "transient":
        entry.save(source, data)
    else:
        entry.remove(source)
        if outcome == "sent":
            resend_pending(
                ledger,
                [source],
                actor=actor,
                endpoint=endpoint,
                connections=connections,
                limit=CATCH_UP_LIMIT,
            )
    return path


def resend_pending(
    ledger: Ledger,
    sources: Iterable[Hl7Source],
    *,
    actor: str = "pfi",
    endpoint: MllpEndpoint | None = None,
    connections: Lookup = from_environment,
    now: datetime | None = None,
    window: timedelta = RESEND_WINDOW,
    limit: int = 500,
) -> dict[str, int]:
    """Send again, once each and oldest first, the queued ZAMs of ``sources`` (those whose MLLP
    send failed transiently); stop with a source at its first failure (the peer is still down).
    A ZAM queued longer than ``window`` is given up (:data:`EVENT_FAILED`, ``ZAM_MLLP_GIVEN_UP``).
    For a scheduled task or a command to sweep; :func:`emit` calls it after a success.
    Returns counts: ``sent``, ``refused``, ``failed`` (still transient), ``given_up``,
    ``pending`` (left for later). Each source's Connection comes from ``connections``."""
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
            outcome = _send_recorded(
                ledger, source, entry, data, actor, endpoint, 1, time.sleep, connections=connections
            )
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


def _look_up(connections: Lookup, conn_id: str) -> Connection:
    """The Connection, or a ConfigurationError (queued, like a missing one) whatever went
    wrong reading it: a secrets backend or the execution API down must not lose the ZAM."""
    try:
        return connections(conn_id)
    except ConfigurationError:
        raise
    except Exception as exc:  # the lookup's own failure, named by type only
        raise ConfigurationError(
            f"Connection {conn_id!r} could not be read ({type(exc).__name__})",
            code="CONNECTION_UNREADABLE",
        ) from None


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
    connections: Lookup,
    hold_down: bool = False,
) -> str:
    """Send one ZAM over MLLP (up to ``attempts`` times), record the outcome in the ledger and
    return it: ``sent``, ``refused`` or ``transient``. ``endpoint``, else the one of the source's
    Connection (``zam_mllp``) as ``connections`` gives it. With ``hold_down``, a peer that failed
    within :data:`PEER_HOLD_DOWN` in this process is not tried (``MLLP_PEER_DOWN``)."""
    from pfi.protocols.mllp import MllpClient, MllpEndpoint, MllpRefused

    failure: dict[str, Any] = {}
    tried = 0
    try:
        chosen = endpoint or MllpEndpoint.from_connection(
            _look_up(connections, source.zam_mllp_connection or "")
        )
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


__all__ = [
    "EVENT_FAILED",
    "EVENT_SENT",
    "emit",
    "resend_pending",
    "write_zam",
]
