"""The three official examples of the volet LPS through the whole receiving flow.

Each official producer message (volet "Transmission de document(s) CDA en HL7v2" v2.1: the
initial CR d'imagerie, its replacement, its deletion) is mailed by the PFI's sending side to an
application mailbox (Dovecot, client certificate); the receiving flow takes the mail and sends
its DPI (MLLP peer) the volet LPS MDM, compared field by field with the official LPS example of
the same event (``Trans_LPS_CDA_MSSanté/…_V1.1``). What must be equal is the patient, the
document and its action; what differs by construction is the route, the times, the control id
and the mail group (another sender, subject and Message-ID than the examples' placeholders) —
listed in :data:`DIFFERENT`, with the sender's and the recipient's PRT (a PFI's mailbox
sends here, a doctor's mailbox there) and MODIF_CONF_CODE (no XDM metadata carries it). The builder's own field-by-field comparison, with the examples' mail
facts, is ``tests/unit/test_lps_mdm.py``.
"""

from __future__ import annotations

import base64

import pytest

from pfi.base.settings import load_settings
from pfi.flows.mssante_inbox import ReceivingConfig, deliver_to_dpi, poll_mailbox
from pfi.protocols.hl7v2.ack import split_segments
from pfi.protocols.mllp import MllpClient, MllpEndpoint
from pfi.protocols.mssante.imap import ImapClient
from pfi.protocols.mssante.smtp import SmtpClient
from pfi_devkit.samples.mail import document_mail
from pfi_fixtures.mail import (
    HUMAN,
    INBOX_TEST_MAILBOX,
    empty_inbox,
    mail_from_human,
    mailbox_endpoints,
)
from pfi_fixtures.site import write_settings

pytestmark = pytest.mark.integration

V21 = "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM"
LPS = (
    "ans-hl7v2-exemples/Vague 2/Trans_LPS_CDA_MSSanté/"
    "TRANSMISSION_LPS_DOC_CDA_COURRIEL_FROM_MSSANTE_V1.1"
)
EXAMPLES = {
    "T02": (
        "Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7",
        "Transmission initiale MDM/message_MDM__LPS_MSS_CR_Radio_INIT_N1_Base64.er7",
    ),
    "T10": (
        "Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7",
        "Remplacement MDM/message_MDM__LPS_MSS_CR_Radio_RPLC_N1.er7",
    ),
    "T04": (
        "Suppression MDM/message_MDM_CR_Radio_DEL_N1.er7",
        "Suppression MDM/message_MDM__LPS_MSS_CR_Radio_DEL_N1.er7",
    ),
}
REPLY_TO = "adam.hoda@test-ci-sis.mssante.fr"
#: (segment, field) that differ by construction (module docstring), and why.
DIFFERENT = {
    ("MSH", 3): "the PFI's own application name",
    ("MSH", 4): "the site's FINESS juridique",
    ("MSH", 5): "[receiving] dpi_application",
    ("MSH", 6): "the mailbox's FINESS géographique",
    ("MSH", 7): "built now",
    ("MSH", 10): "PFIR<delivery id>",
    ("EVN", 2): "the mail's date",
    ("EVN", 5): "no operator: the examples' PAT^ADMIN is the DPI's own user",
    ("EVN", 6): "the mail's reception",
    ("PID", 3): "the examples add the INS's validity date (not in the CDA)",
    ("PID", 11): "the examples add an address the CDA does not give",
    ("PID", 18): "the examples' visit number comes from the DPI, not from the mail",
    ("TXA", 4): "the examples' authoring time differs from their own CDA's",
    ("TXA", 12): "the examples add the assigning authority's name",
    ("TXA", 13): "the examples add the assigning authority's name",
    ("OBX#1", 5): "the CDA the mail carried (base64 padded; the examples truncate theirs)",
    ("OBX#2", 3): "the mail's Message-ID (the examples' placeholder is 1)",
    ("OBX#2", 5): "the mail's subject and body",
    ("OBX#6", 5): "MODIF_CONF_CODE: no XDM metadata carries it to a receiving PFI (N)",
    ("PRT#1", 4): "role with its text (SB^Send by^participation), as in the unit test",
    ("PRT#1", 5): "the sender: a PFI's application mailbox (its software) here, a doctor there",
    ("PRT#1", 8): "the sender's institution from the XDM author (the examples' has none)",
    ("PRT#1", 15): "the sender's address",
    ("PRT#2", 4): "role with its text (RCT^Result Copies To^participation)",
    ("PRT#2", 8): "the service an application mailbox serves is not configured (the examples' UF)",
    ("PRT#2", 15): "the application mailbox's address",
    ("PRT#3", 4): "role with its text (REPLY^Reply To^participation)",
}


