"""Mail composition on the official ANS examples (``../shared/fixtures/ans-hl7v2-exemples``,
volet v2.1): recipients from the rule table and PRT, headers, body, IHE_XDM.ZIP + PDF."""

import dataclasses
import email
import email.policy
import uuid

import pytest

from pfi.base.errors import ConfigurationError, InvalidInput
from pfi.protocols.cda import read_cda
from pfi.protocols.hl7v2 import decide_request, parse_message
from pfi.protocols.ins import InsPolicy
from pfi.protocols.mssante import (
    PATIENT,
    PROFESSIONAL,
    Mailbox,
    MssConfig,
    SiteInfo,
    compose,
    mail_orders,
    message_id_for,
    request_id_of,
)
from pfi.protocols.xdm import read_xdm

V21 = "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1"
MDM_INIT = f"{V21}/MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7"
MDM_RPLC = f"{V21}/MDM/Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7"
MDM_DEL = f"{V21}/MDM/Suppression MDM/message_MDM_CR_Radio_DEL_N1.er7"
ORU_INIT = f"{V21}/ORU/Transmission initiale ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7"

MAILBOX = Mailbox("pfi@ch-demo.mssante.test")
CONFIG = MssConfig(
    software_reference="PFI-TEST-0042",
    sender_name="CH de Démonstration",
    contact_address="secretariat@ch-demo.mssante.test",
)
SITE = SiteInfo(name="CH de Démonstration", structure_oid="1.2.250.1.71.4.2.2")
POLICY = InsPolicy.for_environment("test")
PATIENT_ADDRESS = "279035121518989@patient.mssante.fr"  # test INS of the official examples


@pytest.fixture(scope="module")
def load(fixtures_dir):
    cache = {}

    def _load(path):
        if path not in cache:
            cache[path] = parse_message((fixtures_dir / path).read_bytes())
        return cache[path]

    return _load


def _mails(request):
    orders = mail_orders(request, decide_request(request, POLICY), POLICY)
    return [(order, compose(request, order, MAILBOX, CONFIG, site=SITE)) for order in orders]


def _parsed(mail):
    return email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)


def _text(parsed):
    return parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")


def _attachments(parsed):
    return {part.get_filename(): part.get_content() for part in parsed.iter_attachments()}


def test_initial_mdm_goes_to_its_professional_with_xdm_pdf_and_statistics_headers(load):
    request = load(MDM_INIT)
    mails = _mails(request)
    # DESTMSSANTEPS=Y, DESTMSSANTEPAT=N: one mail, to the PRT RCT address.
    assert [(o.channel, o.recipient) for o, _ in mails] == [
        (PROFESSIONAL, request.professional_recipients[0].address.lower())
    ]
    order, mail = mails[0]
    parsed = _parsed(mail)
    assert parsed["From"].addresses[0].addr_spec == MAILBOX.address
    assert parsed["From"].addresses[0].display_name == "CH de Démonstration"
    assert parsed["To"] == order.recipient
    assert parsed["Message-ID"] == f"<{order.request_id}@ch-demo.mssante.test>"
    assert parsed["Subject"] == "XDM/1.0/DDM+Radio de hanche PAT-TROIS DOMINIQUE 28/03/1979"
    assert parsed["X-MSS-INS"] == "O"
    assert parsed["X-MSS-CODECDA"] == "18748-4"
    assert parsed["X-MSS-NIL"] == "PFI-TEST-0042"
    assert parsed["X-MSS-MES"] is None
    # ACK_RECEPTION=N and ACK_LECTURE_MSS=N: no acknowledgement requested of the recipient; a
    # DSN is still asked of the operator ([mssante] request_dsn): it tells whether a mail whose
    # worker died was taken, so that it is never mailed twice.
    assert parsed["Disposition-Notification-To"] is None and parsed["Return-Receipt-To"] is None
    assert mail.dsn
    body = parsed.get_body(("plain",))
    assert body.get_content_charset() == "utf-8"
    text = body.get_content()
    assert text.startswith("Cher confrère")  # CORPSMAIL_PS of the example
    assert "généré automatiquement" in text and CONFIG.contact_address in text

    attachments = _attachments(parsed)
    assert list(attachments) == ["IHE_XDM.ZIP", "20050411_Radio_de_hanche.pdf"]
    package = read_xdm(attachments["IHE_XDM.ZIP"])
    assert [d.content for d in package.documents] == [request.documents[0].content]
    assert package.patient_id.startswith("279035121518989^^^&1.2.250.1.213.1.4.10&ISO")
    cda = read_cda(request.documents[0].content)
    pdf = attachments["20050411_Radio_de_hanche.pdf"]
    assert pdf == cda.embedded_document() and pdf.startswith(b"%PDF")


