"""What every PFI DAG shares: its ``@dag`` arguments, and what its tasks need at run time
(settings, ledger, actor), read lazily — never at DAG parse time."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pfi.base.settings import Settings
    from pfi.ledger import Ledger


def every_minute(
    *tags: str, retries: int, exponential_backoff: bool = True, on: Any = None
) -> dict[str, Any]:
    """``@dag`` arguments of a PFI flow: every minute (and at each event of the asset ``on``:
    :mod:`pfi_airflow.triggers`), one run at a time, no catch-up; tagged ``pfi`` + ``tags``;
    tasks owned by ``pfi``, retried ``retries`` times 30 s apart (doubling each time with
    ``exponential_backoff``), an alert mailed when one fails after them (:func:`failure_alerts`)."""
    default_args: dict[str, Any] = {
        "owner": "pfi",
        "retries": retries,
        "retry_delay": timedelta(seconds=30),
        "on_failure_callback": failure_alerts(),
    }
    if exponential_backoff:
        default_args["retry_exponential_backoff"] = True
    schedule: Any = timedelta(minutes=1)
    if on is not None:
        from airflow.timetables.assets import AssetOrTimeSchedule
        from airflow.timetables.trigger import DeltaTriggerTimetable

        schedule = AssetOrTimeSchedule(timetable=DeltaTriggerTimetable(schedule), assets=[on])
    return {
        "schedule": schedule,
        "start_date": datetime(2026, 1, 1),
        "catchup": False,
        "max_active_runs": 1,
        "tags": ["pfi", *tags],
        "default_args": default_args,
    }


def failure_alerts() -> list[Any]:
    """``on_failure_callback`` of every PFI task: a French alert to ``[alerts] recipients`` when
    the task failed after its retries (:class:`pfi_airflow.alerts.PfiAlertNotifier`; nothing is
    read before a task fails)."""
    from pfi_airflow.alerts import PfiAlertNotifier

    return [PfiAlertNotifier()]


def site_settings() -> Settings:
    """The site settings from ``$PFI_SETTINGS`` (read inside tasks only)."""
    from pfi.base.settings import load_settings

    return load_settings()


def site_and_ledger() -> tuple[Settings, Ledger]:
    """The site settings and the ledger of their Connection (``pfi_ledger`` by default).

    The other Connections a flow looks up by id (the producers' ``zam_mllp``) are read by the
    lookup the task hands it: :func:`pfi_airflow.hooks.airflow_connection`.
    """
    from pfi_airflow.hooks import LedgerHook

    settings = site_settings()
    return settings, LedgerHook(settings.ledger_connection_id).get_conn()


def actor() -> str:
    """``dag_id/task_id/run_id[map_index]`` of the running task, for the ledger's event trail."""
    from airflow.sdk import get_current_context

    try:
        ti = get_current_context()["ti"]
    except Exception:
        return "airflow"
    index = f"[{ti.map_index}]" if getattr(ti, "map_index", -1) >= 0 else ""
    return f"{ti.dag_id}/{ti.task_id}/{ti.run_id}{index}"


def reference_day(context: Any) -> date:
    """The day a manual run stands for (Paris time): its logical date, else the moment it was
    asked for (``run_after``: a run triggered without a logical date) — never ``now()``."""
    from zoneinfo import ZoneInfo

    moment = context.get("logical_date") or context["dag_run"].run_after
    return moment.astimezone(ZoneInfo("Europe/Paris")).date()
