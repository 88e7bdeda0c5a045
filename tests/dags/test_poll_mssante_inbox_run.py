"""``poll_mssante_inbox`` run through ``dag.test()`` on PostgreSQL: a professional's mail with an
``IHE_XDM.ZIP`` in an application mailbox reaches the DPI (MLLP peer) as the volet's MDM within one
run, with the Connections given the way production gives them."""

import pytest

from pfi_fixtures.mail import (
    INBOX_TEST_MAILBOX,
    document_mail,
    empty_inbox,
    mail_from_human,
    mailbox_connection,
)
from pfi_fixtures.site import load_dag, mailbox, use_site, write_settings

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def test_one_run_takes_the_mail_and_sends_its_document_to_the_dpi(
    airflow_db,
    tmp_path,
    monkeypatch,
    fresh_ledger_url,
    mail_servers,
    test_pki,
    samples_dir,
    mllp_peer,
):
    from pfi.ledger import Ledger

    (tmp_path / "in").mkdir()
    settings = write_settings(tmp_path, mailboxes=[mailbox(INBOX_TEST_MAILBOX, name="inbox")])
    use_site(
        monkeypatch,
        settings,
        fresh_ledger_url,
        pfi_mss_inbox=mailbox_connection(mail_servers, test_pki, INBOX_TEST_MAILBOX),
        pfi_dpi_mllp={"conn_type": "generic", "host": mllp_peer.host, "port": mllp_peer.port},
    )
    empty_inbox(mail_servers, test_pki, INBOX_TEST_MAILBOX)
    mail_from_human(mail_servers, test_pki, document_mail(samples_dir, INBOX_TEST_MAILBOX))

    run = load_dag("poll_mssante_inbox").test()

    assert run.state == "success"
    (mdm,) = mllp_peer.received
    assert "MDM^T02^MDM_T02" in mdm
    ledger = Ledger.from_url(fresh_ledger_url)
    try:
        (item,) = ledger.find_inbound(kind="mail")
        (delivery,) = ledger.deliveries_asked_by(item.id)
        assert delivery.status == "sent"
        assert any(
            e.actor.startswith("poll_mssante_inbox/send_to_dpi")
            for e in ledger.events(delivery_id=delivery.id)
        )
    finally:
        ledger.dispose()
