"""``deliver_mssante`` run through ``dag.test()`` on PostgreSQL: deliveries taken in from an
official example are mailed over real TLS by the DAG, with its Connections given the way
production gives them (``AIRFLOW_CONN_PFI_LEDGER``, ``AIRFLOW_CONN_PFI_MSS_PFI``)."""

import imaplib
import json
import os
import shutil
import time

import pytest

from pfi_fixtures.mail import APPLICATION_MAILBOXES, HUMAN_MAILBOXES

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

SENDER = APPLICATION_MAILBOXES[0]
PROFESSIONAL = "adam.hoda@test-ci-sis.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"
SAMPLE = (
    "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/ORU/"
    "Transmission initiale ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7"
)


@pytest.fixture
def site(tmp_path, monkeypatch, postgres_server, mail_servers, test_pki):
    from pfi.ledger import upgrade

    ledger_url = postgres_server.create_database()
    upgrade(ledger_url)
    settings = tmp_path / "pfi.toml"
    settings.write_text(
        f"""
[site]
name = "CH"
finess_juridique = "010000024"
structure_oid = "1.2.250.1.71.4.2.2"
[[site.finess_geo]]
finess = "010000032"
name = "A"
[paths]
data_dir = "{tmp_path / "data"}"
[[hl7_source]]
name = "dpi"
kind = "DPI"
finess_geo = "010000032"
drop_dir = "{tmp_path / "in"}"
outbound_dir = "{tmp_path / "out"}"
settle_seconds = 0
[[mailbox]]
name = "pfi"
address = "{SENDER}"
connection_id = "pfi_mss_pfi"
finess_geo = "010000032"
"""
    )
    cred = test_pki.clients[SENDER]
    connection = {
        "conn_type": "imap",
        "host": mail_servers.host,
        "port": mail_servers.imap_port,
        "login": SENDER,
        "password": mail_servers.password_for(SENDER),
        "extra": {
            "smtp_port": mail_servers.smtp_port,
            "client_cert": str(cred.cert_path),
            "client_key": str(cred.key_path),
            "ca_bundle": str(test_pki.ca_bundle),
            "crl_file": str(test_pki.crl_bundle),
            "timeout": 10,
        },
    }
    monkeypatch.setenv("PFI_SETTINGS", str(settings))
    monkeypatch.setenv("AIRFLOW_CONN_PFI_LEDGER", ledger_url)
    monkeypatch.setenv("AIRFLOW_CONN_PFI_MSS_PFI", json.dumps(connection))
    yield tmp_path, ledger_url
    postgres_server.drop_database(ledger_url.rsplit("/", 1)[1])


def _received(mail_servers, test_pki, address, message_id):
    from pfi_devkit.mail import client_ssl_context

    ctx = client_ssl_context(test_pki)
    with imaplib.IMAP4_SSL(mail_servers.host, mail_servers.imaps_port, ssl_context=ctx) as imap:
        imap.login(address, HUMAN_MAILBOXES[address])
        imap.select("INBOX", readonly=True)
        _, data = imap.uid("SEARCH", None, "HEADER", "Message-ID", message_id)
        return data[0].split()


def test_the_dag_mails_each_recipient_once_and_acknowledges(
    airflow_db, site, fixtures_dir, mail_servers, test_pki
):
    from airflow.dag_processing.dagbag import DagBag

    from pfi.intake import acknowledge_items, claim_and_record
    from pfi.ledger import Ledger
    from pfi.settings import load_settings

    folder, ledger_url = site
    (folder / "in").mkdir()
    target = folder / "in" / "oru.hl7"
    shutil.copyfile(fixtures_dir / SAMPLE, target)
    os.utime(target, (time.time() - 5,) * 2)
    settings = load_settings()
    ledger = Ledger.from_url(ledger_url)
    try:
        for batch in claim_and_record(ledger, settings, batch_size=10, limit=10, actor="test"):
            acknowledge_items(ledger, settings, batch, actor="test")

        dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag("deliver_mssante")
        run = dag.test()
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
            assert len(_received(mail_servers, test_pki, address, delivery.partner_ref)) == 1
            actors = {e.actor for e in ledger.events(delivery_id=delivery.id, kind="mss.sent")}
            assert any(a.startswith("deliver_mssante/send_to_") for a in actors)
        # ACK_RECEPTION=Y in the example: one ZAM^Z02 per recipient in the source's outbound.
        assert len(list((folder / "out").glob("ZAM_Z02_*.hl7"))) == 2
        # The DSNs the relay sent back were read by the same run and matched to the deliveries.
        assert len(ledger.events(kind="mss.dsn")) == 2
    finally:
        ledger.dispose()
