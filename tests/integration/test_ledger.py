"""The ledger against a real PostgreSQL: migrations, idempotent recording, claims, trail, stats.

Each test gets its own fresh database (created on the session's server, migrated, dropped at
the end), so tests are independent of one another and of the session's ``ledger_url``.
Concurrency is exercised with threads and explicit locks, never with sleeps or timings.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg2
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from pfi.base.errors import ConfigurationError
from pfi.ledger import (
    Ledger,
    MonthlyCount,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from pfi.ledger.schema import VERSION_TABLE, delivery, metadata
from pfi_fixtures.ledger import record_document

pytestmark = pytest.mark.integration

LEDGER_TABLES = {"inbound_item", "document", "delivery", "event"}
SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64
GEO_A = "750712184"
GEO_B = "920000650"
BIO = "11502-2"  # CR d'examens biologiques
IMG = "18748-4"  # CR d'imagerie médicale
INS = "279035121518989"  # official test INS (DMP test patient)
INS_OID_TEST = "1.2.250.1.213.1.4.10"


@dataclass(frozen=True)
class Db:
    url: str
    name: str


@pytest.fixture
def empty_db(postgres_server) -> Iterator[Db]:
    url = postgres_server.create_database()
    name = url.rsplit("/", 1)[1]
    yield Db(url, name)
    postgres_server.drop_database(name)


@pytest.fixture(scope="module")
def migrated_db(postgres_server) -> Iterator[Db]:
    """One migrated database for the module's tests; each test starts from empty tables."""
    url = postgres_server.create_database()
    upgrade(url)
    name = url.rsplit("/", 1)[1]
    yield Db(url, name)
    postgres_server.drop_database(name)


@pytest.fixture
def ledger(migrated_db: Db) -> Iterator[Ledger]:
    _empty_the_tables(migrated_db.url)
    ledger = Ledger.from_url(migrated_db.url)
    yield ledger
    ledger.dispose()


def _empty_the_tables(url: str) -> None:
    # The trail refuses TRUNCATE; a superuser session in replica mode fires no trigger, which is
    # the (deliberately privileged) way to purge a ledger.
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {', '.join(sorted(LEDGER_TABLES))} RESTART IDENTITY"))
    engine.dispose()


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def a_document(ledger: Ledger, unique_id: str = "1.2.250.1.999.1^1", **fields) -> int:
    """A document brought by a message asking for no delivery."""
    values = {"type_code": BIO, "finess_geo": GEO_A} | fields
    return record_document(ledger, unique_id, **values).document_id


# --- migrations ----------------------------------------------------------------------------------


def test_migrations_go_from_empty_to_head_idempotently_and_back_to_base(empty_db: Db):
    assert current_revision(empty_db.url) is None

    upgrade(empty_db.url)
    assert current_revision(empty_db.url) == head_revision()
    assert LEDGER_TABLES | {VERSION_TABLE} <= tables(empty_db.url)
    assert "alembic_version" not in tables(empty_db.url)  # Airflow's name is left alone

    upgrade(empty_db.url)  # a second run changes nothing
    assert current_revision(empty_db.url) == head_revision()

    downgrade(empty_db.url, "base")
    assert current_revision(empty_db.url) is None
    assert not LEDGER_TABLES & tables(empty_db.url)

    upgrade(empty_db.url)
    assert LEDGER_TABLES <= tables(empty_db.url)


def test_the_schema_module_matches_the_migrations(ledger: Ledger):
    with ledger.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        assert compare_metadata(context, metadata) == []


def test_two_processes_upgrading_at_once_apply_each_revision_once(empty_db: Db):
    start = threading.Barrier(3)

    def run() -> None:
        start.wait()
        upgrade(empty_db.url)

    with ThreadPoolExecutor(3) as pool:
        for future in [pool.submit(run) for _ in range(3)]:
            future.result()
    assert current_revision(empty_db.url) == head_revision()


