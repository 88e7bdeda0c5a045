"""The TLS policy of every client (:mod:`pfi.protocols.tls`), against real TLS servers on loopback.

Each channel's own client — the DMP's HTTPS client, the MSSanté SMTP and IMAP clients (implicit
TLS; the MLLP link to the DPI has no TLS) — is pointed at a local TLS listener that offers what a
misconfigured or hostile server would: TLS 1.0 or 1.1 only, only weak cipher suites, a
certificate from a CA outside the bundle (rogue), an expired one, a revoked one (listed in the
organisations CA's CRL given to the client). Every one is refused before a byte of the request
leaves, with the channel's code and a reason that says which. The certificates come from the
devkit PKI's own CAs (:mod:`pfi_devkit.pki`).
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from pfi.base.errors import TransientError

pytestmark = pytest.mark.integration

MAILBOX = "pfi@ch-demo.mssante.test"


@dataclass(frozen=True)
class ServerCerts:
    """Server certificates (PEM leaf + chain, key) that a client must refuse, and the CRLs."""

    good: tuple[Path, Path]
    rogue: tuple[Path, Path]
    expired: tuple[Path, Path]
    revoked: tuple[Path, Path]
    crl_bundle: Path


@pytest.fixture(scope="module")
def server_certs(test_pki, tmp_path_factory) -> ServerCerts:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from pfi_devkit import pki

    folder = tmp_path_factory.mktemp("tls-servers")

    def ca(stem: str) -> pki._Ca:
        cert = x509.load_pem_x509_certificate((test_pki.directory / f"{stem}.pem").read_bytes())
        key = serialization.load_pem_private_key(
            (test_pki.directory / f"{stem}.key").read_bytes(), None
        )
        return pki._Ca(cert, key)

    orgs, rogue = ca("organisations-ca"), ca("rogue-ca")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def server(stem: str, issuer: pki._Ca, when: dt.datetime) -> tuple[Path, Path]:
        cred = pki.Credential(folder / f"{stem}.pem", folder / f"{stem}.key", "localhost")
        cert = pki._issue_leaf(
            issuer,
            cred,
            organization="TEST SERVEUR",
            unit=stem.upper(),
            now=when,
            eku=[ExtendedKeyUsageOID.SERVER_AUTH],
            san=["localhost", "127.0.0.1"],
        )
        server.serials[stem] = cert.serial_number
        return cred.cert_path, cred.key_path

    server.serials = {}
    certs = {
        "rogue": server("rogue", rogue, now),
        # valid for ten years, ended two days ago
        "expired": server("expired", orgs, now - pki._VALIDITY - dt.timedelta(days=2)),
        "revoked": server("revoked", orgs, now),
    }
    root_crl = (test_pki.directory / "root-ca.crl.pem").read_bytes()
    orgs_crl = pki._make_crl(orgs, [server.serials["revoked"]], now)
    crl_bundle = folder / "crl-bundle.pem"
    crl_bundle.write_bytes(root_crl + pki._crl_pem(orgs_crl))
    return ServerCerts(
        good=(test_pki.server.cert_path, test_pki.server.key_path),
        crl_bundle=crl_bundle,
        **certs,
    )


class TlsListener:
    """Accepts on 127.0.0.1 and runs one TLS handshake per connection with ``context``."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.05)
        self.port = self.socket.getsockname()[1]
        self.handshakes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True):
                    self.handshakes += 1  # then hang up: the protocol is not the point
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self.socket.close()
        self._thread.join(5)


def server_context(
    cert: tuple[Path, Path],
    *,
    versions: tuple[ssl.TLSVersion, ssl.TLSVersion] | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*map(str, cert))
    with warnings.catch_warnings():  # TLSVersion.TLSv1/TLSv1_1 are deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        if versions:
            ctx.minimum_version, ctx.maximum_version = versions
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 serves TLS < 1.2 at level 0 only
        if ciphers:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 suites are all acceptable
            ctx.set_ciphers(ciphers + ":@SECLEVEL=0")
    return ctx


#: Suites no policy accepts: static RSA key exchange (no forward secrecy), SHA-1 MACs, 3DES.
WEAK = "AES128-SHA:AES256-SHA:AES128-SHA256:ECDHE-RSA-AES128-SHA:DES-CBC3-SHA"
#: ANSSI's "degraded" suites (ECDHE, AES-CBC with SHA-2): the MSSanté operators' CONF.03 lists
#: them, the DMP client (ANSSI recommended only) does not.
CBC_ONLY = "ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384"

CASES = {
    "tls1.1 only": (
        {"versions": (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1)},
        "no TLS version 1.2 or later",
    ),
    "tls1.0 only": (
        {"versions": (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1)},
        "no TLS version 1.2 or later",
    ),
    "weak ciphers only": ({"ciphers": WEAK}, "no cipher suite of the ANSSI policy"),
}
CERTIFICATES = {
    "rogue": "self-signed certificate in certificate chain",  # the rogue CA sent with its leaf
    "expired": "certificate has expired",
    "revoked": "certificate revoked",
}


# --- the three clients, each as its channel uses it ------------------------------------------


