"""The ``dmp`` delivery executor: ledger (real PostgreSQL) + devkit DMP endpoint (real TLS).

Deliveries are created as intake creates them (inbound message, document, ``dmp`` delivery);
``load_request`` is given the parsed sample (``pfi_devkit.samples``, twins of the official v2.1
MDM examples) instead of an archived file (intake's own tests cover the archive). Time is passed explicitly (``now``) to walk the retry schedule, never
slept through.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pfi.base.retry import RetryPolicy
from pfi.flows.dmp import DmpSender
from pfi.flows.queue import Outcome, follow_up_missed, record_outcome, run_due
from pfi.protocols.dmp.client import DmpClient, DmpEndpoints
from pfi.protocols.dmp.config import DmpConfig
from pfi.protocols.dmp.submission import entry_uuid
from pfi_devkit.samples import MDM_DEL, MDM_INIT, MDM_RPLC, MDM_V1_ID, MDM_V2_ID
from pfi_fixtures.ledger import record_document
from pfi_fixtures.partners import dmp_signer, dmp_tls
from pfi_fixtures.site import write_settings

pytestmark = pytest.mark.integration

INS, INS_OID = "279035121518989", "1.2.250.1.213.1.4.10"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
POLICY = RetryPolicy(
    first_delay=timedelta(minutes=2),
    max_delay=timedelta(minutes=30),
    give_up_after=timedelta(days=2),
)


@pytest.fixture
def site(tmp_path):
    from pfi.base.settings import load_settings

    return load_settings(write_settings(tmp_path, name="CH TEST"))


class World:
    """Ledger rows for sample messages, and the sender over them."""

    def __init__(self, ledger, dmp, test_pki, samples_dir, settings) -> None:
        self.ledger, self.dmp, self.samples_dir = ledger, dmp, samples_dir
        self.requests: dict[int, object] = {}
        self.client = DmpClient(
            DmpEndpoints(dmp.repository_url, dmp.registry_url), dmp_tls(test_pki)
        )
        self.sender = DmpSender(
            ledger,
            self.client,
            dmp_signer(test_pki),
            DmpConfig(source_id="1.2.250.1.71.4.2.2", structure_name="CH TEST", retry=POLICY),
            load_request=lambda _ledger, item_id: self.requests[item_id],
            settings=settings,
            actor="test",
        )
        self.outbound = settings.source("dpi").outbound_dir

    def message(
        self, path: str, *, qualified: bool = True, ack: bool = False, control_id: str = ""
    ) -> int:
        """Record a message as intake does; return the id of its ``dmp`` delivery."""
        from pfi.protocols.dmp.submission import DmpSubmission
        from pfi.protocols.hl7v2 import parse_message

        raw = (self.samples_dir / path).read_bytes()
        request = parse_message(raw)
        request = replace(request, flags=replace(request.flags, ack_reception=ack))
        if control_id:  # another MSH-10 than the sample's
            request = replace(request, header=replace(request.header, control_id=control_id))
        sub = DmpSubmission.from_request(request)
        recorded = record_document(
            self.ledger,
            sub.unique_id,
            "dmp",
            action=sub.action,
            due=T0,
            checksum=hashlib.sha256(raw).hexdigest(),
            control_id=request.control_id,
            message_type=request.message_type,
            ins_matricule=INS,
            ins_oid=INS_OID,
            ins_qualified=qualified,
            replaces_unique_id=sub.replaces_unique_id if sub.action == "replace" else None,
        )
        self.requests[recorded.item_id] = request
        return recorded.delivery_id

    def deletion(self, delivery_id: int) -> int:
        """Record a later message deleting that delivery's document, with the document's own
        request; return the id of its ``dmp`` delivery."""
        document = self.ledger.get_document(self.ledger.get_delivery(delivery_id).document_id)
        recorded = record_document(self.ledger, document.unique_id, "dmp", action="delete", due=T0)
        self.requests[recorded.item_id] = self.requests[document.inbound_item_id]
        return recorded.delivery_id

    def run(self, now: datetime, policy: RetryPolicy = POLICY) -> dict:
        return run_due(
            self.ledger,
            "dmp",
            self.sender,
            policy=policy,
            actor="test",
            now=now,
            after=self.sender.after,
        )

    def status(self, delivery_id: int) -> str:
        return self.ledger.get_delivery(delivery_id).status

    def zams(self) -> list[str]:
        return sorted(p.read_text("latin-1") for p in self.outbound.glob("ZAM_*.hl7"))


@pytest.fixture
def world(fresh_ledger, dmp_endpoint, test_pki, samples_dir, site):
    dmp_endpoint.require_signature_document = True
    dmp_endpoint.strict_metadata = True
    dmp_endpoint.verify_vihf = True
    w = World(fresh_ledger, dmp_endpoint, test_pki, samples_dir, site)
    yield w
    w.client.close()


def test_dmp_down_then_back_sends_each_version_once_in_order(world):
    initial = world.message(MDM_INIT)
    replacement = world.message(MDM_RPLC)
    world.dmp.set_mode("down")
    counts = world.run(T0)
    assert counts["claimed"] == 2 and counts["deferred"] == 2 and counts["sent"] == 0
    first = world.ledger.get_delivery(initial)
    assert (
        first.status == "pending" and first.attempts == 1 and first.reason_code == "DMP_UNREACHABLE"
    )
    # The replacement was not even tried: it waits for the version it replaces.
    waiting = world.ledger.get_delivery(replacement)
    assert waiting.attempts == 0 and waiting.reason_code == "DMP_WAITING_PREVIOUS"

    world.dmp.set_mode("normal")
    world.run(T0 + timedelta(minutes=5))
    world.run(T0 + timedelta(minutes=10))
    world.run(T0 + timedelta(minutes=20))
    assert (world.status(initial), world.status(replacement)) == ("sent", "sent")
    assert [s.transaction for s in world.dmp.accepted] == ["ITI-41", "ITI-41"]
    uids = [s.entries for s in world.dmp.accepted]
    assert [u[0] for u in uids] == [MDM_V1_ID, MDM_V2_ID]
    assert world.dmp.duplicates == 0
    sent = world.ledger.get_delivery(replacement)
    assert sent.partner_ref == entry_uuid(MDM_V2_ID)
    # Nothing is due any more: another run claims nothing and sends nothing.
    assert world.run(T0 + timedelta(hours=5))["claimed"] == 0
    assert len(world.dmp.accepted) == 2


def test_deletion_waits_for_nothing_once_published_and_deletes(world):
    initial = world.message(MDM_INIT)
    replacement = world.message(MDM_RPLC)
    world.run(T0)
    world.run(T0 + timedelta(minutes=2))
    assert world.status(replacement) == "sent"
    deletion_delivery = world.deletion(replacement)
    world.run(T0 + timedelta(minutes=3))
    assert world.status(deletion_delivery) == "sent" and world.status(initial) == "sent"
    assert world.dmp.accepted[-1].transaction == "ITI-57"
    assert world.dmp.entries[MDM_V2_ID].status.endswith("Deleted")


V1, V2 = MDM_V1_ID, MDM_V2_ID


def test_a_replacement_of_a_version_the_dmp_never_had_is_published_as_new(world):
    initial = world.message(MDM_INIT, qualified=False)  # refused: the DMP never had it
    replacement = world.message(MDM_RPLC)
    world.run(T0)
    world.run(T0 + timedelta(minutes=2))

    assert (world.status(initial), world.status(replacement)) == ("refused", "sent")
    assert world.dmp.entries[V2].replaces is None and world.dmp.entries[V2].status.endswith(
        "Approved"
    )
    (instead,) = world.ledger.events(delivery_id=replacement, kind="dmp.replaces_instead")
    assert instead.detail == {"action": "new", "replaces_known": False}


def test_a_replacement_names_the_last_version_the_dmp_holds(world):
    from sqlalchemy import update

    from pfi.ledger.schema import document

    world.message(MDM_INIT)
    world.run(T0)  # v1 is in the DMP
    # v1.5 replaced v1 but its DMP publication was refused; v2 names v1.5.
    refused = record_document(
        world.ledger,
        "1.2.250.1.999.1^v1.5",
        "dmp",
        action="replace",
        replaces_unique_id=V1,
        ins_matricule=INS,
        ins_oid=INS_OID,
        ins_qualified=True,
    ).delivery_id
    world.ledger.mark_delivery(refused, "refused", reason_code="XDSRegistryError", actor="test")
    replacement = world.message(MDM_RPLC)
    with world.ledger.engine.begin() as conn:
        conn.execute(
            update(document)
            .where(document.c.unique_id == V2)
            .values(replaces_unique_id="1.2.250.1.999.1^v1.5")
        )
    world.run(T0 + timedelta(minutes=2))

    assert world.status(replacement) == "sent"
    assert world.dmp.entries[V2].replaces == entry_uuid(V1)
    assert world.dmp.entries[V1].status.endswith("Deprecated")


def test_a_deletion_withdraws_a_publication_held_and_never_tried(world):
    initial = world.message(MDM_INIT, ack=True)
    world.ledger.mark_delivery(initial, "held", actor="operator")
    deletion = world.deletion(initial)

    world.run(T0)
    # The site releases its held deliveries, as `pfi dmp release` does: the withdrawn one is not.
    assert world.ledger.get_delivery(initial).status != "held"
    world.run(T0 + timedelta(minutes=5))

    withdrawn, refused = world.ledger.get_delivery(initial), world.ledger.get_delivery(deletion)
    assert (withdrawn.status, withdrawn.reason_code) == ("refused", "DMP_WITHDRAWN")
    assert (refused.status, refused.reason_code) == ("refused", "DMP_NOT_PUBLISHED")
    assert world.dmp.accepted == []


def test_unqualified_ins_is_refused_without_calling_the_dmp_and_acknowledged(world):
    delivery = world.message(MDM_INIT, qualified=False, ack=True)
    counts = world.run(T0)
    assert counts["refused"] == 1
    row = world.ledger.get_delivery(delivery)
    assert (row.status, row.reason_code) == ("refused", "DMP_INS_NOT_QUALIFIED")
    assert world.dmp.requests == 0
    (zam,) = world.zams()
    assert "ZAM^Z01^ZAM_Z01" in zam and "ACK_RECEPTION_DMP" in zam
    assert "|N^^expandedYes-NoIndicator" in zam and "DMP_INS_NOT_QUALIFIED" in zam
    assert INS not in zam


def test_forced_failure_is_refused_and_the_producer_gets_the_dmp_code(world):
    delivery = world.message(MDM_INIT, ack=True)
    world.dmp.set_mode("fail", error_code="DMPClosed")
    world.run(T0)
    row = world.ledger.get_delivery(delivery)
    assert (row.status, row.reason_code, row.attempts) == ("refused", "DMPClosed", 1)
    (zam,) = world.zams()
    assert "DMPClosed^" in zam and "DMP_ERROR_CODE" in zam
    # A refusal is final: nothing is retried.
    world.dmp.set_mode("normal")
    assert world.run(T0 + timedelta(hours=1))["claimed"] == 0
    assert world.dmp.entries == {}


def test_accepted_delivery_is_acknowledged_positively(world):
    world.message(MDM_INIT, ack=True)
    world.run(T0)
    (zam,) = world.zams()
    assert "|Y^^expandedYes-NoIndicator" in zam and "\rERR|" not in zam


def test_a_worker_dying_before_the_zam_leaves_it_to_the_next_run_once(world):
    delivery = world.message(MDM_INIT, ack=True)
    (claimed,) = world.ledger.claim_due_deliveries("dmp", now=T0, actor="test")
    record_outcome(world.ledger, claimed, world.sender(claimed), policy=POLICY, actor="test")
    assert world.zams() == []  # the worker died here, before its ZAM

    later = datetime.now(UTC) + timedelta(minutes=10)
    assert follow_up_missed(world.ledger, "dmp", world.sender.after, actor="test", now=later) == 1
    assert follow_up_missed(world.ledger, "dmp", world.sender.after, actor="test", now=later) == 0
    world.sender.after(world.ledger.get_delivery(delivery), Outcome.sent())  # a replay: no-op

    (zam,) = world.zams()
    assert "|Y^^expandedYes-NoIndicator" in zam
    assert len(world.ledger.events(delivery_id=delivery, kind="dmp.acknowledged")) == 1


def test_replayed_or_lost_answer_never_submits_twice(world):
    delivery = world.message(MDM_INIT)
    # The DMP accepted a first attempt whose answer was lost: the lot is already there.
    claimed = world.ledger.claim_due_deliveries("dmp", now=T0, actor="test")
    world.sender(claimed[0])
    world.run(T0 + timedelta(hours=1))  # the lease expired: claimed and sent again
    assert world.status(delivery) == "sent"
    assert world.dmp.duplicates == 1
    assert sum(1 for e in world.dmp.entries.values() if not e.is_signature) == 1
    # A cleared task replayed: the ledger says it is done, the DMP is not called.
    requests = world.dmp.requests
    outcome = world.sender(world.ledger.get_delivery(delivery))
    assert outcome.kind == "sent" and world.dmp.requests == requests
    events = [e.kind for e in world.ledger.events(delivery_id=delivery)]
    assert events.count("dmp.request") == 2


def test_a_deletion_is_acknowledged_to_the_message_that_asked_for_it(world):
    world.message(MDM_INIT)
    replacement = world.message(MDM_RPLC)
    deletion = world.message(MDM_DEL, ack=True, control_id="DEL-42")  # the replacement's document
    deletion_item = max(world.requests)
    assert (
        world.ledger.get_delivery(deletion).document_id
        == world.ledger.get_delivery(replacement).document_id
    )
    # What intake records with the delivery (migration 0002): the message that asked for it.
    assert world.ledger.get_delivery(deletion).inbound_item_id == deletion_item
    for minutes in (0, 1, 2, 3):
        world.run(T0 + timedelta(minutes=minutes))
    assert world.status(deletion) == "sent"
    (zam,) = world.zams()  # only the deletion message asked for a receipt
    assert "ZAM^Z01^ZAM_Z01" in zam and "^AckMetierZAM|DEL-42|Y^" in zam


def test_given_up_after_the_policy_age_is_acknowledged_as_failed(world):
    delivery = world.message(MDM_INIT, ack=True)
    world.dmp.set_mode("down")
    short = RetryPolicy(first_delay=timedelta(minutes=1), give_up_after=timedelta(minutes=30))
    created = world.ledger.get_delivery(delivery).created_at
    world.run(created + timedelta(hours=1), policy=short)
    row = world.ledger.get_delivery(delivery)
    assert (row.status, row.reason_code) == ("failed", "DELIVERY_GIVEN_UP")
    (zam,) = world.zams()
    assert "DELIVERY_GIVEN_UP" in zam


def test_a_deletion_whose_answer_was_lost_is_sent_not_refused_when_tried_again(world):
    world.message(MDM_INIT)
    replacement = world.message(MDM_RPLC)
    world.run(T0)
    world.run(T0 + timedelta(minutes=2))
    deletion = world.deletion(replacement)
    # The DMP deleted the document on a first attempt whose answer was lost.
    (claimed,) = world.ledger.claim_due_deliveries("dmp", now=T0 + timedelta(minutes=3))
    assert world.sender(claimed).kind == "sent"
    world.run(T0 + timedelta(hours=1))  # the lease expired: claimed and sent again
    stands = world.ledger.get_delivery(deletion)
    assert (stands.status, stands.reason_code) == ("sent", None)
    assert world.dmp.entries[MDM_V2_ID].status.endswith("Deleted")


def test_a_wrong_endpoint_url_keeps_the_document_queued_instead_of_refusing_it(world, test_pki):
    # A bare HTTP 404 (no SOAP answer: nothing serves that URL) is the connection's fault, like
    # a TLS failure: the operator fixes the URL and the queue resumes. The DMP never saw it.
    delivery = world.message(MDM_INIT, ack=True)
    wrong = DmpEndpoints(
        world.dmp.base_url + "/si-dmp-server/v3/repository", world.dmp.registry_url
    )
    with DmpClient(wrong, dmp_tls(test_pki)) as misconfigured:
        world.sender.client, world.sender.endpoints = misconfigured, wrong
        world.run(T0)
    row = world.ledger.get_delivery(delivery)
    assert (row.status, row.reason_code) == ("pending", "DMP_HTTP_404")
    assert world.zams() == []  # nothing final yet: no receipt
    world.sender.client = world.client
    world.sender.endpoints = DmpEndpoints(world.dmp.repository_url, world.dmp.registry_url)
    world.run(T0 + timedelta(minutes=5))
    assert world.status(delivery) == "sent" and len(world.dmp.accepted) == 1


def test_deleting_a_version_the_dmp_refused_is_refused_with_its_reason_not_sent(world):
    world.message(MDM_INIT)
    world.run(T0)
    replacement = world.message(MDM_RPLC)
    world.dmp.set_mode("fail", error_code="DMPClosed")
    world.run(T0 + timedelta(minutes=1))
    assert world.status(replacement) == "refused"
    world.dmp.set_mode("normal")
    deletion = world.message(MDM_DEL, ack=True, control_id="DEL-43")
    requests = world.dmp.requests
    world.run(T0 + timedelta(minutes=2))
    # The DMP never held that version: nothing to delete, said plainly, the DMP not called.
    row = world.ledger.get_delivery(deletion)
    assert (row.status, row.reason_code) == ("refused", "DMP_NOT_PUBLISHED")
    assert world.dmp.requests == requests
    (zam,) = world.zams()
    assert "^AckMetierZAM|DEL-43|N^" in zam and "DMP_NOT_PUBLISHED^" in zam


def test_a_replacement_given_up_waiting_for_its_held_previous_version_says_so(world):
    initial = world.message(MDM_INIT)
    world.ledger.mark_delivery(initial, "held", reason_code="DMP_HOLD", actor="test")
    replacement = world.message(MDM_RPLC, ack=True)
    short = RetryPolicy(first_delay=timedelta(minutes=1), give_up_after=timedelta(minutes=30))
    created = world.ledger.get_delivery(replacement).created_at
    world.run(created + timedelta(hours=1), policy=short)
    row = world.ledger.get_delivery(replacement)
    assert (row.status, row.reason_code, row.attempts) == ("failed", "DELIVERY_GIVEN_UP", 0)
    assert world.dmp.requests == 0
    # The DMP was never called: the receipt must not blame it as unreachable.
    (zam,) = world.zams()
    assert "DELIVERY_GIVEN_UP^" in zam and "injoignable" not in zam
    assert "^Version pr" in zam  # "Version précédente jamais parvenue au DMP"
