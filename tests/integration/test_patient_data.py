"""Audit made executable: no patient datum of an input reaches a log, an exception text, a return
value (what XCom carries), a ledger reason or an event detail.

The official examples (``ans-hl7v2-exemples``, including the defective ones of ``MANIFEST.md``)
and malformed variants of them (bad INS key, PID/CDA mismatch, truncated base64, unknown patient
mailbox) go through the real intake (PostgreSQL ledger), the DMP sender against the devkit
endpoint (down, transient, fail, normal) and the MSSanté service against the devkit mail servers
(relay refusing, 421, unknown mailbox, failure DSN). Everything these produce for operators is
captured and searched for the patient data of the inputs, collected from the parsed request
(PID), the raw PID/PRT segments and the CDA header: INS/NIR matricule (with and without key), IPP
and other PID identifiers, birth and used names, given names, birth date (its exact forms:
``YYYYMMDD`` as in the message and ISO), the patient's own MSSanté address, and slices of the
document content. Identifiers and names are matched as whole tokens of ≥ 4 characters
(case-insensitive for names) to avoid false positives.

``PFI_AUDIT_DUMP=<file>`` appends everything searched to that file (to review what was captured).

Outputs meant to carry patient data are not searched: the ACK/ZAM files to the producer, the
mails, the DMP submission.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pfi.base.errors import PfiError
from pfi_devkit.audit import PatientData, collect_patient_data
from pfi_fixtures.ledger import record_document

pytestmark = pytest.mark.integration

EX = "ans-hl7v2-exemples"
V21 = f"{EX}/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1"
MDM_INIT = f"{V21}/MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7"
MDM_RPLC = f"{V21}/MDM/Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7"
MDM_DEL = f"{V21}/MDM/Suppression MDM/message_MDM_CR_Radio_DEL_N1.er7"
ORU_INIT = f"{V21}/ORU/Transmission initiale ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7"
ORU_RPLC = f"{V21}/ORU/Remplacement ORU/message_ORU_CR_Bio_RPLC_N3_SEGUR.hl7"
NIR = "279035121518989"
PROFESSIONAL = "adam.hoda@test-ci-sis.mssante.fr"

#: Loggers of the devkit's partner servers (running in this process): the partner's side, which
#: sees the documents by design; everything else (the PFI, the libraries it uses) is searched.
PARTNER_LOGGERS = ("mail.log", "aiosmtpd", "pfi_devkit")

#: The patient data of the inputs (``PatientData``, ``collect_patient_data``) are collected and
#: searched by the checker of ``python -m pfi_devkit audit`` (``pfi_devkit/audit.py``).

# --- malformed variants --------------------------------------------------------------------------


def nir_with_key(first13: str) -> str:
    return f"{first13}{97 - int(first13) % 97:02d}"


def _map_cda(raw: bytes, change) -> bytes:
    """Apply ``change`` to the decoded CDA of every OBX ED Base64 payload of the message."""

    def recode(match: re.Match) -> bytes:
        payload = match.group(2)
        cda = base64.b64decode(payload + b"=" * (-len(payload) % 4))
        return match.group(1) + base64.b64encode(change(cda))

    return re.sub(rb"(\^Base64\^)([A-Za-z0-9+/=]+)", recode, raw, count=1)


IPP = "40521877"


def with_ipp(raw: bytes) -> bytes:
    return raw.replace(b"PID|||", f"PID|||{IPP}^^^CHU-X&1.2.250.1.71.4.2.7&ISO^PI~".encode(), 1)


#: What intake does with each variant: refused for what it is, not for something else.
VARIANT_OUTCOMES = {
    "with_ipp": "done",
    "bad_ins_key": "INS_KEY",
    "pid_traits_differ": "INS_MISMATCH_BIRTH_NAME",
    "pid_cda_mismatch": "INS_MISMATCH_MATRICULE",
    "truncated_base64": "HL7_DOC_TRUNCATED",
    "garbage_base64": "HL7_BASE64",
    "cda_not_xml": "HL7_DOC_TRUNCATED",
    "cda_entity_named_like_the_patient": "CDA_NOT_XML",
    "unknown_patient_mailbox": "done",
}


def variants(fixtures_dir: Path) -> dict[str, bytes]:
    mdm = (fixtures_dir / MDM_INIT).read_bytes()
    other = nir_with_key("1850675123456")
    out = {
        # The same request with an IPP before the INS in PID-3 (the v2.1 samples carry none).
        "with_ipp": with_ipp(mdm),
        # INS key wrong in PID only (CDA keeps the right one).
        "bad_ins_key": mdm.replace(NIR.encode(), NIR[:-2].encode() + b"00", 1),
        # Same INS, PID names and birth date of another person than the CDA's.
        "pid_traits_differ": mdm.replace(
            b"PAT-TROIS^DOMINIQUE^DOMINIQUE", b"MARTINEAU^CAMILLE^"
        ).replace(b"|19790328|", b"|19850612|"),
        # PID names, birth date and INS of another person than the CDA's.
        "pid_cda_mismatch": mdm.replace(b"PAT-TROIS^DOMINIQUE^DOMINIQUE", b"MARTINEAU^CAMILLE^")
        .replace(b"|19790328|", b"|19850612|")
        .replace(NIR.encode(), other.encode(), 1),
        # The CDA's base64 cut in the middle (and left without padding).
        "truncated_base64": re.sub(
            rb"(\^Base64\^)([A-Za-z0-9+/=]+)",
            lambda m: m.group(1) + m.group(2)[: len(m.group(2)) // 2 + 1],
            mdm,
            count=1,
        ),
        # Not base64 at all.
        "garbage_base64": re.sub(
            rb"(\^Base64\^)([A-Za-z0-9+/=]{40})", rb"\1@@NOT*BASE64@@", mdm, count=1
        ),
        # A CDA cut after 300 bytes (well-encoded base64 of a truncated document).
        "cda_not_xml": _map_cda(mdm, lambda cda: cda[:300]),
        # An entity named like the patient in the CDA header: libxml2's message names it.
        "cda_entity_named_like_the_patient": _map_cda(
            mdm, lambda cda: cda.replace(b"DOMINIQUE<", b"&DOMINIQUE;<", 1)
        ),
        # A valid INS of another test patient in PID and CDA: a patient mailbox nobody has.
        "unknown_patient_mailbox": _map_cda(
            (fixtures_dir / ORU_INIT).read_bytes().replace(NIR.encode(), other.encode()),
            lambda cda: cda.replace(NIR.encode(), other.encode()).replace(
                b'<id root="1.2.250.1.213.1.1.9"/>', b'<id root="1.2.250.1.213.1.1.9.77"/>'
            ),
        ),
    }
    return out


# --- capture of what operators see --------------------------------------------------------------


class Sinks:
    """Everything operators see: log records, exception texts, return values, ledger texts."""

    def __init__(self, caplog, monkeypatch) -> None:
        self.caplog = caplog
        self.items: list[tuple[str, str]] = []
        caplog.set_level(logging.DEBUG)
        original_init = PfiError.__init__
        sinks = self

        def recording_init(self, message: str, *args: Any, **kwargs: Any) -> None:
            original_init(self, message, *args, **kwargs)
            sinks.add(f"{type(self).__name__}({self.code})", f"{self.code} {self}")

        monkeypatch.setattr(PfiError, "__init__", recording_init)

    def add(self, where: str, value: Any) -> None:
        if not isinstance(value, str):
            value = json.dumps(value, default=repr, ensure_ascii=False)
        self.items.append((where, value))

    def call(self, where: str, function, *args, **kwargs):
        """Call, keeping the return value (XCom) or the exception's text."""
        try:
            result = function(*args, **kwargs)
        except Exception as exc:  # what the task log shows: the traceback, causes included
            self.add(f"{where} raised", "".join(traceback.format_exception(exc)))
            raise
        self.add(f"{where} returned", result if isinstance(result, str) else repr(result))
        return result

    def wrap_send_one(self, where: str, send_one):
        def wrapped(delivery):
            return self.call(where, send_one, delivery)

        for name in ("after",):
            if hasattr(send_one, name):
                setattr(wrapped, name, getattr(send_one, name))
        return wrapped

    def ledger(self, ledger) -> None:
        from sqlalchemy import select

        from pfi.ledger.schema import delivery, inbound_item

        with ledger.engine.connect() as conn:
            for row in conn.execute(select(inbound_item)):
                r = row._mapping
                self.add(f"inbound {r['id']} reason", f"{r['reason_code']} {r['reason_text']}")
            for row in conn.execute(select(delivery)):
                r = row._mapping
                self.add(f"delivery {r['id']} reason", f"{r['reason_code']} {r['reason_text']}")
                self.add(f"delivery {r['id']} refs", f"{r['partner_ref']} {r['claimed_by']}")
        for ev in ledger.events(limit=100_000):
            self.add(f"event {ev.id} {ev.kind}", {"kind": ev.kind, "detail": ev.detail})

    def logs(self) -> None:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        for record in self.caplog.records:
            if record.name.startswith(PARTNER_LOGGERS):
                continue
            self.add(f"log {record.name}:{record.lineno}", formatter.format(record))

    def leaks(self, data: PatientData) -> list[str]:
        self.logs()
        return [
            f"{where}: {hit} in {text[:300]!r}"
            for where, text in self.items
            for hit in data.found_in(text)
        ]


