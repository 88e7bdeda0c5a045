"""MSSanté receiving: mails per second from an application mailbox to the DPI, beside its bounds.

``MAILS`` professionals' mails (the project's MDM sample, N1 at the official example's size:
:mod:`bench.inputs`) are delivered into an application mailbox of the local Dovecot (client
certificate), then, measured in the same run:

1. **IMAP alone**: the INBOX listed and every mail fetched (``BODY.PEEK[]``) — what the mailbox
   gives at most;
2. **MLLP alone**: the same number of the volet's MDM sent to the local DPI peer, its ACK read —
   what the DPI takes at most;
3. **through the flow**: :func:`~pfi.flows.mssante_inbox.poll_mailbox` (fetch, keep, record,
   read the XDM, check the CDA) then :func:`~pfi.flows.mssante_inbox.deliver_to_dpi` (MDM, MLLP,
   ACK, ledger, move to the processed folder), as the ``poll_mssante_inbox`` DAG does without
   Airflow's task overhead — and its ratio to the slower of the two bounds.

PostgreSQL: the server on 127.0.0.1:5432 when it answers, else a private one (``pfi_devkit``).
"""

from __future__ import annotations

import email.policy
import shutil
import smtplib
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.pfi_fixtures.site import mailbox, write_settings

from bench.inputs import mdm_initial

MAILS = 40
APPLICATION = "reception@ch-demo.mssante.test"
HUMAN = "dr.test@ch-demo.mssante.test"
HUMAN_PASSWORD = "bench-password"


def _deliver(mail, pki, count: int) -> None:
    from pfi_devkit.mail import client_ssl_context
    from pfi_devkit.samples.mail import document_mail

    ctx = client_ssl_context(pki)
    with smtplib.SMTP_SSL(mail.host, mail.smtps_port, context=ctx) as smtp:
        smtp.login(HUMAN, HUMAN_PASSWORD)
        for n in range(count):
            message = document_mail(
                mdm_initial(), HUMAN, APPLICATION, message_id=f"<bench-{n}@cabinet.test>"
            )
            smtp.sendmail(HUMAN, [APPLICATION], message.as_bytes(policy=email.policy.SMTP))


def _imap_alone(imap_endpoint) -> float:
    from pfi.protocols.mssante.imap import ImapClient

    started = time.perf_counter()
    with ImapClient(imap_endpoint) as imap:
        imap.select_folder("INBOX")
        uids = imap.list_uids(limit=MAILS * 2)
        for uid in uids:
            imap.fetch(uid)
    assert len(uids) == MAILS, len(uids)
    return MAILS / (time.perf_counter() - started)


def _mllp_alone(peer, settings, imap_endpoint) -> float:
    from pfi.flows.mssante_inbox import ReceivingConfig, mdm_for
    from pfi.protocols.hl7v2.lps import Action
    from pfi.protocols.hl7v2.lps_ack import read_ack
    from pfi.protocols.mllp import MllpClient, MllpEndpoint
    from pfi.protocols.mssante.imap import ImapClient
    from pfi.protocols.mssante.inbound import read_mail
    from pfi.protocols.xdm import read_xdm

    with ImapClient(imap_endpoint) as imap:
        imap.select_folder("INBOX")
        mail = read_mail(imap.fetch(imap.list_uids(limit=1)[0]))
    unique_id = read_xdm(mail.xdm_archives[0].data).documents[0].entry.unique_id
    now = datetime.now(UTC)
    config = ReceivingConfig()
    messages = [
        mdm_for(
            mail,
            settings,
            config,
            settings.mailboxes[0],
            unique_id=unique_id,
            action=Action.NEW,
            control_id=f"BENCH{n}",
            received_at=now,
            now=now,
        )
        for n in range(MAILS)
    ]
    client = MllpClient(MllpEndpoint(peer.host, peer.port, read_timeout=30))
    started = time.perf_counter()
    for n, message in enumerate(messages):
        assert read_ack(client.exchange(message), control_id=f"BENCH{n}").accepted
    return MAILS / (time.perf_counter() - started)


