"""The ``[alerts]`` section and the alert mail itself (``pfi.flows.alerts``), without servers."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from pfi.base.errors import ConfigurationError, TransientError
from pfi.base.settings import load_settings
from pfi.flows.alerts import AlertsConfig, alert_mail, task_failure_alert
from pfi_fixtures.site import mailbox, write_settings


def config(tmp_path, text: str, mailboxes=()) -> AlertsConfig:
    (tmp_path / "in").mkdir(exist_ok=True)
    path = write_settings(tmp_path, mailboxes=list(mailboxes), extra=f"[alerts]\n{text}")
    return AlertsConfig.from_settings(load_settings(path))


def test_defaults_mail_nobody_and_name_every_channel(tmp_path):
    defaults = config(tmp_path, "")
    assert defaults.recipients == () and defaults.repeat_minutes == 60
    assert set(defaults.pending_threshold) == {"dmp", "mss_professional", "mss_patient", "dpi"}
    assert defaults.console == "/pfi/"


def test_a_pending_threshold_per_channel_and_one_recipient_as_text(tmp_path):
    parsed = config(
        tmp_path,
        'recipients = "ops@ch.mssante.fr"\nconsole_url = "https://pfi.ch/"\n'
        "pending_threshold = { dpi = 10 }\n",
        mailboxes=[mailbox("pfi@ch.mssante.fr")],
    )
    assert parsed.recipients == ("ops@ch.mssante.fr",)
    assert parsed.pending_threshold["dpi"] == 10 and parsed.pending_threshold["dmp"] == 500
    assert parsed.console == "https://pfi.ch/pfi/"


@pytest.mark.parametrize(
    "text",
    [
        "recipent = []\n",
        'recipients = ["not an address"]\n',
        "pending_threshold = { fax = 1 }\n",
        'connection_id = "pfi_mss_alerts"\n',
        "repeat_minutes = 0\n",
        'partner_failing_minutes = "soon"\n',
        'mailbox = "nowhere"\n',
        'recipients = ["ops@ch.mssante.fr"]\n',  # and no [[mailbox]] to send from
    ],
)
def test_a_wrong_setting_is_a_configuration_error(tmp_path, text):
    with pytest.raises(ConfigurationError):
        config(tmp_path, text)


def test_the_sender_is_the_sending_mailbox_or_a_dedicated_connection(tmp_path):
    boxes = [mailbox("pfi@ch.mssante.fr"), mailbox("labo@ch.mssante.fr", name="labo")]
    (tmp_path / "in").mkdir()
    settings = load_settings(write_settings(tmp_path, mailboxes=boxes))
    assert AlertsConfig().sender_mailbox(settings).address == "pfi@ch.mssante.fr"
    assert AlertsConfig(mailbox="labo").sender_mailbox(settings).address == "labo@ch.mssante.fr"
    own = AlertsConfig(connection_id="pfi_mss_alerts", sender="alertes@ch.mssante.fr")
    assert own.sender_mailbox(settings).connection_id == "pfi_mss_alerts"


def test_a_task_failure_mail_is_french_and_quotes_no_message():
    error = TransientError("refused for DUPONT Jean 279035121518989", code="DMP_UNREACHABLE")
    alert = task_failure_alert(
        dag_id="deliver_dmp", task_id="submit_due", run_id="manual__1", error=error
    )
    mail = alert_mail(
        alert,
        sender="pfi@ch.mssante.fr",
        recipient="ops@ch.mssante.fr",
        site="CH",
        console="/pfi/",
        repeat_minutes=60,
        now=datetime(2026, 12, 3, 13, 0, tzinfo=UTC),
    )
    raw = mail.as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "[PFI] Alerte : la tâche deliver_dmp.submit_due a échoué"
    assert parsed["X-PFI-Alert"] == "task_failed:deliver_dmp.submit_due"
    body = parsed.get_content()
    assert "Alerte du 03/12/2026 14:00 (heure de Paris)" in body
    assert "Erreur : TransientError, code DMP_UNREACHABLE" in body
    assert "DUPONT" not in raw.decode() + body and "279035121518989" not in raw.decode() + body
    assert mail.sender == "pfi@ch.mssante.fr" and not mail.dsn
