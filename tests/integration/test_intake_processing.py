"""Full intake on PostgreSQL: every official example, malformed inputs, re-drops, crashes.

The tests that only need a valid message (held channels, the same file twice, long names, a
reused document id) take in the project's samples (``pfi_devkit.samples``) and run on any clone.

Golden samples: ``../shared/fixtures/ans-hl7v2-exemples`` (ansforge/hl7V2-exemples; defects in
``MANIFEST.md``). Expected outcomes, on a site in the INS *test* environment:

- accepted: the v2.1 MDM initial (Base64), replacement and deletion, the ORU initial and
  replacement "SEGUR" samples;
- refused with a coded reason: short samples whose OBX holds a placeholder text instead of a
  CDA (``HL7_DOC_FORMAT``), v2.0 samples whose PID carries the production INS OID
  (``INS_OID_ENVIRONMENT``), v2.1 ORU samples whose CDA header names another patient than PID
  (``INS_MISMATCH_*``: the ANS sample CDA of a different test patient), the LPS volet
  (``HL7_UNSUPPORTED_PROFILE``: that flow goes from the PFI to the DPI), PAM ADT messages
  (``HL7_UNSUPPORTED_EVENT``), acknowledgements dropped as if they were requests
  (``INTAKE_NOT_A_REQUEST``).
"""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pfi.base.settings import load_settings
from pfi.flows.archive import load_request
from pfi.flows.intake import acknowledge_items, claim_and_record
from pfi.protocols.hl7v2.ack import read_header, split_segments
from pfi_devkit import samples
from pfi_fixtures import site
from pfi_fixtures.site import MDM_DEL, MDM_INIT, MDM_RPLC, ORU_INIT, V21, lab_source

pytestmark = pytest.mark.integration

EX = "ans-hl7v2-exemples"
MDM_INIT_SHORT = f"{V21}/MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1.er7"
ORU_RPLC = f"{V21}/ORU/Remplacement ORU/message_ORU_CR_Bio_RPLC_N3_SEGUR.hl7"
ORU_DEL = f"{V21}/ORU/Suppression ORU/message_ORU_CR_Bio_DEL_N3_SEGUR.hl7"

PRO = "adam.hoda@test-ci-sis.mssante.fr"
MDM_DOC_1 = "1.2.250.1.71.4.2.2.120456789.71024000081"
MDM_DOC_2 = "1.2.250.1.71.4.2.2.120456789.71024000082"

#: Accepted official examples: document unique id → {(channel, recipient, action)}.
ACCEPTED = {
    MDM_INIT: {MDM_DOC_1: {("dmp", None, "new"), ("mss_professional", PRO, "new")}},
    MDM_RPLC: {MDM_DOC_2: {("dmp", None, "replace"), ("mss_professional", PRO, "replace")}},
    MDM_DEL: {MDM_DOC_2: {("dmp", None, "delete"), ("mss_professional", PRO, "delete")}},
    ORU_INIT: {
        "1.2.250.1.213.1.1.9": {
            ("dmp", None, "new"),
            ("mss_professional", PRO, "new"),
            ("mss_patient", None, "new"),
        }
    },
    ORU_RPLC: {
        "1.2.250.1.213.1.1.13": {
            ("dmp", None, "replace"),
            ("mss_professional", PRO, "replace"),
            ("mss_patient", None, "replace"),
        }
    },
}
#: Non-blocking defects reported as ERR of severity W in the AA (alternate code of ERR-5).
WARNINGS = {
    MDM_DEL: ["HL7_BASE64_PADDING"],
    ORU_INIT: ["HL7_MAIL_BODY_BASE64"],
    ORU_RPLC: ["HL7_BASE64_PADDING", "HL7_MAIL_BODY_BASE64"],
}