def test_oru_to_professionals_and_patient_asks_for_dsn_and_mdn(load):
    request = load(ORU_INIT)
    mails = _mails(request)
    channels = [(o.channel, o.recipient) for o, _ in mails]
    professionals = {p.address.lower() for p in request.professional_recipients}
    assert {r for c, r in channels if c == PROFESSIONAL} == professionals
    assert [r for c, r in channels if c == PATIENT] == [PATIENT_ADDRESS]
    assert len({o.request_id for o, _ in mails}) == len(mails)
    for order, mail in mails:
        parsed = _parsed(mail)
        assert parsed["To"] == order.recipient  # one recipient per mail
        # ACK_RECEPTION=Y → DSN; ACK_LECTURE_MSS=Y → MDN, both back to the sending mailbox.
        assert mail.dsn and parsed["Return-Receipt-To"] == MAILBOX.address
        assert mail.mdn and parsed["Disposition-Notification-To"] == MAILBOX.address
        assert parsed["X-MSS-CODECDA"] == "11502-2"
        # N3: the XDM only (no PDF rendering); the truncated CORPSMAIL_PS → the site's text.
        assert list(_attachments(parsed)) == ["IHE_XDM.ZIP"]
        text = _text(parsed)
        assert "Compte rendu d'examens biologiques" in text
    patient_text = _text(_parsed(mails[-1][1]))
    assert patient_text.startswith("Bonjour,\n\nCH de Démonstration vous adresse le document")


def test_replacement_and_deletion_say_so(load):
    ((_, replace),) = _mails(load(MDM_RPLC))
    text = _text(_parsed(replace))
    assert text.startswith("Ce document annule et remplace la version transmise précédemment.")
    attachments = _attachments(_parsed(replace))
    assert list(attachments) == ["IHE_XDM.ZIP", "20050411_Radio_de_hanche.pdf"]
    package = read_xdm(attachments["IHE_XDM.ZIP"])
    # The new version replaces the one of the initial example (CDA relatedDocument RPLC).
    assert [target for _, target in package.replacements()] == [
        "1.2.250.1.71.4.2.2.120456789.71024000081"
    ]
    assert package.submission_set.intended_recipients == (f"||^^Internet^{replace.recipient}",)
    # The volet LPS extra-metadata "action" tells a receiving PFI which MDM to send its DPI.
    assert ("action", ("C",)) in package.documents[0].entry.extra_slots

    ((_, delete),) = _mails(load(MDM_DEL))
    parsed = _parsed(delete)
    assert (
        parsed.get_body(("plain",))
        .get_content()
        .startswith("Le document joint a été supprimé par son auteur")
    )
    # The withdrawn document is identified by the XDM only: no PDF shown again.
    assert list(_attachments(parsed)) == ["IHE_XDM.ZIP"]
    package = read_xdm(_attachments(parsed)["IHE_XDM.ZIP"])
    assert ("action", ("D",)) in package.documents[0].entry.extra_slots


def test_patient_mail_closed_to_replies_carries_x_mss_mes_fin(load):
    base = load(ORU_INIT)
    request = dataclasses.replace(
        base, flags=dataclasses.replace(base.flags, patient_reply_closed=True)
    )
    mails = dict((o.channel, m) for o, m in _mails(request))
    patient = _parsed(mails[PATIENT])
    assert patient["X-MSS-MES"] == "FIN"
    assert patient["Reply-To"] is None
    assert "Il n'est pas possible d'y répondre" in _text(patient)
    assert _parsed(mails[PROFESSIONAL])["X-MSS-MES"] is None


