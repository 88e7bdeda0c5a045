"""Write the monthly indicators (DSR SC.STAT/ES.02): one CSV per FINESS géographique.

One run per calendar month, at 03:00 (Paris) on the 1st of the next one: its data interval is
the month (``CronDataIntervalTimetable``, 03:00 on the 1st to 03:00 on the 1st, Europe/Paris), and
the report is the calendar month of the interval's start, cut at Paris midnight — never "now".

**write_reports** — one query over the ledger, tables built with pandas, then for each FINESS
géographique of ``[site]`` (and any other one the ledger names) ``indicateurs_<FINESS>_<AAAA-MM>.csv``
written atomically into ``[stats] output_dir`` (default ``<data_dir>/stats``): every month from
January of the previous year up to the run's month, by Ségur document type, every indicator
(format: README, "Monthly indicators"). A month without anything gives zeros; a re-run, a cleared
task or ``airflow backfill create`` of a past month rewrites the same bytes from the same ledger.

No catch-up: each file already covers every month since January of the previous year, so a
missed month's numbers are in the next run's file; a past month's own file is rewritten with
``airflow backfill create --dag-id report_monthly_stats --from-date … --to-date …`` or with
``pfi stats month AAAA-MM``. XCom carries the paths written.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, task

from pfi_airflow.runtime import failure_alerts

SCHEDULE = CronDataIntervalTimetable("0 3 1 * *", timezone="Europe/Paris")


@dag(
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, 3, tz="Europe/Paris"),
    catchup=False,
    max_active_runs=1,
    tags=["pfi", "stats"],
    default_args={
        "owner": "pfi",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "on_failure_callback": failure_alerts(),
    },
    doc_md=__doc__,
)
def report_monthly_stats():
    @task
    def write_reports(data_interval_start=None, data_interval_end=None) -> list[str]:
        from pfi.flows.stats import month_of_interval, write_monthly_reports
        from pfi_airflow.runtime import site_and_ledger

        month = month_of_interval(data_interval_start, data_interval_end)
        settings, ledger = site_and_ledger()
        return [str(path) for path in write_monthly_reports(ledger, settings, month)]

    write_reports()


report_monthly_stats()
