"""Local MSSanté-like mail partner: Dovecot IMAP and an SMTP relay, with TLS client certificates.

Why real servers: the project's IMAP and SMTP clients must build their own ``SSLContext`` (client
certificate, private CA, CRLs) and authenticate the MSSanté way; only real servers prove that.

    SMTP client ──STARTTLS / implicit TLS──▶ SmtpRelay (aiosmtpd, in a thread of this process)
                                                │ one LMTP transaction per recipient (unix socket)
                                                ▼
    IMAP client ──IMAPS / IMAP+STARTTLS────▶ Dovecot 2.3 (``dovecot -F``, own config, own Maildirs)

Authentication rules (shaped like an MSSanté operator):

- *Application mailboxes* ("BAL applicatives") hold a client certificate whose CN is the mailbox
  address, issued by the test IGC Santé (``pfi_devkit.pki``). At IMAP they log in with
  ``AUTHENTICATE EXTERNAL`` over that certificate, or with SASL ``PLAIN``/``LOGIN`` whose login is
  the mailbox address and whose password is the mailbox's *devkit password* (random, generated once
  into ``<state>/mailbox-passwords.json`` and exposed by :meth:`MailServers.password_for`). A
  password alone, or a login different from the certificate's CN, is refused. At SMTP the
  certificate alone is enough (the sender at ``MAIL FROM`` must be the CN); ``AUTH PLAIN`` with the
  address and the devkit password is also accepted over the matching certificate, and so is
  ``AUTH EXTERNAL`` (the certificate names the mailbox).
- *Human mailboxes* log in with their password over TLS (IMAP and SMTP ``AUTH PLAIN``); at SMTP
  the sender must be the login.
- A certificate that is presented must be valid: the rogue-CA and revoked certificates are refused
  (SMTP: at the TLS handshake; Dovecot: at authentication, as it does not send an alert).

Delivery status notifications (RFC 3461-3464): the relay offers ``DSN``; a recipient given with
``NOTIFY=…SUCCESS…`` gets, once its mail is in the Maildir, a ``multipart/report;
report-type=delivery-status`` (``Action: delivered``, the ``ENVID`` and ``ORCPT`` given, the
returned headers) delivered to the envelope sender's mailbox when it is one of ours — what an
MSSanté operator sends back to an application mailbox that asked for it.

The relay answers like an MTA that queues: ``451`` when the mail store cannot be reached at all
(nothing was handed over), but once an LMTP transaction has begun, a store that goes away before
its answer (an ``imap`` outage at the wrong moment) does not turn into a ``451``: the client could
not know that the mail was stored and would send it again, a duplicate that no real MTA's client
sees. The relay answers ``250``, keeps the mail in memory and hands it over again once the store is
back — unless the recipient's Maildir already holds its Message-ID.

How Dovecot runs without systemd (see docs/local-servers.md): in the foreground from a generated
config, its sockets in a short runtime folder under ``/tmp`` (mode 0755: Dovecot's unprivileged
login and anvil processes must enter it, and ``mkdtemp`` folders of pytest are 0700), everything
else (config, passwd-files, log, Maildirs) in the state folder. As root, the auth processes run as
root (they read the passwd-files in the state folder) and mail is stored as root. CRLs of every CA
are appended to ``ssl_ca``; failed logins are not delayed (``auth_failure_delay = 0``, the anvil
penalty socket disabled) so negative tests stay fast.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import datetime as dt
import email.parser
import email.utils
import grp
import hmac
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, Session

from pfi_devkit.pki import Credential, TestPki

DOVECOT_BIN = "/usr/sbin/dovecot"
HOST = "127.0.0.1"
RELAY_HOSTNAME = "relay.pfi-devkit.test"
PASSWORDS_FILE = "mailbox-passwords.json"
START_TIMEOUT = 10.0
#: How often the relay tries again to hand a spooled mail over to the mail store.
SPOOL_RETRY_SECONDS = 0.5

log = logging.getLogger(__name__)

RelayState = Literal["up", "refuse", "421"]


class MailServerError(RuntimeError):
    """A local mail server did not start (the message carries the end of its log)."""


def peer_common_name(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """CN of the verified peer certificate, or None when the peer sent none."""
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def client_ssl_context(pki: TestPki, credential: Credential | None = None) -> ssl.SSLContext:
    """A client context trusting only the test PKI, presenting ``credential`` when given.

    For tests and the demo's scripts; the project's own hooks build theirs from settings.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca_bundle))
    if credential is not None:
        ctx.load_cert_chain(credential.cert_path, credential.key_path)
    return ctx


