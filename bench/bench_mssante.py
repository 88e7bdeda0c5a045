"""MSSanté mails composed per second (the project's MDM and ORU samples, N1, at the sizes of the
official v2.1 examples: :mod:`bench.inputs`), and sent per second to the local relay over
STARTTLS with the mailbox's client certificate (one session reused, and one session per mail),
delivered into Dovecot.

``n1`` is the MDM radiology report (the same workload as with the official MDM example); ``oru``
the laboratory report, an N1 where the official example was an N3 (hence its new name)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench.inputs import mdm_initial, oru_initial
from pfi.protocols.hl7v2 import decide_request, parse_message
from pfi.protocols.ins import InsPolicy
from pfi.protocols.mssante import Mailbox, MssConfig, SiteInfo, compose, mail_orders

SAMPLES = {"n1": mdm_initial, "oru": oru_initial}
COMPOSE = 200
SEND = 60
SENDER = "pfi@ch-demo.mssante.test"
RECIPIENT = "adam.hoda@test-ci-sis.mssante.fr"
CONFIG = MssConfig(software_reference="PFI-BENCH", sender_name="CH Bench")
SITE = SiteInfo("CH Bench", "1.2.250.1.71.4.2.2")
POLICY = InsPolicy.for_environment("test")


def _orders(kind: str):
    request = parse_message(SAMPLES[kind]())
    return request, mail_orders(request, decide_request(request, POLICY), POLICY)[0]


def _compose_rate(kind: str) -> tuple[float, int]:
    request, order = _orders(kind)
    mailbox = Mailbox(SENDER)
    started = time.perf_counter()
    size = 0
    for _ in range(COMPOSE):
        size = len(compose(request, order, mailbox, CONFIG, site=SITE).as_bytes())
    return COMPOSE / (time.perf_counter() - started), size


def _send_rates() -> dict:
    from pfi.protocols.mssante.smtp import SmtpClient, SmtpEndpoint
    from pfi.protocols.mssante.tls import TlsFiles
    from pfi_devkit.mail import MailServers
    from pfi_devkit.pki import build_test_pki

    results = {}
    state = Path(tempfile.mkdtemp(prefix="pfi-bench-mail-", dir="/tmp"))
    state.chmod(0o755)
    try:
        pki = build_test_pki(state / "pki", [SENDER])
        with MailServers(state / "mail", pki, [SENDER], {RECIPIENT: "bench-password"}) as mail:
            cred = pki.clients[SENDER]
            endpoint = SmtpEndpoint(
                mail.host,
                mail.smtp_port,
                SENDER,
                TlsFiles(pki.ca_bundle, cred.cert_path, cred.key_path, pki.crl_bundle),
                password=mail.password_for(SENDER),
                timeout=30,
            )
            request, order = _orders("n1")
            mails = [
                compose(request, order, Mailbox(SENDER), CONFIG, site=SITE) for _ in range(SEND)
            ]
            started = time.perf_counter()
            with SmtpClient(endpoint) as smtp:
                for m in mails:
                    smtp.send(m)
            results["sent_n1_one_session_per_s"] = round(SEND / (time.perf_counter() - started), 1)
            started = time.perf_counter()
            for m in mails[: SEND // 3]:
                with SmtpClient(endpoint) as smtp:
                    smtp.send(m)
            elapsed = time.perf_counter() - started
            results["sent_n1_session_per_mail_per_s"] = round((SEND // 3) / elapsed, 1)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return results


def run() -> dict:
    result: dict = {"composed": COMPOSE, "sent": SEND}
    for kind in SAMPLES:
        rate, size = _compose_rate(kind)
        result[f"composed_{kind}_per_s"] = round(rate, 1)
        result[f"mail_{kind}_kib"] = round(size / 1024)
    result.update(_send_rates())
    return result
