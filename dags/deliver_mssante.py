"""Send the documents due by MSSanté, and read back what the mailboxes say about them.

As soon as intake recorded MSSanté deliveries (the asset ``pfi-mssante-queue``), every minute
as the safety net for retries and notifications, and on demand:

1. **send_to_professionals** / **send_to_patients** — claim the due ``mss_professional`` /
   ``mss_patient`` deliveries of the ledger (first attempts and deferred retries alike), compose
   each mail (one recipient, one patient, ``IHE_XDM.ZIP`` + the N1 PDF, ``X-MSS-*`` headers,
   Message-ID fixed by the delivery), send it from the site's application mailbox with its
   certificate (Connection ``pfi_mss_<mailbox>``), record the outcome, and answer the producer
   with ``ZAM^Z02`` when it asked (``ACK_RECEPTION``). 4xx and network errors are retried with
   backoff (``[mssante.retry]``), 5xx refusals keep the SMTP code.
2. **read_notifications** — poll each application mailbox over IMAP for delivery (DSN) and read
   (MDN) notifications, match them to deliveries by Message-ID, record them, and write
   ``ZAM^Z02`` / ``ZAM^Z03`` when asked — 200 at a time, again while a batch comes back full
   for up to ``NOTIFICATIONS_DRAIN_SECONDS``: a wave of mails brings a wave of DSNs.

XCom carries counts only. ``pfi mss traces`` lists what was sent to whom, when, and how it went.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from pfi_airflow.runtime import every_minute
from pfi_airflow.triggers import MSSANTE_QUEUE_ASSET

#: A wave of documents goes in one run: claims follow each other while they come full.
DRAIN_SECONDS = 240
BATCH_LIMIT = 200
#: The reports of a wave are read in the same run, but for 30 s at most: the next run's sends
#: wait for this one to end (240 s held the sends of a campaign trial behind 2,276 DSNs).
NOTIFICATIONS_DRAIN_SECONDS = 30


def _send(channel: str) -> dict:
    from pfi.flows.mssante import deliver_due
    from pfi_airflow.hooks import airflow_connection
    from pfi_airflow.mssante import smtp_for
    from pfi_airflow.runtime import actor, site_and_ledger

    settings, ledger = site_and_ledger()
    return deliver_due(
        ledger,
        settings,
        smtp_for,
        channel=channel,
        actor=actor(),
        limit=BATCH_LIMIT,
        drain_seconds=DRAIN_SECONDS,
        connections=airflow_connection,  # the producers' zam_mllp Connections
    )


@dag(
    **every_minute(
        "mssante", "delivery", retries=2, exponential_backoff=False, on=MSSANTE_QUEUE_ASSET
    ),
    doc_md=__doc__,
)
def deliver_mssante():
    @task
    def send_to_professionals() -> dict:
        return _send("mss_professional")

    @task
    def send_to_patients() -> dict:
        return _send("mss_patient")

    @task
    def read_notifications() -> dict:
        from pfi.flows.mssante import poll_notifications
        from pfi_airflow.hooks import airflow_connection
        from pfi_airflow.mssante import imap_for
        from pfi_airflow.runtime import actor, site_and_ledger

        settings, ledger = site_and_ledger()
        counts = poll_notifications(
            ledger,
            settings,
            imap_for,
            actor=actor(),
            connections=airflow_connection,
            drain_seconds=NOTIFICATIONS_DRAIN_SECONDS,  # a wave of mails, a wave of DSNs
        )
        if counts["errors"]:  # every reachable mailbox was polled; show the others in red
            raise RuntimeError(f"{counts['errors']} mailbox(es) could not be polled: {counts}")
        return counts

    [send_to_professionals(), send_to_patients()] >> read_notifications()


deliver_mssante()
