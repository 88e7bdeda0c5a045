"""Triggers and assets that start a PFI DAG within seconds of an event, not at its next minute.

Airflow's event-driven scheduling: an :class:`~airflow.sdk.AssetWatcher` runs the trigger in the
triggerer; each event it yields is an event of the asset, which starts the DAGs scheduled on it.
Every such DAG keeps its one-minute schedule as the safety net (missed events, retries):

- :data:`HL7_DROP_ASSET` (:class:`DropFolderTrigger`): a settled file in a drop directory (or
  written there by the MLLP inlet) → ``ingest_hl7_drop``;
- :data:`DMP_QUEUE_ASSET`, :data:`MSSANTE_QUEUE_ASSET`: updated by ``ingest_hl7_drop`` when it
  recorded deliveries (no watcher: a task's outlet) → ``deliver_dmp``, ``deliver_mssante``;
- :data:`MAILBOX_ASSET` (:class:`MailboxIdleTrigger`): a mail in an application mailbox →
  ``poll_mssante_inbox``.

:class:`DropFolderTrigger` reads the drop directories of the site's ``[[hl7_source]]`` every
``poll_seconds`` (a directory listing, no file read) and yields ``{"sources": [names]}`` when a
file there is newly settled (what intake would claim: :func:`pfi.flows.drop.settled_files`);
a file announced once is not announced again while it waits.

:class:`MailboxIdleTrigger` waits in IMAP IDLE (RFC 2177) on the INBOX of every configured
application mailbox (``[[mailbox]]`` of the site settings, its Connection's certificate), one
session of its own per mailbox, in a thread each (the IMAP client blocks); it yields
``{"mailboxes": [names]}`` as soon as a server announces a mail (mails arriving together give
one event), and once when a session opens on an INBOX that already holds mails. A mailbox whose
server offers no IDLE, or whose Connection is missing, is left to the schedule (a warning in the
triggerer's log, retried every ``retry_seconds`` for a broken session). No mail is read here:
the DAG reads them; the event carries mailbox names only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetWatcher
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

if TYPE_CHECKING:
    from pfi.protocols.mssante.imap import ImapEndpoint

log = logging.getLogger(__name__)


class MailboxIdleTrigger(BaseEventTrigger):
    """IMAP IDLE on every application mailbox's INBOX (see the module docstring)."""

    def __init__(
        self,
        idle_seconds: float = 120.0,
        retry_seconds: float = 30.0,
        settle_seconds: float = 0.5,
    ) -> None:
        super().__init__()
        self.idle_seconds = idle_seconds
        self.retry_seconds = retry_seconds
        self.settle_seconds = settle_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "idle_seconds": self.idle_seconds,
                "retry_seconds": self.retry_seconds,
                "settle_seconds": self.settle_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from pfi_airflow.runtime import site_settings

        loop = asyncio.get_running_loop()
        arrivals: asyncio.Queue[str] = asyncio.Queue()
        stop = threading.Event()

        def notify(name: str) -> None:
            loop.call_soon_threadsafe(arrivals.put_nowait, name)

        settings = await asyncio.to_thread(site_settings)
        starters = [
            asyncio.create_task(self._start(mailbox, stop, notify))
            for mailbox in settings.mailboxes
        ]
        try:
            while True:
                names = {await arrivals.get()}
                await asyncio.sleep(self.settle_seconds)  # mails arriving together: one event
                while not arrivals.empty():
                    names.add(arrivals.get_nowait())
                yield TriggerEvent({"mailboxes": sorted(names)})
        finally:
            stop.set()
            for starter in starters:
                starter.cancel()

    async def _start(self, mailbox: Any, stop: threading.Event, notify: Callable) -> None:
        """Look the mailbox's Connection up (retried until found), then watch it in a thread."""
        from pfi.base.errors import PfiError
        from pfi.protocols.mssante.connection import endpoints
        from pfi_airflow.hooks import airflow_connection_async

        while not stop.is_set():
            try:
                conn = await airflow_connection_async(mailbox.connection_id)
                _, endpoint = endpoints(conn, mailbox.address)
                break
            except PfiError as exc:
                log.warning("mailbox %s not watched yet: %s", mailbox.name, exc.code)
                await asyncio.sleep(self.retry_seconds)
        else:
            return
        threading.Thread(
            target=watch_inbox,
            args=(mailbox.name, endpoint, stop, notify),
            kwargs={"idle_seconds": self.idle_seconds, "retry_seconds": self.retry_seconds},
            name=f"pfi-idle-{mailbox.name}",
            daemon=True,  # blocked in IDLE at most idle_seconds: never holds the triggerer
        ).start()