def assert_no_leak(sinks: Sinks, data: PatientData) -> None:
    assert len(data.tokens) >= 5, data.tokens  # the audit searched for something
    leaks = sinks.leaks(data)
    if os.environ.get("PFI_AUDIT_DUMP"):
        with open(os.environ["PFI_AUDIT_DUMP"], "a") as out:
            out.writelines(f"{w}\t{t[:400]!r}\n" for w, t in sinks.items)
    assert not leaks, "\n".join(dict.fromkeys(leaks))


# --- site, intake -------------------------------------------------------------------------------


@pytest.fixture
def sinks(caplog, monkeypatch):
    return Sinks(caplog, monkeypatch)


@pytest.fixture
def site(tmp_path, fresh_ledger):
    from pfi.base.settings import load_settings
    from pfi_fixtures.mail import APPLICATION_MAILBOXES

    (tmp_path / "in").mkdir()
    path = tmp_path / "pfi.toml"
    path.write_text(
        f"""
[site]
name = "CH de Démonstration"
finess_juridique = "010000024"
structure_oid = "1.2.250.1.71.4.2.2"
ins_environment = "test"
[[site.finess_geo]]
finess = "010000032"
name = "Site principal"
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
address = "{APPLICATION_MAILBOXES[0]}"
connection_id = "pfi_mss_pfi"
finess_geo = "010000032"
[mssante]
software_reference = "PFI-TEST"
contact_address = "secretariat@ch-demo.mssante.test"
[mssante.retry]
first_delay_seconds = 60
"""
    )
    return load_settings(path), fresh_ledger, tmp_path


