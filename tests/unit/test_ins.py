"""INS checks: matricule key (Corsica too), OID policy per environment, status, trait comparison.

Official test identities (spec-facts §7.1, from the ANS examples in ../shared/fixtures):
279035121518989 (PAT-TROIS DOMINIQUE, DMP test patient), 274075176079430, 277076322082910,
146026322000196, 162018885045327. Every other number here is made up and its key computed below
with the INSEE formula, independently of the code under test.
"""

import pytest

from pfi.base.errors import InvalidInput
from pfi.base.settings import Site
from pfi.protocols.ins import (
    OID_INS_NIA,
    OID_INS_NIR,
    OID_INS_NIR_DEMO,
    OID_INS_NIR_TEST,
    InsIdentity,
    InsPolicy,
    RuleFailure,
    check_matricule,
    compare_identities,
    ins_key,
    is_valid_matricule,
    raise_for_failures,
)

OFFICIAL_TEST_INS = "279035121518989"


def key_of(number13: str) -> str:
    """The INSEE key, written again here: 97 − (N mod 97), 2A → 19, 2B → 18."""
    digits = (
        number13[:5] + {"2A": "19", "2B": "18"}.get(number13[5:7], number13[5:7]) + number13[7:]
    )
    return f"{97 - int(digits) % 97:02d}"


def with_key(number13: str) -> str:
    return number13 + key_of(number13)


def identity(**changes) -> InsIdentity:
    values = dict(
        matricule=OFFICIAL_TEST_INS,
        oid=OID_INS_NIR_TEST,
        birth_name="PAT-TROIS",
        first_given_name="DOMINIQUE",
        birth_date="19790328",
        sex="F",
        birthplace_code="63220",
        given_names=("DOMINIQUE",),
    )
    values.update(changes)
    return InsIdentity(**values)


@pytest.mark.parametrize(
    "matricule",
    [OFFICIAL_TEST_INS, "274075176079430", "277076322082910", "146026322000196", "162018885045327"],
)
def test_official_test_identities_have_valid_keys(matricule):
    assert check_matricule(matricule) == []
    assert is_valid_matricule(matricule)


@pytest.mark.parametrize("number13", ["297022A020778", "185022B123456", "2991299123123"])
def test_corsica_and_others_keys(number13):
    assert ins_key(number13) == key_of(number13)
    assert check_matricule(with_key(number13)) == []


def test_corsica_is_computed_with_19_and_18():
    # spec-facts §7.1 example: 297022A020778 → key 78
    assert ins_key("297022A020778") == "78"
    assert ins_key("297022A020778") == ins_key("2970219020778")
    assert ins_key("185022B123456") == ins_key("1850218123456")


@pytest.mark.parametrize(
    ("matricule", "code"),
    [
        ("279035121518988", "INS_KEY"),  # official test INS with its key off by one
        ("276037510669380", "INS_KEY"),  # the volet v1.2 example's INS: its key is wrong (26)
        ("27903512151898", "INS_FORMAT"),
        ("2790351215189890", "INS_FORMAT"),
        ("2790351215189 9", "INS_FORMAT"),
        ("297022C02077878", "INS_FORMAT"),
        ("1690320A4500100", "INS_FORMAT"),  # 2A only as the department (positions 6-7)
        ("", "INS_MISSING"),
        (None, "INS_MISSING"),
        (with_key("5790351215189"), "INS_SEX"),
        (with_key("2791351215189"), "INS_MONTH"),
        (with_key("2790051215189"), "INS_MONTH"),
        (with_key("2794551215189"), "INS_MONTH"),
    ],
)
def test_invalid_matricules(matricule, code):
    failures = check_matricule(matricule)
    assert [f.code for f in failures] == [code]
    assert not is_valid_matricule(matricule)


@pytest.mark.parametrize("month", ["01", "12", "20", "42", "50", "99"])
def test_months_outside_the_calendar_are_tolerated(month):
    assert check_matricule(with_key(f"279{month}51215189")) == []


@pytest.mark.parametrize("sex", "123478")
def test_sex_digits_of_nir_and_nia(sex):
    assert check_matricule(with_key(f"{sex}790351215189")) == []


def test_production_accepts_only_nir_and_nia_oids():
    policy = InsPolicy.for_environment("production")
    assert policy.check_oid(OID_INS_NIR) == []
    assert policy.check_oid(OID_INS_NIA) == []
    assert [f.code for f in policy.check_oid(OID_INS_NIR_TEST)] == ["INS_OID_ENVIRONMENT"]
    assert [f.code for f in policy.check_oid(OID_INS_NIR_DEMO)] == ["INS_OID_ENVIRONMENT"]


def test_test_environment_accepts_only_test_and_demo_oids():
    policy = InsPolicy.for_environment("test")
    assert policy.check_oid(OID_INS_NIR_TEST) == []
    assert policy.check_oid(OID_INS_NIR_DEMO) == []
    assert [f.code for f in policy.check_oid(OID_INS_NIR)] == ["INS_OID_ENVIRONMENT"]
    assert [f.code for f in policy.check_oid(OID_INS_NIA)] == ["INS_OID_ENVIRONMENT"]


