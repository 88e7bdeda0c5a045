"""Watch the PFI for what needs a human, and mail the operations mailbox (French alerts).

Every 5 minutes, **check_and_notify** reads the ledger (``pfi.flows.alerts``): deliveries given
up since the previous alert, a partner (DMP, MSSanté operator, DPI) answering nothing for more
than ``[alerts] partner_failing_minutes``, received items refused (quarantine) past
``quarantine_threshold`` over ``quarantine_window_hours``, a channel's pending queue past its
``pending_threshold``. Each condition true now is mailed to ``[alerts] recipients`` — once per
``repeat_minutes`` while it lasts — from the site's sending application mailbox (or the
Connection ``[alerts] connection_id``), and remembered in the ledger's trail (``alert.sent``).

An alert holds counts, channels, codes, ledger ids and a link to the operator console
(``/pfi/``): never an INS, a name or a document. A PFI task failing after its retries is alerted
by the notifier every PFI task carries (``pfi_airflow.alerts.PfiAlertNotifier``). XCom carries
the conditions' keys and counts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from pfi_airflow.runtime import failure_alerts

SCHEDULE = timedelta(minutes=5)


@dag(
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["pfi", "alerts"],
    default_args={
        "owner": "pfi",
        "retries": 1,
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": failure_alerts(),
    },
    doc_md=__doc__,
)
def watch_operations():
    @task
    def check_and_notify() -> dict:
        from pfi.flows.alerts import run_checks
        from pfi_airflow.mssante import smtp_for
        from pfi_airflow.runtime import actor, site_and_ledger

        settings, ledger = site_and_ledger()
        return run_checks(ledger, settings, smtp_for, actor=actor())

    check_and_notify()


watch_operations()
