"""The local demo set-up behind ``make run``: databases, settings, one Airflow env file, samples.

Everything lives under ``var/`` of the clone and every step is idempotent (a second ``make run``
after a kill reuses the databases, the secrets, the PKI and the chosen port).

Airflow reads its whole configuration from **one env file** (``var/airflow/airflow.env``) that
``scripts/run.sh`` sources before starting each component and before any ``airflow`` CLI call:
a call with a different environment silently loads 100+ example DAGs into the database.

::

    python -m pfi_devkit.demo prepare      # databases, secrets, settings, env file; prints its path
    python -m pfi_devkit.demo samples      # drop the project's sample messages (pfi_devkit.samples)
    python -m pfi_devkit.demo samples --new       # another set: new ids, the whole flow again
    python -m pfi_devkit.demo samples --official  # also two official ANS examples, when present
    python -m pfi_devkit.demo samples --no-mail   # the HL7 samples only

After the HL7 samples, ``samples`` mails the demo's application mailbox three mails from the
professional's human mailbox (:func:`mail_samples`): the sample MDM's document with its
``IHE_XDM.ZIP`` (the PFI takes it and sends its MDM^T02 to the DPI, which accepts it), the
sample lab report the same way (the DPI peer is set to refuse a CR de biologie: the volet's
error mail with the DPI's code 906 goes back to the professional) and the first mail text only
(the PFI refuses it itself: the error mail with code MSS_NO_XDM).

The samples are the project's own (:mod:`pfi_devkit.samples`): a clone needs nothing else. The
official ANS examples are read from ``$PFI_SHARED_DIR/fixtures`` (default ``../shared`` beside
the clone) only when asked, and only when that folder is there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shlex
import smtplib
import socket
import ssl
import sys
import tempfile
import time
from email.policy import SMTP
from pathlib import Path

from pfi_devkit import samples
from pfi_devkit.postgres import find_or_start

ROOT = Path(__file__).resolve().parents[1]
UI_PORTS = range(8080, 8180)
#: Where the demo's MLLP inlet listens for the DPI (``pfi hl7 listen dpi``; 2575 is HL7's port).
MLLP_INLET_PORTS = range(2575, 2600)
DEMO_MAILBOX = "pfi@ch-demo.mssante.test"
ERROR_MAILBOX = "integration@ch-demo.mssante.test"
PROFESSIONAL_MAILBOX = "dr.test@ch-demo.mssante.test"

#: Official examples ``samples --official`` also drops (under ``<shared>/fixtures/ans-hl7v2-exemples``).
OFFICIAL_SAMPLES = {
    "dpi": [
        "Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM/"
        "Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7",
    ],
    "ris": [
        "Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM/"
        "Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7",
    ],
}


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


#: Where the ``make run`` of every clone on this machine claims its ports: two stacks started
#: together both found 8080 free (neither listened yet) and both kept it.
PORT_CLAIMS = Path(tempfile.gettempdir()) / "pfi-demo-ports"
#: A claim this young holds even before its clone has written the port down.
CLAIM_GRACE_SECONDS = 120.0


def _claim(port: int, file: Path, *, force: bool = False) -> bool:
    """Claim ``port`` on this machine for the clone that keeps it in ``file``. False when
    another clone holds it: a claim younger than :data:`CLAIM_GRACE_SECONDS`, or one whose
    clone still keeps that port (its file names it). ``force``: ours whatever (our server
    listens there)."""
    PORT_CLAIMS.mkdir(exist_ok=True)
    claim, mine = PORT_CLAIMS / str(port), str(file.resolve())
    for _ in range(3):
        try:
            fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                holder, age = claim.read_text(), time.time() - claim.stat().st_mtime
            except FileNotFoundError:
                continue
            if holder == mine:
                return True
            if not force and (age < CLAIM_GRACE_SECONDS or _keeps(Path(holder), port)):
                return False
            claim.unlink(missing_ok=True)  # that clone moved to another port, or is gone
            continue
        with os.fdopen(fd, "w") as out:
            out.write(mine)
        return True
    return False


def _keeps(file: Path, port: int) -> bool:
    try:
        return file.read_text().strip() == str(port)
    except (OSError, ValueError):
        return False


def _port_of(file: Path, candidates: range, owner: Path) -> int:
    """The port kept in ``file`` — unless the process that listens on it (pid file ``owner``)
    is gone and another took the port meanwhile (another clone's stack), or another clone
    claimed it (:func:`_claim`): then a free one, claimed. Two clones started together could
    otherwise both keep 8080, and the tasks of one would talk to the other's api-server
    ("Invalid auth token")."""
    kept = int(file.read_text()) if file.exists() else None
    if kept is not None:
        ours = _pid_alive(owner)
        if (not ours and not _bindable(kept)) or not _claim(kept, file, force=ours):
            kept = None
    port = kept
    if port is None:
        port = next((p for p in candidates if _bindable(p) and _claim(p, file)), None)
        if port is None:
            raise RuntimeError(f"no free port in {candidates.start}-{candidates.stop - 1}")
    file.write_text(str(port))
    return port


def _pid_alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


#: ``PFI_EXECUTOR`` of ``make run`` (:func:`airflow_env`'s ``executor``) -> Airflow's executor.
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
#: The machine's Redis: the Celery broker of ``PFI_EXECUTOR=celery make run`` (one database per
#: clone, :func:`claim_redis_db`).
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_CLAIM_KEY = "pfi:clone"
CELERY_WORKER_CONCURRENCY = 4

#: The demo's Airflow users (simple auth manager): login = password, and their role; the operator
#: console maps the roles onto its rights (plugins/pfi_airflow/console).
DEMO_USERS = (
    ("admin", "admin"),
    ("lecteur", "viewer"),
    ("operateur", "user"),
    ("superviseur", "op"),
)


def airflow_env(
    *,
    root: Path,
    home: Path,
    database_url: str,
    ledger_url: str,
    port: int,
    jwt_secret: str,
    fernet_key: str,
    settings_file: Path,
    connections: dict[str, str] | None = None,
    executor: str = "local",
    redis_db: int | None = None,
) -> dict[str, str]:
    """The environment of every Airflow component and CLI call of the local demo.

    ``executor``: ``"local"`` (LocalExecutor, the default) or ``"celery"`` (CeleryExecutor, as
    docker-compose.yaml: ``scripts/run.sh`` then starts two workers) with the machine's Redis as
    broker — its database ``redis_db`` (default :func:`celery_redis_db` of ``root``) — and
    Airflow's metadata database as the result backend."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r}: one of {', '.join(EXECUTORS)}")
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": EXECUTORS[executor],
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__FERNET_KEY": fernet_key,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # the operator console's roles (README, "Operator console"): one demo user each
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in DEMO_USERS),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url.replace(
            "postgresql://", "postgresql+psycopg2://", 1
        ),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "20",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        # A task killed with its worker is found within a minute (default 5), then retried:
        # part of the crash recovery (make chaos), with the deliveries' lease.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC": "5",
        # The tasks of a scheduler that died are reset within a minute of its successor (5).
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "PYTHONPATH": f"{root / 'include'}:{root / 'plugins'}",
        "PFI_SETTINGS": str(settings_file),
        "AIRFLOW_CONN_PFI_LEDGER": ledger_url,
    }
    if executor == "celery":
        db = celery_redis_db(root) if redis_db is None else redis_db
        env |= {
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database_url,
            # two workers on a 2-core machine: the tasks mostly wait on partners and PostgreSQL
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(CELERY_WORKER_CONCURRENCY),
        }
    for conn_id, uri in (connections or {}).items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = uri
    return env


