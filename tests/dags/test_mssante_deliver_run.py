"""``deliver_mssante`` run through ``dag.test()`` on PostgreSQL: deliveries taken in from the
project's ORU sample are mailed over real TLS by the DAG, with its Connections given the way
production gives them (``AIRFLOW_CONN_PFI_LEDGER``, ``AIRFLOW_CONN_PFI_MSS_PFI``)."""

import pytest

from pfi_devkit.samples import ORU_INIT
from pfi_fixtures.mail import APPLICATION_MAILBOXES, mailbox_connection, received_mails
from pfi_fixtures.site import (
    drop_sample,
    hl7_source,
    ingest,
    load_dag,
    mailbox,
    use_site,
    write_settings,
)

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

SENDER = APPLICATION_MAILBOXES[0]
PROFESSIONAL = "adam.hoda@test-ci-sis.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"


@pytest.fixture
def site(tmp_path, monkeypatch, fresh_ledger_url, mail_servers, test_pki):
    settings = write_settings(
        tmp_path,
        sources=[hl7_source(tmp_path, finess_geo="010000032")],
        mailboxes=[mailbox(SENDER)],
    )
    connection = mailbox_connection(mail_servers, test_pki, SENDER)
    use_site(monkeypatch, settings, fresh_ledger_url, pfi_mss_pfi=connection)
    return tmp_path, fresh_ledger_url


def test_the_dag_mails_each_recipient_once_and_acknowledges(
    airflow_db, site, samples_dir, mail_servers, test_pki
):
    from pfi.base.settings import load_settings
    from pfi.ledger import Ledger

    folder, ledger_url = site
    drop_sample(folder / "in", samples_dir / ORU_INIT, "oru.hl7")
    settings = load_settings()
    ledger = Ledger.from_url(ledger_url)
    try:
        ingest(ledger, settings)

        run = load_dag("deliver_mssante").test()
        assert run.state == "success"

        document = next(
            ledger.get_document(d)
            for d in {e.document_id for e in ledger.events(kind="delivery.created")}
        )
        mss = [d for d in ledger.deliveries_of(document.id) if d.channel.startswith("mss_")]
        assert sorted(d.channel for d in mss) == ["mss_patient", "mss_professional"]
        for delivery in mss:
            assert delivery.status == "sent"
            address = delivery.recipient or PATIENT
            assert len(received_mails(mail_servers, test_pki, address, delivery.partner_ref)) == 1
            actors = {e.actor for e in ledger.events(delivery_id=delivery.id, kind="mss.sent")}
            assert any(a.startswith("deliver_mssante/send_to_") for a in actors)
        # ACK_RECEPTION=Y in the sample: one ZAM^Z02 per recipient in the source's outbound.
        assert len(list((folder / "out").glob("ZAM_Z02_*.hl7"))) == 2
        # The DSNs the relay sent back were read by the same run and matched to the deliveries.
        assert len(ledger.events(kind="mss.dsn")) == 2
    finally:
        ledger.dispose()