def test_upgrade_refuses_airflows_metadata_database(empty_db: Db):
    engine = create_engine(empty_db.url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE dag_run (id integer)"))
    engine.dispose()

    with pytest.raises(ConfigurationError, match="its own database"):
        upgrade(empty_db.url)
    assert current_revision(empty_db.url) is None


# --- inbound items -------------------------------------------------------------------------------


def test_recording_the_same_bytes_twice_gives_one_item(ledger: Ledger):
    first = ledger.record_inbound(
        kind="hl7_file",
        source="dpi",
        finess_geo=GEO_A,
        original_ref="a.hl7",
        checksum=SHA_A,
        size=120,
        storage_path="/work/a.hl7",
        actor="test",
    )
    again = ledger.record_inbound(
        kind="hl7_file",
        source="dpi",
        finess_geo=GEO_A,
        original_ref="a-copy.hl7",
        checksum=SHA_A.upper(),
        size=120,
        storage_path="/work/a-copy.hl7",
        actor="test",
    )
    assert first == (first[0], True)
    assert again == (first[0], False)

    item = ledger.get_inbound(first[0])
    assert (item.status, item.original_ref, item.storage_path) == (
        "received",
        "a.hl7",
        "/work/a.hl7",
    )
    assert ledger.already_seen("dpi", "hl7_file", SHA_A) == item
    assert ledger.already_seen("sgl", "hl7_file", SHA_A) is None
    assert [e.kind for e in ledger.events(inbound_item_id=item.id)] == ["inbound.recorded"]

    # Same bytes from another source, or as another kind, are other items.
    assert ledger.record_inbound(kind="hl7_file", source="sgl", checksum=SHA_A)[1] is True
    assert ledger.record_inbound(kind="mail", source="dpi", checksum=SHA_A)[1] is True


def test_concurrent_recordings_of_the_same_bytes_create_one_item(ledger: Ledger):
    start = threading.Barrier(6)

    def record(_: int) -> tuple[int, bool]:
        start.wait()
        return ledger.record_inbound(kind="mail", source="bal_imagerie", checksum=SHA_B)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(record, range(6)))
    assert len({item_id for item_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_a_status_change_is_recorded_with_its_event(ledger: Ledger):
    file_id, _ = ledger.record_inbound(kind="hl7_file", source="dpi", checksum=SHA_A)
    message_id, _ = ledger.record_inbound(
        kind="hl7_message",
        source="dpi",
        checksum=SHA_B,
        parent_id=file_id,
        control_id="MSG0001",
        message_type="MDM^T02^MDM_T02",
    )
    ledger.set_inbound_status(message_id, "processing", actor="dag/task/run")
    item = ledger.set_inbound_status(
        message_id,
        "rejected",
        reason_code="HL7_NO_MSH",
        reason_text="MSH-10 missing",
        storage_path="/quarantine/a.hl7",
        actor="dag/task/run",
    )
    assert (item.status, item.reason_code, item.storage_path) == (
        "rejected",
        "HL7_NO_MSH",
        "/quarantine/a.hl7",
    )
    assert item.control_id == "MSG0001"  # kept when not given

    trail = ledger.events(inbound_item_id=message_id, kind="inbound.status")
    assert [(e.detail["from"], e.detail["to"]) for e in trail] == [
        ("received", "processing"),
        ("processing", "rejected"),
    ]
    assert trail[-1].actor == "dag/task/run"
    assert trail[-1].detail["reason_code"] == "HL7_NO_MSH"

    assert ledger.find_inbound(source="dpi", control_id="MSG0001") == [item]
    assert [i.id for i in ledger.find_inbound(parent_id=file_id)] == [message_id]
    done = ledger.set_inbound_status(message_id, "done")
    assert done.reason_code is None  # the reason describes the current status

    with pytest.raises(ValueError):
        ledger.set_inbound_status(message_id, "lost")
    with pytest.raises(LookupError):
        ledger.set_inbound_status(10**9, "done")


# --- documents -----------------------------------------------------------------------------------


def test_a_document_is_recorded_once_and_keeps_only_the_ins(ledger: Ledger):
    first = record_document(
        ledger,
        "1.2.250.1.999.1^1",
        set_id="1.2.250.1.999.2^1",
        version=1,
        type_code=IMG,
        type_display="CR d'imagerie médicale",
        finess_geo=GEO_A,
        effective_time=datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
        ins_matricule=INS,
        ins_oid=INS_OID_TEST,
        ins_qualified=True,
        content_sha256=SHA_B,
    )
    document_id = first.document_id
    # Another message naming the same document (no content of its own) never rewrites it.
    assert record_document(ledger, "1.2.250.1.999.1^1", type_code=BIO).document_id == document_id
    document = ledger.get_document(document_id)
    assert (document.type_code, document.ins_matricule, document.ins_qualified) == (
        IMG,
        INS,
        True,
    )
    assert document.inbound_item_id == first.item_id
    assert INS not in repr(document)  # logging a document never logs the INS

    replacement_id = record_document(
        ledger,
        "1.2.250.1.999.1^2",
        set_id="1.2.250.1.999.2^1",
        version=2,
        replaces_unique_id="1.2.250.1.999.1^1",
    ).document_id
    assert ledger.get_document(replacement_id).replaces_document_id == document_id
    assert ledger.find_document("1.2.250.1.999.1^2").id == replacement_id
    assert ledger.find_document("unknown^1") is None
    assert [e.kind for e in ledger.events(document_id=document_id)] == ["document.recorded"]


# --- deliveries ----------------------------------------------------------------------------------


def test_a_delivery_is_created_once_with_a_fixed_request_id(ledger: Ledger):
    uid = "1.2.250.1.999.1^1"
    document_id = a_document(
        ledger, uid, ins_matricule=INS, ins_oid=INS_OID_TEST, ins_qualified=True
    )

    first = record_document(ledger, uid, "dmp", ("mss_professional", "Dr.Martin@Hop.MSSante.fr"))
    assert first.document_id == document_id and first.created == 2
    dmp_id, mail_id = first.delivery_ids
    again = record_document(ledger, uid, ("mss_professional", " dr.martin@hop.mssante.fr"), "dmp")
    assert (again.delivery_ids, again.created) == ((mail_id, dmp_id), 0)
    replacing = record_document(ledger, uid, "dmp", action="replace")
    assert replacing.created == 1 and replacing.delivery_id != dmp_id

    first = ledger.get_delivery(dmp_id)
    assert (first.status, first.attempts, first.qualified_ins) == ("pending", 0, True)
    assert (first.finess_geo, first.type_code) == (GEO_A, BIO)
    assert first.next_attempt_at is not None
    ledger.mark_delivery(dmp_id, "pending", attempted=True, reason_code="DMP_UNREACHABLE")
    assert ledger.get_delivery(dmp_id).request_id == first.request_id
    assert len({d.request_id for d in ledger.deliveries_of(document_id)}) == 3

    held_id = record_document(ledger, uid, "mss_patient", status="held").delivery_id
    assert ledger.get_delivery(held_id).next_attempt_at is None

    with pytest.raises(ValueError, match="needs the recipient"):
        record_document(ledger, uid, "mss_professional")
    with pytest.raises(ValueError, match="INS"):
        record_document(ledger, uid, ("mss_patient", f"{INS}@patient.mssante.fr"))


def test_the_database_itself_refuses_a_second_identical_delivery(ledger: Ledger):
    document_id = record_document(ledger, "1.2.250.1.999.1^1", "dmp").document_id
    insert = text(
        "INSERT INTO delivery (document_id, channel, action, status, next_attempt_at, request_id,"
        " historical) VALUES (:d, :channel, 'new', 'pending', now(), gen_random_uuid(), :old)"
    )
    with pytest.raises(IntegrityError), ledger.engine.begin() as conn:
        # NULL recipients are not distinct
        conn.execute(insert, {"d": document_id, "channel": "dmp", "old": False})
    with pytest.raises(IntegrityError, match="historical"), ledger.engine.begin() as conn:
        # only DMP deliveries can be historical (backfill)
        conn.execute(insert, {"d": document_id, "channel": "mss_patient", "old": True})


def test_marking_a_delivery_counts_attempts_and_never_resends(ledger: Ledger):
    delivery_id = record_document(ledger, "1.2.3^9", "dmp").delivery_id
    retry_at = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

    waiting = ledger.mark_delivery(
        delivery_id,
        "pending",
        attempted=True,
        next_attempt_at=retry_at,
        reason_code="TRANSIENT",
        reason_text="DMP endpoint unreachable",
        actor="dmp/submit/r1",
    )
    assert (waiting.attempts, waiting.next_attempt_at, waiting.reason_code) == (
        1,
        retry_at,
        "TRANSIENT",
    )
    assert not ledger.delivery_done("1.2.3^9", "dmp")

    sent = ledger.mark_delivery(delivery_id, "sent", partner_ref="DMP-REQ-1", actor="dmp/submit/r2")
    assert (sent.status, sent.attempts, sent.partner_ref, sent.reason_code) == (
        "sent",
        2,
        "DMP-REQ-1",
        None,
    )
    assert sent.sent_at is not None and sent.next_attempt_at is None
    assert ledger.delivery_done("1.2.3^9", "dmp")
    assert not ledger.delivery_done("1.2.3^9", "dmp", action="delete")

    assert ledger.mark_delivery(delivery_id, "sent", partner_ref="DMP-REQ-1") == sent  # replay
    # A second acceptance under another reference is kept in the trail, not in the delivery.
    assert ledger.mark_delivery(delivery_id, "sent", partner_ref="DMP-REQ-2") == sent
    (again,) = ledger.events(delivery_id=delivery_id, kind="delivery.sent_again")
    assert again.detail == {"partner_ref": "DMP-REQ-2", "first_partner_ref": "DMP-REQ-1"}
    for status in ("pending", "held"):
        with pytest.raises(ValueError, match="no second send"):
            ledger.mark_delivery(delivery_id, status)

    trail = ledger.events(delivery_id=delivery_id, kind="delivery.status")
    assert len(ledger.events(delivery_id=delivery_id, kind="delivery.created")) == 1
    assert [(e.detail["from"], e.detail["to"]) for e in trail] == [
        ("pending", "pending"),
        ("pending", "sent"),
    ]
    assert trail[-1].detail["partner_ref"] == "DMP-REQ-1"


def test_a_late_bounce_turns_a_sent_mail_into_a_failure(ledger: Ledger):
    delivery_id = record_document(
        ledger, "1.2.3^10", ("mss_professional", "dr@hop.mssante.fr")
    ).delivery_id
    ledger.mark_delivery(delivery_id, "sent", partner_ref="<m1@pfi>")
    bounced = ledger.mark_delivery(
        delivery_id, "failed", attempted=False, reason_code="SMTP_5.1.1", reason_text="DSN"
    )
    assert (bounced.status, bounced.attempts, bounced.partner_ref) == ("failed", 1, "<m1@pfi>")
    assert not ledger.delivery_done("1.2.3^10", "mss_professional", "dr@hop.mssante.fr")


def _due_deliveries(ledger: Ledger, count: int, channel: str = "dmp") -> list[int]:
    ids = []
    for index in range(count):
        due = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=index)
        ids.append(
            record_document(ledger, f"1.2.250.1.999.7^{index}", channel, due=due).delivery_id
        )
    return ids


def test_two_workers_claiming_at_once_never_get_the_same_delivery(ledger: Ledger, migrated_db: Db):
    ids = _due_deliveries(ledger, 20)
    # Another channel: not taken.
    record_document(ledger, "other^1", "mss_patient", due=datetime(2026, 1, 1, tzinfo=UTC))
    now = datetime(2026, 2, 1, tzinfo=UTC)
    workers = [Ledger.from_url(migrated_db.url) for _ in range(2)]  # two connections, two pools
    start = threading.Barrier(2)

    def claim(worker: Ledger) -> list[int]:
        start.wait()
        return [d.id for d in worker.claim_due_deliveries("dmp", now, 8, actor="worker")]

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(claim, workers)
    for worker in workers:
        worker.dispose()
    assert len(first) == len(second) == 8
    assert not set(first) & set(second)

    rest = [d.id for d in ledger.claim_due_deliveries("dmp", now, 50)]
    assert sorted(first + second + rest) == ids  # each due delivery was taken exactly once
    assert ledger.claim_due_deliveries("dmp", now, 50) == []  # all leased


def test_a_claim_skips_rows_locked_by_another_worker_without_waiting(
    ledger: Ledger, migrated_db: Db
):
    ids = _due_deliveries(ledger, 4)
    other = psycopg2.connect(migrated_db.url)
    try:
        with other.cursor() as cur:  # another worker's claim, not yet committed
            cur.execute("SELECT id FROM delivery WHERE id = ANY(%s) FOR UPDATE", (ids[:2],))
        # Without SKIP LOCKED the claim would wait for the lock and hit lock_timeout.
        impatient = Ledger.from_url(migrated_db.url, connect_args={"options": "-c lock_timeout=5s"})
        claimed = impatient.claim_due_deliveries("dmp", datetime(2026, 2, 1, tzinfo=UTC), 10)
        impatient.dispose()
    finally:
        other.rollback()
        other.close()
    assert [d.id for d in claimed] == ids[2:]


def test_a_claim_is_a_lease_that_expires(ledger: Ledger):
    (delivery_id,) = _due_deliveries(ledger, 1)
    now = datetime(2026, 2, 1, tzinfo=UTC)
    lease = timedelta(minutes=5)

    (claimed,) = ledger.claim_due_deliveries("dmp", now, 10, lease=lease, actor="w1")
    assert (claimed.id, claimed.next_attempt_at, claimed.claimed_by) == (
        delivery_id,
        now + lease,
        "w1",
    )
    assert ledger.claim_due_deliveries("dmp", now + lease - timedelta(seconds=1), 10) == []
    (again,) = ledger.claim_due_deliveries("dmp", now + lease, 10, actor="w2")
    assert (again.id, again.request_id, again.claimed_by) == (delivery_id, claimed.request_id, "w2")
    assert [e.actor for e in ledger.events(delivery_id=delivery_id, kind="delivery.claimed")] == [
        "w1",
        "w2",
    ]


def test_held_and_sent_deliveries_are_never_claimed(ledger: Ledger):
    record_document(ledger, "held^1", "dmp", status="held")
    sent_id = record_document(ledger, "sent^1", "dmp").delivery_id
    ledger.mark_delivery(sent_id, "sent")
    assert ledger.claim_due_deliveries("dmp", datetime(2100, 1, 1, tzinfo=UTC), 10) == []


def test_the_trail_tells_which_sent_mails_wait_for_an_answer_and_what_was_traced(ledger: Ledger):
    mss = ("mss_professional", "mss_patient")
    asked, answered, unasked = record_document(
        ledger,
        "1.2.3^20",
        ("mss_professional", "a@hop.mssante.fr"),
        ("mss_professional", "b@hop.mssante.fr"),
        "mss_patient",
    ).delivery_ids
    dmp = record_document(ledger, "1.2.3^20", "dmp").delivery_id
    sent_at = datetime(2026, 1, 10, 10, 0, tzinfo=UTC)
    for delivery_id in (asked, answered, unasked, dmp):
        ledger.mark_delivery(delivery_id, "sent", at=sent_at)
        detail = {"dsn_requested": delivery_id != unasked}
        ledger.add_event("mss.sent", delivery_id=delivery_id, detail=detail)
    ledger.add_event("mss.zam", delivery_id=answered, detail={"event": "Z02"})
    ledger.add_event("mss.zam", delivery_id=asked, detail={"event": "Z03"})  # not the answer

    def waiting(before: datetime) -> list[int]:
        found = ledger.sent_without_answer(
            mss,
            sent_before=before,
            asked=("mss.sent", {"dsn_requested": True}),
            answer=("mss.zam", {"event": "Z02"}),
        )
        return [d.id for d in found]

    assert waiting(sent_at + timedelta(hours=1)) == [asked]
    assert waiting(sent_at) == []

    request_id = ledger.get_delivery(asked).request_id
    assert ledger.delivery_by_request_id(request_id, mss) == ledger.get_delivery(asked)
    assert ledger.delivery_by_request_id(request_id, ("dmp",)) is None

    (traced,) = ledger.delivery_events(("mss.zam",), channels=mss, recipient=" A@Hop.MSSante.fr")
    assert (traced.delivery_id, traced.detail, traced.unique_id, traced.recipient) == (
        asked,
        {"event": "Z03"},
        "1.2.3^20",
        "a@hop.mssante.fr",
    )
    sent_lines = ledger.delivery_events(("mss.sent",), channels=mss)
    assert [line.delivery_id for line in sent_lines] == [asked, answered, unasked]  # not the DMP's
    assert ledger.delivery_events(("mss.sent",), channels=mss, until=sent_lines[0].at) == []
    assert len(ledger.delivery_events(("mss.sent",), channels=mss, channel="mss_patient")) == 1


# --- event trail ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE event SET kind = 'rewritten'",
        "UPDATE event SET detail = '{}'::jsonb WHERE id = :id",
        "DELETE FROM event WHERE id = :id",
        "TRUNCATE event",
    ],
)
def test_the_event_trail_is_append_only(ledger: Ledger, statement: str):
    event_id = ledger.add_event("operator.note", actor="cli", detail={"ticket": "INC-42"})
    with pytest.raises(DBAPIError, match="append-only"), ledger.engine.begin() as conn:
        conn.execute(text(statement), {"id": event_id})
    (kept,) = ledger.events(kind="operator.note")
    assert (kept.id, kept.detail) == (event_id, {"ticket": "INC-42"})