def demo_settings(
    var: Path, *, mllp_inlet_port: int = MLLP_INLET_PORTS.start, console_url: str = ""
) -> str:
    """The demo site's settings (TOML): three HL7 sources (the DPI's also over MLLP), one
    application mailbox, and the operations alerts mailed to the human mailbox
    ``integration@…`` (links to the UI at ``console_url``)."""
    sources = "\n".join(
        f"""
[[hl7_source]]
name = "{name}"
kind = "{kind}"
finess_geo = "{finess}"
drop_dir = "{var / "demo" / "hl7" / name / "in"}"
outbound_dir = "{var / "demo" / "hl7" / name / "out"}"
settle_seconds = 1
{'zam_mllp = "pfi_dpi_mllp"  # business acknowledgements also go back over MLLP' if name == "dpi" else ""}
"""
        for name, kind, finess in (
            ("dpi", "DPI", "010000032"),
            ("sgl", "SGL", "010000032"),
            ("ris", "RIS", "010000040"),
        )
    )
    return f"""# Demo settings written by `make run` (pfi_devkit.demo). See config/pfi.example.toml.
[site]
name = "CH de Démonstration"
finess_juridique = "010000024"
structure_oid = "1.2.250.1.71.4.2.2"
ins_environment = "test"

[[site.finess_geo]]
finess = "010000032"
name = "Site principal"

[[site.finess_geo]]
finess = "010000040"
name = "Site de consultations externes"

[paths]
data_dir = "{var / "demo" / "data"}"
{sources}
[[mailbox]]
name = "pfi"
address = "{DEMO_MAILBOX}"
connection_id = "pfi_mss_pfi"
finess_geo = "010000032"
error_mailbox = "{ERROR_MAILBOX}"

[[mllp_inlet]]
source = "dpi"
host = "127.0.0.1"
port = {mllp_inlet_port}

[alerts]  # pfi.flows.alerts: DAG watch_operations and every task's failure
recipients = ["{ERROR_MAILBOX}"]
console_url = "{console_url}"
partner_failing_minutes = 10
"""


