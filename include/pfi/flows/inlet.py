"""MLLP inlet: a second way in for HL7 v2 messages, next to the drop directory.

The volet "Transmission de document(s) CDA en HL7v2" recommends MLLP between the producer and the
PFI. This small long-running service (``pfi hl7 listen SOURCE``) receives MLLP frames
(``<VT> message <FS><CR>``, HL7 v2 appendix C) and writes each message **atomically** into the
source's drop directory — a hidden temporary file, ``fsync``, rename, ``fsync`` of the directory
— and only then answers. Everything else (recording in the ledger, checks, the technical ACK file,
deliveries) is done by the ``ingest_hl7_drop`` DAG, exactly as for a dropped file: one path for
both inlets, one place where a message can be lost (none).

The synchronous answer is the **commit acknowledgement** of the HL7 enhanced mode (table 0008):
``CA`` once the message is on disk, ``CR`` when it is refused unread (over the size limit), ``CE``
when it could not be stored (disk full…: the producer sends it again). The application answer
(``AA``/``AE``/``AR`` with the volet's error codes) follows as the ACK file in the source's
outbound folder. A message whose MSH cannot be read is stored all the same (the intake answers it
and quarantines it with its reason) and committed with an empty MSA-2.

The framing (``<VT> … <FS><CR>``) is :mod:`pfi.protocols.mllp`'s, shared with the PFI's MLLP client.
Files are named ``MLLP_<UTC time>_<sequence>.hl7`` so that claiming (oldest first) keeps the
arrival order. Nothing is logged about the content; the log line per message says its size and
the file name.

Settings (optional, ``[[mllp_inlet]]`` in the settings file; ``pfi hl7 listen`` options win)::

    [[mllp_inlet]]
    source = "dpi"          # the hl7_source whose drop directory receives the messages
    host = "0.0.0.0"
    port = 2575
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import socketserver
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pfi.base.errors import ConfigurationError
from pfi.base.files import write_atomically
from pfi.base.settings import section
from pfi.flows.intake import DEFAULT_MAX_MESSAGE_BYTES
from pfi.protocols.hl7v2.ack import read_header, technical_ack
from pfi.protocols.mllp import Deframer, MllpClient, MllpEndpoint, frame

if TYPE_CHECKING:
    from pfi.base.settings import Hl7Source, Settings

log = logging.getLogger(__name__)

DEFAULT_PORT = 2575
#: How long a connection may stay silent before the inlet closes it.
DEFAULT_IDLE_TIMEOUT = 300.0


@section("mllp_inlet", label="[[mllp_inlet]]")
@dataclass(frozen=True)
class InletConfig:
    """Where one MLLP inlet listens and which source it feeds."""

    source: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT

    @classmethod
    def from_settings(cls, settings: Settings, source: str) -> InletConfig:
        """The ``[[mllp_inlet]]`` entry of ``source`` (defaults when there is none)."""
        settings.source(source)  # an unknown source is a configuration error
        entries = settings.extra.get("mllp_inlet", []) or []
        if isinstance(entries, dict):
            entries = [entries]
        intake = settings.extra.get("intake", {}) or {}
        limit = int(intake.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES))
        for entry in entries:
            if entry.get("source") == source:
                try:
                    return cls(
                        source,
                        str(entry.get("host", "127.0.0.1")),
                        int(entry.get("port", DEFAULT_PORT)),
                        limit,
                        float(entry.get("idle_timeout", DEFAULT_IDLE_TIMEOUT)),
                    )
                except (TypeError, ValueError) as exc:
                    raise ConfigurationError(f"[[mllp_inlet]] {source}: {exc}") from None
        return cls(source, max_message_bytes=limit)

    @classmethod
    def check_settings(cls, settings: Settings) -> list[InletConfig]:
        """Every ``[[mllp_inlet]]`` entry, parsed (``pfi config check``)."""
        entries = settings.extra.get("mllp_inlet", []) or []
        if isinstance(entries, dict):
            entries = [entries]
        try:
            return [cls.from_settings(settings, str(entry.get("source", ""))) for entry in entries]
        except LookupError as exc:
            raise ConfigurationError(str(exc)) from None


class Store:
    """Writes received messages into a drop directory, atomically and in arrival order."""

    def __init__(self, drop_dir: Path) -> None:
        self.drop_dir = drop_dir
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()
        drop_dir.mkdir(parents=True, exist_ok=True)

    def write(self, message: bytes) -> Path:
        with self._lock:
            number = next(self._sequence)
        name = f"MLLP_{datetime.now(UTC):%Y%m%dT%H%M%S%f}_{os.getpid()}_{number:06d}.hl7"
        target = self.drop_dir / name
        write_atomically(target, message, sync_directory=True)
        return target


def commit_ack(message: bytes, code: str, *, text: str = "") -> bytes:
    """The commit acknowledgement of ``message`` (its MSH as far as it can be read)."""
    header = read_header(message[:65536])
    ack = technical_ack(
        header,
        code,
        control_id=f"PFIC{uuid.uuid4().hex[:16]}",
        now=datetime.now(UTC),
        text=text,
    )
    return ack.encode("ascii", errors="replace")


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        connection: socket.socket = self.request
        connection.settimeout(self.server.config.idle_timeout)
        deframer = Deframer()
        limit = self.server.config.max_message_bytes
        try:
            while True:
                chunk = connection.recv(1 << 16)
                if not chunk:
                    return
                deframer.feed(chunk)
                while (message := deframer.next_message()) is not None:
                    if len(message) > limit:
                        connection.sendall(frame(self._refuse(message[:65536])))
                        continue
                    connection.sendall(frame(self._store(message)))
                if deframer.pending > limit:
                    connection.sendall(frame(self._refuse(deframer.pending_head())))
                    return  # the rest of that frame cannot be resynchronised
        except (TimeoutError, ConnectionError, OSError):
            return

    def _refuse(self, head: bytes) -> bytes:
        limit = self.server.config.max_message_bytes
        log.warning("MLLP %s: message over %s bytes refused", self.server.config.source, limit)
        return commit_ack(head, "CR", text="INTAKE_TOO_LARGE: message over the size limit")

    def _store(self, message: bytes) -> bytes:
        try:
            path = self.server.store.write(message)
        except OSError as exc:
            log.error("MLLP %s: message not stored (%s)", self.server.config.source, type(exc))
            return commit_ack(message, "CE", text=f"MLLP_STORE: {type(exc).__name__}")
        log.info(
            "MLLP %s: %s bytes stored as %s", self.server.config.source, len(message), path.name
        )
        return commit_ack(message, "CA")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, config: InletConfig, store: Store) -> None:
        self.config = config
        self.store = store
        super().__init__((config.host, config.port), _Handler)


class MllpInlet:
    """The listener of one source. ``with MllpInlet(...) as inlet:`` runs it in a thread."""

    def __init__(
        self, config: InletConfig, source: Hl7Source, *, store: Store | None = None
    ) -> None:
        self.config = config
        self.source = source
        self._server = _Server(config, store or Store(source.drop_dir))
        self._thread: threading.Thread | None = None

    @classmethod
    def for_source(
        cls, settings: Settings, source: str, *, host: str | None = None, port: int | None = None
    ) -> MllpInlet:
        config = InletConfig.from_settings(settings, source)
        if host is not None or port is not None:
            config = InletConfig(
                source,
                host if host is not None else config.host,
                port if port is not None else config.port,
                config.max_message_bytes,
                config.idle_timeout,
            )
        return cls(config, settings.source(source))

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def serve_forever(self) -> None:
        log.info("MLLP inlet of %s listening on %s:%s", self.config.source, *self.address)
        self._server.serve_forever(poll_interval=0.5)

    def start(self) -> MllpInlet:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Release the listening socket (after :meth:`serve_forever` returned)."""
        self._server.server_close()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MllpInlet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def send(host: str, port: int, message: bytes, *, timeout: float = 30.0) -> bytes:
    """Send one message over MLLP and return the answer (without framing): a small client for
    tests, the benchmark and a support engineer (:class:`pfi.protocols.mllp.MllpClient` also checks the
    answer)."""
    return MllpClient(MllpEndpoint(host, port, timeout, timeout)).exchange(message)


__all__ = [
    "InletConfig",
    "MllpInlet",
    "Store",
    "commit_ack",
    "frame",
    "send",
]
