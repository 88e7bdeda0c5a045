"""The operator console's flows (``pfi.flows.console``) and ledger part (``pfi.ledger.console``)
on a real ledger, without Airflow: rights, replay rules and lineage, filtered replays, search.
The forced replay of a DMP delivery goes through the real DMP sender to the devkit's endpoint.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from pfi.flows import console
from pfi.ledger.console import FORCED_REPLAY, MAX_PAGE, Search
from pfi_fixtures.ledger import record_document
from pfi_fixtures.partners import dmp_signer, dmp_tls

pytestmark = pytest.mark.integration

GEO_A, GEO_B = "750712184", "920000650"
INS, INS_OID = "279035121518989", "1.2.250.1.213.1.4.10"
VIEWER = console.Operator("lea", frozenset({console.METADATA}))
OPERATOR = console.Operator("omar", frozenset({console.METADATA, console.REPLAY}))
ADMIN = console.Operator("ada", frozenset({console.ADMIN}))


def test_rights_are_checked_whatever_the_face(fresh_ledger):
    delivery = record_document(fresh_ledger, "1.2.250.1.999.9^r", "dmp").delivery_id
    with pytest.raises(console.Forbidden):
        console.replay(fresh_ledger, VIEWER, [delivery], reason="x")
    with pytest.raises(console.Forbidden):
        console.hold_or_release(fresh_ledger, VIEWER, [delivery], "hold")
    with pytest.raises(console.Forbidden):
        console.search(fresh_ledger, OPERATOR, Search(ins=INS))
    with pytest.raises(console.Forbidden):
        console.identity(fresh_ledger, OPERATOR, 1)
    nobody = console.Operator("x")
    with pytest.raises(console.Forbidden):
        console.audit(fresh_ledger, nobody)
    with pytest.raises(ValueError, match="unknown rights"):
        console.Operator("x", frozenset({"root"}))
    assert ADMIN.can(console.CONTENT) and not OPERATOR.can(console.CONTENT)


def test_actors_name_their_task_instance():
    assert console.task_of("deliver_dmp/send/scheduled__2026-12-01T00:00:00+00:00[3]") == (
        console.TaskRef("deliver_dmp", "send", "scheduled__2026-12-01T00:00:00+00:00", 3)
    )
    assert console.task_of("ingest_hl7_drop/record/manual__x") == console.TaskRef(
        "ingest_hl7_drop", "record", "manual__x"
    )
    assert console.task_of("cli") is None and console.task_of("operator:ada") is None


def test_a_bounced_mail_was_sent_so_its_replay_is_a_possible_duplicate(fresh_ledger):
    recorded = record_document(
        fresh_ledger,
        "1.2.250.1.999.9^b",
        ("mss_professional", "dr@x.mssante.fr"),
        "dmp",
    )
    mail, dmp = recorded.delivery_ids
    fresh_ledger.mark_delivery(mail, "sent", partner_ref="<m@pfi>")
    fresh_ledger.mark_delivery(mail, "failed", reason_code="MSS_BOUNCE", attempted=False)
    fresh_ledger.mark_delivery(dmp, "refused", reason_code="DMP_REFUSED")
    plan = console.plan_replay(fresh_ledger, OPERATOR, [mail, dmp])
    assert plan == {"attempt": [dmp], "duplicate": [mail], "waiting": []}
    done = console.replay(fresh_ledger, OPERATOR, [mail, dmp], reason="partenaire rétabli")
    assert done["attempt"] == [dmp] and done["duplicate"] == [mail] and not done["forced"]
    assert fresh_ledger.get_delivery(mail).status == "failed"  # untouched without force


def test_forced_replays_are_numbered_deliveries_linked_to_the_original(fresh_ledger):
    original = record_document(fresh_ledger, "1.2.250.1.999.9^f", "dmp").delivery_id
    fresh_ledger.mark_delivery(original, "sent", partner_ref="urn:1")
    first = console.replay(fresh_ledger, OPERATOR, [original], reason="perdu", force=True)
    (first_id,) = first["forced"]
    # a replay of the replay is still a replay of the original
    fresh_ledger.mark_delivery(first_id, "sent", partner_ref="urn:2")
    second = console.replay(fresh_ledger, ADMIN, [first_id], reason="encore", force=True)
    (second_id,) = second["forced"]
    rows = [fresh_ledger.get_delivery(i) for i in (original, first_id, second_id)]
    assert [(r.replay_of, r.replay_seq) for r in rows] == [
        (None, 0),
        (original, 1),
        (original, 2),
    ]
    assert rows[2].status == "pending" and rows[2].request_id != rows[0].request_id
    lines = fresh_ledger.events(kind=FORCED_REPLAY)
    assert {(e.delivery_id, e.actor) for e in lines} == {
        (original, "operator:omar"),
        (first_id, "operator:omar"),
        (first_id, "operator:ada"),
        (second_id, "operator:ada"),
    }
    with pytest.raises(ValueError):
        fresh_ledger.force_replay(original, actor="operator:x", reason="  ")
    # intake's own key still refuses a second delivery (replay_seq 0)
    with pytest.raises(IntegrityError), fresh_ledger.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO delivery (document_id, channel, action, status, next_attempt_at,"
            " request_id) SELECT document_id, channel, action, 'pending', now(),"
            f" gen_random_uuid() FROM delivery WHERE id = {original}"
        )
    # and the trail of the timeline shows the lineage
    found = console.timeline(fresh_ledger, VIEWER, rows[0].document_id)
    assert next(d for d in found["deliveries"] if d["id"] == original)["replays"] == [
        first_id,
        second_id,
    ]


def test_a_filtered_set_is_replayed_within_its_cap(fresh_ledger, monkeypatch):
    yesterday = datetime.now(UTC) - timedelta(days=1)
    ids = {}
    for n, (geo, status) in enumerate(
        [(GEO_A, "failed"), (GEO_A, "failed"), (GEO_A, "sent"), (GEO_B, "failed")]
    ):
        d = record_document(fresh_ledger, f"1.2.250.1.999.9^s{n}", "dmp", finess_geo=geo)
        fresh_ledger.mark_delivery(d.delivery_id, status, partner_ref="urn:x")
        ids[n] = d.delivery_id
    criteria = Search(channel="dmp", status="failed", finess_geo=GEO_A, since=yesterday)
    plan = console.replay_matching(fresh_ledger, OPERATOR, criteria, reason="", dry_run=True)
    assert sorted(plan["attempt"]) == [ids[0], ids[1]] and not plan["duplicate"]
    done = console.replay_matching(fresh_ledger, OPERATOR, criteria, reason="DMP rétabli")
    assert sorted(done["attempt"]) == sorted([ids[0], ids[1]])
    assert fresh_ledger.get_delivery(ids[3]).status == "failed"
    monkeypatch.setattr(console, "MAX_BULK", 1)
    with pytest.raises(console.Forbidden):
        console.replay_matching(
            fresh_ledger, OPERATOR, Search(channel="dmp"), reason="tout", dry_run=True
        )


def test_search_by_item_and_paging(fresh_ledger):
    for n in range(5):
        record_document(
            fresh_ledger, f"1.2.250.1.999.9^p{n}", "dmp", control_id=f"CTRL{n}", finess_geo=GEO_A
        )
    items = fresh_ledger.search_items(Search(unique_id="1.2.250.1.999.9^p3"))
    assert [i.control_id for i in items] == ["CTRL3"]
    assert len(fresh_ledger.search_items(Search(control_id="CTRL1", kind="hl7_message"))) == 1
    assert fresh_ledger.search_items(Search(control_id="CTRL1", kind="mail")) == []
    lines = fresh_ledger.search_deliveries(Search(finess_geo=GEO_A), limit=10_000)
    assert len(lines) == 5 and [line.id for line in lines] == sorted(
        (line.id for line in lines), reverse=True
    )
    assert len(fresh_ledger.search_deliveries(Search(), limit=10**6)) <= MAX_PAGE
    page = console.search(fresh_ledger, VIEWER, Search(finess_geo=GEO_A), limit=2)
    rest = console.search(
        fresh_ledger, VIEWER, Search(finess_geo=GEO_A), limit=2, before_id=page["next_before"]
    )
    last = console.search(
        fresh_ledger, VIEWER, Search(finess_geo=GEO_A), limit=2, before_id=rest["next_before"]
    )
    assert [len(p["rows"]) for p in (page, rest, last)] == [2, 2, 1]
    assert last["next_before"] is None


def test_a_forced_replay_of_a_document_the_dmp_has_is_sent_again(
    fresh_ledger, dmp_endpoint, test_pki, samples_dir, tmp_path
):
    from pfi.base.retry import RetryPolicy
    from pfi.base.settings import load_settings
    from pfi.flows.dmp import DmpSender
    from pfi.flows.queue import run_due
    from pfi.protocols.dmp.client import DmpClient, DmpEndpoints
    from pfi.protocols.dmp.config import DmpConfig
    from pfi.protocols.dmp.submission import DmpSubmission
    from pfi.protocols.hl7v2 import parse_message
    from pfi_devkit.samples import MDM_INIT
    from pfi_fixtures.site import write_settings

    raw = (samples_dir / MDM_INIT).read_bytes()
    request = parse_message(raw)
    submission = DmpSubmission.from_request(request)
    delivery = record_document(
        fresh_ledger,
        submission.unique_id,
        "dmp",
        checksum=hashlib.sha256(raw).hexdigest(),
        control_id=request.control_id,
        ins_matricule=INS,
        ins_oid=INS_OID,
        ins_qualified=True,
    ).delivery_id
    policy = RetryPolicy(
        first_delay=timedelta(minutes=2),
        max_delay=timedelta(minutes=30),
        give_up_after=timedelta(days=2),
    )
    client = DmpClient(
        DmpEndpoints(dmp_endpoint.repository_url, dmp_endpoint.registry_url), dmp_tls(test_pki)
    )
    sender = DmpSender(
        fresh_ledger,
        client,
        dmp_signer(test_pki),
        DmpConfig(source_id="1.2.250.1.71.4.2.2", structure_name="CH TEST", retry=policy),
        load_request=lambda _ledger, _item: request,
        settings=load_settings(write_settings(tmp_path, name="CH TEST")),
        actor="test",
    )

    def send_due() -> dict:
        now = datetime.now(UTC) + timedelta(seconds=1)
        return run_due(fresh_ledger, "dmp", sender, policy=policy, actor="test", now=now)

    try:
        assert send_due()["sent"] == 1
        assert send_due()["claimed"] == 0  # nothing twice
        forced = console.replay(
            fresh_ledger, OPERATOR, [delivery], reason="entrée effacée au DMP", force=True
        )["forced"]
        counts = send_due()
        assert counts["claimed"] == 1
        replay = fresh_ledger.get_delivery(forced[0])
        # the sender really went to the DMP again (its trail has a request), whatever it said
        requests = fresh_ledger.events(delivery_id=replay.id, kind="dmp.request")
        assert len(requests) == 1 and replay.status in ("sent", "refused")
        assert fresh_ledger.get_delivery(delivery).status == "sent"
    finally:
        client.close()


def test_a_full_page_of_100_still_says_that_a_next_page_exists(fresh_ledger):
    with fresh_ledger.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO document (unique_id) SELECT 'page.' || g FROM generate_series(1, 101) g"
        )
        conn.exec_driver_sql(
            "INSERT INTO delivery (document_id, channel, action, status, next_attempt_at,"
            " request_id) SELECT id, 'dmp', 'new', 'pending', now(), gen_random_uuid()"
            " FROM document"
        )
    first = console.search(fresh_ledger, VIEWER, Search(), limit=100)
    assert len(first["rows"]) == 100 and first["next_before"] is not None
    second = console.search(fresh_ledger, VIEWER, Search(), before_id=first["next_before"])
    assert len(second["rows"]) == 1 and second["next_before"] is None
