"""An MLLP peer playing the hospital's DPI: it receives HL7 v2 messages and answers an ACK.

Why: the volet "Transmission au LPS de documents CDA provenant d'un courriel MSSanté" makes the
PFI a *producer* of MDM^T02/T04/T10 towards the DPI (the "CONSOMMATEUR"), which answers one ACK
per message (spec-facts §2.6):

    MSH-9 ``ACK^<event>^ACK``  MSA-1 ``AA``/``AE``/``AR``  MSA-2 = the received MSH-10
    ERR-3 HL7 table 0357 (``207`` Application error, ``101`` Required field missing, ...)
    ERR-5 table 0533 application codes ``900``-``906``, only when ERR-3 = ``207``

The peer lets tests and the demo choose that answer at runtime (``peer.ack_code``,
``peer.ack_error``, or a ``policy`` callable), stay silent (the PFI's timeout path) or drop the
connection, and records every message it received (``peer.received``, optionally a folder).

Transport facts measured on this machine (docs/local-servers.md): python-hl7's ``hl7.mllp`` has
a 64 KiB asyncio stream limit by default (an MDM with a 50 KB PDF resets the connection), decodes
as ASCII unless told otherwise and has no timeouts. So the peer reads raw MLLP blocks with a large
``limit``, decodes each one with the charset its MSH-18 names, and wraps every read in
``asyncio.wait_for``. ``Message.create_ack`` is not used: it stamps UTC time and a random MSH-10;
the ACK here carries local time and a sequential, recognisable control id.

Per patient or per document type, from a JSON file read at each message (so that it can be
changed while the peer runs: ``python -m pfi_devkit dpi-answers``), with :class:`AnswerRules`::

    {"rules": [{"patient": "279035121518989", "code": "AE", "error": "902"},
               {"document_type": "11502-2", "code": "AR", "error": "906",
                "text": "Type de document non intégré"}]}

``patient`` matches any identifier of PID-3 or the family name of PID-5 (case-insensitive);
``document_type`` matches TXA-2's code, in MDM messages only. The first rule that matches gives
the answer; none → the peer's ``ack_code``/``ack_error``.

Runs in a background thread with its own event loop::

    with MllpPeer(store_dir=tmp) as peer:           # 127.0.0.1, ephemeral port
        send_to(peer.host, peer.port)
        peer.ack_code = "AE"
        peer.ack_error = AckError.application("902")
        peer.mode = "silent"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import re
import signal
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import hl7
from hl7.mllp import InvalidBlockError, start_hl7_server

HOST = "127.0.0.1"
#: Large enough for an MDM carrying several base64 PDFs (asyncio's default is 64 KiB).
DEFAULT_LIMIT = 32 * 1024 * 1024
#: Charset when MSH-18 is empty: the French volets use ISO 8859-1 or UTF-8, declared in MSH-18.
DEFAULT_ENCODING = "iso-8859-1"
#: How long a connection may stay idle before the peer closes it (a read timeout, not a delay).
DEFAULT_IDLE_TIMEOUT = 60.0

#: HL7 table 0211 (MSH-18 character set) → Python codec.
MSH18_CODECS = {
    "ASCII": "ascii",
    "8859/1": "iso-8859-1",
    "8859/15": "iso-8859-15",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
}

#: HL7 table 0357 (message error condition codes), used in ERR-3.
ERROR_CONDITIONS = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "198": "Non-conformant cardinality",
    "199": "Other HL7 Error",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "207": "Application error",
}

#: Application error codes of the volet "Transmission au LPS" (ERR-5, table 0533).
APPLICATION_ERRORS = {
    "900": "Version du document incorrecte lors d'une demande de remplacement/suppression",
    "901": "Auteur non autorisé à remplacer ou supprimer un document",
    "902": "Identifiant patient inconnu",
    "903": "INS non présent dans le document",
    "904": (
        "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur"
    ),
    "905": "L'INS transmis n'est pas complet",
    "906": "Erreur 'Autre'",
}

AckCode = Literal["AA", "AE", "AR"]
Mode = Literal["ack", "silent", "close"]
MODES: tuple[Mode, ...] = ("ack", "silent", "close")


@dataclass(frozen=True)
class AckError:
    """One ERR segment: ``ERR||<location>|<condition>^<text>^messageErrorCondition|<severity>|
    <application code>^<text>^applicationErrorCode`` (the shape of the volet's examples)."""

    condition: str = "207"
    location: str = ""
    severity: str = "E"
    application_code: str | None = None
    text: str | None = None

    @classmethod
    def application(cls, code: str, location: str = "") -> AckError:
        """An application refusal (ERR-3 = 207) with one of the volet's codes 900-906."""
        if code not in APPLICATION_ERRORS:
            raise ValueError(f"unknown application error code {code!r} (900-906)")
        return cls("207", location, "E", code)

    def segment(self) -> str:
        if self.condition not in ERROR_CONDITIONS:
            raise ValueError(f"ERR-3 {self.condition!r} is not in HL7 table 0357")
        condition_text = ERROR_CONDITIONS[self.condition]
        fields = [
            "ERR",
            "",
            self.location,
            f"{self.condition}^{condition_text}^messageErrorCondition",
            self.severity,
        ]
        if self.application_code:
            text = self.text or APPLICATION_ERRORS.get(self.application_code, "")
            fields.append(f"{self.application_code}^{text}^applicationErrorCode")
        elif self.text:
            fields += ["", "", "", self.text]  # ERR-8 user message
        return "|".join(fields)


Policy = Callable[[hl7.Message], "tuple[str, AckError | None]"]


class AnswerRules:
    """A ``policy`` answering per patient or per document type from a JSON file (module
    docstring), re-read when it changes; a missing or unreadable file means no rule."""

    def __init__(self, path: Path, *, default: AckCode = "AA") -> None:
        self.path = Path(path)
        self.default: str = default
        self._stamp: tuple[int, int] | None = None
        self._rules: list[dict[str, str]] = []

    def rules(self) -> list[dict[str, str]]:
        try:
            stat = self.path.stat()
        except OSError:
            self._stamp, self._rules = None, []
            return []
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8")).get("rules", [])
                self._rules = [dict(rule) for rule in loaded if isinstance(rule, dict)]
            except (OSError, ValueError, AttributeError):
                self._rules = []
            self._stamp = stamp
        return self._rules

    def __call__(self, message: hl7.Message) -> tuple[str, AckError | None]:
        patients, document_type = _keys(message)
        for rule in self.rules():
            wanted_patient = str(rule.get("patient", "")).strip().upper()
            wanted_type = str(rule.get("document_type", "")).strip()
            if wanted_patient and wanted_patient not in patients:
                continue
            if wanted_type and wanted_type != document_type:
                continue
            if not (wanted_patient or wanted_type):
                continue
            code = str(rule.get("code", "AE")).upper()
            error = rule.get("error")
            if code == "AA" or not error:
                return code, None
            return code, AckError("207", "", "E", str(error), rule.get("text"))
        return self.default, None


def _keys(message: hl7.Message) -> tuple[set[str], str]:
    """The patient's identifiers and family name (upper case), and the MDM's TXA-2 code."""
    patients: set[str] = set()
    document_type = ""
    for segment in message:
        name = str(segment[0])
        if name == "PID":
            if len(segment) > 3:
                for repetition in segment[3]:
                    identifier = str(repetition).split("^")[0].strip()
                    if identifier:
                        patients.add(identifier.upper())
            if len(segment) > 5:
                family = str(segment[5]).split("~")[0].split("^")[0].strip()
                if family:
                    patients.add(family.upper())
        elif name == "TXA" and len(segment) > 2 and str(message[0][9]).startswith("MDM"):
            document_type = str(segment[2]).split("^")[0].strip()
    return patients, document_type


@dataclass(frozen=True)
class Exchange:
    """A received message as bytes and text, and the ACK answered (None when silent)."""

    raw: bytes
    text: str
    encoding: str
    control_id: str
    ack: str | None


def msh_fields(raw: bytes) -> list[bytes]:
    """Fields of the MSH segment: ``fields[n]`` is MSH-n (``fields[0]`` is "MSH", MSH-1 the
    field separator itself), read from bytes because the charset is not known yet."""
    first = re.split(rb"[\r\n]", raw.lstrip(), maxsplit=1)[0]
    if not first.startswith(b"MSH") or len(first) < 8:
        raise ValueError("the message does not start with an MSH segment")
    separator = first[3:4]
    fields = first.split(separator)
    return [fields[0], separator, *fields[1:]]


def charset_of(raw: bytes, default: str = DEFAULT_ENCODING) -> str:
    """Python codec named by MSH-18 (first repetition), ``default`` when empty or unknown."""
    try:
        fields = msh_fields(raw)
    except ValueError:
        return default
    if len(fields) < 19 or not fields[18].strip():
        return default
    repetition = fields[2][1:2] or b"~"
    value = fields[18].split(repetition)[0].decode("ascii", "replace").strip().upper()
    return MSH18_CODECS.get(value, default)


def build_ack(
    message: hl7.Message,
    code: str,
    error: AckError | None = None,
    *,
    control_id: str,
    now: dt.datetime | None = None,
) -> str:
    """The ACK of the volet: sender/receiver swapped, MSH-9 ``ACK^<event>^ACK``, MSH-12, MSH-17
    and MSH-18 echoed, ``MSA|<code>|<MSH-10>``, then ``ERR`` when given. Segments end with CR."""
    if code not in ("AA", "AE", "AR", "CA", "CE", "CR"):
        raise ValueError(f"MSA-1 {code!r} is not an acknowledgment code (HL7 table 0008)")
    msh = message.segment("MSH")

    def field(n: int) -> str:
        try:
            return str(msh(n))
        except IndexError:
            return ""

    def component(n: int, c: int) -> str:
        try:
            return str(msh(n)(1)(c))
        except IndexError:
            return ""

    stamp = (now or dt.datetime.now()).strftime("%Y%m%d%H%M%S")
    event = component(9, 2)
    header = [
        "MSH",
        field(2),
        field(5),
        field(6),
        field(3),
        field(4),
        stamp,
        "",
        f"ACK^{event}^ACK" if event else "ACK",
        control_id,
        field(11) or "P",
        field(12) or "2.6",
        "",
        "",
        "",
        "",
        field(17),
        field(18),
    ]
    while header and header[-1] == "":
        header.pop()
    segments = ["|".join(header), f"MSA|{code}|{field(10)}"]
    if error is not None:
        segments.append(error.segment())
    return "\r".join(segments) + "\r"


class MllpPeer:
    """MLLP server answering one ACK per HL7 message; ``start()``/``stop()`` or ``with``.

    Runtime knobs (plain attributes, read at each message, safe to set from another thread):

    - ``ack_code``: ``"AA"`` (default), ``"AE"`` or ``"AR"``; ``ack_error``: an ``AckError`` or
      None (the ERR segment);
    - ``policy``: ``(hl7.Message) -> (code, AckError | None)``, wins over the two above;
    - ``mode``: ``"ack"`` (default), ``"silent"`` (read, record, never answer) or ``"close"``
      (read, record, close the connection without answering).

    ``received`` lists the messages' text (segments separated by CR) in arrival order,
    ``exchanges`` the same with raw bytes, codec and the ACK sent. ``store_dir`` also gets each
    message as ``<seq>-<MSH-10>.hl7`` (raw bytes) when given.
    """

    def __init__(
        self,
        *,
        host: str = HOST,
        port: int = 0,
        store_dir: Path | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limit: int = DEFAULT_LIMIT,
        default_encoding: str = DEFAULT_ENCODING,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        ack_code: AckCode = "AA",
        ack_error: AckError | None = None,
        policy: Policy | None = None,
        mode: Mode = "ack",
    ) -> None:
        self.host = host
        self.port = port
        self._requested_port = port
        self.store_dir = Path(store_dir).resolve() if store_dir else None
        self.ssl_context = ssl_context
        self.limit = limit
        self.default_encoding = default_encoding
        self.idle_timeout = idle_timeout
        self.ack_code: str = ack_code
        self.ack_error = ack_error
        self.policy = policy
        self._mode: Mode = "ack"
        self.mode = mode
        self.exchanges: list[Exchange] = []
        self.errors: list[str] = []
        self._seq = itertools.count(1)
        self._file_seq = itertools.count(1)  # not reset: files of earlier tests stay distinct
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> MllpPeer:
        if self._thread is not None:
            return self
        if self.store_dir:
            self.store_dir.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._listen())
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                started.set()
                return
            started.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="pfi-mllp-peer", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure or self._server is None:
            self._thread.join(5)
            self._thread = None
            raise RuntimeError(f"MLLP peer did not start: {failure[0] if failure else 'timeout'}")
        return self

    def stop(self) -> None:
        """Close the listener and every open connection, then end the loop thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(Exception):  # a loop already gone: nothing left to close
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        self._thread = None
        self._loop = None
        self._server = None
        self.port = self._requested_port

    def down(self) -> None:
        """An outage: stop listening and close every open connection — the DPI's port refuses
        connections — until :meth:`up` listens again on the same port."""
        if self._loop is not None and self._server is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
            self._server = None

    def up(self) -> None:
        """The end of an outage (:meth:`down`): listen again, on the port the clients know."""
        if self._loop is not None and self._server is None:
            asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def __enter__(self) -> MllpPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to the defaults between tests: AA, no ERR, no policy, mode ack, nothing received."""
        self.ack_code, self.ack_error, self.policy, self.mode = "AA", None, None, "ack"
        with self._cond:
            self.exchanges.clear()
            self.errors.clear()

    @property
    def mode(self) -> Mode:
        """``"ack"``, ``"silent"`` or ``"close"`` (see the class docstring)."""
        return self._mode

    @mode.setter
    def mode(self, value: Mode) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {value!r}")
        self._mode = value

    # -- what tests and the demo use -------------------------------------------------------

    @property
    def received(self) -> list[str]:
        """Text of every message received, in arrival order."""
        return [e.text for e in self.exchanges]

    def wait_received(self, count: int, timeout: float = 5.0) -> list[str]:
        """Block until ``count`` messages were received in total; return them (or raise)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.exchanges) >= count, timeout):
                raise TimeoutError(f"{len(self.exchanges)} message(s) received, {count} expected")
            return [e.text for e in self.exchanges]

    def describe(self) -> dict[str, Any]:
        """JSON-able description (for the demo's state file)."""
        return {
            "host": self.host,
            "port": self.port,
            "tls": self.ssl_context is not None,
            "mode": self.mode,
            "ack_code": self.ack_code,
            "store_dir": str(self.store_dir) if self.store_dir else None,
            "received": len(self.exchanges),
        }

    # -- internals -------------------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await start_hl7_server(
            self._client,
            self.host,
            self.port,
            limit=self.limit,
            ssl=self.ssl_context,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections, timeout=2)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _client(self, reader, writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    block = await asyncio.wait_for(reader.readblock(), self.idle_timeout)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                except (InvalidBlockError, ValueError) as exc:
                    self._record_error(f"unreadable MLLP block: {exc}")
                    return
                if not await self._answer(block, writer):
                    return
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _answer(self, block: bytes, writer) -> bool:
        """Record one message and answer it; False when the connection must close."""
        encoding = charset_of(block, self.default_encoding)
        text = block.decode(encoding, "replace")
        mode = self.mode
        try:
            message = hl7.parse(text)
            control_id = str(message.segment("MSH")(10))
        except Exception as exc:  # a peer must survive garbage; the test reads .errors
            self._record_error(f"unparsable HL7 message: {exc}")
            self._record(Exchange(block, text, encoding, "", None))
            return mode == "ack"
        ack = None
        if mode == "ack":
            code, error = self._decide(message)
            ack = build_ack(message, code, error, control_id=self._ack_control_id())
        self._record(Exchange(block, text, encoding, control_id, ack))
        if ack is None:
            return mode == "silent"
        writer.writeblock(ack.encode(encoding, "replace"))
        try:
            await asyncio.wait_for(writer.drain(), self.idle_timeout)
        except (TimeoutError, ConnectionError):
            return False
        return True

    def _decide(self, message: hl7.Message) -> tuple[str, AckError | None]:
        if self.policy is not None:
            return self.policy(message)
        return self.ack_code, self.ack_error

    def _ack_control_id(self) -> str:
        return f"ACK{next(self._seq):06d}"

    def _record(self, exchange: Exchange) -> None:
        with self._cond:
            self.exchanges.append(exchange)
            seq = next(self._file_seq)
            self._cond.notify_all()
        if self.store_dir:
            safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", exchange.control_id) or "no-id"
            (self.store_dir / f"{seq:06d}-{safe_id}.hl7").write_bytes(exchange.raw)

    def _record_error(self, text: str) -> None:
        with self._cond:
            self.errors.append(text)


def main(argv: list[str] | None = None) -> None:
    """``python -m pfi_devkit.mllp_peer``: run a peer in the foreground (the demo's process).

    Prints ``describe()`` as one JSON line once listening; stops on SIGTERM or Ctrl-C.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--store-dir", type=Path)
    parser.add_argument("--ack-code", choices=("AA", "AE", "AR"), default="AA")
    parser.add_argument("--answers", type=Path, help="a JSON file of AnswerRules")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    policy = AnswerRules(args.answers, default=args.ack_code) if args.answers else None
    with MllpPeer(
        host=args.host,
        port=args.port,
        store_dir=args.store_dir,
        ack_code=args.ack_code,
        policy=policy,
    ) as peer:
        print(json.dumps(peer.describe()), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()


__all__ = [
    "APPLICATION_ERRORS",
    "AnswerRules",
    "ERROR_CONDITIONS",
    "AckError",
    "Exchange",
    "MllpPeer",
    "build_ack",
    "charset_of",
    "msh_fields",
]
