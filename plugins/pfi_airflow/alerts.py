"""The operations alerts' Airflow notifier: :class:`PfiAlertNotifier`.

:class:`PfiAlertNotifier` is an Airflow notifier (``BaseNotifier``): attached as the
``on_failure_callback`` of every PFI task (:func:`pfi_airflow.runtime.every_minute` and the other
DAGs' ``default_args``), it mails the operations mailbox when a task failed after its retries —
the DAG, task and run named, the error's type and code only — once per task per ``[alerts]
repeat_minutes``. The DAG ``watch_operations`` runs the ledger's checks
(:func:`pfi.flows.alerts.run_checks`) with the same SMTP factory.

Both send with the project's SMTP client and the mailbox Connections
(:func:`pfi_airflow.mssante.smtp_for`): from the site's sending application mailbox, or the
Connection ``[alerts] connection_id``. Nothing here runs when a DAG file is parsed: settings,
ledger and Connections are read when a notification is sent.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier


class PfiAlertNotifier(BaseNotifier):
    """Mail a French alert about the failed task of ``context`` to ``[alerts] recipients``.

    It never raises: an alert that cannot be sent (no settings, SMTP down) is logged by type and
    code, and the task's own failure stays what Airflow shows."""

    def notify(self, context: Any) -> None:
        try:
            self._notify(context)
        except Exception as exc:  # the callback must not hide the task's own failure
            self.log.error(
                "PFI alert not sent: %s %s", type(exc).__name__, getattr(exc, "code", "")
            )

    def _notify(self, context: Any) -> None:
        from pfi.base.settings import load_settings
        from pfi.flows.alerts import AlertsConfig, notify_once, task_failure_alert
        from pfi_airflow.mssante import smtp_for

        settings = load_settings()
        config = AlertsConfig.from_settings(settings)
        if not config.recipients:
            self.log.warning("PFI task failed; no [alerts] recipients: no alert mailed")
            return
        ti = context.get("ti") or context.get("task_instance")
        alert = task_failure_alert(
            dag_id=getattr(ti, "dag_id", None) or str(getattr(context.get("dag"), "dag_id", "?")),
            task_id=getattr(ti, "task_id", "?"),
            run_id=getattr(ti, "run_id", None) or str(context.get("run_id", "?")),
            map_index=getattr(ti, "map_index", -1),
            try_number=getattr(ti, "try_number", None),
            error=context.get("exception"),
            console_url=config.console_url,
        )
        ledger = _ledger_or_none(settings)
        try:
            notify_once(
                ledger, settings, alert, smtp_for, actor=_actor(alert.detail), config=config
            )
        finally:
            if ledger is not None:
                ledger.dispose()


def _ledger_or_none(settings: Any) -> Any:
    """The ledger, or ``None`` when it cannot be reached (the alert then goes unremembered:
    the failing task may be failing because of it)."""
    from pfi_airflow.hooks import LedgerHook

    try:
        ledger = LedgerHook(settings.ledger_connection_id).get_conn()
        ledger.engine.connect().close()  # reachable?
        return ledger
    except Exception as exc:
        from logging import getLogger

        getLogger(__name__).warning("ledger unreachable for the alert: %s", type(exc).__name__)
        return None


def _actor(detail: Any) -> str:
    index = detail.get("map_index")
    suffix = f"[{index}]" if isinstance(index, int) and index >= 0 else ""
    return f"{detail['dag_id']}/{detail['task_id']}/{detail['run_id']}{suffix}"


__all__ = ["PfiAlertNotifier"]
