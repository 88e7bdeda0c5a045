"""The fake DMP itself: :class:`DmpEndpoint`, an HTTPS SOAP 1.2 server with mutual TLS that
serves ITI-41 at ``REPOSITORY_PATH`` and ITI-57 at ``REGISTRY_PATH`` (the DMP's shape).

It puts the parts together: the listener (:mod:`~pfi_devkit.dmp.http`), the request checks in
order (SOAP envelope and WS-Addressing, :mod:`~pfi_devkit.dmp.soap`; the VIHF,
:mod:`~pfi_devkit.dmp.security`), the transactions and their store
(:mod:`~pfi_devkit.dmp.registry`) and the failure modes (:mod:`~pfi_devkit.dmp.modes`).
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import ssl
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pfi_devkit.dmp.constants import (
    ACTION_ITI41,
    ACTIONS_BY_PATH,
    CONTROL_PATH,
    DEFAULT_FAIL_CODE,
    DEFAULT_SLOW_DELAY,
    HOST,
    REGISTRY_PATH,
    REPOSITORY_PATH,
    RESPONSE_ACTIONS,
    Mode,
)
from pfi_devkit.dmp.http import HttpServer
from pfi_devkit.dmp.model import (
    CredentialLike,
    DocumentEntry,
    HttpAnswer,
    Refusal,
    RegistryFailure,
    RequestContext,
    SoapFault,
    Submission,
)
from pfi_devkit.dmp.modes import FailureModes
from pfi_devkit.dmp.registry import Registry
from pfi_devkit.dmp.security import find_vihf, verify_vihf, vihf_attributes
from pfi_devkit.dmp.soap import (
    addressing,
    fault_envelope,
    parse_envelope,
    registry_response,
    soap_envelope,
)


class DmpEndpoint(FailureModes, Registry):
    """The DMP over HTTPS with mutual TLS; ``start()``/``stop()`` or ``with``.

    ``server_cert`` is a ``pfi_devkit.pki.Credential`` (or anything with ``cert_path`` and
    ``key_path``); ``ca_bundle`` the CAs a client certificate must chain to; ``crl_bundle``
    (optional) their CRLs, checked for the whole chain. Runtime attributes: ``mode`` (see
    ``set_mode``), ``verify_vihf``, ``required_vihf_attributes``, ``require_signature_document``,
    ``strict_metadata``.
    Results: ``accepted``, ``entries``, ``requests``, ``duplicates``, ``refusals``.
    """

    def __init__(
        self,
        server_cert: CredentialLike,
        ca_bundle: Path,
        *,
        crl_bundle: Path | None = None,
        host: str = HOST,
        port: int = 0,
        store_dir: Path | None = None,
        verify_vihf: bool = False,
        required_vihf_attributes: Iterable[str] = (),
        require_signature_document: bool = False,
        strict_metadata: bool = False,
        verbose: bool = False,
    ) -> None:
        self.server_cert = server_cert
        self.ca_bundle = Path(ca_bundle)
        self.crl_bundle = Path(crl_bundle) if crl_bundle else None
        self.host = host
        self.port = port
        self._requested_port = port
        self.store_dir = Path(store_dir).resolve() if store_dir else None
        self._defaults = (
            verify_vihf,
            tuple(required_vihf_attributes),
            require_signature_document,
            strict_metadata,
        )
        (
            self.verify_vihf,
            self.required_vihf_attributes,
            self.require_signature_document,
            self.strict_metadata,
        ) = self._defaults
        self.verbose = verbose
        self.mode: Mode = "normal"
        self.fail_code = DEFAULT_FAIL_CODE
        self.fail_text = "DMP du patient fermé (devkit)"
        self.delay = DEFAULT_SLOW_DELAY
        self.accepted: list[Submission] = []
        self.entries: dict[str, DocumentEntry] = {}
        self.refusals: list[Refusal] = []
        self.requests = 0
        self.duplicates = 0
        self.tls_refusals = 0
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        #: Counts resets: a request begun before one (held by ``slow``) is not served after it.
        self.epoch = 0
        self._revert: threading.Timer | None = None
        self._mode_lock = threading.Lock()
        self._generation = 0  # bumped at each mode change: a stale revert timer does nothing
        self._httpd: HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[ssl.SSLSocket] = set()
        self._seq = itertools.count(1)
        self._ssl = self._server_context()

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> DmpEndpoint:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        if self.store_dir:
            self.store_dir.mkdir(parents=True, exist_ok=True)
        self._listen()
        return self

    def stop(self) -> None:
        """Stop listening, sever open connections, cancel a pending mode revert. Fast."""
        self._stopping.set()
        with self._mode_lock:
            self._generation += 1
            if self._revert is not None:
                self._revert.cancel()
                self._revert = None
        self._unlisten()
        self._sever_connections()
        self.port = self._requested_port

    def __enter__(self) -> DmpEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to a fresh endpoint (mode normal, nothing stored), between tests."""
        self.set_mode("normal")
        (
            self.verify_vihf,
            self.required_vihf_attributes,
            self.require_signature_document,
            self.strict_metadata,
        ) = self._defaults
        with self._lock:
            self.accepted.clear()
            self.entries.clear()
            self.refusals.clear()
            self.requests = self.duplicates = self.tls_refusals = 0
            self.epoch += 1

    # -- what tests and the demo use ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        # A wildcard bind (0.0.0.0, in a container) is reached on loopback from this machine.
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host  # noqa: S104
        return f"https://{host}:{self.port}"

    @property
    def repository_url(self) -> str:
        """Where ITI-41 goes."""
        return self.base_url + REPOSITORY_PATH

    @property
    def registry_url(self) -> str:
        """Where ITI-57 goes."""
        return self.base_url + REGISTRY_PATH

    def describe(self) -> dict[str, Any]:
        """JSON-able description (for the demo's state file and ``GET /_devkit/state``)."""
        with self._lock:
            return {
                "host": self.host,
                "port": self.port,
                "listening": self._httpd is not None,
                "repository_url": self.repository_url,
                "registry_url": self.registry_url,
                "control_url": self.base_url + CONTROL_PATH,
                "mode": self.mode,
                "fail_code": self.fail_code,
                "delay": self.delay,
                "verify_vihf": self.verify_vihf,
                "require_signature_document": self.require_signature_document,
                "strict_metadata": self.strict_metadata,
                "server_cert": str(self.server_cert.cert_path),
                "ca_bundle": str(self.ca_bundle),
                "crl_bundle": str(self.crl_bundle) if self.crl_bundle else None,
                "store_dir": str(self.store_dir) if self.store_dir else None,
                "requests": self.requests,
                "accepted": len(self.accepted),
                "duplicates": self.duplicates,
                "refused": len(self.refusals),
                "tls_refusals": self.tls_refusals,
                "entries": {uid: e.status for uid, e in self.entries.items()},
            }

    # -- request handling (called by the HTTP handler threads) -------------------------------------

    def handle(
        self, path: str, content_type: str, body: bytes, client_cn: str | None
    ) -> HttpAnswer:
        """Answer one SOAP request; faults and registry failures are answers, not exceptions."""
        try:
            return self._handle(path, content_type, body, client_cn)
        except Exception as exc:  # a devkit bug must answer, not hang up: show it to the client
            fault = SoapFault("Receiver", None, f"devkit DMP endpoint error: {exc!r}")
            self._refused(Refusal("fault", ("Receiver",), fault.reason))
            return HttpAnswer(500, fault_envelope(fault))

    def _handle(
        self, path: str, content_type: str, body: bytes, client_cn: str | None
    ) -> HttpAnswer:
        message_id = None
        try:
            envelope, attachments = parse_envelope(body, content_type)
            action, message_id = addressing(envelope)
            expected = ACTIONS_BY_PATH.get(path)
            if action not in RESPONSE_ACTIONS or action != expected:
                raise SoapFault(
                    "Sender",
                    "wsa:ActionNotSupported",
                    f"action {action} is not served at {path} (expected {expected})",
                )
            assertion = find_vihf(envelope)
            if self.verify_vihf:
                verify_vihf(assertion, self.ca_bundle)
            vihf = vihf_attributes(assertion)
            missing = [a for a in self.required_vihf_attributes if not any(vihf.get(a, ()))]
            if missing:
                raise SoapFault(
                    "Sender", "wsse:InvalidSecurityToken", f"VIHF attributes missing: {missing}"
                )
            context = RequestContext(message_id, client_cn, vihf, body)
            if action == ACTION_ITI41:
                self._provide_and_register(envelope, attachments, context)
            else:
                self._update_document_set(envelope, context)
        except SoapFault as fault:
            self._refused(Refusal("fault", (fault.subcode or fault.code,), fault.reason))
            return HttpAnswer(fault.http_status, fault_envelope(fault, message_id))
        except RegistryFailure as failure:
            self._refused(Refusal("registry", tuple(e.code for e in failure.errors), str(failure)))
            return HttpAnswer(
                200,
                soap_envelope(
                    RESPONSE_ACTIONS[action], message_id, registry_response(failure.errors)
                ),
            )
        return HttpAnswer(
            200, soap_envelope(RESPONSE_ACTIONS[action], message_id, registry_response())
        )

    # -- TLS and the listener ----------------------------------------------------------------------

    def _server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # the DMP's floor
        ctx.load_cert_chain(self.server_cert.cert_path, self.server_cert.key_path)
        ctx.load_verify_locations(cafile=str(self.ca_bundle))
        if self.crl_bundle:
            ctx.load_verify_locations(cafile=str(self.crl_bundle))
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def _listen(self) -> None:
        with self._lock:
            if self._httpd is not None:
                return
            httpd = HttpServer((self.host, self.port), self)
            self.port = httpd.server_address[1]
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="pfi-dmp-endpoint",
                daemon=True,
            )
            self._httpd, self._thread = httpd, thread
            thread.start()

    def _unlisten(self) -> None:
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(5)

    def _sever_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
