"""What every PFI task needs at run time, read lazily (never at DAG parse time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pfi.settings import Settings


def site_settings() -> Settings:
    """The site settings from ``$PFI_SETTINGS`` (read inside tasks only)."""
    from pfi.settings import load_settings

    return load_settings()


def actor() -> str:
    """``dag_id/task_id/run_id[map_index]`` of the running task, for the ledger's event trail."""
    from airflow.sdk import get_current_context

    try:
        ti = get_current_context()["ti"]
    except Exception:
        return "airflow"
    index = f"[{ti.map_index}]" if getattr(ti, "map_index", -1) >= 0 else ""
    return f"{ti.dag_id}/{ti.task_id}/{ti.run_id}{index}"