def test_deleting_a_row_the_trail_points_to_is_refused(ledger: Ledger):
    item_id, _ = ledger.record_inbound(kind="mail", source="bal", checksum=SHA_A)
    with pytest.raises(IntegrityError), ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM inbound_item WHERE id = :id"), {"id": item_id})


# --- statistics ----------------------------------------------------------------------------------

JAN, FEB = date(2026, 1, 1), date(2026, 2, 1)


def at(day: int, month: int = 1) -> datetime:
    return datetime(2026, month, day, 10, 0, tzinfo=UTC)


def _sum(counts: list[MonthlyCount], **where: object) -> int:
    def keep(row: MonthlyCount) -> bool:
        for name, wanted in where.items():
            value = getattr(row, name)
            if isinstance(wanted, tuple | set | frozenset):
                if value not in wanted:
                    return False
            elif value != wanted:
                return False
        return True

    return sum(row.count for row in counts if keep(row))


FAILED = ("failed", "refused")

#: The numerators of SC.STAT/ES.02 (spec-digest §7) as filters over monthly_counts rows: what the
#: statistics module sums per FINESS géographique × document type × month.
INDICATORS: dict[str, dict[str, object]] = {
    "dmp_flow_succeeded": {"channel": "dmp", "historical": False, "status": "sent"},
    "dmp_flow_failed": {"channel": "dmp", "historical": False, "status": FAILED},
    "dmp_historical_succeeded": {"channel": "dmp", "historical": True, "status": "sent"},
    "mss_ps_succeeded": {"channel": "mss_professional", "status": "sent"},
    "mss_ps_failed": {"channel": "mss_professional", "status": FAILED},
    "mss_ps_qualified_ins_succeeded": {
        "channel": "mss_professional",
        "qualified_ins": True,
        "status": "sent",
    },
    "mss_ps_qualified_ins_failed": {
        "channel": "mss_professional",
        "qualified_ins": True,
        "status": FAILED,
    },
    "mss_ps_updated_sent": {"channel": "mss_professional", "action": "replace", "status": "sent"},
    "mss_ps_deleted_sent": {"channel": "mss_professional", "action": "delete", "status": "sent"},
    "mss_patient_succeeded": {"channel": "mss_patient", "status": "sent"},
    "mss_patient_failed": {"channel": "mss_patient", "status": FAILED},
    "mails_to_dpi_succeeded": {"channel": "dpi", "status": "sent"},
    "mails_to_dpi_failed": {"channel": "dpi", "status": FAILED},
    "update_or_delete_mails_received": {"channel": "dpi", "action": ("replace", "delete")},
}


