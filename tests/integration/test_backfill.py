"""Historical DMP backfill (:mod:`pfi.flows.backfill`): ledger (real PostgreSQL) + devkit DMP
endpoint (mutual TLS), what reached the DMP counted at the endpoint itself.

The historical documents are the project's sample imaging report at other dates
(:func:`pfi_devkit.samples.historical_message` / ``historical_cda``: official ANS *test*
identity, fictitious data); the run's logical date is fixed (:data:`REFERENCE`), so the 5-year
limit is 2021-12-01.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from pfi.base.errors import InvalidInput
from pfi.flows import backfill
from pfi.flows.dmp import submit_due_deliveries
from pfi.protocols.dmp.client import DmpClient, DmpEndpoints
from pfi.protocols.dmp.config import DmpConfig
from pfi_devkit.samples import (
    DOCUMENT_ROOT,
    PARIS,
    historical_cda,
    historical_message,
)
from pfi_fixtures.partners import dmp_signer, dmp_tls
from pfi_fixtures.site import drop_sample, ingest, write_settings

pytestmark = pytest.mark.integration

REFERENCE = date(2026, 12, 1)
RECENT = datetime(2024, 3, 4, 9, 30, tzinfo=PARIS)
OLD = datetime(2020, 6, 1, 9, 30, tzinfo=PARIS)  # before 2021-12-01: more than 5 years
FINESS = "010000032"
QUALIFIED = (101, 102, 103, 104, 105, 106, 107)
UNQUALIFIED = (201, 202)
TOO_OLD = (301,)
SENT_LIVE = 401  # sent by the live flow before the backfill


def uid(serial: int) -> str:
    return f"{DOCUMENT_ROOT}.{serial}.9"


@pytest.fixture
def site(tmp_path):
    from pfi.base.settings import load_settings

    return load_settings(write_settings(tmp_path, name="CH TEST"))


@pytest.fixture
def dmp(dmp_endpoint, test_pki):
    dmp_endpoint.require_signature_document = True
    dmp_endpoint.strict_metadata = True
    dmp_endpoint.verify_vihf = True
    client = DmpClient(
        DmpEndpoints(dmp_endpoint.repository_url, dmp_endpoint.registry_url), dmp_tls(test_pki)
    )
    yield dmp_endpoint, client, dmp_signer(test_pki)
    client.close()


CONFIG = DmpConfig(source_id="1.2.250.1.71.4.2.2", structure_name="CH TEST")


def _history(folder, *, hl7: bool = True):
    """The historical export: qualified recent, unqualified recent, too old, one already sent."""
    folder.mkdir(parents=True, exist_ok=True)
    for serial in (*QUALIFIED, SENT_LIVE):
        _write(folder, serial, RECENT, hl7=hl7)
    for serial in UNQUALIFIED:
        _write(folder, serial, RECENT, hl7=hl7, qualified=False)
    for serial in TOO_OLD:
        _write(folder, serial, OLD, hl7=hl7)
    return folder


def _write(folder, serial, when, *, hl7, qualified=True):
    folder.mkdir(parents=True, exist_ok=True)
    if hl7:
        data = historical_message(serial, when, qualified=qualified)
        (folder / f"{serial:04d}.hl7").write_bytes(data)
    else:
        assert qualified  # a CDA carries the INS only for a qualified identity
        (folder / f"{serial:04d}.xml").write_bytes(historical_cda(serial, when))


def _send_live(ledger, site, tmp_path, client, signer) -> None:
    """Document SENT_LIVE through the live flow: intake, then the DMP sender."""
    sample = tmp_path / "live.hl7"
    sample.write_bytes(historical_message(SENT_LIVE, RECENT))
    drop_sample(site.source("dpi").drop_dir, sample)
    ingest(ledger, site)
    counts = submit_due_deliveries(ledger, client, signer, CONFIG, settings=site, actor="test")
    assert counts["sent"] == 1


def _request(folder, kind="hl7", **extra):
    params = {
        "source_kind": kind,
        "folder": str(folder) if folder else None,
        "finess_geo": FINESS,
        "start_date": "2022-01-01",
        "end_date": "2026-11-30",
        "batch_size": 3,
        **extra,
    }
    return params


def _run(ledger, site, params, client, signer, *, only=None, now=None):
    request = backfill.BackfillRequest.from_params(params, reference=REFERENCE, settings=site)
    batches = backfill.plan(ledger, request, reference=REFERENCE)
    chosen = batches if only is None else [batches[i] for i in only]
    results = [
        backfill.run_batch(
            ledger,
            site,
            b,
            client=client,
            signer=signer,
            config=CONFIG,
            actor="test",
            now=now,
        )
        for b in chosen
    ]
    return batches, backfill.summarize(results)


def _accepted(endpoint) -> list[str]:
    """The documents of every submission the endpoint accepted (the first entry of each lot;
    the second is its signature document)."""
    return sorted(s.entries[0] for s in endpoint.accepted)


def test_dry_run_sends_nothing_and_counts_each_reason(fresh_ledger, site, tmp_path, dmp):
    endpoint, client, signer = dmp
    _send_live(fresh_ledger, site, tmp_path, client, signer)
    before = endpoint.requests
    folder = _history(tmp_path / "history")
    batches, total = _run(fresh_ledger, site, _request(folder, dry_run=True), client, signer)
    assert [b["label"] for b in batches] == [
        "lot 1/4 · 3 fichiers",
        "lot 2/4 · 3 fichiers",
        "lot 3/4 · 3 fichiers",
        "lot 4/4 · 2 fichiers",
    ]
    assert endpoint.requests == before and _accepted(endpoint) == [uid(SENT_LIVE)]
    assert total["to_send"] == len(QUALIFIED) and total["sent"] == 0
    assert total["by_type"] == {"18748-4": len(QUALIFIED)}
    assert total["skipped"] == {
        "BACKFILL_ALREADY_SENT": 1,
        "BACKFILL_TOO_OLD": 1,
        "DMP_INS_NOT_QUALIFIED": 2,
    }
    for serial in QUALIFIED:  # nothing recorded either
        assert fresh_ledger.find_document(uid(serial)) is None


def test_backfill_sends_exactly_the_eligible_documents_once_and_resumes(
    fresh_ledger, site, tmp_path, dmp
):
    endpoint, client, signer = dmp
    _send_live(fresh_ledger, site, tmp_path, client, signer)
    folder = _history(tmp_path / "history")
    params = _request(folder)

    # stopped midway: the first two lots only
    batches, first = _run(fresh_ledger, site, params, client, signer, only=[0, 1])
    # files in name order: lots [101 102 103] [104 105 106] [107 201 202] [301 401]
    assert first["sent"] == 6
    assert _accepted(endpoint) == sorted([uid(SENT_LIVE)] + [uid(s) for s in QUALIFIED[:6]])

    # a worker killed inside lot 3, after recording and claiming, before its first submission
    class Killed(BaseException):
        pass

    class Dies:
        endpoints = client.endpoints

        def send(self, _request):
            raise Killed

    with pytest.raises(Killed):
        backfill.run_batch(
            fresh_ledger, site, batches[2], client=Dies(), signer=signer, config=CONFIG
        )
    assert len(endpoint.accepted) == 7
    (claimed,) = fresh_ledger.deliveries_of(fresh_ledger.find_document(uid(107)).id)
    assert (claimed.status, claimed.historical, claimed.claimed_by) == ("pending", True, "cli")

    # resumed once the dead worker's lease has run out: the whole backfill again
    later = datetime.now(PARIS) + timedelta(minutes=11)
    again, resumed = _run(fresh_ledger, site, params, client, signer, now=later)
    assert again == batches  # the same plan
    assert resumed["sent"] == 1 and resumed["skipped"]["BACKFILL_ALREADY_SENT"] == 7
    expected = sorted(uid(s) for s in (*QUALIFIED, SENT_LIVE))
    assert _accepted(endpoint) == expected  # each eligible document once, nothing else
    assert endpoint.duplicates == 0 and len(endpoint.accepted) == len(expected)

    # a third run (replay) sends nothing
    _, replay = _run(fresh_ledger, site, params, client, signer, now=later)
    assert replay["sent"] == 0 and len(endpoint.accepted) == len(expected)

    for serial in QUALIFIED:
        document = fresh_ledger.find_document(uid(serial))
        (delivery,) = fresh_ledger.deliveries_of(document.id)  # the DMP only: no mail
        assert (delivery.channel, delivery.status, delivery.historical) == ("dmp", "sent", True)
    live = fresh_ledger.find_document(uid(SENT_LIVE))
    assert not any(d.historical for d in fresh_ledger.deliveries_of(live.id))
    for serial in (*UNQUALIFIED, *TOO_OLD):
        assert fresh_ledger.find_document(uid(serial)) is None


def test_a_folder_of_cda_files_is_sent_once(fresh_ledger, site, tmp_path, dmp):
    endpoint, client, signer = dmp
    folder = tmp_path / "cda"
    for serial in (501, 502):
        _write(folder, serial, RECENT, hl7=False)
    _write(folder, 503, OLD, hl7=False)
    params = _request(folder, "cda", document_types="18748-4, 11502-2")
    _, total = _run(fresh_ledger, site, params, client, signer)
    assert total["sent"] == 2 and total["skipped"] == {"BACKFILL_TOO_OLD": 1}
    assert _accepted(endpoint) == [uid(501), uid(502)]
    item = fresh_ledger.get_inbound(fresh_ledger.find_document(uid(501)).inbound_item_id)
    assert (item.kind, item.source) == ("cda_file", "backfill")
    _, replay = _run(fresh_ledger, site, params, client, signer)
    assert replay["sent"] == 0 and replay["skipped"]["BACKFILL_ALREADY_SENT"] == 2
    assert len(endpoint.accepted) == 2

    _, other = _run(
        fresh_ledger, site, _request(folder, "cda", document_types="11502-2"), client, signer
    )
    assert other["skipped"] == {"BACKFILL_OTHER_TYPE": 3}


def test_the_ledger_source_sends_documents_the_dmp_never_had(fresh_ledger, site, tmp_path, dmp):
    """A document whose producer did not ask for the DMP (DESTDMP=N) is left alone unless the
    operator says the choice was the site's (include_not_requested)."""
    endpoint, client, signer = dmp
    message = historical_message(601, RECENT)
    # DESTDMP (the 7th MetaDMPMSS OBX) to N: mailed to the professional only
    flags = message.split(b"DESTDMP^Destinataire DMP^MetaDMPMSS||Y^")
    assert len(flags) == 2
    sample = tmp_path / "mss-only.hl7"
    sample.write_bytes(b"DESTDMP^Destinataire DMP^MetaDMPMSS||N^".join(flags))
    drop_sample(site.source("dpi").drop_dir, sample)
    ingest(fresh_ledger, site)
    document = fresh_ledger.find_document(uid(601))
    assert [d.channel for d in fresh_ledger.deliveries_of(document.id)] == ["mss_professional"]

    _, kept = _run(fresh_ledger, site, _request(None, "ledger"), client, signer)
    assert kept["skipped"] == {"BACKFILL_NOT_FOR_DMP": 1} and endpoint.accepted == []

    params = _request(None, "ledger", include_not_requested=True)
    _, sent = _run(fresh_ledger, site, params, client, signer)
    assert sent["sent"] == 1 and _accepted(endpoint) == [uid(601)]
    _, replay = _run(fresh_ledger, site, params, client, signer)
    assert replay["documents"] == 0 and len(endpoint.accepted) == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"start_date": "2021-11-30"}, "BACKFILL_START_TOO_OLD"),
        ({"source_kind": "zip"}, "BACKFILL_BAD_REQUEST"),
        ({"finess_geo": "010000024"}, "BACKFILL_BAD_REQUEST"),
        ({"end_date": "2027-01-01"}, "BACKFILL_BAD_REQUEST"),
        ({"start_date": "01/02/2023"}, "BACKFILL_BAD_REQUEST"),
    ],
)
def test_requests_out_of_bounds_are_refused_in_french(site, tmp_path, change, code):
    params = {**_request(tmp_path), **change}
    with pytest.raises(InvalidInput) as refused:
        backfill.BackfillRequest.from_params(params, reference=REFERENCE, settings=site)
    assert refused.value.code == code
    if code == "BACKFILL_START_TOO_OLD":
        assert "plus de 5 ans" in refused.value.reason and "2021-12-01" in refused.value.reason


