"""The operator's operations (``pfi.flows.operations``): find, hold, release, status."""

from __future__ import annotations

import pytest

from pfi.flows import operations
from pfi.ledger import Ledger
from pfi_fixtures.ledger import record_document

pytestmark = pytest.mark.integration


def test_a_document_is_found_by_unique_id_or_ledger_id(fresh_ledger: Ledger):
    recorded = record_document(fresh_ledger, "1.2.250.1.999.1^7", "dmp")
    by_unique_id = operations.find_document(fresh_ledger, "1.2.250.1.999.1^7")
    assert by_unique_id is not None
    assert operations.find_document(fresh_ledger, str(by_unique_id.id)) == by_unique_id
    assert operations.find_document(fresh_ledger, "1.2.250.1.999.1^8") is None
    assert operations.find_document(fresh_ledger, "999999") is None
    assert fresh_ledger.get_delivery(recorded.delivery_id).document_id == by_unique_id.id


def test_hold_then_release_touch_only_the_channel_asked_with_the_operator_in_the_trail(
    fresh_ledger: Ledger,
):
    record_document(fresh_ledger, "1.2.250.1.999.1^9", "dmp", ("mss_professional", "dr@x.test"))
    document = operations.find_document(fresh_ledger, "1.2.250.1.999.1^9")

    held = operations.hold(fresh_ledger, document, channel="dmp", actor="operator:alice")
    assert [(d.channel, d.status, d.reason_code) for d in held] == [("dmp", "held", "DMP_HOLD")]
    assert operations.hold(fresh_ledger, document, channel="dmp", actor="operator:alice") == []
    others = [d for d in fresh_ledger.deliveries_of(document.id) if d.channel != "dmp"]
    assert [d.status for d in others] == ["pending"]

    released = operations.release(fresh_ledger, document, channel="dmp", actor="operator:bob")
    assert [d.status for d in released] == ["pending"]
    trail = operations.status(fresh_ledger, document, channels=["dmp"])["deliveries"][0]["trail"]
    assert {"operator:alice", "operator:bob"} <= {event["actor"] for event in trail}


def test_status_reports_the_channels_asked_with_the_dmp_identifiers(fresh_ledger: Ledger):
    record_document(fresh_ledger, "1.2.250.1.999.1^10", "dmp", ("mss_professional", "dr@x.test"))
    document = operations.find_document(fresh_ledger, "1.2.250.1.999.1^10")

    report = operations.status(fresh_ledger, document, channels=["dmp", "mss_professional"])

    assert report["document"]["unique_id"] == "1.2.250.1.999.1^10"
    assert report["document"]["entry_uuid"].startswith("urn:uuid:")
    by_channel = {d["channel"]: d for d in report["deliveries"]}
    assert set(by_channel) == {"dmp", "mss_professional"}
    assert "submission_set_unique_id" in by_channel["dmp"]
    assert "submission_set_unique_id" not in by_channel["mss_professional"]
    only_dmp = operations.status(fresh_ledger, document, channels=["dmp"])["deliveries"]
    assert [d["channel"] for d in only_dmp] == ["dmp"]
