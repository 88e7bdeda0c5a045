"""Receive the documents professionals mail to the hospital's application mailboxes, for the DPI.

Within seconds of a mail: the triggerer waits in IMAP IDLE on each mailbox's INBOX
(:class:`pfi_airflow.triggers.MailboxIdleTrigger`, an ``AssetWatcher`` of the asset
``pfi-mssante-inbox``) and every mail it announces starts a run; every minute too, the safety net
for a server without IDLE, a missed event and the DPI retries (and on demand):

1. **mailboxes** — the names of the configured ``[[mailbox]]`` (XCom: names only).
2. **take_mails** — one mapped task per mailbox: the INBOX's mails, oldest first, bounded
   (``[receiving] batch_size``); each kept and recorded in the ledger before it is read; each
   ``IHE_XDM.ZIP`` read with the hostile-archive reader, each CDA checked against its metadata;
   a mail the PFI cannot take gets the volet's error mail (MDN when asked) and goes to the
   errors folder.
3. **send_to_dpi** — the due ``dpi`` deliveries: the volet's MDM (T02/T10/T04) over MLLP to the
   DPI (Connection ``pfi_dpi_mllp``), its ACK read; AA → the mail goes to the processed folder;
   AE/AR → the error mail with the DPI's code, the mail to the errors folder; DPI down or silent →
   retried with backoff (``[receiving.retry]``), never an error mail.

XCom carries counts and mailbox names only (``pfi.flows.mssante_inbox`` says why nothing is
lost or sent twice).
"""

from __future__ import annotations

from airflow.sdk import dag, task

from pfi_airflow.runtime import every_minute
from pfi_airflow.triggers import MAILBOX_ASSET

#: A wave of documents goes in one run: claims follow each other while they come full.
DRAIN_SECONDS = 240
BATCH_LIMIT = 100


@dag(**every_minute("mssante", "reception", retries=2, on=MAILBOX_ASSET), doc_md=__doc__)
def poll_mssante_inbox():
    @task
    def mailboxes() -> list[str]:
        from pfi_airflow.runtime import site_settings

        return [mailbox.name for mailbox in site_settings().mailboxes]

    @task(map_index_template="{{ mailbox }}")
    def take_mails(mailbox: str) -> dict:
        from pfi.flows.mssante_inbox import poll_mailbox
        from pfi_airflow.mssante import imap_for, smtp_for
        from pfi_airflow.runtime import actor, site_and_ledger

        settings, ledger = site_and_ledger()
        (setting,) = [m for m in settings.mailboxes if m.name == mailbox]
        with imap_for(setting) as imap, smtp_for(setting) as smtp:
            return poll_mailbox(ledger, settings, setting, imap, smtp=smtp, actor=actor())

    @task(trigger_rule="all_done")  # one mailbox down must not hold the others' documents
    def send_to_dpi() -> dict:
        from pfi.flows.mssante_inbox import deliver_to_dpi
        from pfi.protocols.mllp import MllpClient, MllpEndpoint
        from pfi_airflow.hooks import airflow_connection
        from pfi_airflow.mssante import imap_for, smtp_for
        from pfi_airflow.runtime import actor, site_and_ledger

        settings, ledger = site_and_ledger()
        endpoint = MllpEndpoint.from_connection(airflow_connection(settings.dpi_connection_id))
        return deliver_to_dpi(
            ledger,
            settings,
            dpi=MllpClient(endpoint),
            smtp_for=smtp_for,
            imap_for=imap_for,
            actor=actor(),
            limit=BATCH_LIMIT,
            drain_seconds=DRAIN_SECONDS,
        )

    take_mails.expand(mailbox=mailboxes()) >> send_to_dpi()


poll_mssante_inbox()