def fields_of(text: str) -> dict[str, list[str]]:
    """Segments by ID (``ID#n`` when repeated), fields by HL7 number, trailing empties dropped."""
    table: dict[str, list[str]] = {}
    ids = [s.split("|", 1)[0] for s in split_segments(text)]
    seen: dict[str, int] = {}
    for segment in split_segments(text):
        fields = segment.rstrip("|").split("|")
        if fields[0] == "MSH":
            fields = ["MSH", "|", *fields[1:]]
        seen[fields[0]] = seen.get(fields[0], 0) + 1
        label = f"{fields[0]}#{seen[fields[0]]}" if ids.count(fields[0]) > 1 else fields[0]
        table[label] = fields
    return table


@pytest.fixture
def site(tmp_path):
    (tmp_path / "in").mkdir()
    mailbox = (
        f'[[mailbox]]\nname = "inbox"\naddress = "{INBOX_TEST_MAILBOX}"\nfiness_geo = "010000032"\n'
    )
    return load_settings(write_settings(tmp_path, mailboxes=[mailbox]))


@pytest.mark.parametrize("event", EXAMPLES)
def test_the_official_example_mailed_reaches_the_dpi_as_the_volet_lps_mdm(
    fresh_ledger, site, mail_servers, test_pki, mllp_peer, fixtures_dir, event
):
    producer, official = EXAMPLES[event]
    empty_inbox(mail_servers, test_pki, INBOX_TEST_MAILBOX)
    message = document_mail((fixtures_dir / V21 / producer).read_bytes(), HUMAN, INBOX_TEST_MAILBOX)
    message["Reply-To"] = REPLY_TO  # as the examples' mail (their PRT REPLY)
    xdm_zip = next(
        p.get_content() for p in message.iter_attachments() if p.get_filename() == "IHE_XDM.ZIP"
    )
    mail_from_human(mail_servers, test_pki, message)
    smtp_endpoint, imap_endpoint = mailbox_endpoints(mail_servers, test_pki, INBOX_TEST_MAILBOX)
    config = ReceivingConfig(processed_folder="PFI-official-ok", errors_folder="PFI-official-ko")
    with ImapClient(imap_endpoint) as imap, SmtpClient(smtp_endpoint) as smtp:
        poll_mailbox(
            fresh_ledger, site, site.mailboxes[0], imap, smtp=smtp, actor="test", config=config
        )
    counts = deliver_to_dpi(
        fresh_ledger,
        site,
        dpi=MllpClient(MllpEndpoint(mllp_peer.host, mllp_peer.port, read_timeout=5)),
        smtp_for=lambda _: SmtpClient(smtp_endpoint),
        imap_for=lambda _: ImapClient(imap_endpoint),
        actor="test",
        config=config,
    )
    assert counts["sent"] == 1

    (received,) = mllp_peer.received
    ours = fields_of(received)
    theirs = fields_of((fixtures_dir / LPS / official).read_text("utf-8"))
    assert list(ours) == list(theirs)  # same segments, same order
    found = {
        (label, number)
        for label, fields in theirs.items()
        for number in range(1, max(len(fields), len(ours[label])))
        if (ours[label][number : number + 1] or [""]) != (fields[number : number + 1] or [""])
    }
    unexpected = found - set(DIFFERENT)
    assert not unexpected, "\n".join(
        f"{where}: {ours[where[0]][where[1] : where[1] + 1]} {theirs[where[0]][where[1] : where[1] + 1]}"
        for where in sorted(unexpected)
    )
    assert ("MSH", 9) not in found and ("MSH", 21) not in found  # event, volet version
    # The DPI gets, byte for byte, the CDA the mail carried.
    from pfi.protocols.xdm import read_xdm

    (document,) = read_xdm(xdm_zip).documents
    data = ours["OBX#1"][5].split("^")[4]
    assert base64.b64decode(data) == document.content