def _deliver(
    ledger: Ledger,
    document_id: int,
    channel: str,
    outcome: str,
    when: datetime,
    recipient: str | None = None,
    action: str = "new",
    historical: bool = False,
) -> None:
    unique_id = ledger.get_document(document_id).unique_id
    delivery_id = record_document(
        ledger, unique_id, (channel, recipient), action=action
    ).delivery_id
    if historical:  # no writer records backfill deliveries yet; the statistics count them already
        with ledger.engine.begin() as conn:
            conn.execute(
                update(delivery).where(delivery.c.id == delivery_id).values(historical=True)
            )
    ledger.mark_delivery(delivery_id, outcome, at=when, reason_code=None)


def test_monthly_counts_give_every_indicator_of_the_statistics(ledger: Ledger):
    qualified = {"ins_matricule": INS, "ins_oid": INS_OID_TEST, "ins_qualified": True}
    dr1, dr2 = "dr.un@hop.mssante.fr", "dr.deux@hop.mssante.fr"

    cr1 = a_document(ledger, "cr^1", **qualified)
    _deliver(ledger, cr1, "dmp", "sent", at(10))
    _deliver(ledger, cr1, "mss_professional", "sent", at(10), dr1)
    _deliver(ledger, cr1, "mss_professional", "failed", at(11), dr2)
    _deliver(ledger, cr1, "mss_patient", "sent", at(10))
    _deliver(ledger, cr1, "dmp", "sent", at(25), action="delete")
    _deliver(ledger, cr1, "mss_professional", "sent", at(25), dr1, action="delete")

    cr2 = a_document(ledger, "cr^2")  # no INS: the DMP refuses it, professionals still get it
    _deliver(ledger, cr2, "dmp", "refused", at(12))
    _deliver(ledger, cr2, "mss_professional", "sent", at(12), dr1)
    _deliver(ledger, cr2, "mss_patient", "failed", at(12))

    old = a_document(ledger, "old^1", **qualified)  # backfill of a 2022 document
    _deliver(ledger, old, "dmp", "sent", at(15), historical=True)

    cr1_v2 = a_document(ledger, "cr^1v2", replaces_unique_id="cr^1", **qualified)
    _deliver(ledger, cr1_v2, "dmp", "sent", at(20), action="replace")
    _deliver(ledger, cr1_v2, "mss_professional", "sent", at(20), dr1, action="replace")

    for unique_id, action, outcome in [
        ("mail^1", "new", "sent"),
        ("mail^2", "new", "refused"),
        ("mail^3", "replace", "sent"),
        ("mail^4", "delete", "failed"),
    ]:
        _deliver(ledger, a_document(ledger, unique_id), "dpi", outcome, at(5), action=action)

    other_site = a_document(ledger, "img^1", type_code=IMG, finess_geo=GEO_B, **qualified)
    _deliver(ledger, other_site, "dmp", "sent", at(10))
    # 23:30 UTC on 31 January is 00:30 on 1 February in Paris: a February delivery.
    _deliver(ledger, other_site, "mss_patient", "sent", datetime(2026, 1, 31, 23, 30, tzinfo=UTC))
    record_document(ledger, "pending^1", "dmp")  # not sent yet: no outcome

    january = ledger.monthly_counts(JAN, FEB)
    assert {row.month for row in january} == {JAN}
    site_a_bio = [row for row in january if (row.finess_geo, row.type_code) == (GEO_A, BIO)]
    found = {name: _sum(site_a_bio, **where) for name, where in INDICATORS.items()}
    assert found == {
        "dmp_flow_succeeded": 3,  # new, delete and replace of cr^1
        "dmp_flow_failed": 1,
        "dmp_historical_succeeded": 1,
        "mss_ps_succeeded": 4,
        "mss_ps_failed": 1,
        "mss_ps_qualified_ins_succeeded": 3,
        "mss_ps_qualified_ins_failed": 1,
        "mss_ps_updated_sent": 1,
        "mss_ps_deleted_sent": 1,
        "mss_patient_succeeded": 1,
        "mss_patient_failed": 1,
        "mails_to_dpi_succeeded": 2,
        "mails_to_dpi_failed": 2,
        "update_or_delete_mails_received": 2,
    }
    site_b = [row for row in january if row.finess_geo == GEO_B]
    assert [(r.type_code, r.channel, r.status, r.count) for r in site_b] == [
        (IMG, "dmp", "sent", 1),
    ]

    february = ledger.monthly_counts(FEB, date(2026, 3, 1))
    assert [(r.finess_geo, r.channel, r.status, r.count) for r in february] == [
        (GEO_B, "mss_patient", "sent", 1),
    ]
    assert ledger.monthly_counts(date(2025, 1, 1), JAN) == []


