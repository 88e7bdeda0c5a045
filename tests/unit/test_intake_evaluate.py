"""``pfi.flows.intake.evaluate``: the decision for one message, without ledger or files.

Variants of the official v2.1 MDM initial example (Base64 CDA N1, test INS 279035121518989,
DESTDMP=Y, DESTMSSANTEPS=Y to adam.hoda@test-ci-sis.mssante.fr).
"""

import base64
import re
from pathlib import Path

import pytest

from pfi.base.settings import Hl7Source
from pfi.flows.intake import IntakeOptions, evaluate, volet_code
from pfi.protocols.ins import InsPolicy

MDM_INIT = (
    "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM/"
    "Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7"
)
INS_REP = b"279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS^^20101207"
SOURCE = Hl7Source(
    name="dpi",
    kind="DPI",
    finess_geo="010000032",
    drop_dir=Path("in"),
    outbound_dir=Path("out"),
    archive_dir=Path("archive"),
    quarantine_dir=Path("quarantine"),
    work_dir=Path("work"),
    default_encoding="utf-8",
)


@pytest.fixture(scope="module")
def good(fixtures_dir) -> bytes:
    return (fixtures_dir / MDM_INIT).read_bytes()


def decide(raw: bytes, environment="test", **options):
    return evaluate(
        1,
        raw,
        source=SOURCE,
        policy=InsPolicy.for_environment(environment),
        options=IntakeOptions(**options),
        structure_oid="1.2.250.1.71.4.2.2",
    )


def alternate_codes(evaluation) -> list[str]:
    return [e.alternate_code for e in evaluation.answer.errors]


def test_the_official_example_is_accepted_with_its_plan(good):
    result = decide(good)
    assert result.answer.code == "AA" and result.answer.errors == ()
    assert [d.unique_id for d in result.documents] == ["1.2.250.1.71.4.2.2.120456789.71024000081"]
    assert result.channels == (
        ("dmp", None),
        ("mss_professional", "adam.hoda@test-ci-sis.mssante.fr"),
    )
    assert (result.ins_oid, result.ins_qualified) == ("1.2.250.1.213.1.4.10", True)
    assert "279035121518989" not in repr(result)


def test_a_production_site_refuses_test_ins_even_for_professionals_only(good):
    professionals_only = good.replace(
        b"DESTDMP^Destinataire DMP^MetaDMPMSS||Y", b"DESTDMP^Destinataire DMP^MetaDMPMSS||N"
    )
    result = decide(professionals_only, environment="production")
    assert result.answer.reason_code == "INS_OID_ENVIRONMENT"
    assert result.answer.errors[0].location == "PID^1^3"


def test_without_ins_only_professionals_may_be_served(good):
    no_ins = good.replace(b"PID|||" + INS_REP + b"|", b"PID||||")
    refused = decide(no_ins)
    assert alternate_codes(refused)[:2] == ["RULE_DMP_INS", "INS_MISSING"]
    professionals_only = no_ins.replace(
        b"DESTDMP^Destinataire DMP^MetaDMPMSS||Y", b"DESTDMP^Destinataire DMP^MetaDMPMSS||N"
    )
    accepted_or_not = decide(professionals_only)
    # PID has no INS but the CDA header has one: the two views of the patient disagree
    assert accepted_or_not.answer.reason_code == "INS_MISMATCH_MATRICULE"
    assert accepted_or_not.answer.errors[0].application_code == "904"


def test_a_trait_differing_from_the_cda_header_is_refused_with_904(good):
    result = decide(good.replace(b"|19790328|F|", b"|19790329|F|"))
    assert result.answer.reason_code == "INS_MISMATCH_BIRTH_DATE"
    error = result.answer.errors[0]
    assert (error.condition[0], error.application_code, error.application_table) == (
        "207",
        "904",
        "applicationErrorCode",
    )
    assert "19790329" not in error.diagnostic and "PAT-TROIS" not in error.diagnostic


def test_an_unqualified_identity_cannot_go_to_the_dmp(good):
    result = decide(good.replace(b"|N|VALI\n", b"|N|PROV\n", 1))
    assert alternate_codes(result)[:2] == ["RULE_DMP_INS", "INS_NOT_QUALIFIED"]


def test_repeated_failures_are_reported_once_per_code(good):
    result = decide(good.replace(b"PAT-TROIS^DOMINIQUE", b"AUTRE^DOMINIQUE"))
    codes = alternate_codes(result)
    assert codes == sorted(set(codes), key=codes.index)
    assert "INS_MISMATCH_BIRTH_NAME" in codes