def test_the_limit_is_counted_from_the_logical_date():
    assert backfill.history_limit(date(2026, 12, 3)) == date(2021, 12, 3)
    assert backfill.history_limit(date(2028, 2, 29)) == date(2023, 2, 28)


def test_pfi_dmp_backfill_dry_run_prints_counts_and_identity_only_when_asked(
    tmp_path, monkeypatch, fresh_ledger_url, fresh_ledger, dmp_endpoint, test_pki, capsys
):
    import json

    from pfi.cli import main
    from pfi_devkit.samples import INS
    from pfi_fixtures.partners import dmp_tls_extra
    from pfi_fixtures.site import use_site

    extra = {
        "repository_url": dmp_endpoint.repository_url,
        "registry_url": dmp_endpoint.registry_url,
        **dmp_tls_extra(test_pki),
    }
    use_site(
        monkeypatch,
        write_settings(tmp_path),
        fresh_ledger_url,
        pfi_dmp={"conn_type": "http", "extra": extra},
    )
    folder = _history(tmp_path / "history")
    command = ["dmp", "backfill", "--dry-run", "--source", "hl7", "--folder", str(folder)]
    command += ["--finess", FINESS, "--from", "2022-01-01", "--reference", REFERENCE.isoformat()]
    assert main(command) == 0
    out = capsys.readouterr().out
    printed = json.loads(out)
    assert printed["to_send"] == len(QUALIFIED) + 1  # SENT_LIVE was not sent here
    assert printed["skipped"] == {"BACKFILL_TOO_OLD": 1, "DMP_INS_NOT_QUALIFIED": 2}
    assert printed["reasons"]["BACKFILL_TOO_OLD"] == "document de plus de 5 ans"
    assert INS not in out and "listed" not in printed
    assert dmp_endpoint.requests == 0

    assert main([*command, "--show-identity"]) == 0
    listed = json.loads(capsys.readouterr().out)["listed"]
    assert {d["ins"] for d in listed if d["decision"] == "send"} == {INS}
    assert dmp_endpoint.requests == 0 and fresh_ledger.find_document(uid(101)) is None

    too_old = [*command[:-4], "--from", "2021-01-01", "--reference", REFERENCE.isoformat()]
    assert main(too_old) == 2
    assert "plus de 5 ans" in capsys.readouterr().err