def watch_inbox(
    name: str,
    endpoint: ImapEndpoint,
    stop: threading.Event,
    notify: Callable[[str], None],
    *,
    idle_seconds: float = 120.0,
    retry_seconds: float = 30.0,
) -> None:
    """Call ``notify(name)`` each time the INBOX gets a mail (and when a session opens on an
    INBOX holding mails), until ``stop``; a broken session is reopened after ``retry_seconds``."""
    from pfi.base.errors import PfiError
    from pfi.protocols.mssante import constants as k
    from pfi.protocols.mssante.imap import ImapClient

    while not stop.is_set():
        try:
            with ImapClient(endpoint) as imap:
                imap.select_folder("INBOX")
                if imap.list_uids(1):
                    notify(name)
                while not stop.is_set():
                    if imap.wait_for_new_mail(idle_seconds):
                        notify(name)
        except PfiError as exc:
            if exc.code == k.NO_IDLE:
                log.warning("mailbox %s: no IMAP IDLE, polled every minute only", name)
                return
            log.warning(
                "mailbox %s: IDLE session lost (%s), again in %ss", name, exc.code, retry_seconds
            )
        except Exception as exc:  # never let the watch die silently
            log.warning("mailbox %s: IDLE session lost (%s)", name, type(exc).__name__)
        stop.wait(retry_seconds)


class DropFolderTrigger(BaseEventTrigger):
    """Settled files in the HL7 drop directories (see the module docstring)."""

    def __init__(self, poll_seconds: float = 0.5) -> None:
        super().__init__()
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"poll_seconds": self.poll_seconds},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from pfi_airflow.runtime import site_settings

        settings = await asyncio.to_thread(site_settings)
        announced: dict[str, set[tuple[float, str]]] = {}
        while True:
            fresh = await asyncio.to_thread(newly_settled, settings.sources, announced)
            if fresh:
                yield TriggerEvent({"sources": fresh})
            await asyncio.sleep(self.poll_seconds)


def newly_settled(sources: Any, announced: dict[str, set[tuple[float, str]]]) -> list[str]:
    """Names of the sources whose drop directory holds a settled file not in ``announced``
    (updated: what each directory holds now)."""
    from pfi.flows.drop import settled_files

    fresh = []
    for source in sources:
        try:
            now = set(settled_files(source))
        except OSError as exc:  # a directory unreadable for a while: the schedule still runs
            log.warning("hl7_source %s not watched: %s", source.name, type(exc).__name__)
            continue
        if now - announced.get(source.name, set()):
            fresh.append(source.name)
        announced[source.name] = now
    return fresh


#: Settled files in the drop directories: starts ``ingest_hl7_drop``.
HL7_DROP_ASSET = Asset(
    "pfi-hl7-drop",
    uri="pfi://intake/drop-directories",
    watchers=[AssetWatcher(name="pfi_hl7_drop_watch", trigger=DropFolderTrigger())],
)
#: Deliveries recorded by intake: start the delivery DAGs at once.
DMP_QUEUE_ASSET = Asset("pfi-dmp-queue", uri="pfi://deliveries/dmp")
MSSANTE_QUEUE_ASSET = Asset("pfi-mssante-queue", uri="pfi://deliveries/mssante")

#: The asset the receiving DAG is scheduled on: an event per mail announced by IMAP IDLE.
MAILBOX_ASSET = Asset(
    "pfi-mssante-inbox",
    uri="pfi://mssante/application-mailboxes",
    watchers=[AssetWatcher(name="pfi_mssante_idle", trigger=MailboxIdleTrigger())],
)


__all__ = [
    "DMP_QUEUE_ASSET",
    "HL7_DROP_ASSET",
    "MAILBOX_ASSET",
    "MSSANTE_QUEUE_ASSET",
    "DropFolderTrigger",
    "MailboxIdleTrigger",
    "newly_settled",
    "watch_inbox",
]