def refused_reason(relative: str) -> tuple[str, str]:
    """(ACK code, ledger reason code) expected for an official example that is refused."""
    name = relative.rsplit("/", 1)[-1]
    if "Trans_LPS" in relative and name.startswith("message"):
        return "AE", "HL7_UNSUPPORTED_PROFILE"
    if relative.startswith(f"{EX}/SGL/") or "Consentement_DMP_PAMFR" in relative:
        return "AE", "HL7_UNSUPPORTED_EVENT"
    if name.startswith("ack") or name.startswith("Message metier"):
        return "AE", "INTAKE_NOT_A_REQUEST"
    if relative == ORU_DEL or (
        "/V2.1/ORU/" in relative and "Base64" in name and "Volets" in relative
    ):
        return "AE", "INS_MISMATCH_MATRICULE"
    if "/V2.0/" in relative and ("Base64" in name):
        return "AE", "INS_OID_ENVIRONMENT"
    return "AE", "HL7_DOC_FORMAT"


def write_settings(tmp_path: Path, extra: str = "") -> Path:
    return site.write_settings(tmp_path, sources=[lab_source(tmp_path)], extra=extra)


@pytest.fixture
def settings(tmp_path):
    return load_settings(write_settings(tmp_path))


class Dropper:
    """Drops files with increasing, settled modification times (claim order = drop order)."""

    def __init__(self, settings):
        self.source = settings.source("lab")
        self.source.drop_dir.mkdir(parents=True, exist_ok=True)
        self.clock = time.time() - 3600

    def __call__(self, name: str, data: bytes) -> Path:
        target = self.source.drop_dir / name
        target.write_bytes(data)
        self.clock += 1
        os.utime(target, (self.clock, self.clock))
        return target


def run(ledger, settings, batch_size=50):
    batches = claim_and_record(ledger, settings, batch_size=batch_size, limit=5000, actor="test")
    return batches, [acknowledge_items(ledger, settings, b, actor="test") for b in batches]


def acks_of(settings, file_item_id: int) -> list[list[str]]:
    out = settings.source("lab").outbound_dir
    return [
        split_segments(p.read_bytes().decode("utf-8", "replace"))
        for p in sorted(out.glob(f"ACK_{file_item_id:08d}_*.hl7"))
    ]


def err_fields(segments: list[str]) -> list[list[str]]:
    return [s.split("|") for s in segments if s.startswith("ERR")]


def official_files(fixtures_dir: Path) -> list[str]:
    found = []
    for path in sorted((fixtures_dir / EX).rglob("*")):
        if not path.is_file() or path.suffix.lower() in (".md", ".xml") or "eadme" in path.name:
            continue
        found.append(str(path.relative_to(fixtures_dir)))
    return found


