"""All local partner servers in one background process, for the demo (``python -m pfi_devkit``).

``serve`` runs in the foreground: it builds the test PKI (once), starts Dovecot + the SMTP relay
(MSSanté stand-in), the MLLP peer (the DPI) and the DMP endpoint, then writes into the state
folder ``stack.json`` (what runs where) and ``connections.json`` (the Airflow Connections that
reach them, read by ``pfi_devkit.demo prepare``), and waits for SIGTERM. The command line is
``pfi_devkit.__main__`` (``python -m pfi_devkit up|down|status|serve``).

``up`` starts ``serve`` detached and waits for ``stack.json``; ``down`` stops it (and the private
PostgreSQL cluster, if the demo had to create one). Both are idempotent.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pfi_devkit.demo import DEMO_MAILBOX, ERROR_MAILBOX, PROFESSIONAL_MAILBOX, sample_recipients
from pfi_devkit.postgres import stop_private_cluster

#: The clone's root, where ``pfi_devkit/`` is (beside ``include/``, never installed).
REPO_ROOT = Path(__file__).resolve().parents[1]
STACK_FILE = "stack.json"
CONNECTIONS_FILE = "connections.json"
HUMAN_PASSWORD = "demo"


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):  # our own child: reap it if it has exited
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(state: Path) -> dict[str, Any] | None:
    """What runs (``stack.json``, written at start-up) if the serving process is alive, with
    what has arrived since (``arrived``: :func:`arrived`), else None."""
    file = state / STACK_FILE
    if not file.exists():
        return None
    info = json.loads(file.read_text())
    if not _alive(int(info.get("pid", 0))):
        return None
    return {**info, "arrived": arrived(info)}


def arrived(info: dict[str, Any]) -> dict[str, Any]:
    """What reached the partner servers so far, read from their folders: the submissions the
    DMP endpoint accepted (``dmp-accepted/``), the mails in each mailbox, the messages the DPI
    peer received. Names and counts only: no content (patient data) is shown."""

    def entries(folder: str | None, *, dirs: bool) -> list[Path]:
        path = Path(folder) if folder else None
        if path is None or not path.is_dir():
            return []
        return sorted(p for p in path.iterdir() if p.is_dir() == dirs)

    maildirs = info.get("maildirs", {})
    return {
        "dmp_accepted": [p.name for p in entries(info["dmp"].get("store_dir"), dirs=True)],
        "mails": {
            address: sum(
                len(entries(str(Path(maildir) / sub), dirs=False)) for sub in ("new", "cur")
            )
            for address, maildir in sorted(maildirs.items())
        },
        "dpi_received": len(entries(info["dpi_mllp"].get("store_dir"), dirs=False)),
    }


def up(state: Path, *, timeout: float = 60.0) -> dict[str, Any]:
    """Start the servers in a detached process unless they already run; return ``stack.json``."""
    running = status(state)
    if running:
        return running
    state.mkdir(parents=True, exist_ok=True)
    _stop_leftovers(state)
    log = (state / "stack.log").open("ab")
    # The devkit is not installed in the venv: the child finds it beside the product, wherever
    # the caller's working directory is.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "pfi_devkit", "serve", "--state", str(state)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = status(state)
        if info:
            return info
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.terminate()
    tail = (state / "stack.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"the partner servers did not start; end of {state / 'stack.log'}:\n{tail}")


def _stop_leftovers(state: Path) -> None:
    """After a SIGKILL of ``serve``, its Dovecot still runs: stop it before starting again."""
    file = state / STACK_FILE
    if not file.exists():
        return
    pid = json.loads(file.read_text()).get("mail", {}).get("dovecot_pid")
    if pid and _alive(int(pid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid), signal.SIGTERM)
    file.unlink(missing_ok=True)


def down(state: Path, *, timeout: float = 20.0) -> None:
    """Stop the serving process (SIGTERM, then SIGKILL) and our private PostgreSQL if any."""
    file = state / STACK_FILE
    if file.exists():
        pid = int(json.loads(file.read_text()).get("pid", 0))
        if pid and _alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        _stop_leftovers(state)
    stop_private_cluster(state / "postgres")


def connections(mail: Any, mllp: Any, dmp: Any, pki: Any) -> dict[str, str]:
    """Airflow Connections (JSON form) reaching the local servers, keyed by connection id."""
    mailbox = {
        "conn_type": "imap",
        "host": mail.host,
        "port": mail.imap_port,
        "login": DEMO_MAILBOX,
        "password": mail.password_for(DEMO_MAILBOX),
        "extra": {
            "imap_port": mail.imap_port,
            "imaps_port": mail.imaps_port,
            "smtp_port": mail.smtp_port,
            "smtps_port": mail.smtps_port,
            "client_cert": str(pki.clients[DEMO_MAILBOX].cert_path),
            "client_key": str(pki.clients[DEMO_MAILBOX].key_path),
            "ca_bundle": str(pki.ca_bundle),
            "crl_file": str(pki.crl_bundle),
        },
    }
    dpi = {"conn_type": "mllp", "host": mllp.host, "port": mllp.port}
    dmp_conn = {
        "conn_type": "http",
        "host": dmp.host,
        "port": dmp.port,
        "schema": "https",
        "extra": {
            "repository_url": dmp.repository_url,
            "registry_url": dmp.registry_url,
            "client_cert": str(pki.establishment.cert_path),
            "client_key": str(pki.establishment.key_path),
            "ca_bundle": str(pki.ca_bundle),
            "crl_file": str(pki.crl_bundle),
            "signing_cert": str(pki.signing.cert_path),
            "signing_key": str(pki.signing.key_path),
        },
    }
    return {
        "pfi_mss_pfi": json.dumps(mailbox),
        "pfi_dpi_mllp": json.dumps(dpi),
        "pfi_dmp": json.dumps(dmp_conn),
    }


#: The DPI peer's answers per patient or document type (``python -m pfi_devkit dpi-answers``).
DPI_ANSWERS_FILE = "dpi-answers.json"


def dpi_answers(state: Path, rule: dict[str, str] | None = None, *, clear: bool = False) -> list:
    """The DPI peer's answer rules (:class:`pfi_devkit.mllp_peer.AnswerRules`), after adding
    ``rule`` in front (it wins over the older ones) or clearing them; read at its next message."""
    from pfi.base.files import write_atomically

    path = state / DPI_ANSWERS_FILE
    try:
        rules = [] if clear else json.loads(path.read_text(encoding="utf-8")).get("rules", [])
    except (OSError, ValueError):
        rules = []
    if rule:
        rules = [rule, *(r for r in rules if _rule_key(r) != _rule_key(rule))]
    if rule or clear:
        state.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps({"rules": rules}, indent=2).encode())
    return rules


def _rule_key(rule: dict[str, str]) -> tuple[str, str]:
    return (str(rule.get("patient", "")).upper(), str(rule.get("document_type", "")))


OUTAGES_FILE = "outages.json"
#: The partners an outage can take down (``python -m pfi_devkit outage PARTNER SECONDS``): the
#: DMP endpoint (connection refused), the SMTP relay (connection refused), the mail store (Dovecot
#: stopped: IMAP refused, and the relay's deliveries answered 451) and the DPI's MLLP peer.
PARTNERS = ("dmp", "smtp", "imap", "dpi")


def outage(state: Path, partner: str, seconds: float) -> dict[str, float]:
    """Take ``partner`` down for ``seconds`` from now (0: bring it back now); ``serve`` applies
    it within half a second, on the same ports afterwards. Returns every outage's end (epoch)."""
    from pfi.base.files import write_atomically

    if partner not in PARTNERS:
        raise ValueError(f"partner must be one of {PARTNERS}, not {partner!r}")
    ends = _outages(state)
    ends[partner] = time.time() + seconds
    write_atomically(state / OUTAGES_FILE, json.dumps(ends).encode())
    return ends