def database_names(root: Path) -> tuple[str, str]:
    """The demo's two databases (Airflow's metadata, the ledger) for the clone at ``root``: named
    after the clone's path, so that two clones on one PostgreSQL server (a chaos campaign beside
    a demo) never share them — ``pfi_airflow_<8 hex>`` and ``pfi_ledger_<same>``."""
    tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    return f"pfi_airflow_{tag}", f"pfi_ledger_{tag}"


def celery_redis_db(root: Path) -> int:
    """The Redis database (1-15; 0 is left to whoever uses Redis by default) the clone at ``root``
    takes as its Celery broker with ``PFI_EXECUTOR=celery make run``: derived from the same hash
    as :func:`database_names`, so that two clones do not share a queue."""
    tag = database_names(root)[0].rsplit("_", 1)[1]
    return 1 + int(tag, 16) % 15


def claim_redis_db(root: Path, home: Path) -> int:
    """The clone's Redis database, claimed in Redis itself: :func:`celery_redis_db`, else the next
    one whose claim (key ``pfi:clone``) is free or the clone's own — two clones whose hashes fall
    on the same number still get a queue each. Kept in ``home/redis-db`` like the port."""
    import redis

    kept = home / "redis-db"
    first = int(kept.read_text()) if kept.exists() else celery_redis_db(root)
    me = str(root.resolve())
    for db in [first, *(1 + (first - 1 + i) % 15 for i in range(1, 15))]:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5)
        client.set(REDIS_CLAIM_KEY, me, nx=True)
        if client.get(REDIS_CLAIM_KEY) == me.encode():
            kept.write_text(str(db))
            return db
    raise RuntimeError(f"every Redis database 1-15 of {REDIS_HOST}:{REDIS_PORT} is another clone's")


def prepare(
    root: Path = ROOT, connections: dict[str, str] | None = None, executor: str = "local"
) -> Path:
    """Create (once) the databases, secrets, settings and env file; return the env file path.
    ``executor``: ``"local"`` or ``"celery"`` (:func:`airflow_env`), remembered in
    ``var/airflow/executor`` for ``scripts/run.sh``."""
    var = root / "var"
    home = var / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    server = find_or_start(var / "devkit")
    airflow_db, ledger_db = database_names(root)
    database_url = server.create_database(airflow_db, exist_ok=True)
    ledger_url = server.create_database(ledger_db, exist_ok=True)

    secrets_file = home / "secrets.json"
    if secrets_file.exists():
        kept = json.loads(secrets_file.read_text())
    else:
        from cryptography.fernet import Fernet

        kept = {
            "jwt_secret": secrets.token_urlsafe(32),
            "fernet_key": Fernet.generate_key().decode(),
        }
        secrets_file.write_text(json.dumps(kept))
        secrets_file.chmod(0o600)
    port = _port_of(home / "port", UI_PORTS, var / "run" / "api-server.pid")
    inlet_port = _port_of(
        home / "mllp-inlet-port", MLLP_INLET_PORTS, var / "run" / "mllp-inlet.pid"
    )

    passwords = home / "passwords.json"
    known = json.loads(passwords.read_text()) if passwords.exists() else {}
    if any(user not in known for user, _ in DEMO_USERS):
        passwords.write_text(json.dumps({user: user for user, _ in DEMO_USERS} | known))

    settings_file = var / "demo" / "pfi.toml"
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(
        demo_settings(var, mllp_inlet_port=inlet_port, console_url=f"http://127.0.0.1:{port}"),
        encoding="utf-8",
    )

    env = airflow_env(
        root=root,
        home=home,
        database_url=database_url,
        ledger_url=ledger_url,
        port=port,
        jwt_secret=kept["jwt_secret"],
        fernet_key=kept["fernet_key"],
        settings_file=settings_file,
        connections=connections,
        executor=executor,
        redis_db=claim_redis_db(root, home) if executor == "celery" else None,
    )
    (home / "executor").write_text(executor + "\n")
    env_file = home / "airflow.env"
    env_file.write_text(
        "# Written by `make run` (pfi_devkit.demo). Source it before any airflow command:\n"
        "#   set -a; . var/airflow/airflow.env; set +a\n"
        + "".join(f"{key}='{value}'\n" for key, value in env.items())
    )
    env_file.chmod(0o600)
    return env_file