def test_every_official_example_ends_with_the_expected_ack_and_ledger_rows(
    fresh_ledger, settings, fixtures_dir
):
    drop = Dropper(settings)
    order = [MDM_INIT, MDM_RPLC, MDM_DEL, ORU_INIT, ORU_RPLC]
    names: dict[str, str] = {}
    seen: set[str] = set()
    for relative in order + [f for f in official_files(fixtures_dir) if f not in order]:
        data = (fixtures_dir / relative).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            continue  # byte-identical samples (acks repeated across folders): one is enough
        seen.add(digest)
        names[relative] = f"{len(names):03d}.hl7"
        drop(names[relative], data)

    batches, results = run(fresh_ledger, settings, batch_size=7)
    assert all(len(b["item_ids"]) <= 7 for b in batches)
    assert sum(r["acknowledged"] + r["rejected"] for r in results) == len(names)
    assert sum(r["messages_accepted"] for r in results) == len(ACCEPTED)
    assert sum(r["failed"] for r in results) == 0

    items = {i.original_ref: i for i in fresh_ledger.find_inbound(kind="hl7_file", limit=500)}
    for relative, name in names.items():
        item = items[name]
        messages = fresh_ledger.find_inbound(kind="hl7_message", parent_id=item.id)
        assert len(messages) == 1, relative
        message = messages[0]
        original = read_header((fixtures_dir / relative).read_bytes())
        assert (message.control_id, message.message_type, message.original_ref) == (
            original.control_id,
            original.message_type,
            "1",
        ), relative
        [ack] = acks_of(settings, item.id)
        assert ack[0].split("|")[9] == f"PFI{message.id}"  # ACK MSH-10 from the ledger
        if relative in ACCEPTED:
            assert (item.status, message.status) == ("done", "done"), relative
            assert ack[1] == f"MSA|AA|{original.control_id}"
            warnings = [e[5].split("^")[3] for e in err_fields(ack)]
            assert warnings == WARNINGS.get(relative, []), relative
            assert all(e[4] == "W" for e in err_fields(ack))
            assert Path(item.storage_path).parent.parent.parent.parent.name == "archive"
            request = load_request(fresh_ledger, message.id, settings=settings)
            assert request.control_id == original.control_id
        else:
            code, reason = refused_reason(relative)
            assert (item.status, message.status) == ("rejected", "rejected"), relative
            assert (item.reason_code, message.reason_code) == (reason, reason), relative
            assert ack[1].startswith(f"MSA|{code}|{original.control_id}|"), relative
            errs = err_fields(ack)
            assert errs and all(e[4] == "E" for e in errs)
            if errs[0][3].startswith("207^"):  # application error: volet code + ours
                assert errs[0][5].split("^")[3] == reason
            else:
                assert errs[0][7].startswith(reason)  # ERR-7 diagnostic
            kept = Path(item.storage_path)
            assert kept.read_bytes() == (fixtures_dir / relative).read_bytes()
            assert "quarantine" in kept.parts
            assert kept.with_name(kept.name + ".reason.txt").read_text().startswith(reason)

    # documents and deliveries of the accepted ones (replacement linked to its predecessor)
    for relative, documents in ACCEPTED.items():
        for unique_id, expected in documents.items():
            document = fresh_ledger.find_document(unique_id)
            assert document is not None, unique_id
            action = next(iter(expected))[2]  # a document may also have later actions
            deliveries = {
                (d.channel, d.recipient, d.action)
                for d in fresh_ledger.deliveries_of(document.id)
                if d.action == action
            }
            assert deliveries == expected, relative
    replacement = fresh_ledger.find_document(MDM_DOC_2)
    initial = fresh_ledger.find_document(MDM_DOC_1)
    assert replacement.replaces_document_id == initial.id
    assert (replacement.version, replacement.ins_qualified, replacement.ins_oid) == (
        2,
        True,
        "1.2.250.1.213.1.4.10",
    )
    every = [d for doc in (initial, replacement) for d in fresh_ledger.deliveries_of(doc.id)]
    assert {d.status for d in every} == {"pending"}
    # each delivery names the message that asked for it (the deletion came later than its
    # document): the one whose MSH-10 a business acknowledgement answers
    asked = {
        (d.action, fresh_ledger.get_inbound(d.inbound_item_id).parent_id)
        for d in fresh_ledger.deliveries_of(replacement.id)
    }
    assert asked == {
        ("replace", items[names[MDM_RPLC]].id),
        ("delete", items[names[MDM_DEL]].id),
    }
    assert not list(settings.source("lab").work_dir.iterdir())  # nothing left behind


# --- malformed inputs -------------------------------------------------------------------------


def variant(raw: bytes, *pairs: tuple[bytes, bytes]) -> bytes:
    for old, new in pairs:
        assert old in raw, old
        raw = raw.replace(old, new, 1)
    return raw