def test_monthly_inbound_counts_show_what_was_received(ledger: Ledger):
    ok, _ = ledger.record_inbound(kind="mail", source="bal", finess_geo=GEO_A, checksum=SHA_A)
    bad, _ = ledger.record_inbound(kind="mail", source="bal", finess_geo=GEO_A, checksum=SHA_B)
    ledger.set_inbound_status(ok, "done")
    ledger.set_inbound_status(bad, "rejected", reason_code="XDM_BROKEN_ZIP")
    this_month = ledger.get_inbound(ok).received_at.astimezone(UTC).date().replace(day=1)
    counts = ledger.monthly_inbound_counts(
        this_month - timedelta(days=1), this_month + timedelta(40)
    )
    assert {(row.source, row.kind, row.status, row.count) for row in counts} == {
        ("bal", "mail", "done", 1),
        ("bal", "mail", "rejected", 1),
    }


def test_a_delivery_remembers_the_message_that_asked_for_it(ledger: Ledger):
    first = record_document(ledger, "1.2.250.1.999.1^7", "dmp")
    later = record_document(ledger, "1.2.250.1.999.1^7", "dmp", action="delete")

    assert later.document_id == first.document_id and later.item_id != first.item_id
    assert ledger.get_document(first.document_id).inbound_item_id == first.item_id
    assert ledger.get_delivery(first.delivery_id).inbound_item_id == first.item_id
    assert ledger.get_delivery(later.delivery_id).inbound_item_id == later.item_id