def read_env_file(path: Path) -> dict[str, str]:
    """The ``KEY='value'`` lines of an env file — :func:`prepare`'s ``var/airflow/airflow.env``,
    read back by the tools that work on a running stack (bench, chaos, audit)."""
    env = {}
    for line in path.read_text().splitlines():
        if "=" not in line or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = [value]
        env[key.strip()] = parts[0] if parts else ""
    return env


def shared_dir(root: Path = ROOT) -> Path:
    """The folder holding the official ANS material (``fixtures/``, ``validation/``):
    ``$PFI_SHARED_DIR``, else ``../shared`` beside the clone. It may not exist."""
    return Path(os.environ.get("PFI_SHARED_DIR") or root.parent / "shared")


def official_sample_paths(root: Path = ROOT, shared: Path | None = None) -> dict[str, list[Path]]:
    """The official examples of :data:`OFFICIAL_SAMPLES` found on this machine, per source."""
    examples = (shared or shared_dir(root)) / "fixtures" / "ans-hl7v2-exemples"
    return {
        source: [examples / rel for rel in paths if (examples / rel).is_file()]
        for source, paths in OFFICIAL_SAMPLES.items()
    }


def sample_recipients(root: Path = ROOT, shared: Path | None = None) -> tuple[str, ...]:
    """The MSSanté addresses the demo samples mail to — the project's samples (every one, even
    those ``make run`` does not drop) and the official ones when present: their PRT recipients
    and the patient's ``<matricule>@patient.mssante.fr``. The demo mail server gives each a
    mailbox, so that the samples' mails are delivered (and can be read) rather than bounced."""
    messages = [s.data for s in samples.build_samples().values()]
    for paths in official_sample_paths(root, shared).values():
        messages += [path.read_bytes() for path in paths]
    return samples.recipients(messages)


def drop_samples(
    root: Path = ROOT,
    *,
    serial: int = 1,
    official: bool = False,
    shared: Path | None = None,
) -> list[Path]:
    """Write the project's demo samples (:data:`pfi_devkit.samples.DEMO`) into the demo's drop
    directories — the set ``serial`` (1: the canonical one) — and, with ``official``, copy the
    official ANS examples found (none on a clone without the shared folder)."""
    dropped = []

    def drop(source: str, name: str, data: bytes) -> None:
        target_dir = root / "var" / "demo" / "hl7" / source / "in"
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / name
        partial = target_dir / f".{name}.part"  # written whole, then renamed: never half-read
        partial.write_bytes(data)
        partial.replace(target)
        dropped.append(target)

    for source, names in samples.DEMO.items():
        for name in names:
            stem = name.removesuffix(".hl7")
            drop(
                source,
                f"{stem}.hl7" if serial == 1 else f"{stem}-{serial}.hl7",
                samples.sample_bytes(name, serial),
            )
    if official:
        for source, paths in official_sample_paths(root, shared).items():
            for path in paths:
                drop(source, path.name, path.read_bytes())
    return dropped


#: The mails ``make run`` sends to the application mailbox: (sample message, with an XDM).
#: ``document`` reaches the DPI; ``refused-by-dpi`` (a CR de biologie) is refused by the DPI
#: peer (:data:`DEMO_DPI_RULE`), ``text-only`` by the PFI (MSS_NO_XDM): both get an error mail.
DEMO_MAILS = {
    "document": (samples.MDM_INIT, True),
    "refused-by-dpi": (samples.ORU_INIT, True),
    "text-only": (samples.MDM_INIT, False),
}
#: The mails carry documents of their own (another sample set): a professional's documents, not
#: the ones the demo's DPI produces.
MAILED_SET = 500
#: How the demo's DPI peer answers a CR de biologie (``python -m pfi_devkit dpi-answers``).
DEMO_DPI_RULE = {
    "document_type": "11502-2",
    "code": "AE",
    "error": "906",
    "text": "Compte rendu de biologie non intégré par le DPI de démonstration",
}