def test_the_live_queue_takes_live_deliveries_before_historical_ones(
    fresh_ledger, site, tmp_path, dmp
):
    """A backfill's deliveries left in the deferred queue (here: its worker died before its
    first submission) never delay the live flow's: a claim takes the live ones first."""
    from pfi_fixtures.ledger import record_document

    _, client, signer = dmp

    class Killed(BaseException):
        pass

    class Dies:
        endpoints = client.endpoints

        def send(self, _request):
            raise Killed

    folder = _history(tmp_path / "history")
    request = backfill.BackfillRequest.from_params(
        _request(folder), reference=REFERENCE, settings=site
    )
    (first_lot, *_) = backfill.plan(fresh_ledger, request, reference=REFERENCE)
    with pytest.raises(Killed):
        backfill.run_batch(
            fresh_ledger, site, first_lot, client=Dies(), signer=signer, config=CONFIG
        )
    live = record_document(fresh_ledger, f"{DOCUMENT_ROOT}.900.9", "dmp").delivery_id
    later = datetime.now(PARIS) + timedelta(minutes=11)  # the dead worker's lease is over
    (first,) = fresh_ledger.claim_due_deliveries("dmp", now=later, limit=1, actor="live")
    assert first.id == live and not first.historical
    taken = fresh_ledger.claim_due_deliveries("dmp", now=later, limit=10, actor="live")
    assert len(taken) == 3 and all(d.historical for d in taken)


