"""The IMAP IDLE trigger that starts ``poll_mssante_inbox`` within seconds of a mail: run as the
triggerer runs it (its ``run()`` async generator), against Dovecot with the mailbox's client
certificate and the Connection given the way production gives it."""

import asyncio

import pytest

from pfi_fixtures.mail import (
    INBOX_TEST_MAILBOX,
    document_mail,
    empty_inbox,
    mail_from_human,
    mailbox_connection,
)
from pfi_fixtures.site import hl7_source, load_dag, mailbox, use_site, write_settings

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
    mail_from_human(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX))


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


def test_the_drop_folder_trigger_announces_a_settled_file_once(tmp_path, monkeypatch):
    """A file is announced when it is settled (what intake would claim), once while it waits;
    a new file is announced again."""
    import os
    import time

    from pfi_airflow.triggers import DropFolderTrigger

    (tmp_path / "in").mkdir()
    source = hl7_source(tmp_path).replace("settle_seconds = 0", "settle_seconds = 30")
    monkeypatch.setenv("PFI_SETTINGS", str(write_settings(tmp_path, sources=[source])))
    drop = tmp_path / "in"

    async def scenario():
        events = DropFolderTrigger(poll_seconds=0.05).run()
        first = asyncio.ensure_future(anext(events))
        (drop / "writing.hl7").write_bytes(b"MSH|")  # just written: not settled yet
        await asyncio.sleep(0.5)
        assert not first.done()
        past = time.time() - 60
        os.utime(drop / "writing.hl7", (past, past))
        event = await asyncio.wait_for(first, 10)
        second = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0.5)
        assert not second.done()  # the same file, still waiting: no second event
        (drop / "next.hl7").write_bytes(b"MSH|")
        os.utime(drop / "next.hl7", (past, past))
        again = await asyncio.wait_for(second, 10)
        await events.aclose()
        return event, again

    event, again = asyncio.run(scenario())

    assert event.payload == {"sources": ["dpi"]} == again.payload


def test_intake_and_the_delivery_dags_are_event_driven_with_the_minute_as_safety_net(
    airflow_db,
):
    from pfi_airflow.triggers import DMP_QUEUE_ASSET, HL7_DROP_ASSET, MSSANTE_QUEUE_ASSET

    def assets_of(dag_id):
        dag = load_dag(dag_id)
        assert dag.timetable.timetable._delta.total_seconds() == 60
        return [asset.uri for _, asset in dag.timetable.asset_condition.iter_assets()]

    assert assets_of("ingest_hl7_drop") == [HL7_DROP_ASSET.uri]
    assert assets_of("deliver_dmp") == [DMP_QUEUE_ASSET.uri]
    assert assets_of("deliver_mssante") == [MSSANTE_QUEUE_ASSET.uri]
    announce = load_dag("ingest_hl7_drop").get_task("announce_deliveries")
    assert {o.uri for o in announce.outlets} == {DMP_QUEUE_ASSET.uri, MSSANTE_QUEUE_ASSET.uri}
