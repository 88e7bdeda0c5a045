"""The MSSanté/DMP rule table: every official example accepted, every contradiction refused.

Flags of the official examples: ansforge/hl7V2-exemples under ../shared/fixtures/
ans-hl7v2-exemples (volet Transmission de document(s) CDA en HL7v2, v1.2, v2.0, v2.1).
"""

from dataclasses import fields, replace

import pytest

from pfi.base.errors import InvalidInput
from pfi.protocols.hl7v2 import (
    RULES,
    Action,
    MetaFlags,
    Routing,
    decide,
    decide_request,
    parse_message,
)
from pfi.protocols.ins import InsPolicy

V21 = "Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1"
VOLETS = "Volets/TRANS_DOC_CDA_HL7V2"

# (example, expected routing as DMP/PS/patient)
OFFICIAL = [
    (f"{V21}/MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7", "YYN"),
    (f"{V21}/MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1.er7", "YYN"),
    (f"{V21}/MDM/Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7", "YYN"),
    (f"{V21}/MDM/Suppression MDM/message_MDM_CR_Radio_DEL_N1.er7", "YYN"),
    (f"{V21}/ORU/Transmission initiale ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7", "YYY"),
    (f"{V21}/ORU/Remplacement ORU/message_ORU_CR_Bio_RPLC_N3_SEGUR.hl7", "YYY"),
    (f"{V21}/ORU/Suppression ORU/message_ORU_CR_Bio_DEL_N3_SEGUR.hl7", "YYY"),
    (f"{VOLETS}/V2.1/ORU/Transmission initiale ORU/message_ORU_CR_Bio_INIT_N1_N3.hl7", "YYY"),
    (f"{VOLETS}/V2.1/ORU/Remplacement ORU/message_ORU_CR_Bio_RPLC_N1_N3.er7", "YYY"),
    (f"{VOLETS}/V2.1/ORU/Suppression ORU/message_ORU_CR_Bio_DEL_N1_N3.er7", "YYY"),
    (f"{VOLETS}/V2.0/MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1.er7", "YYN"),
    (f"{VOLETS}/V2.0/MDM/Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7", "YYN"),
    (f"{VOLETS}/V2.0/MDM/Suppression MDM/message_MDM_CR_Radio_DEL_N1.er7", "YYN"),
    (f"{VOLETS}/V2.0/ORU/Transmission initiale ORU/message_ORU_CR_Bio_INIT_N1_N3.hl7", "YYY"),
    (f"{VOLETS}/V2.0/ORU/Remplacement ORU/message_ORU_CR_Bio_RPLC_N1_N3.er7", "YYY"),
    (f"{VOLETS}/V2.0/ORU/Suppression ORU/message_ORU_CR_Bio_DEL_N1_N3.er7", "YYY"),
    (f"{VOLETS}/V1.2/MDM/message.hl7", "YYN"),
    (f"{VOLETS}/V1.2/ORU/message.hl7", "YYY"),
]


def flags(spec: str, acks: str = "NN", **changes) -> MetaFlags:
    """MetaFlags from 8 Y/N letters in the volet's order (MASQUE_PS … DESTMSSANTEPAT)."""
    names = [f.name for f in fields(MetaFlags)][:10]
    values = [None if v == "-" else v == "Y" for v in spec + acks]
    return replace(MetaFlags(**dict(zip(names, values, strict=True))), **changes)


def routing(spec: str) -> Routing:
    return Routing(*(v == "Y" for v in spec))


def accepted(
    spec: str,
    *,
    action: Action = Action.NEW,
    ins_qualified: bool = True,
    recipient: bool | None = True,
) -> Routing:
    decision = decide(
        flags(spec),
        action=action,
        ins_qualified=ins_qualified,
        has_professional_recipient=recipient,
    )
    assert decision.accepted, decision.failures
    decision.raise_for_failures()
    return decision.routing


def refused(
    spec: str,
    *,
    action: Action = Action.NEW,
    ins_qualified: bool = True,
    recipient: bool | None = True,
) -> list[str]:
    decision = decide(
        flags(spec),
        action=action,
        ins_qualified=ins_qualified,
        has_professional_recipient=recipient,
    )
    assert not decision.accepted
    with pytest.raises(InvalidInput) as err:
        decision.raise_for_failures()
    assert err.value.code == decision.failures[0].code
    return [f.code for f in decision.failures]


@pytest.mark.parametrize(
    ("path", "expected"),
    OFFICIAL,
    ids=[p.rsplit("/", 3)[-3] + "/" + p.rsplit("/", 1)[-1] for p, _ in OFFICIAL],
)
def test_every_official_example_is_accepted(fixtures_dir, path, expected):
    request = parse_message((fixtures_dir / "ans-hl7v2-exemples" / path).read_bytes())
    vague1 = request.profile.is_vague1
    decision = decide(
        request.flags,
        action=request.action,
        ins_qualified=True,  # the identity is judged by the site's InsPolicy, see below
        has_professional_recipient=None if vague1 else bool(request.professional_recipients),
    )
    assert decision.accepted, decision.failures
    assert decision.routing == routing(expected)


