"""``make chaos``: the fault campaign — documents through ``make run``'s real stack while
components are killed and partners are taken down, counted at the partners.

Each trial:

1. drops ``--documents`` MDM samples (each a new document: one DMP submission and one
   professional's mail), a tenth of them sent over MLLP to the PFI's inlet (resent until
   acknowledged, as a DPI does), and mails ``--documents / 10`` documents to the application
   mailbox (each becomes an MDM^T02 for the DPI);
2. once a random share (10–50 %) of the affected channel is sent, applies ONE fault, in turn
   from :data:`FAULTS` (a random start, ``--seed``):

   - ``kill:<component>``: SIGKILL of a component of ``make run`` with its process group
     (``scheduler``, ``triggerer``, ``api-server``, ``dag-processor``, ``mllp-inlet``), of a
     ``worker`` (a Celery worker, or a LocalExecutor worker process), of a running ``task``, or
     of ``all`` the clone's Airflow processes at once;
   - ``outage:<partner>``: the DMP endpoint, the SMTP relay, the mail store (IMAP and delivery)
     or the DPI refuse connections for ``--outage`` seconds (``python -m pfi_devkit outage``);
   - ``postgres``: the PostgreSQL server restarted (``pg_ctlcluster``; skipped when not there);

3. waits until the ledger has every delivery of the trial sent (``--trial-timeout``), then
   counts from the partners' own records — the DMP endpoint's stored submissions, the
   professional's Maildir, the DPI peer's received messages: documents **lost** (never there)
   and delivered **twice**, and the **recovery**: from the fault's end (the kill itself —
   restarting is part of the recovery —, the partner back, PostgreSQL up again) to the next
   delivery sent on the affected channel(s); ``drained_s`` to the last one. After a kill the
   missing components are started again as a supervisor does (``scripts/run.sh restart``).

The campaign stops starting trials after ``--budget-minutes``. One JSON line per trial, then a
summary; the whole report is written to ``var/chaos/``. At the end ``python -m pfi_devkit audit``
searches the stack's logs, XComs and ledger texts for the patient data of everything it received.
Exit 1 when a document was lost or delivered twice, a recovery took more than
:data:`RECOVERY_GOAL_S`, or the audit found a patient datum. Run it in a clone of its
own (its databases are the clone's), on a stack ``make run`` started — or not: it starts it::

    make chaos CHAOS_ARGS="--trials 20 --documents 1000"
    PFI_EXECUTOR=celery make chaos CHAOS_ARGS="--trials 4 --documents 300"
"""

from __future__ import annotations

import argparse
import email
import email.policy
import io
import json
import os
import random
import re
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from datetime import UTC, datetime
from email.policy import SMTP
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pfi_devkit import samples  # noqa: E402
from pfi_devkit.demo import DEMO_MAILBOX, PROFESSIONAL_MAILBOX, read_env_file  # noqa: E402

#: The professional the MDM samples mail (their PRT), whose Maildir is counted.
RECIPIENT = "adam.hoda@test-ci-sis.mssante.fr"
RECOVERY_GOAL_S = 120.0
FAULTS = (
    "kill:scheduler",
    "outage:dmp",
    "kill:worker",
    "outage:smtp",
    "kill:task",
    "kill:triggerer",
    "outage:imap",
    "kill:all",
    "outage:dpi",
    "kill:api-server",
    "postgres",
    "kill:dag-processor",
    "kill:mllp-inlet",
)
#: Which deliveries a fault holds up (progress and recovery are read on these channels).
AFFECTS = {
    "outage:dmp": ("dmp",),
    "outage:smtp": ("mss_professional",),
    "outage:imap": ("dpi", "mss_professional"),
    "outage:dpi": ("dpi",),
}
ALL_CHANNELS = ("dmp", "mss_professional", "dpi")
UID = re.compile(re.escape(samples.DOCUMENT_ROOT).encode() + rb"\.\d+\.[123]")


def stack_env() -> dict[str, str]:
    return read_env_file(ROOT / "var/airflow/airflow.env")


