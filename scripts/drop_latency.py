"""Seconds from a file dropped by the DPI to the DMP's acceptance and to the professional's
mailbox, on ``make run``'s stack (event-driven intake and delivery DAGs).

Writes the project's MDM sample (``pfi_devkit.samples``, a new document each time: another
sample set) into the DPI's drop directory, atomically (a hidden name, then renamed), and waits
until the local DMP endpoint stores its submission (``var/devkit/dmp-accepted/``) and the
professional's mailbox holds the mail (its Maildir). Run from the clone's root while
``make run``'s stack runs::

    .venv/bin/python scripts/drop_latency.py [COUNT]
"""

from __future__ import annotations

import email
import email.policy
import io
import json
import os
import statistics
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pfi_devkit import samples  # noqa: E402

TIMEOUT = 300.0
DROP = Path("var/demo/hl7/dpi/in")
DMP = Path("var/devkit/dmp-accepted")
PROFESSIONAL = "adam.hoda@test-ci-sis.mssante.fr"


def entries(folder: Path) -> set[Path]:
    """The entries of a folder (the DMP's submissions), or of a Maildir's ``new`` and ``cur``."""
    if (folder / "new").is_dir():
        return {p for sub in ("new", "cur") for p in (folder / sub).iterdir()}
    return set(folder.iterdir()) if folder.is_dir() else set()


def at_dmp(new: set[Path], unique_id: str) -> bool:
    """The DMP endpoint stored a submission holding the document (``<id>.document``)."""
    return any((p / f"{unique_id}.document").exists() for p in new)


def in_mailbox(new: set[Path], unique_id: str) -> bool:
    """A new mail of the Maildir carries the document (its XDM's METADATA.XML names it)."""
    for path in new:
        if not path.is_file():
            continue
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for part in message.iter_attachments():
            if part.get_filename() == "IHE_XDM.ZIP":
                with zipfile.ZipFile(io.BytesIO(part.get_content())) as archive:
                    names = [n for n in archive.namelist() if n.upper().endswith("METADATA.XML")]
                    if any(unique_id.encode() in archive.read(n) for n in names):
                        return True
    return False


def one(serial: int, maildir: Path) -> tuple[float, float]:
    dmp_before, mail_before = entries(DMP), entries(maildir)
    unique_id = samples.document_ids(serial)[0]
    data = samples.sample_bytes(samples.MDM_INIT, serial)
    hidden = DROP / f".latency-{serial}.hl7"
    hidden.write_bytes(data)
    started = time.monotonic()
    os.rename(hidden, DROP / f"latency-{serial}.hl7")
    to_dmp = to_mail = None
    while to_dmp is None or to_mail is None:
        elapsed = time.monotonic() - started
        if elapsed > TIMEOUT:
            raise SystemExit(f"serial {serial}: not delivered within {TIMEOUT:.0f} s")
        if to_dmp is None and at_dmp(entries(DMP) - dmp_before, unique_id):
            to_dmp = elapsed
        if to_mail is None and in_mailbox(entries(maildir) - mail_before, unique_id):
            to_mail = elapsed
        time.sleep(0.1)
    return to_dmp, to_mail


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 5
    info = json.loads(Path("var/devkit/stack.json").read_text())
    maildir = Path(info["maildirs"][PROFESSIONAL])
    first = int(time.time()) % 1_000_000 + 10_000
    dmp, mail = [], []
    for n in range(count):
        to_dmp, to_mail = one(first + n, maildir)
        dmp.append(to_dmp)
        mail.append(to_mail)
        time.sleep(2)
    print(
        json.dumps(
            {
                "documents": count,
                "drop_to_dmp_s": [round(s, 1) for s in dmp],
                "drop_to_mail_s": [round(s, 1) for s in mail],
                "dmp_p50_s": round(statistics.median(dmp), 1),
                "dmp_p95_s": round(p95(dmp), 1),
                "mail_p50_s": round(statistics.median(mail), 1),
                "mail_p95_s": round(p95(mail), 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
