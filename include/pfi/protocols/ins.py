"""INS — Identité Nationale de Santé: the matricule, its OID, the identity status, the traits.

What a PFI checks before it lets a document leave with an INS (spec-digest §4, spec-facts §7):

- **the matricule** — the NIR (or NIA) of 13 characters and its 2-digit key,
  ``key = 97 − (number mod 97)`` with Corsica ``2A`` → ``19`` and ``2B`` → ``18`` (INSEE rule,
  the same as ``stdnum.fr.nir``, which we reuse for the key);
- **the OID** of the assigning authority (CI-SIS "Structuration minimale", INS OIDs): a
  production site accepts only INS-NIR ``…4.8`` and INS-NIA ``…4.9``, a test site only the test
  and demonstration OIDs ``…4.10`` and ``…4.11`` — one small :class:`InsPolicy` per
  environment, chosen from ``Site.ins_environment``;
- **the identity status** (PID-32, PAM-FR 2.11 table 0445; RNIV statuses *provisoire*,
  *récupérée*, *validée*, *qualifiée*): only a *qualified* identity may feed the DMP (DSR
  PFI.DMP, INS/va1.16) or be written to at ``<matricule>@patient.mssante.fr`` (DSR SC.MSS.14);
  MSSanté to a professional needs no INS;
- **the traits** (RNIV règle 6; CI-SIS structuration minimale, ``recordTarget``): matricule, OID,
  birth name, first given name, birth date, sex, INSEE code of the birthplace — compared between
  two views of the same patient (PID and CDA header) by :func:`compare_identities`.

Every broken rule is a :class:`RuleFailure` with a code (``INS_KEY``, ``INS_OID_ENVIRONMENT``…)
and a message that **never** quotes the matricule, a name or a date: failures are logged, stored
in the ledger and written into acknowledgements.

Decisions where the sources are uncertain:

- *Sex digit*: ``1``/``2`` (NIR), ``3``/``4`` and ``7``/``8`` (temporary numbers, NIA) are
  accepted; anything else is refused (``INS_SEX``).
- *Month*: INSEE uses ``01``–``12``, ``20``–``42`` (fictitious months) and ``50`` and above
  (special registrations); ``00``, ``13``–``19`` and ``43``–``49`` are refused (``INS_MONTH``).
  The digest warns the field is not always a real month, hence this tolerant range.
- *Status codes*: PAM-FR 2.11 carries the RNIV statuses as ``PROV``, ``RECUP``, ``VALI``,
  ``QUAL`` (older PAM-FR versions only had ``VIDE``/``PROV``/``VALI``); the exact mapping is
  not public (spec-facts §7.2 [U]). Production treats only ``QUAL`` as qualified. The test
  environment also treats ``VALI`` as qualified, because every official ANS example carries the
  test INS with ``VALI`` and DESTDMP=Y. A doubtful (``DOUT``/``DOUTE``) or fictitious
  (``FICT``/``FICTI``) attribute anywhere in PID-32 prevents qualification.
- *Trait comparison*: Unicode NFC, case-insensitive, surrounding and repeated blanks ignored;
  accents are **not** ignored (they are part of the trait). Birth dates compare on ``YYYYMMDD``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stdnum.fr import nir as _stdnum_nir

from pfi.base.errors import InvalidInput

if TYPE_CHECKING:
    from pfi.base.settings import Site

OID_INS_NIR = "1.2.250.1.213.1.4.8"
OID_INS_NIA = "1.2.250.1.213.1.4.9"
OID_INS_NIR_TEST = "1.2.250.1.213.1.4.10"
OID_INS_NIR_DEMO = "1.2.250.1.213.1.4.11"
INS_OIDS = frozenset({OID_INS_NIR, OID_INS_NIA, OID_INS_NIR_TEST, OID_INS_NIR_DEMO})

PATIENT_MAIL_DOMAIN = "patient.mssante.fr"

ENV_PRODUCTION = "production"
ENV_TEST = "test"

# PID-32 (PAM-FR 2.11, HL7 table 0445): statuses and the attributes that forbid qualification.
STATUS_EMPTY = "VIDE"
STATUS_PROVISIONAL = "PROV"
STATUS_RETRIEVED = "RECUP"
STATUS_VALIDATED = "VALI"
STATUS_QUALIFIED = "QUAL"
DOUBTFUL_OR_FICTITIOUS = frozenset({"DOUT", "DOUTE", "FICT", "FICTI"})

# Failure codes.
INS_MISSING = "INS_MISSING"
INS_FORMAT = "INS_FORMAT"
INS_KEY = "INS_KEY"
INS_SEX = "INS_SEX"
INS_MONTH = "INS_MONTH"
INS_OID_UNKNOWN = "INS_OID_UNKNOWN"
INS_OID_ENVIRONMENT = "INS_OID_ENVIRONMENT"
INS_TRAIT_MISSING = "INS_TRAIT_MISSING"
INS_NOT_QUALIFIED = "INS_NOT_QUALIFIED"
INS_MISMATCH_MATRICULE = "INS_MISMATCH_MATRICULE"
INS_MISMATCH_OID = "INS_MISMATCH_OID"
INS_MISMATCH_BIRTH_NAME = "INS_MISMATCH_BIRTH_NAME"
INS_MISMATCH_GIVEN_NAME = "INS_MISMATCH_GIVEN_NAME"
INS_MISMATCH_GIVEN_NAMES = "INS_MISMATCH_GIVEN_NAMES"
INS_MISMATCH_BIRTH_DATE = "INS_MISMATCH_BIRTH_DATE"
INS_MISMATCH_SEX = "INS_MISMATCH_SEX"
INS_MISMATCH_BIRTHPLACE = "INS_MISMATCH_BIRTHPLACE"

_SHAPE = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}$")
_SEX_DIGITS = frozenset("123478")


@dataclass(frozen=True)
class RuleFailure:
    """One broken rule: a stable code and a message free of patient data."""

    code: str
    message: str

    def error(self) -> InvalidInput:
        return InvalidInput(self.message, code=self.code)


def raise_for_failures(failures: Iterable[RuleFailure]) -> None:
    """Raise the first failure as :class:`~pfi.base.errors.InvalidInput` (the others are in the log)."""
    for failure in failures:
        raise failure.error()


# --- the matricule ----------------------------------------------------------------------------


def ins_key(number: str) -> str:
    """The 2-digit key of a 13-character NIR/NIA (``2A``/``2B`` handled)."""
    if not _SHAPE.match(number[:13] + "00"):
        raise InvalidInput("the INS matricule is not 13 characters + key", code=INS_FORMAT)
    return _stdnum_nir.calc_check_digits(number[:13])


def check_matricule(matricule: str | None) -> list[RuleFailure]:
    """Every rule the 15-character matricule breaks (empty list: valid)."""
    if not matricule:
        return [RuleFailure(INS_MISSING, "no INS matricule")]
    if not _SHAPE.match(matricule):
        return [
            RuleFailure(
                INS_FORMAT,
                "the INS matricule must be 13 characters (digits, 2A/2B for Corsica) + 2-digit key",
            )
        ]
    failures = []
    if matricule[0] not in _SEX_DIGITS:
        failures.append(RuleFailure(INS_SEX, "the INS matricule's first digit (sex) is not valid"))
    month = int(matricule[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or month >= 50):
        failures.append(RuleFailure(INS_MONTH, "the INS matricule's month digits are not valid"))
    if ins_key(matricule) != matricule[13:]:
        failures.append(RuleFailure(INS_KEY, "the INS matricule's key does not match the number"))
    return failures


def is_valid_matricule(matricule: str | None) -> bool:
    return not check_matricule(matricule)


# --- the identity ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InsIdentity:
    """The INS strict traits of one patient as one source states them (PID, CDA header, INSi).

    Everything but the OID is patient data: kept out of ``repr`` because models end up in logs.
    ``birth_date`` is ``YYYYMMDD`` (HL7 DT/DTM, CDA TS: extra precision is ignored); ``sex`` the
    HL7 administrative sex (``M``/``F``/``U``); ``birthplace_code`` the INSEE COG code.
    """

    matricule: str = field(repr=False)
    oid: str
    birth_name: str = field(default="", repr=False)
    first_given_name: str = field(default="", repr=False)
    birth_date: str = field(default="", repr=False)
    sex: str = field(default="", repr=False)
    birthplace_code: str = field(default="", repr=False)
    given_names: tuple[str, ...] = field(default=(), repr=False)


def _text(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", value).split()).casefold()


_TRAITS: tuple[tuple[str, str, str], ...] = (
    # (attribute, failure code, what differs) — the order of the RNIV strict traits.
    ("matricule", INS_MISMATCH_MATRICULE, "INS matricule"),
    ("oid", INS_MISMATCH_OID, "INS OID"),
    ("birth_name", INS_MISMATCH_BIRTH_NAME, "birth name"),
    ("first_given_name", INS_MISMATCH_GIVEN_NAME, "first given name"),
    ("birth_date", INS_MISMATCH_BIRTH_DATE, "birth date"),
    ("sex", INS_MISMATCH_SEX, "sex"),
    ("birthplace_code", INS_MISMATCH_BIRTHPLACE, "INSEE birthplace code"),
)


def _comparable(identity: InsIdentity, attribute: str) -> str:
    value = getattr(identity, attribute) or ""
    if attribute == "birth_date":
        return value.strip()[:8]
    if attribute in ("matricule", "oid", "birthplace_code"):
        return value.strip().upper()
    return _text(value)


def compare_identities(
    first: InsIdentity,
    second: InsIdentity,
    *,
    first_label: str = "HL7 PID",
    second_label: str = "CDA header",
) -> list[RuleFailure]:
    """Every strict trait that differs between two views of the patient (empty list: same).

    The list of birth given names is compared only when both sides state it (PID-5.3 is often
    empty). Messages name the trait and the two sources, never the values.
    """
    failures = [
        RuleFailure(code, f"{label} differs between the {first_label} and the {second_label}")
        for attribute, code, label in _TRAITS
        if _comparable(first, attribute) != _comparable(second, attribute)
    ]
    if first.given_names and second.given_names:
        if [_text(n) for n in first.given_names] != [_text(n) for n in second.given_names]:
            failures.append(
                RuleFailure(
                    INS_MISMATCH_GIVEN_NAMES,
                    f"birth given names differ between the {first_label} and the {second_label}",
                )
            )
    return failures


# --- the policy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class InsPolicy:
    """What one site accepts as an INS: the OIDs of its environment and the qualified statuses.

    A production site must refuse test OIDs and a test site production OIDs (spec-digest §4), so
    real and fictitious patients never mix. Build it with :meth:`for_environment` or
    :meth:`for_site`.
    """

    environment: str
    accepted_oids: frozenset[str]
    qualified_statuses: frozenset[str]

    @classmethod
    def for_environment(cls, environment: str) -> InsPolicy:
        if environment == ENV_PRODUCTION:
            return cls(
                ENV_PRODUCTION,
                frozenset({OID_INS_NIR, OID_INS_NIA}),
                frozenset({STATUS_QUALIFIED}),
            )
        if environment == ENV_TEST:
            return cls(
                ENV_TEST,
                frozenset({OID_INS_NIR_TEST, OID_INS_NIR_DEMO}),
                frozenset({STATUS_QUALIFIED, STATUS_VALIDATED}),
            )
        raise ValueError(f"INS environment must be {ENV_PRODUCTION!r} or {ENV_TEST!r}")

    @classmethod
    def for_site(cls, site: Site) -> InsPolicy:
        """The policy of the site's ``ins_environment`` setting."""
        return cls.for_environment(site.ins_environment)

    def check_oid(self, oid: str | None) -> list[RuleFailure]:
        if not oid or oid not in INS_OIDS:
            return [RuleFailure(INS_OID_UNKNOWN, "the INS assigning authority is not an INS OID")]
        if oid not in self.accepted_oids:
            return [
                RuleFailure(
                    INS_OID_ENVIRONMENT,
                    f"INS OID {oid} is not accepted in the {self.environment} environment",
                )
            ]
        return []

    def check_ins(self, identity: InsIdentity | None) -> list[RuleFailure]:
        """Matricule and OID rules: is this a usable INS on this site?"""
        if identity is None:
            return [RuleFailure(INS_MISSING, "the patient has no INS")]
        return check_matricule(identity.matricule) + self.check_oid(identity.oid)

    def check_traits(self, identity: InsIdentity) -> list[RuleFailure]:
        """The traits a qualified INS travels with must all be present (CI-SIS StrucMin, INS)."""
        missing = [
            label
            for attribute, _, label in _TRAITS[2:6]
            if not (getattr(identity, attribute) or "").strip()
        ]
        if not missing:
            return []
        return [RuleFailure(INS_TRAIT_MISSING, "INS trait(s) missing: " + ", ".join(missing))]

    def is_qualified_status(self, reliability_codes: Iterable[str]) -> bool:
        codes = {code.strip().upper() for code in reliability_codes if code}
        return bool(codes & self.qualified_statuses) and not codes & DOUBTFUL_OR_FICTITIOUS

    def check_qualified(
        self, identity: InsIdentity | None, reliability_codes: Iterable[str]
    ) -> list[RuleFailure]:
        """Every reason why this identity is not a qualified INS here (empty list: qualified)."""
        failures = self.check_ins(identity)
        if identity is not None:
            failures += self.check_traits(identity)
        if not self.is_qualified_status(reliability_codes):
            failures.append(
                RuleFailure(INS_NOT_QUALIFIED, "the identity status (PID-32) is not qualified")
            )
        return failures

    def is_qualified(self, identity: InsIdentity | None, reliability_codes: Iterable[str]) -> bool:
        return not self.check_qualified(identity, reliability_codes)

    def patient_mailbox(
        self, identity: InsIdentity | None, reliability_codes: Iterable[str]
    ) -> str:
        """``<matricule>@patient.mssante.fr``, only for a qualified INS (DSR SC.MSS.14).

        Raises :class:`~pfi.base.errors.InvalidInput` with the first failure otherwise.
        """
        raise_for_failures(self.check_qualified(identity, reliability_codes))
        assert identity is not None
        return f"{identity.matricule}@{PATIENT_MAIL_DOMAIN}"


__all__ = [
    "INS_OIDS",
    "OID_INS_NIA",
    "OID_INS_NIR",
    "OID_INS_NIR_DEMO",
    "OID_INS_NIR_TEST",
    "PATIENT_MAIL_DOMAIN",
    "InsIdentity",
    "InsPolicy",
    "RuleFailure",
    "check_matricule",
    "compare_identities",
    "ins_key",
    "is_valid_matricule",
    "raise_for_failures",
]