def make_run() -> None:
    subprocess.run(["make", "run"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


class Supervisor:
    """What systemd's ``Restart=`` or a container runtime does on a site: every few seconds, a
    component of ``make run`` that is not running (gone, or a zombie) is started again with
    ``scripts/run.sh restart``. A component may die some time after a fault — the scheduler
    exits on its next query once PostgreSQL restarted under it —, so it watches throughout."""

    COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "mllp-inlet")

    def __init__(self, every: float = 3.0) -> None:
        self.every, self.restarts, self.busy = every, [], threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Supervisor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(120)

    def _dead(self) -> list[str]:
        names = [
            *self.COMPONENTS,
            *(p.stem for p in (ROOT / "var/run").glob("celery-worker-?.pid")),
        ]
        dead = []
        for name in names:
            pids = _pid_of(name)
            status = Path(f"/proc/{pids[0]}/status") if pids else None
            try:
                if status is None or "\nState:\tZ" in status.read_text():
                    dead.append(name)
            except OSError:
                dead.append(name)
        return dead

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            dead = self._dead()
            if not dead:
                continue
            self.busy.set()
            started = time.monotonic()
            subprocess.run(
                ["scripts/run.sh", "restart"], cwd=ROOT, stdout=subprocess.DEVNULL, check=False
            )
            self.restarts.append((",".join(dead), round(time.monotonic() - started, 1)))
            self.busy.clear()


# -- the faults ------------------------------------------------------------------------------


def airflow_processes(title: str = "") -> list[int]:
    """This clone's Airflow processes (working directory under the clone), by command line read
    from ``/proc`` — never by a name pattern, which would also hit the PostgreSQL backends serving
    databases named ``pfi_airflow_*``. ``title``: only those whose command line contains it
    (``airflow supervisor:`` a task's supervisor, ``LocalExecutor`` a LocalExecutor worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in raw]
        airflow = args[0].startswith(("airflow", "[celeryd")) or (
            len(args) > 1 and args[1].endswith("/bin/airflow")
        )
        if airflow and Path(cwd).is_relative_to(ROOT) and title in " ".join(args):
            found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b"<idle>"  # gone meanwhile: nothing to kill


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []


def _sigkill(pids: list[int], *, groups: bool = False) -> int:
    for pid in pids:
        try:
            (os.killpg if groups else os.kill)(pid, signal.SIGKILL)
        except OSError:
            pass
    return len(pids)


def _pid_of(component: str) -> list[int]:
    try:
        return [int((ROOT / f"var/run/{component}.pid").read_text())]
    except (OSError, ValueError):
        return []


def kill(component: str) -> int:
    """SIGKILL, as a crash or an OOM kill does: ``all`` of the clone's Airflow processes; a
    component of ``make run`` with its process group (what a container's death takes); ``task``
    a running task (its supervisor and the task process); ``worker`` a worker with its tasks (a
    Celery worker when the stack runs Celery, else one of LocalExecutor's worker processes)."""
    if component == "all":
        return _sigkill(airflow_processes())
    if component == "task":
        # a task's supervisor: Celery's "airflow supervisor: <ti>", LocalExecutor's busy worker
        running = airflow_processes("airflow supervisor:") + [
            pid for pid in airflow_processes("LocalExecutor: ") if b"<idle>" not in _cmdline(pid)
        ]
        chosen = [random.choice(running)] if running else []
        return _sigkill(chosen + [c for pid in chosen for c in _children(pid)])
    if component == "worker":
        celery = [p for n in (1, 2) for p in _pid_of(f"celery-worker-{n}")]
        if celery:
            return _sigkill([random.choice(celery)], groups=True)
        local = airflow_processes("LocalExecutor")
        chosen = [random.choice(local)] if local else []
        return _sigkill(chosen + [c for pid in chosen for c in _children(pid)])
    return _sigkill(_pid_of(component), groups=True)


def outage(partner: str, seconds: float) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pfi_devkit",
            "outage",
            partner,
            str(seconds),
            "--state",
            "var/devkit",
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def restart_postgres() -> bool:
    clusters = (
        sorted(Path("/etc/postgresql").glob("*/main")) if Path("/etc/postgresql").exists() else []
    )
    if not shutil.which("pg_ctlcluster") or not clusters:
        return False
    version = clusters[-1].parent.name
    subprocess.run(["pg_ctlcluster", version, "main", "restart"], check=True)
    return True


# -- what the trial sends --------------------------------------------------------------------


def drop_documents(serials: range, mllp_share: int) -> threading.Thread:
    """The files into the DPI's drop folder; every ``mllp_share``-th over MLLP instead, by a
    thread that resends each until the inlet acknowledges it (returned, started)."""
    from pfi.base.errors import PfiError
    from pfi.protocols.mllp import MllpClient, MllpEndpoint

    drop = ROOT / "var/demo/hl7/dpi/in"
    over_mllp = []
    for serial in serials:
        data = samples.sample_bytes(samples.MDM_INIT, serial)
        if mllp_share and serial % mllp_share == 0:
            over_mllp.append(data)
            continue
        hidden = drop / f".chaos-{serial}.hl7"
        hidden.write_bytes(data)
        os.rename(hidden, drop / f"chaos-{serial}.hl7")
    port = int((ROOT / "var/airflow/mllp-inlet-port").read_text())

    def send() -> None:
        client = MllpClient(MllpEndpoint("127.0.0.1", port, 5.0, 30.0))
        for data in over_mllp:
            while True:
                try:
                    client.send(data)
                    break
                except PfiError:
                    time.sleep(2)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def mail_documents(serials: range) -> None:
    """The professional mails each document of ``serials`` to the application mailbox."""
    from pfi_devkit.samples.mail import document_mail

    info = json.loads((ROOT / "var/devkit/stack.json").read_text())
    mail = info["mail"]
    context = ssl.create_default_context(cafile=mail["ca_bundle"])
    with smtplib.SMTP_SSL(mail["host"], mail["smtps_port"], context=context, timeout=60) as smtp:
        smtp.login(PROFESSIONAL_MAILBOX, info["human_mailboxes"][PROFESSIONAL_MAILBOX])
        for serial in serials:
            message = document_mail(
                samples.sample_bytes(samples.MDM_INIT, serial),
                PROFESSIONAL_MAILBOX,
                DEMO_MAILBOX,
                message_id=f"<chaos-{serial}@ch-demo.mssante.test>",
            )
            smtp.sendmail(PROFESSIONAL_MAILBOX, [DEMO_MAILBOX], message.as_bytes(policy=SMTP))


# -- what the ledger and the partners say ----------------------------------------------------


class Progress:
    """Deliveries of the trial's documents per channel and status (the ledger)."""

    def __init__(self, ledger, wanted: set[str]) -> None:
        from sqlalchemy import func, select

        from pfi.ledger.schema import delivery, document

        self.ledger = ledger
        self.query = (
            select(delivery.c.channel, delivery.c.status, func.count())
            .select_from(delivery.join(document, delivery.c.document_id == document.c.id))
            .where(document.c.unique_id.in_(wanted), delivery.c.channel.in_(ALL_CHANNELS))
            .group_by(delivery.c.channel, delivery.c.status)
        )
        self.last: dict[tuple[str, str], int] = {}

    def read(self) -> None:
        try:
            with self.ledger.engine.connect() as conn:
                self.last = {(c, s): n for c, s, n in conn.execute(self.query).all()}
        except Exception:  # PostgreSQL restarting: the previous reading stays
            pass

    def sent(self) -> Counter:
        self.read()
        return self.of("sent")

    def of(self, *statuses: str) -> Counter:
        """Per channel, the deliveries in ``statuses`` at the last reading."""
        found: Counter = Counter()
        for (channel, status), count in self.last.items():
            if status in statuses:
                found[channel] += count
        return found


class Partners:
    """What reached the partners, per document id, read from their own stores (cached per file:
    the stores only grow)."""

    def __init__(self) -> None:
        info = json.loads((ROOT / "var/devkit/stack.json").read_text())
        self.maildir = Path(info["maildirs"][RECIPIENT])
        self.dmp_dir = ROOT / "var/devkit/dmp-accepted"
        self.dpi_dir = ROOT / "var/devkit/dpi-received"
        self._mails: dict[str, set[bytes]] = {}
        self._dpi: dict[str, tuple[set[bytes], bytes]] = {}

    def at_dmp(self) -> Counter:
        found: Counter = Counter()
        for path in self.dmp_dir.glob("*/*.document"):
            found[path.name.removesuffix(".document")] += 1
        return found

    def in_mailbox(self) -> Counter:
        found: Counter = Counter()
        for sub in ("new", "cur"):
            for path in (self.maildir / sub).iterdir():
                key = path.name.split(":")[0]
                if key not in self._mails:
                    self._mails[key] = self._uids_of_mail(path.read_bytes())
                for uid in self._mails[key]:
                    found[uid.decode()] += 1
        return found

    @staticmethod
    def _uids_of_mail(raw: bytes) -> set[bytes]:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        uids: set[bytes] = set()
        for part in message.iter_attachments():
            if part.get_filename() == "IHE_XDM.ZIP":
                with zipfile.ZipFile(io.BytesIO(part.get_content())) as archive:
                    for name in archive.namelist():
                        if name.endswith("METADATA.XML"):
                            uids |= set(UID.findall(archive.read(name)))
        return uids

    def at_dpi(self) -> tuple[Counter, Counter]:
        """Per document id: MDM messages received, and distinct MSH-10 among them (a resend
        with the same MSH-10 is MLLP's own duplicate, which the receiver recognises)."""
        messages: Counter = Counter()
        controls: dict[str, set[bytes]] = {}
        for path in self.dpi_dir.glob("*.hl7"):
            if path.name not in self._dpi:
                raw = path.read_bytes()
                msh = raw.split(b"\r", 1)[0].split(b"|")
                control = msh[9] if len(msh) > 9 else b""
                self._dpi[path.name] = (
                    set(UID.findall(raw)) if b"MDM^T02" in raw else set(),
                    control,
                )
            uids, control = self._dpi[path.name]
            for uid in uids:
                messages[uid.decode()] += 1
                controls.setdefault(uid.decode(), set()).add(control)
        return messages, Counter({uid: len(c) for uid, c in controls.items()})


# -- one trial -------------------------------------------------------------------------------


def trial(
    number: int,
    fault: str,
    args,
    ledger,
    partners: Partners,
    serial0: int,
    supervisor: Supervisor,
) -> dict:
    documents = args.documents
    mailed = max(1, documents // 10)
    serials = range(serial0, serial0 + documents)
    mail_serials = range(serial0 + documents, serial0 + documents + mailed)
    outbound = {samples.document_ids(s)[0] for s in serials}
    inbound = {samples.document_ids(s)[0] for s in mail_serials}
    expected = Counter({"dmp": documents, "mss_professional": documents, "dpi": mailed})
    progress = Progress(ledger, outbound | inbound)
    channels = AFFECTS.get(fault, ALL_CHANNELS)
    share = random.uniform(0.1, 0.5)
    trigger = max(1, int(share * sum(expected[c] for c in channels)))

    started = time.monotonic()
    mail_documents(mail_serials)
    sender = drop_documents(serials, args.mllp_share)
    deadline = started + args.trial_timeout
    while sum(progress.sent()[c] for c in channels) < trigger and time.monotonic() < deadline:
        time.sleep(0.5)
    at_fault = progress.sent()
    fault_at = time.monotonic()
    detail = ""
    restarts_before = len(supervisor.restarts)
    if fault.startswith("kill:"):
        detail = f"{kill(fault.split(':', 1)[1])} process(es) killed"
    elif fault.startswith("outage:"):
        seconds = random.uniform(*args.outage)
        outage(fault.split(":", 1)[1], seconds)
        detail = f"{seconds:.0f} s down"
        time.sleep(seconds + 0.5)
    elif fault == "postgres":
        detail = "restarted" if restart_postgres() else "skipped: no pg_ctlcluster here"
    # A kill ends at once (the restart is part of the recovery); an outage when the partner is
    # back; PostgreSQL once it accepts connections again.
    fault_end = time.monotonic()
    at_end = progress.sent()
    left = any(at_end[c] < expected[c] for c in channels)
    resumed = None
    while time.monotonic() < deadline:
        now_sent = progress.sent()
        if resumed is None and left and any(now_sent[c] > at_end[c] for c in channels):
            resumed = time.monotonic() - fault_end
        # done when every delivery is final: sent, or refused / failed (counted lost below)
        final_ = progress.of("sent", "refused", "failed")
        done = all(final_[c] >= expected[c] for c in ALL_CHANNELS)
        if done and not sender.is_alive() and not supervisor.busy.is_set():
            break
        time.sleep(1)
    finished = time.monotonic()
    final = progress.sent()
    dmp, mail = partners.at_dmp(), partners.in_mailbox()
    dpi, dpi_controls = partners.at_dpi()
    result = {
        "trial": number,
        "fault": fault,
        "detail": detail,
        "documents": documents,
        "mailed_in": mailed,
        "fault_after_sent": dict(at_fault),
        "fault_s": round(fault_end - fault_at, 1),
        "restarts": supervisor.restarts[restarts_before:],  # (components, seconds)
        "recovery_s": round(resumed, 1) if resumed is not None else None,
        "drained_s": round(finished - fault_end, 1),
        "ledger_sent": dict(final),
        "ledger_refused_or_failed": dict(progress.of("refused", "failed")),
        "lost": {
            "dmp": sum(1 for u in outbound if dmp[u] == 0),
            "mail": sum(1 for u in outbound if mail[u] == 0),
            "dpi": sum(1 for u in inbound if dpi[u] == 0),
        },
        "twice": {
            "dmp": sum(1 for u in outbound if dmp[u] > 1),
            "mail": sum(1 for u in outbound if mail[u] > 1),
            "dpi": sum(1 for u in inbound if dpi_controls[u] > 1),
        },
        "dpi_resent_same_msh10": sum(1 for u in inbound if dpi[u] > dpi_controls[u]),
    }
    if resumed is None and left:
        result["recovery_s"] = "never"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--documents", type=int, default=1000, help="per trial")
    parser.add_argument(
        "--outage", type=float, nargs=2, default=(60.0, 150.0), metavar=("MIN", "MAX")
    )
    parser.add_argument("--trial-timeout", type=float, default=1500.0, help="seconds")
    parser.add_argument("--budget-minutes", type=float, default=240.0)
    parser.add_argument(
        "--mllp-share", type=int, default=10, help="every Nth document over MLLP (0: none)"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, in turn")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    random.seed(seed)
    faults = args.faults.split(",")
    first = random.randrange(len(faults))

    make_run()
    from pfi.ledger import Ledger

    env = stack_env()
    ledger = Ledger.from_url(env["AIRFLOW_CONN_PFI_LEDGER"])
    partners = Partners()
    report_dir = ROOT / "var/chaos"
    report_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = report_dir / f"report-{stamp}.jsonl"
    executor = env.get("AIRFLOW__CORE__EXECUTOR", "?")
    budget_end = time.monotonic() + 60 * args.budget_minutes
    serial0 = 100_000 + (int(time.time()) % 10_000) * 1_000  # clear of the demo's sets
    results = []
    for number in range(1, args.trials + 1):
        if time.monotonic() > budget_end:
            print(
                f"budget of {args.budget_minutes:g} min spent: {number - 1} trials run", flush=True
            )
            break
        fault = faults[(first + number - 1) % len(faults)]
        with Supervisor() as supervisor:
            result = trial(number, fault, args, ledger, partners, serial0, supervisor)
        result["executor"] = executor
        serial0 += args.documents + args.documents // 10 + 10
        results.append(result)
        line = json.dumps(result)
        print(line, flush=True)
        with report.open("a") as out:
            out.write(line + "\n")
    ledger.dispose()
    # What operators see after the campaign holds no patient datum (logs, XComs, ledger texts).
    audit = subprocess.run(
        [sys.executable, "-m", "pfi_devkit", "audit", "--root", str(ROOT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    recoveries = [r["recovery_s"] for r in results if r["recovery_s"] is not None]
    numeric = [r for r in recoveries if isinstance(r, float | int)]
    summary = {
        "executor": executor,
        "seed": seed,
        "trials": len(results),
        "documents_per_trial": args.documents,
        "lost": sum(sum(r["lost"].values()) for r in results),
        "twice": sum(sum(r["twice"].values()) for r in results),
        "recovery_max_s": max(numeric) if numeric else None,
        "recoveries_over_goal": sum(
            1 for r in recoveries if not isinstance(r, float | int) or r > RECOVERY_GOAL_S
        ),
        "patient_data_audit": {0: "clean", 1: "HITS"}.get(audit.returncode, "not run"),
        "report": str(report.relative_to(ROOT)),
    }
    if audit.returncode:
        print(audit.stdout[-3000:], audit.stderr[-1000:], flush=True)
    print(json.dumps(summary), flush=True)
    with report.open("a") as out:
        out.write(json.dumps({"summary": summary}) + "\n")
    ok = not (summary["lost"] or summary["twice"] or summary["recoveries_over_goal"])
    ok = ok and audit.returncode == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