def intake(sinks: Sinks, site, inputs: dict[str, bytes], data: PatientData) -> None:
    from pfi.flows.intake import acknowledge_items, claim_and_record

    settings, ledger, folder = site
    clock = time.time() - 3600
    for index, (name, raw) in enumerate(inputs.items()):
        collect_patient_data(raw, data)
        # "as:NAME" drops the file under that name (a producer naming files after the patient).
        file_name = name[3:] if name.startswith("as:") else f"{index:03d}.hl7"
        target = folder / "in" / file_name
        target.write_bytes(raw)
        clock += 1
        os.utime(target, (clock, clock))
        if not name.startswith("as:"):
            sinks.add("input name", name)  # our own labels: must not hold patient data either
    batches = sinks.call(
        "claim_and_record",
        claim_and_record,
        ledger,
        settings,
        batch_size=7,
        limit=1000,
        actor="test",
    )
    for batch in batches:
        sinks.call("acknowledge_items", acknowledge_items, ledger, settings, batch, actor="test")


def official_inputs(fixtures_dir: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    seen: set[bytes] = set()
    for path in sorted((fixtures_dir / EX).rglob("*")):
        if not path.is_file() or path.suffix.lower() in (".md", ".xml") or "eadme" in path.name:
            continue
        raw = path.read_bytes()
        if raw not in seen:
            seen.add(raw)
            found[str(path.relative_to(fixtures_dir))] = raw
    return found


# --- the checker checks --------------------------------------------------------------------------


def test_the_checker_finds_a_planted_datum_and_ignores_short_or_partial_tokens(fixtures_dir):
    data = PatientData()
    collect_patient_data(with_ipp((fixtures_dir / ORU_INIT).read_bytes()), data)
    for expected in (NIR, NIR[:13], "pat-trois", "dominique", "19790328", "1979-03-28", IPP):
        assert expected in data.tokens, expected
    assert data.slices  # the CDA's base64
    assert data.found_in(f"refused for {NIR}@patient.mssante.fr")
    assert data.found_in("patient Pat-Trois")
    assert data.found_in(f"cut: {next(iter(data.slices))}")
    # Not a leak: the id inside a longer number, a file counter, a timestamp.
    assert not data.found_in(f"ACK_{IPP}1_1 control 9{NIR}1 at 197903281200 uid 1.2.3")


# --- intake ---------------------------------------------------------------------------------------


def test_intake_of_every_official_example_and_malformed_variants_leaks_nothing(
    sinks, site, fixtures_dir
):
    settings, ledger, _ = site
    data = PatientData()
    inputs = official_inputs(fixtures_dir) | variants(fixtures_dir)
    intake(sinks, site, inputs, data)
    intake(sinks, site, {"as:again.hl7": inputs[MDM_INIT]}, data)  # a duplicate drop
    from pfi.flows.archive import load_request

    for item in ledger.find_inbound(kind="hl7_message", limit=1000):
        try:
            sinks.call("load_request", load_request, ledger, item.id, settings=settings)
        except PfiError:
            pass  # refused messages hold no request: the text was captured
    sinks.ledger(ledger)
    # The variants were refused for what they are (not for something else).
    names = {f"{i:03d}.hl7": name for i, name in enumerate(inputs)}
    outcome = {}
    for file_item in ledger.find_inbound(kind="hl7_file", limit=1000):
        if file_item.original_ref in names:
            (message,) = ledger.find_inbound(kind="hl7_message", parent_id=file_item.id)
            outcome[names[file_item.original_ref]] = message.reason_code or message.status
    assert {name: outcome[name] for name in VARIANT_OUTCOMES} == VARIANT_OUTCOMES
    assert_no_leak(sinks, data)


def test_a_file_named_after_the_patient_dropped_twice_leaks_nothing(sinks, site, fixtures_dir):
    data = PatientData()
    raw = (fixtures_dir / MDM_INIT).read_bytes()
    intake(sinks, site, {MDM_INIT: raw}, data)
    intake(sinks, site, {f"as:PAT-TROIS_DOMINIQUE_{NIR}_19790328.hl7": raw}, data)
    sinks.ledger(site[1])
    assert_no_leak(sinks, data)


# --- DMP ------------------------------------------------------------------------------------------


def test_dmp_deliveries_down_transient_refused_and_sent_leak_nothing(
    sinks, site, fixtures_dir, dmp_endpoint, test_pki
):
    from pfi.base.retry import RetryPolicy
    from pfi.flows.dmp import DmpSender, submit_due_deliveries
    from pfi.flows.queue import run_due
    from pfi.protocols.dmp.client import DmpClient, DmpEndpoints, TlsFiles
    from pfi.protocols.dmp.config import DmpConfig
    from pfi.protocols.dmp.signing import Signer

    settings, ledger, _ = site
    data = PatientData()
    policy = RetryPolicy(
        first_delay=timedelta(minutes=2),
        max_delay=timedelta(minutes=30),
        give_up_after=timedelta(days=2),
    )
    tls = TlsFiles(
        test_pki.establishment.cert_path, test_pki.establishment.key_path, test_pki.ca_bundle
    )
    client = DmpClient(DmpEndpoints(dmp_endpoint.repository_url, dmp_endpoint.registry_url), tls)
    sender = DmpSender(
        ledger,
        client,
        Signer.from_files(test_pki.signing.cert_path, test_pki.signing.key_path),
        DmpConfig(source_id="1.2.250.1.71.4.2.2", structure_name="CH TEST", retry=policy),
        settings=settings,
        actor="test",
    )
    send_one = sinks.wrap_send_one("dmp send_one", sender)
    clock = [datetime.now(UTC)]

    def run(mode: str, **options) -> dict:
        dmp_endpoint.set_mode(mode, **options)
        clock[0] += timedelta(hours=1)
        return sinks.call(
            f"run_due dmp ({mode})",
            run_due,
            ledger,
            "dmp",
            send_one,
            policy=policy,
            actor="test",
            now=clock[0],
            after=sender.after,
        )

    try:
        inputs = {p: with_ipp((fixtures_dir / p).read_bytes()) for p in (MDM_INIT, ORU_INIT)}
        intake(sinks, site, inputs, data)
        assert run("down")["deferred"] >= 1
        assert run("transient")["deferred"] >= 1
        assert run("normal")["sent"] >= 1
        intake(sinks, site, {MDM_RPLC: (fixtures_dir / MDM_RPLC).read_bytes()}, data)
        # The DMP's codeContext names the patient: it stays out of every text.
        failed = run("fail", error_code="DMPClosed", error_text=f"DMP de {NIR} PAT-TROIS fermé")
        assert failed["refused"] == 1, failed
        intake(sinks, site, {ORU_RPLC: (fixtures_dir / ORU_RPLC).read_bytes()}, data)
        # The last run as the DAG does it (submit_due_deliveries).
        dmp_endpoint.set_mode("normal")
        clock[0] += timedelta(hours=1)
        last = sinks.call(
            "submit_due_deliveries",
            submit_due_deliveries,
            ledger,
            client,
            sender.signer,
            sender.config,
            settings=settings,
            actor="test",
            now=clock[0],
        )
        assert last["claimed"] == 1 and last["sent"] + last["refused"] == 1, last
        # A replayed task: the ledger says done, nothing sent, still nothing leaks.
        for d in _deliveries(ledger, "dmp"):
            try:
                sinks.call("dmp send_one replay", sender, d)
            except PfiError:
                pass  # a refused one is refused again: its text was captured
    finally:
        dmp_endpoint.set_mode("normal")
        client.close()
    sinks.ledger(ledger)
    assert_no_leak(sinks, data)


# --- MSSanté --------------------------------------------------------------------------------------


def test_mssante_deliveries_refused_deferred_bounced_and_sent_leak_nothing(
    sinks, site, fixtures_dir, mail_servers, test_pki
):
    import smtplib

    from pfi.flows.mssante import deliver_due, poll_notifications
    from pfi.flows.traces import mss_traces
    from pfi.protocols.mssante.imap import ImapClient, ImapEndpoint
    from pfi.protocols.mssante.smtp import SmtpClient, SmtpEndpoint
    from pfi.protocols.mssante.tls import TlsFiles
    from pfi_devkit.mail import client_ssl_context
    from pfi_fixtures.mail import APPLICATION_MAILBOXES, HUMAN_MAILBOXES

    settings, ledger, _ = site
    sender_address = APPLICATION_MAILBOXES[0]
    cred = test_pki.clients[sender_address]
    tls = TlsFiles(test_pki.ca_bundle, cred.cert_path, cred.key_path, test_pki.crl_bundle)
    password = mail_servers.password_for(sender_address)
    data = PatientData()

    def smtp_for(mailbox):
        return SmtpClient(
            SmtpEndpoint(
                mail_servers.host, mail_servers.smtp_port, mailbox.address, tls,
                password=password, timeout=10,
            )
        )  # fmt: skip

    def imap_for(mailbox):
        return ImapClient(
            ImapEndpoint(
                mail_servers.host, mail_servers.imap_port, mailbox.address, tls,
                password=password, timeout=10,
            )
        )  # fmt: skip

    def send_all(label: str, now: datetime | None = None) -> dict:
        return {
            channel: sinks.call(
                f"deliver_due {channel} ({label})",
                deliver_due,
                ledger,
                settings,
                smtp_for,
                channel=channel,
                actor="test",
                now=now,
            )
            for channel in ("mss_professional", "mss_patient")
        }

    inputs = {p: with_ipp((fixtures_dir / p).read_bytes()) for p in (MDM_INIT, ORU_INIT)}
    inputs["unknown_patient_mailbox"] = variants(fixtures_dir)["unknown_patient_mailbox"]
    intake(sinks, site, inputs, data)
    try:
        mail_servers.set_relay_state("refuse")
        refused = send_all("relay refusing")
        mail_servers.set_relay_state("421")
        busy = send_all("relay 421", now=datetime.now(UTC) + timedelta(minutes=5))
    finally:
        mail_servers.set_relay_state("up")
    assert refused["mss_professional"]["deferred"] >= 1 and busy["mss_patient"]["claimed"] >= 1
    sent = send_all("relay up", now=datetime.now(UTC) + timedelta(hours=1))
    assert sent["mss_professional"]["sent"] >= 1
    # The patient of the variant has no mailbox: the relay answers 550 naming the address.
    statuses = [
        (d.channel, d.recipient, d.status, d.reason_code)
        for d in _deliveries(ledger, "mss_professional", "mss_patient")
    ]
    assert any(s in ("refused", "failed") for _, _, s, _ in statuses), statuses

    # The patient's operator bounces a delivered mail (failure DSN naming the patient address).
    patient = next(
        d
        for d in _deliveries(ledger, "mss_professional", "mss_patient")
        if d.channel == "mss_patient" and d.status == "sent"
    )
    professional = next(
        d
        for d in _deliveries(ledger, "mss_professional", "mss_patient")
        if d.channel == "mss_professional" and d.status == "sent"
    )

    def report(kind: str, fields: str, message_id: str) -> bytes:
        part = (
            "disposition-notification" if kind == "disposition-notification" else "delivery-status"
        )
        return (
            f"From: {PROFESSIONAL}\r\nTo: {sender_address}\r\nSubject: rapport\r\n"
            f'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type={kind}; boundary="B"'
            "\r\n\r\n--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nRapport.\r\n"
            f"--B\r\nContent-Type: message/{part}\r\n\r\n{fields}\r\n"
            "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"Message-ID: {message_id}\r\nTo: {NIR}@patient.mssante.fr\r\n"
            "Subject: PAT-TROIS DOMINIQUE\r\n--B--\r\n"
        ).encode()

    reports = [
        # The patient's operator bounces a delivered mail, naming the patient's address.
        report(
            "delivery-status",
            f"Reporting-MTA: dns; mx.patient.mssante.fr\r\nOriginal-Envelope-Id: "
            f"{patient.request_id}\r\n\r\nFinal-Recipient: rfc822; {NIR}@patient.mssante.fr"
            f"\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            f"Diagnostic-Code: smtp; 550 5.1.1 <{NIR}@patient.mssante.fr> unknown\r\n",
            patient.partner_ref,
        ),
        # A malformed DSN whose Status and Action fields hold the address.
        report(
            "delivery-status",
            f"Reporting-MTA: dns; mx.example\r\nOriginal-Envelope-Id: {professional.request_id}"
            f"\r\n\r\nFinal-Recipient: rfc822; {NIR}@patient.mssante.fr\r\n"
            f"Action: delayed for {NIR}@patient.mssante.fr\r\n"
            f"Status: {NIR}@patient.mssante.fr\r\n",
            professional.partner_ref,
        ),
        # A malformed MDN whose disposition modifier holds the patient's name.
        report(
            "disposition-notification",
            f"Final-Recipient: rfc822; {PROFESSIONAL}\r\n"
            f"Original-Message-ID: {professional.partner_ref}\r\n"
            "Disposition: manual-action/MDN-sent-manually; displayed/PAT-TROIS DOMINIQUE\r\n",
            professional.partner_ref,
        ),
    ]
    ctx = client_ssl_context(test_pki)
    with smtplib.SMTP_SSL(mail_servers.host, mail_servers.smtps_port, context=ctx) as smtp:
        smtp.login(PROFESSIONAL, HUMAN_MAILBOXES[PROFESSIONAL])
        for raw in reports:
            smtp.sendmail(PROFESSIONAL, [sender_address], raw)
    counts = sinks.call(
        "poll_notifications", poll_notifications, ledger, settings, imap_for, actor="test"
    )
    assert counts["dsn"] >= 2 and counts["mdn"] == 1
    assert ledger.get_delivery(patient.id).status == "failed"
    for d in _deliveries(ledger, "mss_professional", "mss_patient"):
        for trace in mss_traces(ledger, delivery_id=d.id):
            sinks.add(f"mss trace {d.id}", repr(trace))
    sinks.ledger(ledger)
    assert_no_leak(sinks, data)


def _deliveries(ledger, *channels: str):
    from sqlalchemy import select

    from pfi.ledger import Delivery
    from pfi.ledger.schema import delivery

    query = select(delivery).where(delivery.c.channel.in_(channels)).order_by(delivery.c.id)
    with ledger.engine.connect() as conn:
        return [Delivery.from_row(r._mapping) for r in conn.execute(query)]


# --- an unexpected error ---------------------------------------------------------------------------


def test_an_unexpected_error_quoting_the_patient_stays_out_of_the_task_log(sinks, site):
    """A bug's message may quote the data it choked on; the batch's error (the task log prints
    its traceback, causes included) names the exception type and place only."""
    from pfi.base.retry import RetryPolicy
    from pfi.flows.queue import run_due

    _, ledger, _ = site
    data = PatientData()
    data.nir("INS", NIR)
    data.token("birth name", "PAT-TROIS")
    data.date("birth date", "19790328")
    delivery_id = record_document(
        ledger,
        "1.2.250.1.71.4.2.2.1",
        "dmp",
        checksum="0" * 64,
        ins_matricule=NIR,
        ins_oid="1.2.250.1.213.1.4.10",
    ).delivery_id

    def send_one(delivery):
        return int(f"PAT-TROIS {NIR} 19790328")  # ValueError: invalid literal … quoting it

    with pytest.raises(PfiError) as raised:
        sinks.call(
            "run_due (bug)",
            run_due,
            ledger,
            "dmp",
            send_one,
            policy=RetryPolicy(first_delay=timedelta(minutes=1)),
            actor="test",
        )
    assert "ValueError at" in str(raised.value) and "test_patient_data.py" in str(raised.value)
    assert ledger.get_delivery(delivery_id).status == "pending"  # kept queued
    sinks.ledger(ledger)
    assert_no_leak(sinks, data)