# --- one message's outcome in one transaction ----------------------------------------------------


def _message(ledger: Ledger, checksum: str = SHA_A, **fields):
    values = {
        "source": "dpi",
        "finess_geo": GEO_A,
        "original_ref": "1",
        "checksum": checksum,
        "size": 300,
        "control_id": "MSG1",
        "message_type": "ORU^R01^ORU_R01",
        "status": "done",
        "documents": [
            {
                "unique_id": "1.2.250.1.999.1^20",
                "type_code": BIO,
                "finess_geo": GEO_A,
                "ins_matricule": INS,
                "ins_oid": INS_OID_TEST,
                "ins_qualified": True,
                "content_sha256": SHA_A,
            }
        ],
        "deliveries": [
            ("dmp", None, "pending"),
            ("mss_professional", "Dr.Who@Hopital.MSSante.fr", "pending"),
            ("mss_patient", None, "held"),
        ],
        "actor": "test",
    } | fields
    return ledger.record_message(**values)


def test_a_message_is_recorded_with_its_documents_deliveries_and_events_once(ledger: Ledger):
    parent, _ = ledger.record_inbound(kind="hl7_file", source="dpi", checksum=SHA_B)
    first = _message(ledger, parent_id=parent)

    assert first.created and not first.unchanged and not first.content_conflict
    item = first.item
    assert (item.kind, item.status, item.parent_id, item.control_id) == (
        "hl7_message",
        "done",
        parent,
        "MSG1",
    )
    [document_id] = first.document_ids
    assert ledger.get_document(document_id).inbound_item_id == item.id
    deliveries = ledger.deliveries_of(document_id)
    assert first.deliveries_created == 3
    assert [
        (d.channel, d.recipient, d.status, d.qualified_ins, d.type_code) for d in deliveries
    ] == [
        ("dmp", None, "pending", True, BIO),
        ("mss_professional", "dr.who@hopital.mssante.fr", "pending", True, BIO),
        ("mss_patient", None, "held", True, BIO),
    ]
    assert all(d.inbound_item_id == item.id and d.finess_geo == GEO_A for d in deliveries)
    assert deliveries[0].next_attempt_at is not None and deliveries[2].next_attempt_at is None
    assert [e.kind for e in ledger.events(inbound_item_id=item.id)] == [
        "inbound.recorded",
        "document.recorded",
        "inbound.status",
    ]
    status_event = ledger.events(inbound_item_id=item.id, kind="inbound.status")[0]
    assert (status_event.detail["from"], status_event.detail["to"]) == ("received", "done")
    for d in deliveries:
        assert [e.kind for e in ledger.events(delivery_id=d.id)] == ["delivery.created"]

    # A replay changes nothing and writes no event.
    events_before = len(ledger.events())
    again = _message(ledger, parent_id=parent)
    assert (again.created, again.unchanged, again.item.id) == (False, True, item.id)
    assert again.deliveries_created == 0
    assert len(ledger.events()) == events_before
    assert [d.request_id for d in ledger.deliveries_of(document_id)] == [
        d.request_id for d in deliveries
    ]