@pytest.mark.parametrize(
    "path",
    [p for p, _ in OFFICIAL if p.startswith(V21) or "/V2.1/" in p],
    ids=lambda p: p.rsplit("/", 1)[-1],
)
def test_v21_examples_pass_on_a_test_site_and_fail_on_a_production_site(fixtures_dir, path):
    request = parse_message((fixtures_dir / "ans-hl7v2-exemples" / path).read_bytes())
    assert decide_request(request, InsPolicy.for_environment("test")).accepted
    refusal = decide_request(request, InsPolicy.for_environment("production"))
    codes = [f.code for f in refusal.failures]
    assert "RULE_DMP_INS" in codes
    assert ("RULE_PATIENT_INS" in codes) is request.flags.dest_mss_patient
    assert "INS_OID_ENVIRONMENT" in codes and "INS_NOT_QUALIFIED" in codes  # VALI


def test_v12_example_ins_key_is_reported(fixtures_dir):
    # The v1.2 examples carry 276037510669380 under the production OID: its key is wrong.
    request = parse_message(
        (fixtures_dir / "ans-hl7v2-exemples" / VOLETS / "V1.2/MDM/message.hl7").read_bytes()
    )
    codes = [
        f.code for f in decide_request(request, InsPolicy.for_environment("production")).failures
    ]
    assert codes == ["RULE_DMP_INS", "INS_KEY", "INS_NOT_QUALIFIED"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("NNNNNYYY", "YYY"),  # matrix row 1
        ("NYNNNYYN", "YYN"),  # matrix row 2
        ("YNYNNNNY", "NNY"),  # matrix row 3
        ("NNNNNNYN", "NYN"),  # everyday: professionals only, visible to the patient
        ("NNNYNYYN", "YYN"),  # connexion secrète, professionals only
        ("NYYYNYYN", "YYN"),  # the official v2.1 initial MDM
        ("NNYNNNYY", "NYY"),  # legal representatives excluded, professionals and patient
        ("NNNNNYNN", "YNN"),  # DMP only
        ("YNNNNYNN", "YNN"),  # DMP only, masked to professionals
        ("NNNNNYNY", "YNY"),  # DMP and patient
    ],
)
def test_accepted_combinations(spec, expected):
    assert accepted(spec) == routing(expected)


def test_ack_flags_never_change_the_routing():
    for acks in ("NN", "YY", "YN", "--"):
        decision = decide(
            flags("NNNNNYYY", acks),
            action=Action.NEW,
            ins_qualified=True,
            has_professional_recipient=True,
        )
        assert decision.accepted and decision.routing == routing("YYY")


@pytest.mark.parametrize(
    ("spec", "kwargs", "codes"),
    [
        ("NNNNNNNN", {}, ["RULE_NO_DESTINATION"]),
        ("NYNNNNNY", {}, ["RULE_PATIENT_INVISIBLE"]),
        ("NYNNNYYY", {}, ["RULE_PATIENT_INVISIBLE"]),
        ("YNNNNNYN", {}, ["RULE_PS_MASKED"]),
        ("YNNNNYYY", {}, ["RULE_PS_MASKED"]),
        ("NNNYNNNY", {}, ["RULE_SECRET_TO_PATIENT"]),
        ("NNNYNYYY", {}, ["RULE_SECRET_TO_PATIENT"]),
        ("NNNNNNYY", {"ins_qualified": False}, ["RULE_PATIENT_INS"]),
        ("NNNNNYYN", {"ins_qualified": False}, ["RULE_DMP_INS"]),
        ("NNNNNYNY", {"ins_qualified": False}, ["RULE_PATIENT_INS", "RULE_DMP_INS"]),
        ("NNNNNNYN", {"recipient": False}, ["RULE_PS_NO_RECIPIENT"]),
        ("NNNNYYYN", {"action": Action.NEW}, ["RULE_MODIF_CONF_ON_NEW"]),
        ("NNNNN-YN", {}, ["RULE_FLAG_MISSING"]),
        (
            "YYNYNNYY",
            {"ins_qualified": False},
            [
                "RULE_PATIENT_INVISIBLE",
                "RULE_PS_MASKED",
                "RULE_SECRET_TO_PATIENT",
                "RULE_PATIENT_INS",
            ],
        ),
    ],
)
def test_contradictions_are_refused_with_their_codes(spec, kwargs, codes):
    assert refused(spec, **kwargs) == codes


def test_professionals_without_ins_are_fine():
    assert accepted("NNNNNNYN", ins_qualified=False) == routing("NYN")


def test_unknown_recipients_do_not_fire_the_recipient_rule():
    assert accepted("NNNNNNYN", recipient=None) == routing("NYN")


def test_modif_conf_code_on_replacement_and_deletion():
    assert accepted("NNNNYYYN", action=Action.REPLACE) == routing("YYN")
    assert accepted("NNNNYYYN", action=Action.DELETE) == routing("YYN")  # official v2.0 T04


def test_rule_table_is_well_formed():
    codes = [rule.code for rule in RULES]
    assert len(codes) == len(set(codes))
    facts = {f.name for f in fields(MetaFlags)} | {
        "action",
        "ins_qualified",
        "has_professional_recipient",
    }
    for rule in RULES:
        assert rule.when and set(rule.when) <= facts
        assert rule.source and rule.message
