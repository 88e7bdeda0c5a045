"""Hostile inputs through the flows (property-based, hypothesis), on the real local servers.

- **Intake** (``ingest_hl7_drop``'s steps on a PostgreSQL ledger): a drop folder receives hostile
  files (the samples mutated, random bytes) beside one valid message; the batch goes on — no
  unexpected failure, the valid message accepted —, every file ends ``done`` or ``rejected``
  with a coded reason free of patient data, its original kept byte for byte (the quarantined
  ones with their ``.reason.txt``), and the drop folder is left empty.
- **Receiving** (``poll_mssante_inbox``'s first step against Dovecot and the SMTP relay): the
  application mailbox's INBOX receives hostile mails (the sample mail mutated, random bytes)
  beside one valid document mail; one poll takes them all — none left for a next poll —, each
  recorded, accepted or refused with a code, its bytes kept, the refused ones moved to the
  errors folder.

A few examples each in ``make test`` (profile ``ci``), ten times as many in ``make fuzz``.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pfi_fixtures.hostile import flow_settings, hl7_inputs, leaks, mail_inputs

pytestmark = pytest.mark.integration

SERIALS = itertools.count(1000)


# --- intake -------------------------------------------------------------------------------------


@pytest.fixture
def intake_site(tmp_path, fresh_ledger):
    from pfi.base.settings import load_settings
    from pfi_fixtures.site import hl7_source, write_settings

    settings = load_settings(write_settings(tmp_path, sources=[hl7_source(tmp_path)]))
    return settings, fresh_ledger


@flow_settings(examples=4)
@given(hostile=st.lists(hl7_inputs(), min_size=1, max_size=4))
def test_an_intake_batch_with_hostile_files_goes_on_and_keeps_every_original(intake_site, hostile):
    from pfi_devkit.samples import MDM_INIT, sample_bytes
    from pfi_fixtures.site import ingest

    settings, ledger = intake_site
    source = settings.source("dpi")
    serial = next(SERIALS)
    good = sample_bytes(MDM_INIT, serial)
    files = {f"hostile-{serial}-{i}.hl7": data for i, data in enumerate(hostile)}
    files[f"good-{serial}.hl7"] = good
    source.drop_dir.mkdir(parents=True, exist_ok=True)
    settled = time.time() - 60
    for name, data in files.items():
        (source.drop_dir / name).write_bytes(data)
        os.utime(source.drop_dir / name, (settled, settled))

    _, counts = ingest(ledger, settings, batch_size=3, limit=100)  # raises on an unexpected error

    assert sum(c["failed"] for c in counts) == 0, counts
    assert list(source.drop_dir.iterdir()) == []
    for name, data in files.items():
        (item,) = ledger.find_inbound(
            kind="hl7_file", checksum=hashlib.sha256(data).hexdigest(), limit=1
        )
        assert item.status in ("done", "rejected"), (name, item.status, item.reason_code)
        kept = Path(item.storage_path)
        assert kept.read_bytes() == data, name
        if item.status == "rejected":
            assert item.reason_code, item
            assert not leaks(item.reason_text or ""), item.reason_text
            assert kept.with_name(kept.name + ".reason.txt").is_file()
    (accepted,) = ledger.find_inbound(
        kind="hl7_file", checksum=hashlib.sha256(good).hexdigest(), limit=1
    )
    assert accepted.status == "done"


# --- receiving ----------------------------------------------------------------------------------


@pytest.fixture
def inbox(tmp_path, fresh_ledger, mail_servers, test_pki):
    from pfi.base.settings import load_settings
    from pfi.flows.mssante_inbox import ReceivingConfig
    from pfi_fixtures.mail import INBOX_TEST_MAILBOX, empty_inbox, mailbox_endpoints
    from pfi_fixtures.site import write_settings

    empty_inbox(mail_servers, test_pki, INBOX_TEST_MAILBOX)
    settings = load_settings(
        write_settings(
            tmp_path,
            mailboxes=[
                f'[[mailbox]]\nname = "inbox"\naddress = "{INBOX_TEST_MAILBOX}"\n'
                'finess_geo = "010000032"\n'
            ],
        )
    )
    smtp_endpoint, imap_endpoint = mailbox_endpoints(mail_servers, test_pki, INBOX_TEST_MAILBOX)
    config = ReceivingConfig(
        processed_folder=f"PFI-ok-{uuid.uuid4().hex[:6]}",
        errors_folder=f"PFI-ko-{uuid.uuid4().hex[:6]}",
    )
    return settings, fresh_ledger, smtp_endpoint, imap_endpoint, config


def _append(imap_endpoint, raw: bytes) -> bool:
    """Put a mail into the INBOX as it is (IMAP APPEND, what a delivery agent does); False when
    the server refuses those bytes (they then never reach a mailbox)."""
    from pfi.protocols.mssante.imap import ImapClient

    with ImapClient(imap_endpoint) as client:
        client.connect()
        typ, _ = client._imap.append("INBOX", None, None, raw)
    return typ == "OK"


@flow_settings(examples=3)
@given(hostile=st.lists(mail_inputs(), min_size=1, max_size=3))
def test_a_mailbox_with_hostile_mails_is_read_in_one_poll_and_keeps_every_original(
    inbox, hostile, samples_dir, mail_servers, test_pki
):
    import email.policy

    from pfi.flows.mssante_inbox import poll_mailbox
    from pfi.protocols.mssante.imap import ImapClient
    from pfi.protocols.mssante.smtp import SmtpClient
    from pfi_fixtures.mail import INBOX_TEST_MAILBOX, document_mail, empty_inbox

    inbox_servers = (mail_servers, test_pki)

    settings, ledger, smtp_endpoint, imap_endpoint, config = inbox
    empty_inbox(*inbox_servers, INBOX_TEST_MAILBOX)  # each example starts from an empty INBOX
    known = {i.id for i in ledger.find_inbound(kind="mail", limit=10_000)}
    good = document_mail(samples_dir, INBOX_TEST_MAILBOX).as_bytes(policy=email.policy.SMTP)
    mails = [raw for raw in [*hostile, good] if raw.strip() and _append(imap_endpoint, raw)]
    assert mails[-1] == good

    with ImapClient(imap_endpoint) as imap, SmtpClient(smtp_endpoint) as smtp:
        counts = poll_mailbox(
            ledger, settings, settings.mailboxes[0], imap, smtp=smtp, actor="test", config=config
        )  # raises when a mail was left for the next poll

    assert counts["listed"] == len(mails), counts
    assert counts["accepted"] + counts["refused"] + counts["known"] == len(mails), counts
    assert counts["accepted"] >= 1, counts  # the valid mail, whatever came before it
    new = [i for i in ledger.find_inbound(kind="mail", limit=10_000) if i.id not in known]
    assert len(new) == counts["recorded"]
    for item in new:
        kept = Path(item.storage_path)
        assert hashlib.sha256(kept.read_bytes()).hexdigest() == item.checksum
        assert item.status in ("done", "rejected"), item
        if item.status == "rejected":
            assert item.reason_code, item
            assert not leaks(item.reason_text or ""), item.reason_text
    with ImapClient(imap_endpoint) as imap:
        imap.select_folder("INBOX")
        left = imap.list_uids(limit=1000)
    # the refused are moved to the errors folder; the accepted wait for the DPI step
    assert counts["moved"] >= counts["refused"] and len(left) == len(mails) - counts["moved"]


def test_a_refused_mail_whose_error_mail_is_refused_is_still_moved_and_never_retried(
    inbox, mail_servers, test_pki
):
    """The relay refusing the error mail for good (550: the sender's mailbox does not exist)
    made the poll raise and left the mail in the INBOX, the same 550 at every poll."""
    from pfi.flows.mssante_inbox import EVENT_ERROR_MAIL_SENT, poll_mailbox
    from pfi.protocols.mssante.imap import ImapClient
    from pfi.protocols.mssante.smtp import SmtpClient
    from pfi_fixtures.hostile import mail_seeds
    from pfi_fixtures.mail import INBOX_TEST_MAILBOX, empty_inbox

    settings, ledger, smtp_endpoint, imap_endpoint, config = inbox
    empty_inbox(mail_servers, test_pki, INBOX_TEST_MAILBOX)
    text_only = mail_seeds()[2].replace(b"dr.test@", b"personne.inconnue@", 1)
    assert _append(imap_endpoint, text_only)

    def poll() -> dict:
        with ImapClient(imap_endpoint) as imap, SmtpClient(smtp_endpoint) as smtp:
            return poll_mailbox(
                ledger, settings, settings.mailboxes[0], imap, smtp=smtp, actor="test",
                config=config,
            )  # fmt: skip

    assert poll() | {"listed": 1} == {
        "listed": 1, "recorded": 1, "accepted": 0, "refused": 1, "known": 0, "moved": 1,
    }  # fmt: skip
    (item,) = ledger.find_inbound(kind="mail", limit=10)
    (event,) = ledger.events(inbound_item_id=item.id, kind=EVENT_ERROR_MAIL_SENT, limit=5)
    assert event.detail["refused"] == "SMTP_550"
    assert poll()["listed"] == 0


def test_a_file_whose_msh_9_is_over_40_characters_is_refused_not_failed(intake_site):
    """The file's row took MSH-9 whole (the message's row was cut to the column's 40
    characters): PostgreSQL refused it, the file failed unexpectedly at every attempt."""
    from pfi_devkit.samples import MDM_INIT, sample_bytes
    from pfi_fixtures.site import ingest

    settings, ledger = intake_site
    source = settings.source("dpi")
    raw = sample_bytes(MDM_INIT).replace(b"|MDM^T02^MDM_T02|", b"|MDM^" + b"T" * 60 + b"|", 1)
    source.drop_dir.mkdir(parents=True, exist_ok=True)
    (source.drop_dir / "long.hl7").write_bytes(raw)
    os.utime(source.drop_dir / "long.hl7", (time.time() - 60,) * 2)

    _, (counts,) = ingest(ledger, settings)

    assert counts["failed"] == 0 and counts["rejected"] == 1, counts
    (item,) = ledger.find_inbound(kind="hl7_file", limit=5)
    assert item.status == "rejected" and item.reason_code == "HL7_UNSUPPORTED_EVENT"
    assert len(item.message_type) == 40