class MailServers:
    """Dovecot + SMTP relay for the given mailboxes; ``start()``/``stop()`` or ``with``.

    ``application_mailboxes`` authenticate with their client certificate from ``pki.clients``;
    ``human_mailboxes`` (address → password) with a password. Each start takes free ephemeral
    ports on 127.0.0.1; the port and socket attributes are valid while started.
    """

    host = HOST

    def __init__(
        self,
        state_dir: Path,
        pki: TestPki,
        application_mailboxes: Sequence[str],
        human_mailboxes: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        verbose: bool = False,
        dovecot_bin: str = DOVECOT_BIN,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.pki = pki
        self.application_mailboxes = tuple(a.lower() for a in application_mailboxes)
        self.human_mailboxes = {a.lower(): p for a, p in dict(human_mailboxes).items()}
        missing = [a for a in self.application_mailboxes if a not in _lower_keys(pki.clients)]
        if missing:
            raise ValueError(f"no client certificate in the PKI for {missing}")
        overlap = set(self.application_mailboxes) & set(self.human_mailboxes)
        if overlap:
            raise ValueError(f"mailboxes both application and human: {sorted(overlap)}")
        for address, password in self.human_mailboxes.items():
            if not password or any(c in password for c in ":\r\n"):
                raise ValueError(f"password of {address} must be non-empty, without ':' or EOL")
        self.ca_bundle = pki.ca_bundle
        self.crl_bundle = pki.crl_bundle
        self.dovecot = Dovecot(self, verbose=verbose, dovecot_bin=dovecot_bin)
        self.relay = SmtpRelay(self)
        self._passwords: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> MailServers:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._passwords = self._load_or_create_passwords()
        try:
            self.dovecot.start()
            self.relay.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.relay.stop()
        self.dovecot.stop()

    def __enter__(self) -> MailServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients need -----------------------------------------------------------------

    @property
    def mailboxes(self) -> tuple[str, ...]:
        return (*self.application_mailboxes, *self.human_mailboxes)

    @property
    def imaps_port(self) -> int:
        return self.dovecot.imaps_port

    @property
    def imap_port(self) -> int:
        """IMAP with STARTTLS (``ssl = required``: nothing but STARTTLS before it)."""
        return self.dovecot.imap_port

    @property
    def smtp_port(self) -> int:
        """SMTP with STARTTLS required."""
        return self.relay.starttls_port

    @property
    def smtps_port(self) -> int:
        """SMTP with implicit TLS."""
        return self.relay.tls_port

    @property
    def lmtp_socket(self) -> Path:
        return self.dovecot.lmtp_socket

    def password_for(self, address: str) -> str:
        """Password of a mailbox: the human's, or the application mailbox's devkit password."""
        address = address.lower()
        if address in self.human_mailboxes:
            return self.human_mailboxes[address]
        if not self._passwords:
            self._passwords = self._load_or_create_passwords()
        return self._passwords[address]

    def maildir(self, address: str) -> Path:
        return self.dovecot.home(address) / "Maildir"

    def set_relay_state(self, state: RelayState) -> None:
        """Make the SMTP relay ``"up"``, refuse connections (``"refuse"``) or answer ``421``."""
        self.relay.set_state(state)

    def describe(self) -> dict[str, Any]:
        """JSON-able description of the running servers (for the demo's state file)."""
        return {
            "host": self.host,
            "imaps_port": self.imaps_port,
            "imap_starttls_port": self.imap_port,
            "smtp_starttls_port": self.smtp_port,
            "smtps_port": self.smtps_port,
            "lmtp_socket": str(self.lmtp_socket),
            "dovecot_pid": self.dovecot.pid,
            "dovecot_log": str(self.dovecot.log_path),
            "state_dir": str(self.state_dir),
            "ca_bundle": str(self.ca_bundle),
            "crl_bundle": str(self.crl_bundle),
            "relay_state": self.relay.state,
            "application_mailboxes": {
                address: {
                    "cert": str(_lower_keys(self.pki.clients)[address].cert_path),
                    "key": str(_lower_keys(self.pki.clients)[address].key_path),
                    "password": self.password_for(address),
                }
                for address in self.application_mailboxes
            },
            "human_mailboxes": dict(self.human_mailboxes),
        }

    # -- internals -------------------------------------------------------------------------

    def _load_or_create_passwords(self) -> dict[str, str]:
        """Devkit passwords of the application mailboxes, stable across restarts of the demo."""
        path = self.state_dir / PASSWORDS_FILE
        try:
            known = {k.lower(): v for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError):
            known = {}
        wanted = {a: known.get(a) or secrets.token_urlsafe(18) for a in self.application_mailboxes}
        if wanted != known:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(wanted, out, indent=2)
        return wanted

    def _check_password(self, login: str, password: str) -> bool:
        expected = self.human_mailboxes.get(login) or self._passwords.get(login)
        return expected is not None and hmac.compare_digest(expected, password)


def _lower_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {k.lower(): v for k, v in mapping.items()}


def _free_ports(count: int) -> list[int]:
    """Distinct free ports for a server that needs numbers in its config (Dovecot).

    Held open together so the kernel cannot hand the same port twice; a race with another
    process binding it before Dovecot does is handled by retrying the start.
    """
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


class Dovecot:
    """The Dovecot 2.3 master process, run in the foreground from a generated config."""

    def __init__(self, servers: MailServers, *, verbose: bool, dovecot_bin: str) -> None:
        self.servers = servers
        self.verbose = verbose
        self.dovecot_bin = dovecot_bin
        self.dir = servers.state_dir / "dovecot"
        self.log_path = self.dir / "dovecot.log"
        self.conf_path = self.dir / "dovecot.conf"
        self.run_dir: Path | None = None
        self.imaps_port = 0
        self.imap_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def lmtp_socket(self) -> Path:
        if self.run_dir is None:
            raise RuntimeError("Dovecot is not started")
        return self.run_dir / "lmtp"

    def home(self, address: str) -> Path:
        return self.dir / "mail" / address.lower()

    def start(self, *, same_ports: bool = False) -> None:
        """Start Dovecot on free ports, or with ``same_ports`` on those of its previous start
        (the end of an outage: the clients know them)."""
        if self._proc is not None:
            return
        if not Path(self.dovecot_bin).exists():
            raise MailServerError(
                f"{self.dovecot_bin} not found: apt-get install dovecot-imapd dovecot-lmtpd"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.servers.state_dir, self.dir):
            folder.chmod(stat.S_IMODE(folder.stat().st_mode) | 0o711)
        for attempt in range(3):
            # Sockets live in a short folder of our own: unix socket paths are limited to 107
            # bytes, and Dovecot's unprivileged processes must be able to enter it.
            self.run_dir = Path(tempfile.mkdtemp(prefix="pfi-dovecot-", dir="/tmp"))
            self.run_dir.chmod(0o755)
            if not (same_ports and self.imaps_port and self.imap_port):
                self.imaps_port, self.imap_port = _free_ports(2)
            try:
                self._write_files()
                with open(self.log_path, "ab") as log:
                    self._proc = subprocess.Popen(
                        [self.dovecot_bin, "-F", "-c", str(self.conf_path)],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                atexit.register(self.stop)
                self._wait_ready()
                return
            except MailServerError as error:
                self.stop()
                if "Address already in use" not in str(error) or attempt == 2 or same_ports:
                    raise
            except BaseException:
                self.stop()
                raise

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise MailServerError(f"Dovecot exited ({self._proc.returncode}):\n{self._tail()}")
            if _accepts(self.imaps_port) and _accepts(self.imap_port) and self.lmtp_socket.exists():
                return
            time.sleep(0.02)
        raise MailServerError(f"Dovecot not ready after {START_TIMEOUT} s:\n{self._tail()}")

    def stop(self) -> None:
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            # SIGTERM to the whole process group (the master leads it): the master alone waits
            # about a second for its children, the group stops in milliseconds.
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None

    @staticmethod
    def _mail_owner() -> tuple[pwd.struct_passwd, grp.struct_group]:
        """Who owns the Maildirs: Dovecot's imap refuses uid 0 ("Mail access not allowed for
        root"), so as root mail belongs to the Debian ``mail`` user (else ``nobody``)."""
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid()), grp.getgrgid(os.getegid())
        for name in ("mail", "nobody"):
            with contextlib.suppress(KeyError):
                user = pwd.getpwnam(name)
                return user, grp.getgrgid(user.pw_gid)
        raise MailServerError("no 'mail' nor 'nobody' user to own the Maildirs")

    def _tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _write_files(self) -> None:
        servers = self.servers
        as_root = os.geteuid() == 0
        user = pwd.getpwuid(os.geteuid()).pw_name
        # ssl_ca carries the CRLs too: with ssl_verify_client_cert, Dovecot wants one per CA.
        ca_crl = self.dir / "ca-and-crls.pem"
        ca_crl.write_bytes(servers.ca_bundle.read_bytes() + servers.crl_bundle.read_bytes())
        # Application mailboxes: one folder per valid certificate's CN (%{cert} is "valid" only
        # for a verified certificate, %u is then the CN), one file per mechanism. EXTERNAL looks
        # the CN up (EXTERNAL-by-cert.passwd, no password); PLAIN/LOGIN look the *given* login
        # (%{orig_user}) up in the CN's folder, so a login that is not the CN finds nobody.
        cert_root = self.dir / "cert-valid"
        shutil.rmtree(cert_root, ignore_errors=True)
        for address in servers.application_mailboxes:
            folder = cert_root / address
            folder.mkdir(parents=True)
            password = servers.password_for(address)
            _write_private(folder / "EXTERNAL-by-cert.passwd", f"{address}:::::::nopassword=y\n")
            for mech in ("PLAIN", "LOGIN"):
                _write_private(folder / f"{mech}.passwd", f"{address}:{{PLAIN}}{password}\n")
        humans = "".join(f"{a}:{{PLAIN}}{p}\n" for a, p in servers.human_mailboxes.items())
        _write_private(self.dir / "humans.passwd", humans)
        mail_user, mail_group = self._mail_owner()
        mail_root = self.dir / "mail"
        mail_root.mkdir(exist_ok=True)
        users = ""
        for address in servers.mailboxes:
            home = self.home(address)
            home.mkdir(exist_ok=True)
            if as_root:
                shutil.chown(home, mail_user.pw_uid, mail_group.gr_gid)
            users += f"{address}:::::{home}::\n"
        _check_traversable(mail_root, mail_user, mail_group)
        _write_private(self.dir / "users.passwd", users)
        (self.dir / "lib").mkdir(exist_ok=True)

        # As root: the auth processes read the passwd-files of the state folder, so run as root.
        # Not root (untested here: CI and tests run as root): every process runs as the user and
        # login processes cannot chroot.
        run_as = (
            "service auth {\n  user = root\n}\nservice auth-worker {\n  user = root\n}\n"
            if as_root
            else f"default_internal_user = {user}\ndefault_login_user = {user}\n"
        )
        login_chroot = "" if as_root else "  chroot =\n"
        conf = f"""\
# Generated by pfi_devkit.mail at each start: edits are lost.
base_dir = {self.run_dir}
state_dir = {self.dir}/lib
instance_name = pfi-devkit-{self.run_dir.name if self.run_dir else "dovecot"}
log_path = {self.log_path}
protocols = imap lmtp
listen = {HOST}
ssl = required
ssl_cert = <{servers.pki.server.cert_path}
ssl_key = <{servers.pki.server.key_path}
ssl_ca = <{ca_crl}
ssl_verify_client_cert = yes
ssl_require_crl = yes
ssl_min_protocol = TLSv1.2
verbose_ssl = {"yes" if self.verbose else "no"}
auth_verbose = {"yes" if self.verbose else "no"}
auth_debug = {"yes" if self.verbose else "no"}
auth_mechanisms = plain login external
auth_ssl_username_from_cert = yes
ssl_cert_username_field = commonName
disable_plaintext_auth = yes
auth_failure_delay = 0
auth_cache_size = 0
mail_location = maildir:~/Maildir
mail_uid = {mail_user.pw_name}
mail_gid = {mail_group.gr_name}
first_valid_uid = 0
first_valid_gid = 0
mail_max_userip_connections = 200
postmaster_address = postmaster@pfi-devkit.test
hostname = imap.pfi-devkit.test
# No statistics process connections: they only slow the shutdown down.
stats_writer_socket_path =
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    auto = create
    special_use = \\Sent
  }}
  mailbox Trash {{
    auto = create
    special_use = \\Trash
  }}
}}
passdb {{
  driver = passwd-file
  args = username_format=%u {self.dir}/cert-%{{cert}}/%u/%{{mech}}-by-cert.passwd
  result_failure = continue
  result_internalfail = continue
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%{{orig_user}} {self.dir}/cert-%{{cert}}/%u/%{{mech}}.passwd
  result_failure = continue
  result_internalfail = continue
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.dir}/humans.passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.dir}/users.passwd
}}
{run_as}service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
{login_chroot}  inet_listener imap {{
    address = {HOST}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
    user = {user}
  }}
}}
"""
        self.conf_path.write_text(conf)


def _check_traversable(path: Path, user: pwd.struct_passwd, group: grp.struct_group) -> None:
    """Fail early, and clearly, when the mail user cannot reach the Maildirs.

    pytest's ``tmp_path`` and ``mkdtemp`` folders are 0700 (and pytest resets its base folder to
    0700 at each session start, so chmod-ing it would break under concurrent sessions): the state
    folder must sit below folders that others may traverse.
    """
    if user.pw_uid == 0:
        return
    for folder in [*reversed(path.parents), path]:
        st = folder.stat()
        if st.st_uid == user.pw_uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid == group.gr_gid:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            raise MailServerError(
                f"Dovecot's mail user {user.pw_name!r} cannot enter {folder} "
                f"(mode {stat.S_IMODE(st.st_mode):o}): put the mail state folder {path} below "
                "folders others may traverse (not pytest's tmp_path nor a mkdtemp folder)"
            )


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


class _QuietSession(Session):
    """aiosmtpd's Session, without the deprecation warning its own AUTH code triggers."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _RelaySMTP(SMTP):
    """aiosmtpd's SMTP, knowing the peer certificate on implicit TLS and able to answer 421."""

    def __init__(self, relay: SmtpRelay, *, implicit_tls: bool, **kwargs: Any) -> None:
        self.relay = relay
        self.implicit_tls = implicit_tls
        super().__init__(relay.handler, **kwargs)

    def _create_session(self) -> Session:
        return _QuietSession(self.loop)

    def _getparams(self, params):  # type: ignore[override]
        """Accept the DSN parameters (RFC 3461) aiosmtpd does not know; the raw options still
        reach the handler's MAIL/RCPT hooks."""
        result = super()._getparams(params)
        if result is not None:
            for name in DSN_PARAMETERS:
                result.pop(name, None)
        return result

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if self.implicit_tls and ssl_object is not None and self.session.ssl is None:
            self.session.ssl = {"ssl_object": ssl_object}

    async def _handle_client(self) -> None:
        if self.relay.state == "421":
            await self.push(f"421 4.3.2 {self.hostname} service not available, try again later")
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()


class _RelayHandler:
    """aiosmtpd hooks: who may send (MAIL FROM), to whom (RCPT TO), and delivery by LMTP."""

    def __init__(self, relay: SmtpRelay) -> None:
        self.relay = relay

    async def handle_EHLO(self, server, session, envelope, hostname: str, responses) -> list:
        session.host_name = hostname  # aiosmtpd leaves it to a handler that has this hook
        return [*responses[:-1], "250-DSN", responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address: str, mail_options) -> str:
        cn = _session_cn(session)
        if cn is not None:
            if address.lower() != cn.lower():
                return f"550 5.7.1 Sender <{address}> is not the TLS client certificate's ({cn})"
        elif session.authenticated:
            if address.lower() != str(session.auth_data).lower():
                return f"550 5.7.1 Sender <{address}> is not the authenticated user"
        else:
            return "530 5.7.0 Authentication required (TLS client certificate or AUTH PLAIN)"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.dsn_envid = _option(mail_options, "ENVID")
        envelope.dsn_notify = {}
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options) -> str:
        if address.lower() not in self.relay.servers.mailboxes:
            return f"550 5.1.1 <{address}>: mailbox unknown"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        notify = {n.strip() for n in _option(rcpt_options, "NOTIFY").split(",") if n.strip()}
        envelope.dsn_notify[address] = (notify, _option(rcpt_options, "ORCPT"))
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        data = envelope.original_content or envelope.content
        received = (
            f"Received: from {session.host_name or 'unknown'} ([{session.peer[0]}])\r\n"
            f"\tby {RELAY_HOSTNAME} (pfi_devkit relay) with ESMTPS;\r\n"
            f"\t{email.utils.format_datetime(dt.datetime.now(dt.UTC))}\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        errors = []
        delivered = []
        for rcpt in envelope.rcpt_tos:
            error = await loop.run_in_executor(
                None, self.relay.deliver, envelope.mail_from, rcpt, received + data
            )
            if error:
                errors.append(error)
            else:
                delivered.append(rcpt)
        notify = getattr(envelope, "dsn_notify", {})
        wanted = [r for r in delivered if "SUCCESS" in notify.get(r, (set(), ""))[0]]
        sender = (envelope.mail_from or "").lower()
        if wanted and sender in self.relay.servers.mailboxes:
            report = delivery_report(
                sender,
                [(r, notify[r][1]) for r in wanted],
                getattr(envelope, "dsn_envid", ""),
                data,
            )
            await loop.run_in_executor(None, self.relay.deliver, "", sender, report)
        if errors:
            return errors[0]
        return f"250 2.0.0 OK delivered to {len(envelope.rcpt_tos)} mailbox(es)"

    async def auth_EXTERNAL(self, server, args) -> AuthResult:
        """SASL EXTERNAL (RFC 4422 app. A): the verified TLS client certificate names the
        application mailbox; an authorization identity, if sent, must be that mailbox."""
        cn = (_session_cn(server.session) or "").lower()
        if cn not in self.relay.servers.application_mailboxes:
            return AuthResult(
                success=False,
                handled=False,
                message="535 5.7.8 EXTERNAL needs an application mailbox's TLS client certificate",
            )
        if len(args) == 1:
            identity = await server.challenge_auth("")
            if identity is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                identity = b"" if args[1] == "=" else base64.b64decode(args[1], validate=True)
            except ValueError:
                return AuthResult(success=False, handled=False)
        if identity and identity.decode("utf-8", "replace").lower() != cn:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=cn)

    def authenticate(self, server, session, envelope, mechanism: str, auth_data) -> AuthResult:
        if mechanism not in ("PLAIN", "LOGIN") or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace").lower()
        password = auth_data.password.decode("utf-8", "replace")
        servers = self.relay.servers
        if not servers._check_password(login, password):
            return AuthResult(success=False, handled=False)
        if login in servers.application_mailboxes:
            cn = _session_cn(session)
            if cn is None or cn.lower() != login:
                return AuthResult(
                    success=False,
                    handled=False,
                    message="535 5.7.8 Application mailbox: present its TLS client certificate",
                )
        return AuthResult(success=True, auth_data=login)