def test_malformed_inputs_are_answered_and_quarantined_while_the_batch_goes_on(
    fresh_ledger, settings, fixtures_dir
):
    good = (fixtures_dir / MDM_INIT).read_bytes()
    ins = b"279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS^^20101207"
    cases = {
        "good.hl7": good,
        "truncated.hl7": good[: len(good) // 2],
        "latin1.hl7": good.decode("utf-8").encode("latin-1"),
        "no_ins.hl7": variant(good, (b"PID|||" + ins + b"|", b"PID||||")),
        "bad_key.hl7": variant(good, (b"279035121518989", b"279035121518988")),
        "unknown_event.hl7": variant(good, (b"MDM^T02^MDM_T02", b"MDM^T99^MDM_T02")),
        "contradictory.hl7": variant(
            good,
            (
                b"DESTMSSANTEPAT^Destinataire Patient^MetaDMPMSS||N",
                b"DESTMSSANTEPAT^Destinataire Patient^MetaDMPMSS||Y",
            ),
        ),
        "empty.hl7": b"",
        "garbage.hl7": bytes(range(256)) * 64,
        "huge.hl7": good.rstrip(b"\n") + b"\nNTE|1||" + b"A" * (50 * 1024 * 1024) + b"\n",
    }
    drop = Dropper(settings)
    for name, data in cases.items():
        drop(name, data)

    batches, results = run(fresh_ledger, settings)
    assert len(batches) == 1 and results[0]["acknowledged"] == 1
    assert results[0]["rejected"] == len(cases) - 1

    items = {i.original_ref: i for i in fresh_ledger.find_inbound(kind="hl7_file")}
    outcome = {}
    for name, item in items.items():
        [ack] = acks_of(settings, item.id)
        msa = ack[1].split("|")
        outcome[name] = (item.status, item.reason_code, msa[1], err_fields(ack))
    assert outcome["good.hl7"][:3] == ("done", None, "AA")

    def refused(name, reason, code="AE"):
        status, reason_code, ack_code, errs = outcome[name]
        assert (status, reason_code, ack_code) == ("rejected", reason, code), name
        kept = Path(items[name].storage_path)
        assert "quarantine" in kept.parts and kept.is_file()
        assert kept.with_name(kept.name + ".reason.txt").read_text().split("\n")[0] == reason
        return errs

    assert refused("truncated.hl7", "HL7_META_MISSING")[0][3].startswith("101^")
    assert refused("latin1.hl7", "HL7_CHARSET")[0][2] == "MSH^1^18"
    errs = refused("no_ins.hl7", "RULE_DMP_INS")
    codes = [e[5].split("^")[3] for e in errs]
    assert codes[0] == "RULE_DMP_INS" and "INS_MISSING" in codes
    assert any(e[5].startswith("903^") for e in errs)  # volet: INS non présent
    errs = refused("bad_key.hl7", "INS_KEY")
    assert errs[0][2] == "PID^1^3" and errs[0][3].startswith("207^")
    assert errs[0][5].startswith("906^") and "^applicationErrorCode^INS_KEY^" in errs[0][5]
    assert refused("unknown_event.hl7", "HL7_UNSUPPORTED_EVENT")[0][3].startswith("201^")
    errs = refused("contradictory.hl7", "RULE_PATIENT_INVISIBLE")
    assert {e[5].split("^")[3] for e in errs} >= {"RULE_PATIENT_INVISIBLE"}
    refused("empty.hl7", "INTAKE_EMPTY_FILE")
    refused("garbage.hl7", "HL7_PARSE")
    assert refused("huge.hl7", "INTAKE_TOO_LARGE", code="AR")[0][5].split("^")[3] == (
        "INTAKE_TOO_LARGE"
    )
    # no patient data in any reason, ACK or quarantine note
    for item in fresh_ledger.find_inbound(limit=500):
        for text in (item.reason_code or "", item.reason_text or ""):
            assert "279035121518989" not in text and "PAT-TROIS" not in text
    for ack in settings.source("lab").outbound_dir.iterdir():
        segments = split_segments(ack.read_bytes().decode("latin-1"))
        assert not any("279035121518989" in s or "PAT-TROIS" in s for s in segments)


def test_a_batch_file_is_split_and_its_refused_messages_quarantined_alone(
    fresh_ledger, settings, fixtures_dir
):
    mdm = (fixtures_dir / MDM_INIT).read_bytes()
    bad = mdm.replace(b"279035121518989", b"279035121518988").replace(b"|015|", b"|016|", 1)
    oru = (fixtures_dir / ORU_INIT).read_bytes()
    batch = (
        b"FHS|^~\\&|SIL|labo\nBHS|^~\\&|SIL|labo\n"
        + mdm.rstrip(b"\n")
        + b"\n"
        + bad.rstrip(b"\n")
        + b"\n"
        + oru.rstrip(b"\n")
        + b"\nBTS|3\nFTS|1\n"
    )
    Dropper(settings)("batch.hl7", batch)
    _, results = run(fresh_ledger, settings)
    assert (results[0]["messages_accepted"], results[0]["messages_refused"]) == (2, 1)
    assert results[0]["reasons"] == {"INS_KEY": 1}

    [item] = fresh_ledger.find_inbound(kind="hl7_file")
    assert (item.status, item.reason_code, item.message_type) == (
        "done",
        "INTAKE_SOME_REFUSED",
        "batch",
    )
    messages = fresh_ledger.find_inbound(kind="hl7_message", parent_id=item.id)
    assert [(m.original_ref, m.status, m.reason_code) for m in messages] == [
        ("1", "done", None),
        ("2", "rejected", "INS_KEY"),
        ("3", "done", None),
    ]
    acks = acks_of(settings, item.id)
    assert [a[1][:10] for a in acks] == ["MSA|AA|015", "MSA|AE|016", "MSA|AA|015"]
    assert "archive" in Path(item.storage_path).parts
    [copy] = settings.source("lab").quarantine_dir.rglob("*batch.hl7.002.hl7")
    assert b"279035121518988" in copy.read_bytes()
    assert load_request(fresh_ledger, messages[2].id, settings=settings).message_type == "ORU^R01"


def test_hold_channels_create_held_deliveries(fresh_ledger, tmp_path, samples_dir):
    settings = load_settings(
        write_settings(tmp_path, '[intake]\nhold_channels = ["mss_professional"]')
    )
    Dropper(settings)("init.hl7", (samples_dir / samples.MDM_INIT).read_bytes())
    run(fresh_ledger, settings)
    document = fresh_ledger.find_document(samples.MDM_V1_ID)
    assert sorted((d.channel, d.status) for d in fresh_ledger.deliveries_of(document.id)) == [
        ("dmp", "pending"),
        ("mss_professional", "held"),
    ]


# --- replays and crashes ------------------------------------------------------------------------


def test_the_same_file_dropped_twice_is_processed_once(fresh_ledger, settings, samples_dir):
    data = (samples_dir / samples.ORU_INIT).read_bytes()
    drop = Dropper(settings)
    drop("first.hl7", data)
    drop("same_run_copy.hl7", data)
    run(fresh_ledger, settings)
    drop("next_day_copy.hl7", data)
    batches, _ = run(fresh_ledger, settings)

    assert batches == []
    assert len(fresh_ledger.find_inbound(kind="hl7_file")) == 1
    [message] = fresh_ledger.find_inbound(kind="hl7_message")
    document = fresh_ledger.find_document(samples.ORU_ID)
    assert len(fresh_ledger.deliveries_of(document.id)) == 3
    assert len(fresh_ledger.events(inbound_item_id=message.id, kind="inbound.status")) == 1
    [item] = fresh_ledger.find_inbound(kind="hl7_file")
    duplicates = fresh_ledger.events(inbound_item_id=item.id, kind="inbound.duplicate_drop")
    assert len(duplicates) == 2
    acks = acks_of(settings, item.id)
    answered = f"MSA|AA|{samples.control_id(samples.ORU_INIT)}"
    assert [a[1] for a in acks] == [answered]  # answered again, same file name
    # replaying the finished batch changes nothing
    again = acknowledge_items(
        fresh_ledger, settings, {"source": "lab", "item_ids": [item.id]}, actor="test"
    )
    assert again["skipped"] == 1 and again["deliveries"] == 0


def test_a_re_dropped_file_gets_the_same_answers_as_the_first_time(
    fresh_ledger, settings, fixtures_dir
):
    good = (fixtures_dir / MDM_INIT).read_bytes()
    ins = b"279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS^^20101207"
    cases = {
        "warned.hl7": (fixtures_dir / ORU_INIT).read_bytes(),  # AA with ERR of severity W
        "no_ins.hl7": variant(good, (b"PID|||" + ins + b"|", b"PID||||")),  # several ERR
        "unknown_event.hl7": variant(good, (b"MDM^T02^MDM_T02", b"MDM^T99^MDM_T02")),
        "ack.hl7": b"MSH|^~\\&|DPI|CH|PFI|CH|20260301||ACK^T02^ACK|77|P|2.6\nMSA|AA|12\n",
        "empty.hl7": b"",
    }
    drop = Dropper(settings)
    for name, data in cases.items():
        drop(name, data)
    run(fresh_ledger, settings)
    items = {i.original_ref: i for i in fresh_ledger.find_inbound(kind="hl7_file")}

    def answers() -> dict[str, list[list[str]]]:  # every ACK but its MSH (which dates it)
        return {name: [a[1:] for a in acks_of(settings, items[name].id)] for name in cases}

    first = answers()
    for ack in settings.source("lab").outbound_dir.iterdir():
        ack.unlink()  # the producer took its ACKs... then dropped the same files again
    for name, data in cases.items():
        drop(f"again_{name}", data)
    batches, _ = run(fresh_ledger, settings)

    assert batches == []
    again = answers()
    assert [len(again[name]) for name in cases] == [1] * len(cases)
    assert again == first


def test_a_file_with_a_long_name_is_answered_and_kept(fresh_ledger, settings, samples_dir):
    good = (samples_dir / samples.MDM_INIT).read_bytes()
    bad = variant(good, (b"279035121518989", b"279035121518988"))
    long = "CR_" + "x" * 227  # too long for the PFI's names: their end is kept
    drop = Dropper(settings)
    drop(long + "_r.hl7", b"not HL7 at all")  # refused: quarantined with its reason beside
    drop(long + "_b.hl7", good + bad)  # a batch with a refused message: archived, copy quarantined

    _, results = run(fresh_ledger, settings)

    assert results[0]["failed"] == 0
    items = {i.original_ref[-5]: i for i in fresh_ledger.find_inbound(kind="hl7_file")}
    refused, batch = items["r"], items["b"]
    assert (refused.status, batch.status) == ("rejected", "done")
    kept = Path(refused.storage_path)
    assert "quarantine" in kept.parts and kept.read_bytes() == b"not HL7 at all"
    assert kept.with_name(kept.name + ".reason.txt").read_text().startswith("HL7_PARSE")
    assert "archive" in Path(batch.storage_path).parts
    [copy] = [p for p in settings.source("lab").quarantine_dir.rglob("*.hl7") if p != kept]
    assert b"279035121518988" in copy.read_bytes()
    assert not list(settings.source("lab").work_dir.iterdir())


CRASHING_WORKER = textwrap.dedent(
    """
    import os, signal, sys
    from pfi.flows import drop
    from pfi.flows.intake import acknowledge_items, claim_and_record
    from pfi.ledger import Ledger
    from pfi.base.settings import load_settings

    settings_file, ledger_url, kill_at, when = sys.argv[1:5]
    real_keep, calls = drop.keep, []

    def keep(path, target):
        calls.append(path)
        if len(calls) == int(kill_at) and when == "before_move":
            os.kill(os.getpid(), signal.SIGKILL)
        kept = real_keep(path, target)
        if len(calls) == int(kill_at) and when == "after_move":
            os.kill(os.getpid(), signal.SIGKILL)
        return kept

    drop.keep = keep
    settings = load_settings(settings_file)
    ledger = Ledger.from_url(ledger_url)
    for batch in claim_and_record(ledger, settings, batch_size=50, limit=100, actor="worker"):
        acknowledge_items(ledger, settings, batch, actor="worker")
    """
)


@pytest.mark.parametrize("when", ["before_move", "after_move"])
def test_a_worker_killed_mid_batch_is_finished_by_the_next_run(
    fresh_ledger, tmp_path, fixtures_dir, when
):
    settings_file = write_settings(tmp_path)
    settings = load_settings(settings_file)
    samples = [MDM_INIT, MDM_RPLC, MDM_DEL, ORU_INIT, ORU_RPLC, MDM_INIT_SHORT]
    drop = Dropper(settings)
    for index, relative in enumerate(samples):
        drop(f"{index}.hl7", (fixtures_dir / relative).read_bytes())
    url = fresh_ledger.engine.url.render_as_string(hide_password=False)
    worker = subprocess.run(
        [sys.executable, "-c", CRASHING_WORKER, str(settings_file), url, "3", when],
        capture_output=True,
        timeout=120,
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr.decode()[-2000:]
    files = fresh_ledger.find_inbound(kind="hl7_file")
    assert [f.status for f in files].count("done") == 2  # two finished before the kill

    run(fresh_ledger, settings)  # the next scheduled run

    files = fresh_ledger.find_inbound(kind="hl7_file")
    assert sorted(f.status for f in files) == ["done"] * 5 + ["rejected"]
    messages = fresh_ledger.find_inbound(kind="hl7_message")
    assert len(messages) == len(samples)  # one item per message, none twice
    for documents in ACCEPTED.values():
        for unique_id, expected in documents.items():
            document = fresh_ledger.find_document(unique_id)
            keys = [
                (d.channel, d.recipient, d.action) for d in fresh_ledger.deliveries_of(document.id)
            ]
            assert len(keys) == len(set(keys))  # never twice
            assert expected <= set(keys)
    assert not list(settings.source("lab").work_dir.iterdir())
    for item in files:
        assert Path(item.storage_path).is_file()
        assert len(acks_of(settings, item.id)) == 1


def test_a_known_document_id_with_another_content_is_refused(fresh_ledger, settings, samples_dir):
    import base64
    import re

    original = (samples_dir / samples.MDM_INIT).read_bytes()
    control = samples.control_id(samples.MDM_INIT).encode()
    obx = re.search(rb"(OBX\|1\|ED\|[^|]*\|\|\^[^^|]*\^[^^|]*\^Base64\^)([^|\n]+)", original)
    cda = base64.b64decode(obx.group(2) + b"=" * (-len(obx.group(2)) % 4))
    changed = cda.replace(b"</ClinicalDocument>", b"<!-- edited --></ClinicalDocument>")
    assert changed != cda
    other = (original[: obx.start(2)] + base64.b64encode(changed) + original[obx.end(2) :]).replace(
        b"|" + control + b"|", b"|099|", 1
    )
    drop = Dropper(settings)
    drop("first.hl7", original)
    drop("same_id_other_content.hl7", other)

    _, results = run(fresh_ledger, settings)
    assert results[0]["reasons"] == {"DOC_ID_REUSED": 1}
    items = {i.original_ref: i for i in fresh_ledger.find_inbound(kind="hl7_file")}
    assert items["same_id_other_content.hl7"].reason_code == "DOC_ID_REUSED"
    assert "quarantine" in Path(items["same_id_other_content.hl7"].storage_path).parts
    document = fresh_ledger.find_document(samples.MDM_V1_ID)
    assert document.content_sha256 == hashlib.sha256(cda).hexdigest()  # the first one stays
    assert len(fresh_ledger.deliveries_of(document.id)) == 2
