"""MLLP (Minimal Lower Layer Protocol, HL7 v2 appendix C): framing, and a client that waits for
the peer's acknowledgement.

A block is ``<VT> message <FS><CR>`` (``0x0b`` … ``0x1c 0x0d``). :func:`frame` wraps one message,
:class:`Deframer` cuts a byte stream back into messages (noise between blocks is dropped; the
inlet and the client share it).

:class:`MllpClient` sends one message per call over a fresh TCP connection, with a connect
timeout and a read timeout, and reads the peer's ACK (MSA-1, MSA-2, ERR):

- ``AA`` / ``CA`` → :class:`MllpAnswer` returned (the peer took the message);
- ``AE`` / ``AR`` / ``CE`` / ``CR`` → :class:`MllpRefused` (a :class:`~pfi.base.errors.RefusedByPartner`)
  with code ``MLLP_<MSA-1>`` and the answer on ``.answer`` (its ERR code, e.g. ``207``/``902``);
- connection refused or reset, no answer before the read timeout, an answer that is no ACK of
  this message → :class:`~pfi.base.errors.TransientError` (``MLLP_UNREACHABLE``, ``MLLP_NO_ANSWER``,
  ``MLLP_BAD_ANSWER``): the caller may try again later.

Where the peer is: an :class:`MllpEndpoint`, built by the caller or from an Airflow Connection
(:meth:`MllpEndpoint.from_connection`: ``host``, ``port``, ``extra.timeout``,
``extra.connect_timeout``; the Connection itself comes from :mod:`pfi.base.connections`). Nothing
about the content is logged or put into an error message.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pfi.base.errors import ConfigurationError, RefusedByPartner, TransientError

if TYPE_CHECKING:
    from pfi.base.connections import Connection

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\r"
TRAILER = END_BLOCK + CARRIAGE_RETURN

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
#: An ACK is a few hundred bytes; anything longer than this is not one.
MAX_ANSWER_BYTES = 1024 * 1024

ACCEPTED = ("AA", "CA")
REFUSED = ("AE", "AR", "CE", "CR")


def frame(message: bytes) -> bytes:
    """``<VT> message <FS><CR>``."""
    return START_BLOCK + message + TRAILER


class Deframer:
    """Cuts a byte stream into MLLP messages: :meth:`feed` chunks, then :meth:`next_message`
    until it returns None. Bytes outside a block are dropped."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk

    def next_message(self) -> bytes | None:
        """The next complete message (without framing), or None until more bytes come."""
        start = self._buffer.find(START_BLOCK)
        if start < 0:
            self._buffer.clear()  # noise between blocks
            return None
        end = self._buffer.find(TRAILER, start)
        if end < 0:
            del self._buffer[:start]
            return None
        message = bytes(self._buffer[start + 1 : end])
        del self._buffer[: end + len(TRAILER)]
        return message

    @property
    def pending(self) -> int:
        """Bytes of the block begun but not finished (0 when none)."""
        start = self._buffer.find(START_BLOCK)
        return len(self._buffer) - start - 1 if start >= 0 else 0

    def pending_head(self, size: int = 65536) -> bytes:
        """The first ``size`` bytes of the unfinished block (enough to read its MSH)."""
        start = self._buffer.find(START_BLOCK)
        return bytes(self._buffer[start + 1 : start + 1 + size]) if start >= 0 else b""


@dataclass(frozen=True)
class MllpAnswer:
    """What the peer answered: MSA-1, MSA-2, the first ERR's code (ERR-5.1, else ERR-3.1) and
    MSA-3 / ERR-5.2 text as the peer wrote it (codes and labels, no patient data expected)."""

    code: str
    acknowledged_id: str = ""
    error_code: str = ""
    text: str = ""

    @property
    def accepted(self) -> bool:
        return self.code in ACCEPTED


def parse_answer(raw: bytes) -> MllpAnswer:
    """Read MSA and the first ERR of an ACK; ``MLLP_BAD_ANSWER`` when there is no MSA."""
    text = raw.decode("latin-1", errors="replace")
    segments = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s]
    msh = next((s for s in segments if s.startswith("MSH") and len(s) > 4), None)
    sep = msh[3] if msh else "|"
    comp = msh[4] if msh and len(msh) > 4 else "^"
    msa = next((s.split(sep) for s in segments if s.startswith("MSA" + sep)), None)
    if msa is None or len(msa) < 2 or not msa[1].strip():
        raise TransientError("the MLLP peer answered no ACK (no MSA)", code="MLLP_BAD_ANSWER")
    err = next((s.split(sep) for s in segments if s.startswith("ERR" + sep)), None)
    error_code = error_text = ""
    if err is not None:
        application = err[5].split(comp) if len(err) > 5 else [""]
        condition = err[3].split(comp) if len(err) > 3 else [""]
        error_code = application[0].strip() or condition[0].strip()
        error_text = (application[1] if len(application) > 1 else "").strip()
    return MllpAnswer(
        code=msa[1].strip().upper(),
        acknowledged_id=msa[2].strip() if len(msa) > 2 else "",
        error_code=error_code,
        text=(msa[3].strip() if len(msa) > 3 else "") or error_text,
    )