DSN_PARAMETERS = ("NOTIFY", "ORCPT", "RET", "ENVID")


def _option(options: Sequence[str], name: str) -> str:
    """The value of an ESMTP parameter (``NAME=value``) among MAIL/RCPT options, or ""."""
    for option in options:
        key, _, value = option.partition("=")
        if key.upper() == name:
            return value
    return ""


def delivery_report(
    sender: str, recipients: Sequence[tuple[str, str]], envelope_id: str, original: bytes
) -> bytes:
    """A "delivered" DSN (RFC 3464 in an RFC 6522 ``multipart/report``) for ``recipients``
    (address, ORCPT), returning the original's headers (``RET=HDRS``)."""
    boundary = f"pfi-devkit-dsn-{secrets.token_hex(8)}"
    now = email.utils.format_datetime(dt.datetime.now(dt.UTC))
    headers = original.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    per_message = f"Reporting-MTA: dns; {RELAY_HOSTNAME}\r\nArrival-Date: {now}\r\n"
    if envelope_id:
        per_message += f"Original-Envelope-Id: {envelope_id}\r\n"
    per_recipient = ""
    for address, original_recipient in recipients:
        if original_recipient:
            per_recipient += f"\r\nOriginal-Recipient: {original_recipient}"
        per_recipient += (
            f"\r\nFinal-Recipient: rfc822; {address}\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
        )
    text = (
        f"From: Mail Delivery System <MAILER-DAEMON@{RELAY_HOSTNAME}>\r\nTo: <{sender}>\r\n"
        f"Subject: Successful Mail Delivery Report\r\nDate: {now}\r\n"
        f"Message-ID: <dsn-{secrets.token_hex(12)}@{RELAY_HOSTNAME}>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"'
        f"\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "Your message was delivered to the recipient(s) below.\r\n"
        f"\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"{per_message}{per_recipient}"
        f"\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}\r\n"
        f"\r\n--{boundary}--\r\n"
    )
    return text.encode("utf-8")