def test_a_lot_stopped_before_its_release_leaves_nothing_to_the_live_queue(
    fresh_ledger, site, tmp_path, dmp, monkeypatch
):
    """A lot's documents are recorded held: stopped before sending, they wait for the next run
    of the backfill, never for deliver_dmp."""
    endpoint, client, signer = dmp

    class Stopped(BaseException):
        pass

    def stop(*_args, **_kwargs):
        raise Stopped

    folder = _history(tmp_path / "history")
    params = _request(folder)
    request = backfill.BackfillRequest.from_params(params, reference=REFERENCE, settings=site)
    (first_lot, *_) = backfill.plan(fresh_ledger, request, reference=REFERENCE)
    with monkeypatch.context() as patch:
        patch.setattr(fresh_ledger, "release_historical", stop)
        with pytest.raises(Stopped):
            backfill.run_batch(
                fresh_ledger, site, first_lot, client=client, signer=signer, config=CONFIG
            )
    recorded = [fresh_ledger.find_document(uid(s)) for s in QUALIFIED[:3]]
    assert {d.status for doc in recorded for d in fresh_ledger.deliveries_of(doc.id)} == {"held"}
    later = datetime.now(PARIS) + timedelta(hours=1)
    assert fresh_ledger.claim_due_deliveries("dmp", now=later, actor="live") == []

    _, total = _run(fresh_ledger, site, params, client, signer)
    eligible = sorted(uid(s) for s in (*QUALIFIED, SENT_LIVE))  # not sent live in this test
    assert total["sent"] == len(eligible) and endpoint.duplicates == 0
    assert _accepted(endpoint) == eligible
