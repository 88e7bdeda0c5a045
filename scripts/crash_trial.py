"""One crash trial on ``make run``'s stack: every Airflow component killed (``kill -9``) in the
middle of a batch, ``make run`` again, and what the partners' own records say.

``COUNT`` MDM samples (each a new document: one DMP submission and one professional's mail) are
dropped at once into the DPI's drop directory. Once the first deliveries are sent, the
api-server, scheduler, dag-processor and triggerer — with their task processes — are killed with
SIGKILL; ``make run`` starts them again. The trial then waits until the ledger has every delivery
sent and prints, from the partners' records (the DMP endpoint's stored submissions, the
professional's Maildir): documents lost, documents delivered twice, and the recovery time — from
the restart to the last delivery sent. Run from the clone's root while ``make run``'s stack
runs::

    .venv/bin/python scripts/crash_trial.py [COUNT]
"""

from __future__ import annotations

import email
import email.policy
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pfi_devkit import samples  # noqa: E402

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
PROFESSIONAL = "adam.hoda@test-ci-sis.mssante.fr"
TIMEOUT = 1200.0


def env() -> dict[str, str]:
    values = {}
    for line in Path("var/airflow/airflow.env").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value.strip("'")
    return values


def sent_count(ledger, wanted: set[str]) -> int:
    from sqlalchemy import func, select

    from pfi.ledger.schema import delivery, document

    query = (
        select(func.count())
        .select_from(delivery.join(document, delivery.c.document_id == document.c.id))
        .where(
            document.c.unique_id.in_(wanted),
            delivery.c.channel.in_(("dmp", "mss_professional")),
            delivery.c.status == "sent",
        )
    )
    with ledger.engine.connect() as conn:
        return conn.execute(query).scalar_one()


def airflow_processes() -> list[int]:
    """Every Airflow process of this machine: the components (``.venv/bin/airflow …``) and what
    they start (``airflow worker -- …``, ``airflow serve-logs``, the api-server), each task in
    a process group of its own — never a PostgreSQL backend serving a database named so."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        command = b" ".join(args)
        if command.startswith(b"airflow ") or (len(args) > 1 and args[1].endswith(b"/bin/airflow")):
            found.append(int(entry.name))
    return found


def kill_airflow() -> None:
    for pid in airflow_processes():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def at_dmp(wanted: set[str]) -> Counter:
    found: Counter = Counter()
    for folder in Path("var/devkit/dmp-accepted").iterdir():
        for uid in wanted:
            if (folder / f"{uid}.document").exists():
                found[uid] += 1
    return found


def in_mailbox(maildir: Path, wanted: set[str]) -> Counter:
    found: Counter = Counter()
    for sub in ("new", "cur"):
        for path in (maildir / sub).iterdir():
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for part in message.iter_attachments():
                if part.get_filename() != "IHE_XDM.ZIP":
                    continue
                with zipfile.ZipFile(io.BytesIO(part.get_content())) as archive:
                    text = b"".join(
                        archive.read(n) for n in archive.namelist() if n.endswith("METADATA.XML")
                    )
                for uid in wanted:
                    if uid.encode() in text:
                        found[uid] += 1
    return found


def main(argv: list[str]) -> int:
    from pfi.ledger import Ledger

    count = int(argv[0]) if argv else 30
    values = env()
    ledger = Ledger.from_url(values["AIRFLOW_CONN_PFI_LEDGER"])
    maildir = Path(json.loads(Path("var/devkit/stack.json").read_text())["maildirs"][PROFESSIONAL])
    first = int(time.time()) % 1_000_000 + 40_000
    serials = range(first, first + count)
    wanted = {samples.document_ids(serial)[0] for serial in serials}
    drop = Path("var/demo/hl7/dpi/in")
    for serial in serials:
        hidden = drop / f".crash-{serial}.hl7"
        hidden.write_bytes(samples.sample_bytes(samples.MDM_INIT, serial))
        os.rename(hidden, drop / f"crash-{serial}.hl7")
    started = time.monotonic()
    while sent_count(ledger, wanted) == 0:
        if time.monotonic() - started > TIMEOUT:
            raise SystemExit("nothing sent: is make run's stack up?")
        time.sleep(0.2)
    before_kill = sent_count(ledger, wanted)
    kill_airflow()
    killed_at = time.monotonic()
    subprocess.run(["make", "run"], check=True, stdout=subprocess.DEVNULL)
    restarted_at = time.monotonic()
    while (done := sent_count(ledger, wanted)) < 2 * count:
        if time.monotonic() - restarted_at > TIMEOUT:
            break
        time.sleep(1)
    finished_at = time.monotonic()
    ledger.dispose()
    dmp, mail = at_dmp(wanted), in_mailbox(maildir, wanted)
    print(
        json.dumps(
            {
                "documents": count,
                "sent_before_kill": before_kill,
                "sent_after": done,
                "restart_s": round(restarted_at - killed_at, 1),
                "recovery_s": round(finished_at - restarted_at, 1),
                "dmp_lost": sum(1 for uid in wanted if dmp[uid] == 0),
                "dmp_twice": sum(1 for uid in wanted if dmp[uid] > 1),
                "mail_lost": sum(1 for uid in wanted if mail[uid] == 0),
                "mail_twice": sum(1 for uid in wanted if mail[uid] > 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
