"""The IMAP IDLE trigger that starts ``poll_mssante_inbox`` within seconds of a mail: run as the
triggerer runs it (its ``run()`` async generator), against Dovecot with the mailbox's client
certificate and the Connection given the way production gives it."""

import asyncio
import email.policy

import pytest

from pfi_fixtures.mail import (
    HUMAN,
    INBOX_TEST_MAILBOX,
    document_mail,
    empty_inbox,
    mailbox_connection,
    send_as_human,
)
from pfi_fixtures.site import load_dag, mailbox, use_site, write_settings

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


@pytest.fixture
def watched_site(tmp_path, monkeypatch, fresh_ledger_url, mail_servers, test_pki):
    (tmp_path / "in").mkdir()
    settings = write_settings(tmp_path, mailboxes=[mailbox(INBOX_TEST_MAILBOX, name="inbox")])
    use_site(
        monkeypatch,
        settings,
        fresh_ledger_url,
        pfi_mss_inbox=mailbox_connection(mail_servers, test_pki, INBOX_TEST_MAILBOX),
    )
    empty_inbox(mail_servers, test_pki, INBOX_TEST_MAILBOX)


def mail_one(mail_servers, test_pki, samples_dir) -> None:
    message = document_mail(samples_dir, INBOX_TEST_MAILBOX)
    send_as_human(
        mail_servers,
        test_pki,
        HUMAN,
        INBOX_TEST_MAILBOX,
        message.as_bytes(policy=email.policy.SMTP),
    )


def test_a_mail_arriving_gives_one_event_naming_its_mailbox(
    watched_site, mail_servers, test_pki, samples_dir
):
    from pfi_airflow.triggers import MailboxIdleTrigger

    async def scenario():
        events = MailboxIdleTrigger(idle_seconds=30, retry_seconds=1).run()
        first = asyncio.ensure_future(anext(events))
        await asyncio.sleep(1.0)  # the IDLE session is open, the INBOX empty: nothing yet
        assert not first.done()
        await asyncio.to_thread(mail_one, mail_servers, test_pki, samples_dir)
        event = await asyncio.wait_for(first, 60)
        await events.aclose()
        return event

    event = asyncio.run(scenario())

    assert event.payload == {"mailboxes": ["inbox"]}


def test_the_trigger_serializes_to_what_the_triggerer_rebuilds():
    from pfi_airflow.triggers import MailboxIdleTrigger

    path, kwargs = MailboxIdleTrigger(idle_seconds=60).serialize()

    assert path == "pfi_airflow.triggers.MailboxIdleTrigger"
    assert MailboxIdleTrigger(**kwargs).serialize() == (path, kwargs)


def test_the_receiving_dag_runs_on_the_mailbox_asset_and_every_minute(airflow_db):
    from datetime import timedelta

    from pfi_airflow.triggers import MAILBOX_ASSET

    dag = load_dag("poll_mssante_inbox")

    assets = [asset for _, asset in dag.timetable.asset_condition.iter_assets()]
    assert [asset.uri for asset in assets] == [MAILBOX_ASSET.uri]
    assert dag.timetable.timetable._delta == timedelta(minutes=1)
    (watcher,) = MAILBOX_ASSET.watchers
    assert type(watcher.trigger).__name__ == "MailboxIdleTrigger"