@pytest.mark.parametrize("oid", ["", None, "1.2.250.1.213.1.4.2", "1.2.3"])
def test_unknown_oids(oid):
    for environment in ("production", "test"):
        codes = [f.code for f in InsPolicy.for_environment(environment).check_oid(oid)]
        assert codes == ["INS_OID_UNKNOWN"]


def test_policy_follows_the_site_setting():
    site = Site(
        name="CH",
        finess_juridique="010000024",
        finess_geo=(),
        structure_oid="1.2.3",
        ins_environment="production",
    )
    assert InsPolicy.for_site(site) == InsPolicy.for_environment("production")
    with pytest.raises(ValueError):
        InsPolicy.for_environment("staging")


@pytest.mark.parametrize(
    ("codes", "production", "test"),
    [
        (("QUAL",), True, True),
        (("VALI",), False, True),  # official examples: VALI + test INS (see module docstring)
        (("RECUP",), False, False),
        (("PROV",), False, False),
        (("VIDE",), False, False),
        ((), False, False),
        (("QUAL", "DOUT"), False, False),
        (("VALI", "FICTI"), False, False),
        (("qual",), True, True),
    ],
)
def test_qualified_statuses(codes, production, test):
    assert InsPolicy.for_environment("production").is_qualified_status(codes) is production
    assert InsPolicy.for_environment("test").is_qualified_status(codes) is test


def test_patient_mailbox_needs_a_qualified_ins():
    policy = InsPolicy.for_environment("test")
    assert policy.patient_mailbox(identity(), ["QUAL"]) == ("279035121518989@patient.mssante.fr")
    with pytest.raises(InvalidInput) as err:
        policy.patient_mailbox(identity(), ["PROV"])
    assert err.value.code == "INS_NOT_QUALIFIED"
    with pytest.raises(InvalidInput) as err:
        policy.patient_mailbox(None, ["QUAL"])
    assert err.value.code == "INS_MISSING"
    with pytest.raises(InvalidInput) as err:
        InsPolicy.for_environment("production").patient_mailbox(identity(), ["QUAL"])
    assert err.value.code == "INS_OID_ENVIRONMENT"


def test_qualified_ins_travels_with_its_traits():
    policy = InsPolicy.for_environment("test")
    failures = policy.check_qualified(identity(birth_name="", birth_date=" "), ["QUAL"])
    assert [f.code for f in failures] == ["INS_TRAIT_MISSING"]
    assert "birth name" in failures[0].message and "birth date" in failures[0].message
    assert policy.is_qualified(identity(), ["QUAL"])


def test_same_identity_seen_twice():
    cda = identity(
        birth_name=" pat-trois ", first_given_name="Dominique", birth_date="19790328000000+0100"
    )
    assert compare_identities(identity(), cda) == []


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"matricule": "274075176079430"}, "INS_MISMATCH_MATRICULE"),
        ({"oid": OID_INS_NIR}, "INS_MISMATCH_OID"),
        ({"birth_name": "PAT-DEUX"}, "INS_MISMATCH_BIRTH_NAME"),
        ({"first_given_name": "DOMINIQUÉ"}, "INS_MISMATCH_GIVEN_NAME"),
        ({"birth_date": "19790329"}, "INS_MISMATCH_BIRTH_DATE"),
        ({"sex": "M"}, "INS_MISMATCH_SEX"),
        ({"birthplace_code": "75056"}, "INS_MISMATCH_BIRTHPLACE"),
        ({"given_names": ("DOMINIQUE", "MARIE")}, "INS_MISMATCH_GIVEN_NAMES"),
    ],
)
def test_each_trait_mismatch_has_its_code(change, code):
    failures = compare_identities(identity(), identity(**change))
    assert [f.code for f in failures] == [code]
    assert "HL7 PID" in failures[0].message and "CDA header" in failures[0].message


def test_given_names_compared_only_when_both_sides_state_them():
    assert compare_identities(identity(), identity(given_names=())) == []


def test_failures_become_invalid_input():
    with pytest.raises(InvalidInput) as err:
        raise_for_failures([RuleFailure("INS_KEY", "k"), RuleFailure("INS_SEX", "s")])
    assert err.value.code == "INS_KEY"
    raise_for_failures([])


def test_no_message_and_no_repr_holds_patient_data():
    secrets = [OFFICIAL_TEST_INS, "PAT-TROIS", "DOMINIQUE", "19790328", "63220"]
    messages = []
    for matricule in ("279035121518988", "27903512151898", with_key("5791351215189")):
        messages += [f.message for f in check_matricule(matricule)]
    for environment in ("production", "test"):
        policy = InsPolicy.for_environment(environment)
        messages += [f.message for f in policy.check_qualified(identity(), ["PROV"])]
        try:
            policy.patient_mailbox(identity(), ["PROV"])
        except InvalidInput as exc:
            messages.append(str(exc))
    other = identity(
        matricule="274075176079430",
        oid=OID_INS_NIR,
        birth_name="X",
        first_given_name="Y",
        birth_date="20000101",
        sex="M",
        birthplace_code="75056",
        given_names=("Y",),
    )
    messages += [f.message for f in compare_identities(identity(), other)]
    messages.append(repr(identity()))
    assert len(messages) > 10
    for message in messages:
        for secret in secrets:
            assert secret not in message, message