def test_no_patient_mail_without_a_qualified_ins(load):
    base = load(ORU_INIT)
    unqualified = dataclasses.replace(
        base, patient=dataclasses.replace(base.patient, identity_reliability=("PROV",))
    )
    with pytest.raises(InvalidInput) as refused:
        mail_orders(unqualified, decide_request(unqualified, POLICY), POLICY)
    assert refused.value.code == "RULE_PATIENT_INS"
    assert "279035121518989" not in str(refused.value)


@pytest.mark.parametrize(
    ("flags", "code"),
    [
        ({"dest_mss_patient": True, "invisible_patient": True}, "RULE_PATIENT_INVISIBLE"),
        ({"masque_ps": True}, "RULE_PS_MASKED"),
        (
            {"dest_mss_patient": True, "invisible_patient": False, "connexion_secrete": True},
            "RULE_SECRET_TO_PATIENT",
        ),
    ],
)
def test_contradictory_requests_are_refused_with_the_rule_tables_code(load, flags, code):
    base = load(MDM_INIT)
    request = dataclasses.replace(base, flags=dataclasses.replace(base.flags, **flags))
    with pytest.raises(InvalidInput) as refused:
        mail_orders(request, decide_request(request, POLICY), POLICY)
    assert refused.value.code == code


def test_masked_to_professionals_may_still_go_to_the_patient_only(load):
    base = load(ORU_INIT)
    flags = dataclasses.replace(base.flags, masque_ps=True, dest_mss_ps=False)
    request = dataclasses.replace(base, flags=flags)
    orders = mail_orders(request, decide_request(request, POLICY), POLICY)
    assert [(o.channel, o.recipient) for o in orders] == [(PATIENT, PATIENT_ADDRESS)]


def test_message_id_is_fixed_by_the_request_id(load):
    request = load(MDM_INIT)
    request_id = uuid.uuid4()
    orders = mail_orders(
        request,
        decide_request(request, POLICY),
        POLICY,
        request_ids={request.professional_recipients[0].address.lower(): request_id},
    )
    first = compose(request, orders[0], MAILBOX, CONFIG)
    again = compose(request, orders[0], MAILBOX, CONFIG)
    assert first.message_id == again.message_id == message_id_for(request_id, MAILBOX)
    assert request_id_of(first.message_id) == request_id
    assert request_id_of("<abc@example.org>") is None


def test_site_templates_override_and_are_checked():
    config = MssConfig.from_mapping({"templates": {"subject": "XDM/1.0/DDM+{title}"}})
    assert config.template("subject") == "XDM/1.0/DDM+{title}"
    assert config.template("footer").startswith("\n-- \n")
    with pytest.raises(ConfigurationError, match="unknown placeholder"):
        MssConfig.from_mapping({"templates": {"subject": "{ins}"}})
    with pytest.raises(ConfigurationError, match="unknown template"):
        MssConfig.from_mapping({"templates": {"objet": "x"}})
    with pytest.raises(ConfigurationError, match="unknown setting"):
        MssConfig.from_mapping({"sofware_reference": "x"})


@pytest.mark.parametrize(
    "address", ["", "adam.hoda", "a b@x.fr", "a@b", "<a@b.fr>", "a@b.fr, c@d.fr"]
)
def test_a_recipient_that_is_no_mail_address_is_refused(load, address):
    request = load(MDM_INIT)
    order = dataclasses.replace(
        mail_orders(request, decide_request(request, POLICY), POLICY)[0], recipient=address
    )
    with pytest.raises(InvalidInput) as refused:
        compose(request, order, MAILBOX, CONFIG)
    assert refused.value.code == "MSS_BAD_ADDRESS"


@pytest.mark.parametrize(
    ("path", "struct_id"),
    [(MDM_INIT, "1300017985"), (ORU_INIT, "1120459876")],  # PRT-8 FINESS bare / already 1-prefixed
)
def test_the_xdm_author_institution_is_the_senders_national_structure_id(load, path, struct_id):
    _, mail = _mails(load(path))[0]
    package = read_xdm(_attachments(_parsed(mail))["IHE_XDM.ZIP"])

    (author,) = package.submission_set.authors
    assert author.institutions[0].endswith(f"^IDNST^^^{struct_id}")
