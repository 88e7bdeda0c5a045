"""Feed the DMP: send the due ``dmp`` deliveries (first attempts and deferred retries).

As soon as intake recorded DMP deliveries (the asset ``pfi-dmp-queue``), every minute as the
safety net for retries, or by hand, each of ``WORKERS`` mapped tasks claims up to ``[dmp] batch_size``
due deliveries from the ledger (oldest due first, rows locked by another worker skipped) and,
for each one, submits it to the DMP — ITI-41 with a signed VIHF and the XAdES signature document
for a new document or a replacement (RPLC), ITI-57 for a deletion — then records the outcome:
**sent**, **refused** (coded reason: DMP error code, unqualified INS…) or **pending** again with
a later attempt (DMP unreachable, 5xx, transient registry error: exponential backoff with a cap,
given up after ``[dmp.retry] give_up_after_hours``). A replacement or a deletion waits until the
version it depends on has reached the DMP. The producer gets a ZAM^Z01 when it asked for it.

Calls are throttled by the Airflow pool **``dmp``** (``airflow pools set dmp 2 "DMP web
services"``). Replaying or clearing a task is safe: the ledger says what was already accepted,
and the submission set uniqueId derives from the delivery's request id, so the DMP recognises a
resent lot ("already registered" counts as accepted). XCom carries counts only.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from pfi_airflow.runtime import every_minute
from pfi_airflow.triggers import DMP_QUEUE_ASSET

POOL = "dmp"
#: A wave of documents goes in one run: claims follow each other while they come full.
DRAIN_SECONDS = 240
WORKERS = 2


@dag(**every_minute("dmp", "delivery", retries=2, on=DMP_QUEUE_ASSET), doc_md=__doc__)
def deliver_dmp():
    @task(pool=POOL)
    def submit_due(worker: int) -> dict:
        from pfi.flows.dmp import submit_due_deliveries
        from pfi.protocols.dmp.config import DmpConfig
        from pfi_airflow.dmp import DmpHook
        from pfi_airflow.hooks import airflow_connection
        from pfi_airflow.runtime import actor, site_and_ledger

        settings, ledger = site_and_ledger()
        config = DmpConfig.from_settings(settings)
        hook = DmpHook.of_site(settings, config)
        with hook.get_conn() as client:
            return submit_due_deliveries(
                ledger,
                client,
                hook.signer(),
                config,
                settings=settings,
                actor=actor(),
                connections=airflow_connection,  # the producers' zam_mllp Connections
                drain_seconds=DRAIN_SECONDS,
            )

    submit_due.expand(worker=list(range(WORKERS)))


deliver_dmp()