def mail_samples(
    root: Path = ROOT, *, serial: int = 1, state: Path | None = None
) -> list[tuple[str, str]]:
    """Mail :data:`DEMO_MAILS` from :data:`PROFESSIONAL_MAILBOX` to :data:`DEMO_MAILBOX` over the
    running devkit's SMTPS (``state``: its folder, default ``var/devkit``), built from the sample
    messages of the set ``serial`` (:func:`pfi_devkit.samples.mail.document_mail`), after
    setting the DPI peer's :data:`DEMO_DPI_RULE`. Each mail goes once per set (its Message-ID is
    kept under ``var/demo/mssante-sent``); returns the ``(name, Message-ID)`` sent now. Raises
    RuntimeError when the devkit does not run."""
    from pfi_devkit.samples.mail import document_mail
    from pfi_devkit.stack import dpi_answers

    state = state or root / "var" / "devkit"
    stack_file = state / "stack.json"
    if not stack_file.exists():
        raise RuntimeError(f"the devkit's mail server does not run (no {stack_file})")
    info = json.loads(stack_file.read_text())
    sent_dir = root / "var" / "demo" / "mssante-sent"
    pending = {
        name: sample
        for name, sample in DEMO_MAILS.items()
        if not (sent_dir / f"{name}-{serial}").exists()
    }
    if not pending:
        return []
    dpi_answers(state, DEMO_DPI_RULE)
    sent_dir.mkdir(parents=True, exist_ok=True)
    mail = info["mail"]
    password = info["human_mailboxes"][PROFESSIONAL_MAILBOX]
    domain = PROFESSIONAL_MAILBOX.rsplit("@", 1)[-1]
    context = ssl.create_default_context(cafile=mail["ca_bundle"])
    sent = []
    with smtplib.SMTP_SSL(mail["host"], mail["smtps_port"], context=context, timeout=30) as smtp:
        smtp.login(PROFESSIONAL_MAILBOX, password)
        for name, (sample, with_xdm) in pending.items():
            message_id = f"<demo-{name}-{serial}@{domain}>"
            message = document_mail(
                samples.sample_bytes(sample, serial + MAILED_SET),
                PROFESSIONAL_MAILBOX,
                DEMO_MAILBOX,
                with_xdm=with_xdm,
                message_id=message_id,
            )
            smtp.sendmail(PROFESSIONAL_MAILBOX, [DEMO_MAILBOX], message.as_bytes(policy=SMTP))
            (sent_dir / f"{name}-{serial}").write_text(message_id + "\n")
            sent.append((name, message_id))
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pfi_devkit.demo")
    parser.add_argument("action", choices=("prepare", "samples"))
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument(
        "--connections", type=Path, help="JSON file {conn_id: uri} of the partner servers"
    )
    parser.add_argument(
        "--executor",
        choices=tuple(EXECUTORS),
        default="local",
        help="prepare: LocalExecutor, or CeleryExecutor with the machine's Redis as broker",
    )
    parser.add_argument(
        "--new", action="store_true", help="samples: another set (new ids), sent again in full"
    )
    parser.add_argument(
        "--official",
        action="store_true",
        help="samples: also the official ANS examples of $PFI_SHARED_DIR (default ../shared)",
    )
    parser.add_argument(
        "--no-mail",
        action="store_true",
        help="samples: the HL7 samples only, no mail to the demo's application mailbox",
    )
    args = parser.parse_args(argv)
    if args.action == "prepare":
        connections = json.loads(args.connections.read_text()) if args.connections else None
        print(prepare(args.root, connections, executor=args.executor))
        return 0
    serial = int(time.time()) if args.new else 1
    for path in drop_samples(args.root, serial=serial, official=args.official):
        print(path)
    if args.official and not any(official_sample_paths(args.root).values()):
        print(
            f"no official ANS examples at {shared_dir(args.root) / 'fixtures'} "
            "(set PFI_SHARED_DIR to the folder holding fixtures/)",
            file=sys.stderr,
        )
    if not args.no_mail:
        try:
            mailed = mail_samples(args.root, serial=serial)
        except (OSError, RuntimeError, smtplib.SMTPException) as exc:
            print(f"no sample mail sent to {DEMO_MAILBOX}: {exc}", file=sys.stderr)
            return 1
        for name, message_id in mailed:
            print(f"mail {message_id} ({name}) {PROFESSIONAL_MAILBOX} -> {DEMO_MAILBOX}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
