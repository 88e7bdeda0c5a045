"""Operations alerts inside Airflow: ``watch_operations`` through ``dag.test()`` mails a given-up
delivery to the operations mailbox (devkit mail servers, the application mailbox's Connection as
production gives it); :class:`pfi_airflow.alerts.PfiAlertNotifier`, every PFI task's
``on_failure_callback``, mails one French alert for a failed task, naming its DAG, task and run,
with the error's type and code but never its message."""

from __future__ import annotations

import os
import uuid
from types import SimpleNamespace

import pytest

from pfi_fixtures.mail import OPERATIONS_MAILBOX, alert_mails, mailbox_connection
from pfi_fixtures.site import load_dag, mailbox, use_site, write_settings

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

INS, INS_OID = "279035121518989", "1.2.250.1.213.1.4.10"
PATIENT = "PAT-TROIS"
SENDER = "pfi@ch-demo.mssante.test"


@pytest.fixture
def site(tmp_path, monkeypatch, fresh_ledger_url, mail_servers, test_pki):
    """A site whose alerts go to the operations mailbox; its name tags this test's alerts."""
    tag = f"CH-veille-{uuid.uuid4().hex[:10]}"
    extra = f'[alerts]\nrecipients = ["{OPERATIONS_MAILBOX}"]\nconsole_url = "http://pfi.test"\n'
    settings = write_settings(tmp_path, name=tag, mailboxes=[mailbox(SENDER)], extra=extra)
    use_site(
        monkeypatch,
        settings,
        fresh_ledger_url,
        pfi_mss_pfi=mailbox_connection(mail_servers, test_pki, SENDER),
    )
    return tag


def no_patient_data(mail, raw: bytes) -> None:
    text = raw.decode("utf-8", "replace") + mail["Subject"] + mail.get_content()
    assert INS not in text and PATIENT not in text


def test_one_run_mails_a_given_up_delivery_once(
    airflow_db, site, fresh_ledger_url, mail_servers, test_pki
):
    from pfi.flows.queue import GIVEN_UP
    from pfi.ledger import Ledger
    from pfi_fixtures.ledger import record_document

    ledger = Ledger.from_url(fresh_ledger_url)
    try:
        recorded = record_document(
            ledger, "1.2.250.1.999.11^1", "mss_patient", ins_matricule=INS, ins_oid=INS_OID
        )
        ledger.mark_delivery(
            recorded.delivery_id,
            "failed",
            reason_code=GIVEN_UP,
            reason_text=f"given up after 72.0 h; last error SMTP_451: {PATIENT}",
        )

        run = load_dag("watch_operations").test()

        assert run.state == "success"
        ((mail, raw),) = alert_mails(mail_servers, test_pki, site)
        assert mail["Subject"] == "[PFI] Alerte : 1 envoi(s) abandonné(s)"
        body = mail.get_content()
        assert "MSSanté patient : 1" in body and "SMTP_451 : 1" in body
        assert "Console PFI : http://pfi.test/pfi/" in body
        no_patient_data(mail, raw)
        (line,) = ledger.events(kind="alert.sent")
        assert line.actor.startswith("watch_operations/check_and_notify/")

        assert load_dag("watch_operations").test().state == "success"
        assert len(alert_mails(mail_servers, test_pki, site)) == 1
    finally:
        ledger.dispose()


def test_a_failed_task_is_mailed_once_with_its_code_and_not_its_message(
    airflow_db, site, fresh_ledger_url, mail_servers, test_pki
):
    from pfi.base.errors import TransientError
    from pfi_airflow.alerts import PfiAlertNotifier

    ti = SimpleNamespace(
        dag_id="deliver_dmp",
        task_id="submit_due",
        run_id="scheduled__2026-12-03T10:00:00+00:00",
        map_index=1,
        try_number=3,
    )
    error = TransientError(f"DMP down while sending {PATIENT} {INS}", code="DMP_UNREACHABLE")
    context = {"ti": ti, "task_instance": ti, "exception": error}

    PfiAlertNotifier()(context)

    ((mail, raw),) = alert_mails(mail_servers, test_pki, site)
    assert mail["Subject"] == "[PFI] Alerte : la tâche deliver_dmp.submit_due a échoué"
    body = mail.get_content()
    assert "La tâche submit_due du DAG deliver_dmp a échoué" in body
    assert "scheduled__2026-12-03T10:00:00+00:00, instance 1, tentative 3" in body
    assert "Erreur : TransientError, code DMP_UNREACHABLE" in body
    assert (
        "http://pfi.test/dags/deliver_dmp/runs/scheduled__2026-12-03T10:00:00+00:00"
        "/tasks/submit_due/mapped/1" in body
    )
    no_patient_data(mail, raw)

    # The same task failing again within the repeat interval: nothing new.
    PfiAlertNotifier()(context)
    assert len(alert_mails(mail_servers, test_pki, site)) == 1


def test_the_notifier_never_raises(monkeypatch):
    from pfi_airflow.alerts import PfiAlertNotifier

    monkeypatch.setenv("PFI_SETTINGS", "/nonexistent/pfi.toml")
    PfiAlertNotifier()({"ti": SimpleNamespace(dag_id="d", task_id="t", run_id="r")})


def test_every_pfi_task_carries_the_alert_notifier():
    from airflow.dag_processing.dagbag import DagBag

    from pfi_airflow.alerts import PfiAlertNotifier

    dags = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags
    assert "watch_operations" in dags
    for dag in dags.values():
        for task in dag.tasks:
            callbacks = task.on_failure_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert any(isinstance(c, PfiAlertNotifier) for c in callbacks), (
                f"{dag.dag_id}.{task.task_id}"
            )


def test_a_task_failing_in_a_real_run_is_mailed_by_its_callback(
    airflow_db, site, monkeypatch, mail_servers, test_pki
):
    """The ledger unreachable: ``check_and_notify`` fails (no retry left here), Airflow calls
    its ``on_failure_callback``, and the alert goes unremembered but mailed."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_PFI_LEDGER", "postgresql://postgres@127.0.0.1:5432/pfi_nowhere"
    )
    dag = load_dag("watch_operations")
    for task in dag.tasks:
        task.retries = 0

    run = dag.test()

    assert run.state == "failed"
    ((mail, raw),) = alert_mails(mail_servers, test_pki, site)
    assert mail["Subject"] == "[PFI] Alerte : la tâche watch_operations.check_and_notify a échoué"
    assert "Erreur : OperationalError" in mail.get_content()
    no_patient_data(mail, raw)