def _outages(state: Path) -> dict[str, float]:
    try:
        ends = json.loads((state / OUTAGES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {p: float(end) for p, end in ends.items() if p in PARTNERS}


class _Outages:
    """What ``serve`` does with :data:`OUTAGES_FILE`: each partner down while its end is ahead."""

    def __init__(self, state: Path, mail: Any, mllp: Any, dmp: Any) -> None:
        self.state, self.down = state, set()
        self.switch = {
            "dmp": (lambda: dmp.set_mode("down"), lambda: dmp.set_mode("normal")),
            "smtp": (lambda: mail.relay.set_state("refuse"), lambda: mail.relay.set_state("up")),
            "imap": (mail.dovecot.stop, lambda: mail.dovecot.start(same_ports=True)),
            "dpi": (mllp.down, mllp.up),
        }

    def apply(self) -> bool:
        """Bring partners down or up as the file says; True when Dovecot started again (a new
        pid for ``stack.json``)."""
        now = time.time()
        wanted = {p for p, end in _outages(self.state).items() if end > now}
        changed = False
        for partner in sorted(wanted ^ self.down):
            going_down = partner in wanted
            try:
                self.switch[partner][0 if going_down else 1]()
            except Exception as exc:  # tried again at the next tick
                print(f"outage of {partner}: {exc}", file=sys.stderr, flush=True)
                continue
            (self.down.add if going_down else self.down.discard)(partner)
            print(f"outage: {partner} {'down' if going_down else 'up'}", flush=True)
            changed |= partner == "imap" and not going_down
        return changed


#: Ports used with ``--fixed-ports`` (docker-compose publishes them).
FIXED_PORTS = {"dpi_mllp": 2575, "dmp": 8443}


def serve(state: Path, *, host: str = "127.0.0.1", fixed_ports: bool = False) -> int:
    """Run every partner server until SIGTERM or SIGINT.

    ``host`` is where the MLLP peer and the DMP endpoint listen (``0.0.0.0`` in a container,
    with ``fixed_ports``); the mail servers always listen on loopback.
    """
    from pfi_devkit.dmp import DmpEndpoint
    from pfi_devkit.mail import MailServers
    from pfi_devkit.mllp_peer import AnswerRules, MllpPeer
    from pfi_devkit.pki import build_test_pki

    state = state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)  # Dovecot's own users must be able to enter (see pfi_devkit.mail)
    hostnames = ("localhost", "127.0.0.1", *([] if host == "127.0.0.1" else [os.uname().nodename]))
    pki = build_test_pki(state / "pki", [DEMO_MAILBOX], hostnames=hostnames)
    ports = FIXED_PORTS if fixed_ports else {"dpi_mllp": 0, "dmp": 0}
    humans = dict.fromkeys(
        (ERROR_MAILBOX, PROFESSIONAL_MAILBOX, *sample_recipients()), HUMAN_PASSWORD
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with contextlib.ExitStack() as servers:
        mail = servers.enter_context(
            MailServers(
                state / "mail",
                pki,
                [DEMO_MAILBOX],
                humans,
            )
        )
        mllp = servers.enter_context(
            MllpPeer(
                host=host,
                port=ports["dpi_mllp"],
                store_dir=state / "dpi-received",
                policy=AnswerRules(state / DPI_ANSWERS_FILE),
            )
        )
        dmp = servers.enter_context(
            DmpEndpoint(
                pki.server,
                pki.ca_bundle,
                crl_bundle=pki.crl_bundle,
                host=host,
                port=ports["dmp"],
                store_dir=state / "dmp-accepted",
                # as strict as the tests: a demo submission is checked like a real one
                verify_vihf=True,
                require_signature_document=True,
                strict_metadata=True,
            )
        )
        (state / CONNECTIONS_FILE).write_text(json.dumps(connections(mail, mllp, dmp, pki)))
        (state / CONNECTIONS_FILE).chmod(0o600)
        info = {
            "pid": os.getpid(),
            "mail": mail.describe(),
            "dpi_mllp": mllp.describe(),
            "dmp": dmp.describe(),
            "pki": pki.describe(),
            "human_mailboxes": humans,
            "maildirs": {a: str(mail.maildir(a)) for a in (DEMO_MAILBOX, *humans)},
        }
        (state / STACK_FILE).write_text(json.dumps(info, indent=2, default=str))
        (state / OUTAGES_FILE).unlink(missing_ok=True)
        outages = _Outages(state, mail, mllp, dmp)
        while not stop.wait(0.5):
            if outages.apply():
                info["mail"] = mail.describe()
                (state / STACK_FILE).write_text(json.dumps(info, indent=2, default=str))
    (state / STACK_FILE).unlink(missing_ok=True)
    return 0
