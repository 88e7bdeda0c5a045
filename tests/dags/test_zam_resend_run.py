"""A ZAM queued because its producer's MLLP Connection was missing is sent by ``ingest_hl7_drop``
once the Connection exists **in Airflow's metadata database** (not in the environment): the task
hands ``pfi`` Airflow's lookup (``pfi_airflow.hooks.airflow_connection``), nothing goes through
``os.environ``, and the devkit DPI peer gets it.
"""

import json
import os
from datetime import UTC, datetime

import pytest

from pfi_fixtures.site import hl7_source, load_dag, use_site, write_settings

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

CONNECTION = "pfi_test_dpi_zam"
ENV_KEY = f"AIRFLOW_CONN_{CONNECTION.upper()}"


@pytest.fixture
def stored_connection(airflow_db, mllp_peer):
    """The DPI's MLLP Connection as an operator creates it in the UI: a metadata database row."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(
            Connection(
                conn_id=CONNECTION,
                conn_type="generic",
                host=mllp_peer.host,
                port=mllp_peer.port,
                extra=json.dumps({"timeout": 5}),
            )
        )
    yield
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == CONNECTION).delete()


def test_a_queued_zam_reaches_the_dpi_through_a_connection_stored_in_airflow(
    tmp_path, monkeypatch, fresh_ledger_url, mllp_peer, stored_connection
):
    from pfi.base.settings import load_settings
    from pfi.flows import producer_acks
    from pfi.ledger import Ledger
    from pfi.protocols.hl7v2 import zam
    from pfi.protocols.hl7v2.ack import MessageHeader

    source_toml = hl7_source(tmp_path) + f'\nzam_mllp = "{CONNECTION}"'
    settings_file = write_settings(tmp_path, sources=[source_toml])
    use_site(monkeypatch, settings_file, fresh_ledger_url)
    assert ENV_KEY not in os.environ
    source = load_settings(settings_file).source("dpi")
    request = MessageHeader(
        sending_application="DPI",
        sending_facility="CH",
        message_code="MDM",
        trigger_event="T02",
        control_id="REQ-7",
    )
    receipt = zam.dmp_receipt(
        request,
        accepted=True,
        control_id=zam.zam_control_id(zam.Z01_DMP_RECEIPT, 7),
        now=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
    )
    ledger = Ledger.from_url(fresh_ledger_url)
    try:
        path = producer_acks.emit(
            source, receipt, ledger=ledger, actor="test"
        )  # no Connection: queued
        assert mllp_peer.exchanges == []

        run = load_dag("ingest_hl7_drop").test()

        assert run.state == "success"
        assert [e.raw for e in mllp_peer.exchanges] == [path.read_bytes()]
        sent = [dict(e.detail) for e in ledger.events(kind=producer_acks.EVENT_SENT)]
        assert [(s["connection"], s["ack_code"]) for s in sent] == [(CONNECTION, "AA")]
        assert ENV_KEY not in os.environ  # read where it is, not copied into the environment
    finally:
        ledger.dispose()