def dmp_call(test_pki, crl_bundle: Path) -> Callable[[int], None]:
    from pfi.protocols.dmp.client import DmpClient, DmpEndpoints, TlsFiles

    def call(port: int) -> None:
        url = f"https://localhost:{port}/si-dmp-server/v2/services/repository"
        tls = TlsFiles(
            test_pki.establishment.cert_path,
            test_pki.establishment.key_path,
            test_pki.ca_bundle,
            crl_bundle,
        )
        request = SimpleNamespace(
            transaction="ITI-41", action="urn:x", content_type="application/soap+xml", body=b"x"
        )
        with DmpClient(DmpEndpoints(url, url), tls, connect_timeout=2, read_timeout=2) as dmp:
            dmp.post(request)

    return call


def mss_call(kind: str, test_pki, crl_bundle: Path) -> Callable[[int], None]:
    from pfi.protocols.mssante.imap import ImapClient, ImapEndpoint
    from pfi.protocols.mssante.smtp import SmtpClient, SmtpEndpoint
    from pfi.protocols.mssante.tls import TlsFiles

    def call(port: int) -> None:
        cred = test_pki.clients[MAILBOX]
        tls = TlsFiles(test_pki.ca_bundle, cred.cert_path, cred.key_path, crl_bundle)
        if kind == "smtp":
            endpoint = SmtpEndpoint("localhost", port, MAILBOX, tls, security="tls", timeout=3)
            with SmtpClient(endpoint) as client:
                client.connect()
        else:
            endpoint = ImapEndpoint("localhost", port, MAILBOX, tls, security="tls", timeout=3)
            with ImapClient(endpoint) as client:
                client.connect()

    return call


CHANNELS = {
    "dmp": ("DMP_TLS", "DMP_SERVER_CERTIFICATE"),
    "smtp": ("MSS_TLS", "MSS_SERVER_CERTIFICATE"),
    "imap": ("MSS_TLS", "MSS_SERVER_CERTIFICATE"),
}


@pytest.fixture(params=list(CHANNELS))
def channel(request, test_pki, server_certs):
    name = request.param
    call = (
        dmp_call(test_pki, server_certs.crl_bundle)
        if name == "dmp"
        else mss_call(name, test_pki, server_certs.crl_bundle)
    )
    return SimpleNamespace(name=name, call=call, codes=CHANNELS[name])


@pytest.fixture
def listen() -> Iterator[Callable[[ssl.SSLContext], TlsListener]]:
    started: list[TlsListener] = []

    def start(context: ssl.SSLContext) -> TlsListener:
        started.append(TlsListener(context))
        return started[-1]

    yield start
    for listener in started:
        listener.close()


def refused(channel, port: int) -> TransientError:
    with pytest.raises(TransientError) as caught:
        channel.call(port)
    return caught.value


# --- the tests ----------------------------------------------------------------------------------


def test_the_policy_is_tls12_and_anssi_suites_on_every_client_context(test_pki):
    from pfi.protocols import tls
    from pfi.protocols.mssante.tls import CONF03_CIPHERS, TlsFiles, client_context

    cred = test_pki.clients[MAILBOX]
    mss = client_context(TlsFiles(test_pki.ca_bundle, cred.cert_path, cred.key_path))
    anssi = client_context(TlsFiles(test_pki.ca_bundle, conf03_ciphers=False))
    dmp = tls.client_context(test_pki.ca_bundle)
    for ctx, suites in ((mss, CONF03_CIPHERS), (anssi, tls.ANSSI_TLS12_CIPHERS), (dmp, None)):
        assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
        assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
        tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
        assert tls12 == set((suites or tls.ANSSI_TLS12_CIPHERS).split(":"))
        assert all(("ECDHE" in s or "DHE" in s) and "SHA1" not in s for s in tls12)


def test_a_good_server_is_accepted_by_the_handshake(channel, server_certs, listen):
    """The control case: the same listener with the PKI's server certificate completes the
    handshake (it then hangs up, which each client reports in its own way)."""
    listener = listen(server_context(server_certs.good))
    with pytest.raises(Exception):  # noqa: B017 - the listener speaks no SMTP/IMAP/HTTP
        channel.call(listener.port)
    assert listener.handshakes == 1


@pytest.mark.parametrize("case", list(CASES))
def test_an_old_protocol_or_weak_suites_only_server_is_refused(channel, server_certs, listen, case):
    options, reason = CASES[case]
    listener = listen(server_context(server_certs.good, **options))
    error = refused(channel, listener.port)
    assert error.code == channel.codes[0], error
    assert reason in str(error), str(error)
    assert listener.handshakes == 0


@pytest.mark.parametrize("which", list(CERTIFICATES))
def test_a_rogue_expired_or_revoked_server_certificate_is_refused(
    channel, server_certs, listen, which
):
    listener = listen(server_context(getattr(server_certs, which)))
    error = refused(channel, listener.port)
    assert error.code == channel.codes[1], error
    assert CERTIFICATES[which] in str(error), str(error)


def test_the_dmp_refuses_the_anssi_degraded_suites_that_mssante_conf03_requires(
    test_pki, server_certs, listen
):
    listener = listen(server_context(server_certs.good, ciphers=CBC_ONLY))
    error = refused(
        SimpleNamespace(call=dmp_call(test_pki, server_certs.crl_bundle)), listener.port
    )
    assert error.code == "DMP_TLS" and "no cipher suite of the ANSSI policy" in str(error)
    assert listener.handshakes == 0
    with pytest.raises(Exception):  # noqa: B017 - handshake done, then the listener hangs up
        mss_call("smtp", test_pki, server_certs.crl_bundle)(listener.port)
    assert listener.handshakes == 1