def test_an_unfinished_message_item_is_finished_by_the_next_recording(ledger: Ledger):
    item_id, _ = ledger.record_inbound(kind="hl7_message", source="dpi", checksum=SHA_A)
    outcome = _message(ledger)
    assert (outcome.created, outcome.unchanged, outcome.item.id) == (False, False, item_id)
    assert outcome.item.status == "done" and outcome.deliveries_created == 3
    [status_event] = ledger.events(inbound_item_id=item_id, kind="inbound.status")
    assert status_event.detail["from"] == "received"


def test_a_refused_message_writes_no_document(ledger: Ledger):
    outcome = _message(ledger, status="rejected", reason_code="INS_MISSING", reason_text="no INS")
    assert (outcome.item.status, outcome.item.reason_code) == ("rejected", "INS_MISSING")
    assert outcome.document_ids == () and ledger.find_document("1.2.250.1.999.1^20") is None


def test_a_document_id_reused_with_another_content_refuses_the_whole_message(ledger: Ledger):
    a_document(ledger, "1.2.250.1.999.1^20", content_sha256=SHA_B)
    documents = [
        {"unique_id": "1.2.250.1.999.1^21", "content_sha256": SHA_A},
        {"unique_id": "1.2.250.1.999.1^20", "content_sha256": SHA_A},
    ]
    outcome = _message(
        ledger, documents=documents, conflict_reason=("DOC_ID_REUSED", "document id reused")
    )
    assert outcome.content_conflict and outcome.created
    assert (outcome.item.status, outcome.item.reason_code) == ("rejected", "DOC_ID_REUSED")
    assert ledger.find_document("1.2.250.1.999.1^21") is None  # undone with the rest
    assert ledger.deliveries_of(ledger.find_document("1.2.250.1.999.1^20").id) == []
    assert [e.kind for e in ledger.events(inbound_item_id=outcome.item.id)] == [
        "inbound.recorded",
        "inbound.status",
    ]

    # A deletion names the existing document: no content comparison.
    deletion = _message(ledger, SHA_B, documents=documents[1:], action="delete")
    assert deletion.item.status == "done" and not deletion.content_conflict
    assert [(d.action, d.channel) for d in ledger.deliveries_of(deletion.document_ids[0])][0] == (
        "delete",
        "dmp",
    )


def test_a_constraint_violated_while_recording_a_message_writes_nothing(ledger: Ledger):
    documents = [
        {"unique_id": "1.2.250.1.999.1^30", "content_sha256": SHA_A},
        {"unique_id": "1.2.250.1.999.1^31", "ins_matricule": "NOT-AN-INS", "ins_oid": "1.2"},
    ]
    with pytest.raises(IntegrityError):
        _message(ledger, documents=documents)
    assert ledger.find_inbound(kind="hl7_message") == []
    assert ledger.find_document("1.2.250.1.999.1^30") is None
    assert ledger.events() == []