def _through_flow(server, peer, settings, smtp_endpoint, imap_endpoint) -> float:
    from pfi.flows.mssante_inbox import ReceivingConfig, deliver_to_dpi, poll_mailbox
    from pfi.ledger import Ledger, upgrade
    from pfi.protocols.mllp import MllpClient, MllpEndpoint
    from pfi.protocols.mssante.imap import ImapClient
    from pfi.protocols.mssante.smtp import SmtpClient

    url = server.create_database()
    try:
        upgrade(url)
        ledger = Ledger.from_url(url)
        config = ReceivingConfig(batch_size=MAILS)
        dpi = MllpClient(MllpEndpoint(peer.host, peer.port, read_timeout=30))
        started = time.perf_counter()
        with ImapClient(imap_endpoint) as imap, SmtpClient(smtp_endpoint) as smtp:
            polled = poll_mailbox(
                ledger,
                settings,
                settings.mailboxes[0],
                imap,
                smtp=smtp,
                actor="bench",
                config=config,
            )
        sent = deliver_to_dpi(
            ledger,
            settings,
            dpi=dpi,
            smtp_for=lambda _: SmtpClient(smtp_endpoint),
            imap_for=lambda _: ImapClient(imap_endpoint),
            actor="bench",
            config=config,
            limit=MAILS,
        )
        elapsed = time.perf_counter() - started
        ledger.dispose()
    finally:
        server.drop_database(url.rsplit("/", 1)[1])
    assert polled["accepted"] == MAILS and sent["sent"] == MAILS, (polled, sent)
    return MAILS / elapsed


def run() -> dict:
    from pfi.base.settings import load_settings
    from pfi.protocols.mssante.connection import endpoints_of
    from pfi_devkit.mail import MailServers
    from pfi_devkit.mllp_peer import MllpPeer
    from pfi_devkit.pki import build_test_pki
    from pfi_devkit.postgres import find_or_start

    state = Path(tempfile.mkdtemp(prefix="pfi-bench-inbox-", dir="/tmp"))
    state.chmod(0o755)
    try:
        pki = build_test_pki(state / "pki", [APPLICATION])
        with (
            MailServers(state / "mail", pki, [APPLICATION], {HUMAN: HUMAN_PASSWORD}) as mail,
            MllpPeer(store_dir=state / "peer") as peer,
        ):
            (state / "site" / "in").mkdir(parents=True)
            settings = load_settings(
                write_settings(state / "site", mailboxes=[mailbox(APPLICATION, name="inbox")])
            )
            cred = pki.clients[APPLICATION]
            connection = {
                "host": mail.host,
                "port": mail.imap_port,
                "login": APPLICATION,
                "password": mail.password_for(APPLICATION),
                "extra": {
                    "smtp_port": mail.smtp_port,
                    "client_cert": str(cred.cert_path),
                    "client_key": str(cred.key_path),
                    "ca_bundle": str(pki.ca_bundle),
                    "crl_file": str(pki.crl_bundle),
                    "timeout": 30,
                },
            }
            smtp_endpoint, imap_endpoint = endpoints_of(connection, APPLICATION)
            _deliver(mail, pki, MAILS)
            imap_rate = _imap_alone(imap_endpoint)
            mllp_rate = _mllp_alone(peer, settings, imap_endpoint)
            server = find_or_start(state / "pg")
            flow_rate = _through_flow(server, peer, settings, smtp_endpoint, imap_endpoint)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    bound = min(imap_rate, mllp_rate)
    return {
        "mails": MAILS,
        "imap_fetch_alone_per_s": round(imap_rate, 1),
        "mllp_dpi_alone_per_s": round(mllp_rate, 1),
        "received_to_dpi_per_s": round(flow_rate, 1),
        "ratio_to_slower_bound": round(flow_rate / bound, 2),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