def test_size_limit_gives_ar(good):
    result = decide(good, max_message_bytes=1024)
    assert (result.answer.code, result.answer.reason_code) == ("AR", "INTAKE_TOO_LARGE")
    assert result.header.control_id == "015"


@pytest.mark.parametrize(
    ("code", "volet"),
    [
        ("INS_MISSING", "903"),
        ("CDA_NO_INS", "903"),
        ("INS_MISMATCH_SEX", "904"),
        ("INS_TRAIT_MISSING", "905"),
        ("INS_KEY", "906"),
        ("RULE_PS_MASKED", "906"),
    ],
)
def test_volet_codes(code, volet):
    assert volet_code(code)[0] == volet


def vague1_without_prt(raw: bytes) -> bytes:
    vague1 = raw.replace(b"2.1^CISIS_CDA_HL7_V2", b"1.2^CISIS_CDA_HL7_V1")
    return b"\n".join(line for line in vague1.split(b"\n") if not line.startswith(b"PRT|"))


def with_cda(raw: bytes, edit) -> bytes:
    """``raw`` whose embedded CDA (base64 in the OBX ED) went through ``edit``."""
    lines = raw.split(b"\n")
    for n, line in enumerate(lines):
        fields = line.split(b"|")
        if line.startswith(b"OBX|") and fields[2] == b"ED":
            parts = fields[5].split(b"^")
            cda = base64.b64decode(parts[4] + b"=" * (-len(parts[4]) % 4))
            parts[4] = base64.b64encode(edit(cda))
            fields[5] = b"^".join(parts)
            lines[n] = b"|".join(fields)
    return b"\n".join(lines)


def test_a_vague1_request_mails_the_professionals_its_cda_names(good):
    # Volet v1.2: "professionnels de santé indiqués dans le document CDA" (no PRT RCT).
    def patient_listed_too(cda: bytes) -> bytes:  # never a professional delivery
        patient = b"<intendedRecipient><telecom value='mailto:279035121518989@patient.mssante.fr'/>"
        return cda.replace(b"<intendedRecipient>", patient, 1)

    for raw in (vague1_without_prt(good), with_cda(vague1_without_prt(good), patient_listed_too)):
        result = decide(raw)
        assert result.answer.code == "AA" and result.answer.errors == ()
        assert result.channels == (
            ("dmp", None),
            ("mss_professional", "adam.hoda@medecin.mssante.fr"),
        )


def test_a_vague1_request_whose_cda_names_no_address_is_accepted_with_a_warning(good):
    def no_telecom(cda: bytes) -> bytes:
        return re.sub(rb"<telecom value=\"mailto:[^\"]*\"[^>]*/>", b"", cda)

    result = decide(with_cda(vague1_without_prt(good), no_telecom))
    assert result.answer.code == "AA"
    assert result.channels == (("dmp", None),)
    assert [(e.severity, e.alternate_code) for e in result.answer.errors] == [
        ("W", "INTAKE_NO_RECIPIENT")
    ]


def test_an_unforeseen_cda_reader_failure_refuses_the_message(good, monkeypatch):
    import pfi.protocols.cda

    def broken(data, **kwargs):
        raise ValueError("unexpected shape")

    monkeypatch.setattr(pfi.protocols.cda, "read_cda", broken)
    result = decide(good)
    assert (result.answer.code, result.answer.reason_code) == ("AE", "CDA_UNREADABLE")
    assert "unexpected shape" not in (result.answer.reason_text or "")


def test_a_vague1_professional_delivery_is_mailed_to_the_address_its_cda_names(good):
    """The mail order of the delivery intake records for a v1.2 request without PRT."""
    import uuid
    from types import SimpleNamespace

    from pfi.base.errors import InvalidInput
    from pfi.protocols.mssante.compose import order_for_delivery

    result = decide(vague1_without_prt(good))
    (recipient,) = [r for channel, r in result.channels if channel == "mss_professional"]
    delivery = SimpleNamespace(
        channel="mss_professional",
        recipient=recipient,
        action="new",
        request_id=uuid.uuid4(),
        id=1,
        qualified_ins=True,
    )
    (planned,) = result.documents
    order = order_for_delivery(
        delivery, planned.unique_id, result.request, InsPolicy.for_environment("test")
    )
    assert order.recipient == "adam.hoda@medecin.mssante.fr"
    stranger = SimpleNamespace(**{**vars(delivery), "recipient": "someone@else.test"})
    with pytest.raises(InvalidInput) as refused:
        order_for_delivery(
            stranger, planned.unique_id, result.request, InsPolicy.for_environment("test")
        )
    assert refused.value.code == "MSS_UNKNOWN_RECIPIENT"
