"""The fake DMP's HTTPS server: one thread per connection, the TLS handshake (client certificate
required) in that thread, the SOAP paths, the ``transient``/``slow``/``drop``/``down`` modes at the
HTTP level, and the control paths another process uses (``GET /_devkit/state``, ``POST
/_devkit/mode``, ``POST /_devkit/reset``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from pfi_devkit.dmp.constants import (
    ACTIONS_BY_PATH,
    CONNECTION_TIMEOUT,
    CONTROL_PATH,
    MAX_BODY,
    RETRY_AFTER_SECONDS,
)
from pfi_devkit.dmp.model import HttpAnswer, Refusal, SoapFault
from pfi_devkit.dmp.soap import fault_envelope

if TYPE_CHECKING:
    from pfi_devkit.dmp.endpoint import DmpEndpoint


def _peer_cn(conn: ssl.SSLSocket) -> str | None:
    cert = conn.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


class HttpServer(ThreadingHTTPServer):
    """One thread per connection; the TLS handshake happens in that thread, not in accept(),
    so a slow or refused client never blocks the listener."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], endpoint: DmpEndpoint) -> None:
        self.endpoint = endpoint
        super().__init__(address, Handler)

    def finish_request(self, request, client_address) -> None:
        endpoint = self.endpoint
        request.settimeout(CONNECTION_TIMEOUT)
        # Headers and body go in separate writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (~40 ms per answer on Linux).
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = endpoint._ssl.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            with endpoint._lock:
                endpoint.tls_refusals += 1
            return
        with endpoint._lock:
            endpoint._connections.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with endpoint._lock:
                endpoint._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()


#: The control path closes its connection after answering (it may have been severed by "down"):
#: say so, or a keep-alive client reuses a socket about to close.
_CLOSE = (("Connection", "close"),)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PFI-devkit-DMP/1.0"
    timeout = CONNECTION_TIMEOUT
    server: HttpServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.endpoint.verbose:
            super().log_message(format, *args)

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._send(HttpAnswer(411, b"Content-Length required\n", "text/plain"))
            return None
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(HttpAnswer(413, b"request too large\n", "text/plain"))
            self.close_connection = True
            return None
        return self.rfile.read(length)

    def _send(self, response: HttpAnswer) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path.rstrip("/") == CONTROL_PATH + "/state":
            body = json.dumps(self.server.endpoint.describe()).encode()
            self._send(HttpAnswer(200, body, "application/json"))
        else:
            self._send(HttpAnswer(405, b"POST SOAP requests here\n", "text/plain"))

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        endpoint = self.server.endpoint
        body = self._read_body()
        if body is None:
            return
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith(CONTROL_PATH + "/"):
            self._control(path, body)
            return
        with endpoint._lock:
            endpoint.requests += 1
        mode = endpoint.mode
        if mode in ("drop", "down"):
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == "transient":
            endpoint._refused(Refusal("http", ("503",), "transient mode"))
            fault = SoapFault("Receiver", None, "service temporarily unavailable (devkit)", 503)
            self._send(
                HttpAnswer(
                    503, fault_envelope(fault), headers=(("Retry-After", str(RETRY_AFTER_SECONDS)),)
                )
            )
            return
        if mode == "slow":
            epoch = endpoint.epoch
            endpoint._stopping.wait(endpoint.delay)
            if endpoint.epoch != epoch:  # reset meanwhile (the next test): never served late
                self.close_connection = True
                return
        if path not in ACTIONS_BY_PATH:
            endpoint._refused(Refusal("http", ("404",), f"no service at {path}"))
            self._send(HttpAnswer(404, f"no service at {path}\n".encode(), "text/plain"))
            return
        cn = _peer_cn(self.connection)
        self._send(endpoint.handle(path, self.headers.get("Content-Type", ""), body, cn))

    def _control(self, path: str, body: bytes) -> None:
        """``POST /_devkit/mode`` (JSON: mode, error_code, error_text, delay, duration) and
        ``POST /_devkit/reset``; answers ``describe()`` once the change is applied."""
        endpoint = self.server.endpoint
        if path not in (CONTROL_PATH + "/mode", CONTROL_PATH + "/reset"):
            self._send(HttpAnswer(404, b"unknown control\n", "text/plain", _CLOSE))
            return
        # Spared from "down" severing open connections: this one carries the answer.
        with endpoint._lock:
            endpoint._connections.discard(self.connection)
        self.close_connection = True
        try:
            if path.endswith("/reset"):
                endpoint.reset()
            else:
                order = json.loads(body or b"{}")
                known = ("error_code", "error_text", "delay", "duration")
                endpoint.set_mode(order["mode"], **{k: order[k] for k in known if k in order})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._send(
                HttpAnswer(400, f"bad control request: {exc!r}\n".encode(), "text/plain", _CLOSE)
            )
            return
        self._send(
            HttpAnswer(200, json.dumps(endpoint.describe()).encode(), "application/json", _CLOSE)
        )
