"""Ingest HL7 v2 files dropped by the DPI, the SGL and the RIS (or received by the MLLP inlet).

As soon as a file is settled in a drop directory (the triggerer watches them:
``DropFolderTrigger``, an ``AssetWatcher`` of the asset ``pfi-hl7-drop``; the MLLP inlet writes
there too), every minute as the safety net, for each configured HL7 source:

1. **claim_files** — claims the settled files of the source's drop directory (atomic rename into
   its work directory), records each one in the ledger with its SHA-256 **before** anything else,
   adds the files a crashed run left unfinished, and splits the ledger ids into bounded batches;
2. **acknowledge_batch** — one mapped task per batch (never one per message): every message of
   each file (single message or FHS/BHS batch) is parsed, its INS checked (and PID against the
   CDA header of each document), routed by the volet's rule table, and answered with one HL7
   technical ACK (AA, or AE/AR with ERR carrying the volet's error codes) in the source's outbound
   folder. Accepted requests become ledger documents and deliveries (``dmp``,
   ``mss_professional``, ``mss_patient``) that the delivery DAGs send. Originals are archived by
   date, or quarantined with the reason beside them;
3. **announce_deliveries** — when the batches recorded deliveries, updates the assets
   ``pfi-dmp-queue`` and ``pfi-mssante-queue``: ``deliver_dmp`` and ``deliver_mssante`` start at
   once instead of at their next minute (skipped when nothing was recorded);
4. **resend_queued_zams** — business acknowledgements (ZAM) that could not reach their producer
   over MLLP (``[[hl7_source]] zam_mllp``) are queued by the delivery DAGs: sent again here, each
   once, oldest first, and given up with a ``zam.failed`` event after two days.

XCom carries ledger ids and counts only (refusal codes per batch, never patient data); each
refusal is also a warning line of the task log with its code. Replaying a batch is safe: items
already finished are skipped, and every ledger write is an insert-or-get. ``pfi intake run
SOURCE`` does the same without Airflow; ``pfi hl7 inspect FILE`` shows what would be decided.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from pfi_airflow.runtime import every_minute
from pfi_airflow.triggers import DMP_QUEUE_ASSET, HL7_DROP_ASSET, MSSANTE_QUEUE_ASSET

BATCH_SIZE = 50
MAX_FILES_PER_RUN = 5000


@dag(**every_minute("intake", "hl7", retries=3, on=HL7_DROP_ASSET), doc_md=__doc__)
def ingest_hl7_drop():
    @task
    def claim_files() -> list[dict]:
        from pfi.flows.intake import claim_and_record
        from pfi_airflow.runtime import actor, site_and_ledger

        settings, ledger = site_and_ledger()
        return claim_and_record(
            ledger, settings, batch_size=BATCH_SIZE, limit=MAX_FILES_PER_RUN, actor=actor()
        )

    @task(max_active_tis_per_dagrun=4)
    def acknowledge_batch(batch: dict) -> dict:
        from pfi.flows.intake import acknowledge_items
        from pfi_airflow.runtime import actor, site_and_ledger

        settings, ledger = site_and_ledger()
        return acknowledge_items(ledger, settings, batch, actor=actor())

    @task
    def resend_queued_zams() -> dict:
        """ZAMs whose MLLP send to their producer failed are queued: send them again (the
        sources that name a ``zam_mllp`` Connection; counts only)."""
        from pfi.flows.producer_acks import resend_pending
        from pfi_airflow.hooks import airflow_connection
        from pfi_airflow.runtime import actor, site_and_ledger

        settings, ledger = site_and_ledger()
        return resend_pending(
            ledger, settings.sources, actor=actor(), connections=airflow_connection
        )

    # One batch failing must not hold back the deliveries the others recorded.
    @task(outlets=[DMP_QUEUE_ASSET, MSSANTE_QUEUE_ASSET], trigger_rule="all_done")
    def announce_deliveries(counts: list) -> int:
        """Start the delivery DAGs now when deliveries were recorded (skipped otherwise)."""
        from airflow.sdk.exceptions import AirflowSkipException

        recorded = sum(c.get("deliveries", 0) for c in counts if c)
        if not recorded:
            raise AirflowSkipException("no delivery recorded")
        return recorded

    announce_deliveries(acknowledge_batch.expand(batch=claim_files()))
    resend_queued_zams()


ingest_hl7_drop()