class MllpRefused(RefusedByPartner):
    """The peer answered AE/AR/CE/CR; ``.answer`` holds its MSA/ERR codes."""

    def __init__(self, answer: MllpAnswer) -> None:
        detail = f" ({answer.error_code})" if answer.error_code else ""
        super().__init__(
            f"the MLLP peer answered {answer.code}{detail}", code=f"MLLP_{answer.code}"
        )
        self.answer = answer


@dataclass(frozen=True)
class MllpEndpoint:
    """Where an MLLP peer listens, and how long to wait for it."""

    host: str
    port: int
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    connection_id: str = ""

    @classmethod
    def from_connection(cls, conn: Connection) -> MllpEndpoint:
        """The peer an Airflow Connection describes: ``host`` and ``port``; ``extra.timeout``
        (read, seconds) and ``extra.connect_timeout``. ConfigurationError naming the connection
        when one is missing or wrong."""
        if not conn.host or not conn.port:
            raise ConfigurationError(f"Connection {conn.conn_id} needs a host and a port")
        return cls(
            conn.host,
            conn.port,
            conn.number("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
            conn.number("timeout", DEFAULT_READ_TIMEOUT),
            conn.conn_id,
        )


class MllpClient:
    """Sends messages to one MLLP peer and checks its ACKs (see the module docstring)."""

    def __init__(self, endpoint: MllpEndpoint) -> None:
        self.endpoint = endpoint

    def send(self, message: bytes, *, control_id: str = "") -> MllpAnswer:
        """Send ``message`` and return the peer's positive answer; raise otherwise.

        ``control_id`` (the message's MSH-10), when given, must come back in MSA-2.
        """
        raw = self.exchange(message)
        answer = parse_answer(raw)
        if control_id and answer.acknowledged_id and answer.acknowledged_id != control_id:
            raise TransientError(
                "the MLLP peer acknowledged another message", code="MLLP_BAD_ANSWER"
            )
        if answer.code in ACCEPTED:
            return answer
        if answer.code in REFUSED:
            raise MllpRefused(answer)
        raise TransientError(
            "the MLLP peer answered an unknown acknowledgement code", code="MLLP_BAD_ANSWER"
        )

    def exchange(self, message: bytes) -> bytes:
        """One framed message out, one framed answer back (without framing)."""
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        try:
            connection = socket.create_connection(
                (self.endpoint.host, self.endpoint.port), timeout=self.endpoint.connect_timeout
            )
        except OSError as exc:
            raise TransientError(
                f"MLLP peer {where} unreachable ({type(exc).__name__})", code="MLLP_UNREACHABLE"
            ) from None
        with connection:
            connection.settimeout(self.endpoint.read_timeout)
            deframer = Deframer()
            try:
                connection.sendall(frame(message))
                while True:
                    chunk = connection.recv(1 << 16)
                    if not chunk:
                        raise TransientError(
                            f"MLLP peer {where} closed the connection without answering",
                            code="MLLP_NO_ANSWER",
                        )
                    deframer.feed(chunk)
                    answer = deframer.next_message()
                    if answer is not None:
                        return answer
                    if deframer.pending > MAX_ANSWER_BYTES:
                        raise TransientError(
                            f"MLLP peer {where} answered no ACK", code="MLLP_BAD_ANSWER"
                        )
            except TimeoutError:
                raise TransientError(
                    f"MLLP peer {where}: no answer within {self.endpoint.read_timeout:g} s",
                    code="MLLP_NO_ANSWER",
                ) from None
            except OSError as exc:
                raise TransientError(
                    f"MLLP peer {where}: connection lost ({type(exc).__name__})",
                    code="MLLP_NO_ANSWER",
                ) from None


__all__ = [
    "ACCEPTED",
    "REFUSED",
    "Deframer",
    "MllpAnswer",
    "MllpClient",
    "MllpEndpoint",
    "MllpRefused",
    "frame",
    "parse_answer",
]