def test_a_message_recorded_by_another_worker_during_a_content_conflict_keeps_its_outcome(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
):
    a_document(ledger, "1.2.250.1.999.1^20", content_sha256=SHA_B)
    conflicting = [{"unique_id": "1.2.250.1.999.1^20", "content_sha256": SHA_A}]
    original = Ledger._record_message
    calls = []

    def other_worker_first(self, conn, item, status, *args):
        calls.append(status)
        if status == "rejected":  # between the undone transaction and the refusal
            with self.engine.begin() as other:
                original(self, other, item, "done", None, None, (), [], "new", "other")
        return original(self, conn, item, status, *args)

    monkeypatch.setattr(Ledger, "_record_message", other_worker_first)
    outcome = _message(ledger, documents=conflicting)

    assert calls == ["done", "rejected"]
    assert outcome.unchanged and not outcome.content_conflict
    assert (outcome.item.status, outcome.item.reason_code) == ("done", None)


def test_a_deletion_received_before_its_creation_does_not_make_the_creation_a_reuse(
    ledger: Ledger,
):
    document = {"unique_id": "1.2.250.1.999.1^40", "content_sha256": SHA_B}
    deletion = _message(ledger, SHA_B, documents=[document], action="delete")
    [document_id] = deletion.document_ids
    assert ledger.get_document(document_id).content_sha256 is None

    creation = _message(ledger, SHA_A, documents=[document | {"content_sha256": SHA_A}])

    assert creation.item.status == "done" and not creation.content_conflict
    assert ledger.get_document(document_id).content_sha256 == SHA_A
    actions = {(d.channel, d.action) for d in ledger.deliveries_of(document_id)}
    assert {("dmp", "delete"), ("dmp", "new")} <= actions
    other = _message(ledger, SHA_C, documents=[document | {"content_sha256": SHA_C}])
    assert other.content_conflict  # from now on, the creation's content is the reference


def test_a_received_mail_is_recorded_first_then_its_documents_and_dpi_deliveries(
    fresh_ledger: Ledger,
):
    """Receiving by MSSanté: the mail's item exists before anything is read from it; what it
    brings is then recorded on that same item, in one transaction (kind ``mail``)."""
    checksum = "c" * 64
    item_id, created = fresh_ledger.record_inbound(
        kind="mail", source="pfi", checksum=checksum, original_ref="7/42", actor="test"
    )
    assert created
    outcome = fresh_ledger.record_message(
        kind="mail",
        source="pfi",
        checksum=checksum,
        status="done",
        documents=[{"unique_id": "1.2.250.1.999.9^1", "type_code": "11488-4"}],
        deliveries=[("dpi", "pfi", "pending")],
        actor="test",
    )
    assert outcome.item.id == item_id and outcome.item.kind == "mail"
    assert outcome.item.status == "done" and outcome.created is False
    (document_id,) = outcome.document_ids
    (sent,) = fresh_ledger.deliveries_of(document_id)
    assert (sent.channel, sent.recipient, sent.status) == ("dpi", "pfi", "pending")
    again = fresh_ledger.record_message(
        kind="mail", source="pfi", checksum=checksum, status="done", actor="test"
    )
    assert again.unchanged
    with pytest.raises(ValueError):
        fresh_ledger.record_message(
            kind="hl7_file", source="pfi", checksum=checksum, status="done", actor="test"
        )


def test_a_document_first_received_by_mail_is_completed_by_the_producers_message(
    ledger: Ledger,
):
    """The same document received by MSSanté (no FINESS, INS not known as qualified), then sent
    by the hospital's own producer: its row is completed, never contradicted, and the producer's
    deliveries carry the FINESS and the qualified INS (the DMP refused it as unqualified)."""
    base = {"unique_id": "1.2.250.1.999.1^77", "content_sha256": SHA_A, "type_code": "18748-4"}
    mailed = {**base, "ins_matricule": "279035121518989", "ins_oid": "1.2.250.1.213.1.4.10"}
    received = _message(
        ledger, SHA_B, documents=[mailed], deliveries=[("dpi", "inbox#1", "pending")]
    )
    [document_id] = received.document_ids
    assert not ledger.get_document(document_id).ins_qualified

    produced = _message(
        ledger,
        SHA_C,
        documents=[mailed | {"finess_geo": "010000032", "ins_qualified": True, "type_code": "X"}],
    )

    assert list(produced.document_ids) == [document_id]
    row = ledger.get_document(document_id)
    assert (row.finess_geo, row.ins_qualified, row.type_code) == ("010000032", True, "18748-4")
    new = [d for d in ledger.deliveries_of(document_id) if d.inbound_item_id == produced.item.id]
    assert new and all(d.qualified_ins and d.finess_geo == "010000032" for d in new)

    other_patient = {**mailed, "ins_matricule": "1" * 15, "ins_qualified": True}
    _message(ledger, SHA_A, documents=[other_patient])  # a contradiction completes nothing
    assert ledger.get_document(document_id).ins_matricule == "279035121518989"