class _AnswerLost(Exception):
    """An LMTP transaction began but its answer never came: the mail may have been stored."""


def _session_cn(session) -> str | None:
    if not session.ssl:
        return None
    return peer_common_name(session.ssl.get("ssl_object"))


class SmtpRelay:
    """aiosmtpd servers (STARTTLS and implicit TLS) on an event loop in a background thread.

    Built with ``loop.create_server`` rather than ``aiosmtpd.controller.Controller``: the
    controller probes its own TLS listener at start-up, which a client-certificate policy breaks.
    """

    def __init__(self, servers: MailServers) -> None:
        self.servers = servers
        self.handler = _RelayHandler(self)
        self.starttls_port = 0
        self.tls_port = 0
        self.state: RelayState = "up"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listeners: list[asyncio.AbstractServer] = []
        self._tls = self._tls_context()
        # Mails accepted (250) whose LMTP answer was lost: (sender, recipient, data).
        self._spooled: list[tuple[str, str, bytes]] = []
        self._spool_lock = threading.Lock()
        self._spooler: threading.Thread | None = None

    def _tls_context(self) -> ssl.SSLContext:
        pki = self.servers.pki
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(pki.server.cert_path, pki.server.key_path)
        ctx.load_verify_locations(cafile=pki.ca_bundle)
        ctx.load_verify_locations(cafile=pki.crl_bundle)
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN | ssl.VERIFY_X509_STRICT
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def start(self) -> None:
        if self._loop is not None:
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="pfi-devkit-smtp-relay", daemon=True
        )
        self._thread.start()
        self._call(self._open())

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        # A later start() takes new ephemeral ports; set_state() keeps them (clients know them).
        self.starttls_port = self.tls_port = 0

    def set_state(self, state: RelayState) -> None:
        if state not in ("up", "refuse", "421"):
            raise ValueError(f"unknown relay state {state!r}")
        self.state = state
        if state == "refuse":
            self._call(self._close())
        elif not self._listeners:
            self._call(self._open())

    def deliver(self, sender: str, recipient: str, data: bytes) -> str | None:
        """One LMTP transaction for one recipient; None when delivered (or spooled), else the
        SMTP reply — ``451`` while the mail store is down (an outage of ``imap``), as an MTA
        answers then. A transaction whose answer is lost is spooled (the module's docstring)."""
        if self.servers.dovecot.run_dir is None:
            return f"451 4.3.0 mail store unavailable for {recipient}, try again later"
        try:
            return self._lmtp(sender, recipient, data)
        except _AnswerLost:
            self._spool(sender, recipient, data)
            return None

    @property
    def spooled(self) -> int:
        """How many accepted mails wait for the mail store to come back."""
        with self._spool_lock:
            return len(self._spooled)

    def _lmtp(self, sender: str, recipient: str, data: bytes) -> str | None:
        lmtp = smtplib.LMTP(timeout=30)
        try:
            lmtp.connect(str(self.servers.lmtp_socket))
        except OSError as error:  # nothing handed over yet (smtplib's errors are OSErrors)
            lmtp.close()
            return f"451 4.4.0 LMTP delivery to {recipient} failed: {error}"
        try:
            with lmtp:
                lmtp.sendmail(sender, [recipient], data)
        except smtplib.SMTPRecipientsRefused as error:
            code, message = error.recipients[recipient]
            return f"{code} {message.decode(errors='replace')}"
        except smtplib.SMTPResponseException as error:
            return f"{error.smtp_code} {error.smtp_error.decode(errors='replace')}"
        except (OSError, RuntimeError) as error:  # the store went away mid-transaction
            raise _AnswerLost from error
        return None

    def _spool(self, sender: str, recipient: str, data: bytes) -> None:
        with self._spool_lock:
            self._spooled.append((sender, recipient, data))
            if self._spooler is None:
                self._spooler = threading.Thread(
                    target=self._drain_spool, name="pfi-devkit-relay-spool", daemon=True
                )
                self._spooler.start()

    def _drain_spool(self) -> None:
        while True:
            with self._spool_lock:
                if not self._spooled:
                    self._spooler = None
                    return
                pending = list(self._spooled)
            for item in pending:
                if self._hand_over_again(*item):
                    with self._spool_lock:
                        self._spooled.remove(item)
            time.sleep(SPOOL_RETRY_SECONDS)

    def _hand_over_again(self, sender: str, recipient: str, data: bytes) -> bool:
        """True once the spooled mail is in the recipient's Maildir (found there, or stored now)
        or refused for good (logged: a real MTA would bounce it); False to try again later."""
        if self.servers.dovecot.run_dir is None:
            return False
        message_id = email.parser.BytesHeaderParser().parsebytes(data).get("Message-ID")
        if message_id and self._holds(recipient, message_id.strip()):
            return True
        try:
            reply = self._lmtp(sender, recipient, data)
        except _AnswerLost:
            return False
        if reply is not None and reply.startswith("4"):
            return False
        if reply is not None:
            # the code only: a patient's address (and the store's reply quoting it) holds the INS
            log.warning("a spooled mail was refused by the mail store (%s)", reply[:3])
        return True

    def _holds(self, recipient: str, message_id: str) -> bool:
        parser = email.parser.BytesHeaderParser()
        maildir = self.servers.maildir(recipient)
        for path in [*(maildir / "new").glob("*"), *(maildir / "cur").glob("*")]:
            try:
                with path.open("rb") as stored:
                    headers = parser.parsebytes(stored.read(65536))
            except OSError:  # moved from new/ to cur/ meanwhile: found at the next try
                continue
            if (headers.get("Message-ID") or "").strip() == message_id:
                return True
        return False

    def _call(self, coro) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(START_TIMEOUT)

    def _factory(self, *, implicit_tls: bool):
        def make() -> SMTP:
            return _RelaySMTP(
                self,
                implicit_tls=implicit_tls,
                hostname=RELAY_HOSTNAME,
                ident="pfi_devkit relay",
                tls_context=None if implicit_tls else self._tls,
                require_starttls=not implicit_tls,
                auth_require_tls=not implicit_tls,
                authenticator=self.handler.authenticate,
                timeout=60,
                loop=self._loop,
            )

        return make

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        starttls = await loop.create_server(
            self._factory(implicit_tls=False), HOST, self.starttls_port
        )
        tls = await loop.create_server(
            self._factory(implicit_tls=True), HOST, self.tls_port, ssl=self._tls
        )
        self._listeners = [starttls, tls]
        self.starttls_port = starttls.sockets[0].getsockname()[1]
        self.tls_port = tls.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        listeners, self._listeners = self._listeners, []
        for server in listeners:
            server.close()
        for server in listeners:
            await server.wait_closed()

    async def _shutdown(self) -> None:
        """Close the listeners and end the sessions still open, so the loop closes cleanly."""
        await self._close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = [
    "DOVECOT_BIN",
    "Dovecot",
    "MailServerError",
    "MailServers",
    "RelayState",
    "SmtpRelay",
    "client_ssl_context",
    "delivery_report",
    "peer_common_name",
]
