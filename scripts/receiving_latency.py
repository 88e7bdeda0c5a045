"""Seconds from a professional's mail to the DPI's MDM on ``make run``'s stack (MSSanté receiving).

Mails the demo's document (``pfi_devkit.samples``, a new Message-ID each time) from ``dr.test@…``
to the application mailbox ``pfi@…`` over the devkit's SMTPS, then waits until the DPI peer
stores a new message (``var/devkit/dpi-received/``): the IMAP IDLE trigger, the DAG run, the
MDM over MLLP. Run from the clone's root while ``make run``'s stack runs::

    .venv/bin/python scripts/receiving_latency.py [COUNT]
"""

from __future__ import annotations

import json
import smtplib
import ssl
import statistics
import sys
import time
import uuid
from email.policy import SMTP
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pfi_devkit import samples  # noqa: E402
from pfi_devkit.demo import DEMO_MAILBOX, PROFESSIONAL_MAILBOX  # noqa: E402
from pfi_devkit.samples.mail import document_mail  # noqa: E402

TIMEOUT = 180.0


def one(info: dict, received: Path) -> float:
    mail = info["mail"]
    before = set(received.iterdir())
    message = document_mail(
        samples.sample_bytes(samples.MDM_INIT, 1),
        PROFESSIONAL_MAILBOX,
        DEMO_MAILBOX,
        message_id=f"<latency-{uuid.uuid4().hex}@ch-demo.mssante.test>",
    )
    context = ssl.create_default_context(cafile=mail["ca_bundle"])
    started = time.monotonic()
    with smtplib.SMTP_SSL(mail["host"], mail["smtps_port"], context=context, timeout=30) as smtp:
        smtp.login(PROFESSIONAL_MAILBOX, info["human_mailboxes"][PROFESSIONAL_MAILBOX])
        smtp.sendmail(PROFESSIONAL_MAILBOX, [DEMO_MAILBOX], message.as_bytes(policy=SMTP))
    while set(received.iterdir()) == before:
        if time.monotonic() - started > TIMEOUT:
            raise SystemExit(f"no MDM at the DPI within {TIMEOUT:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 5
    info = json.loads(Path("var/devkit/stack.json").read_text())
    received = Path("var/devkit/dpi-received")
    received.mkdir(parents=True, exist_ok=True)
    seconds = []
    for _ in range(count):
        seconds.append(one(info, received))
        time.sleep(2)
    print(
        json.dumps(
            {
                "mails": count,
                "mail_to_dpi_s": [round(s, 1) for s in seconds],
                "median_s": round(statistics.median(seconds), 1),
                "max_s": round(max(seconds), 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
