"""Where a document goes: the one rule table over the ``MetaDMPMSS`` flags.

Sources: volet "Transmission de document(s) CDA en HL7v2" v2.1 — ``regles-gestion-mssante.md``
(the MSSanté matrix), ``meta-dmp-mss.md`` (meaning of each flag: "un document clinique masqué au
patient ne doit pas être envoyé au patient par MSSanté"), ``standards.md`` (a document masked to
professionals is not mailed to them); DSR HOP-PFI vague 2 (a qualified INS is mandatory for the
DMP, INS/va1.16, and for the patient's mailbox, SC.MSS.14; not for professionals).

The routing itself is what the producer asked: DESTDMP → DMP, DESTMSSANTEPS → the PRT ``RCT``
professionals/organisations/application mailboxes, DESTMSSANTEPAT → ``<INS>@patient.mssante.fr``.
The table lists the **contradictory requests**, each refused with its code; every other
combination is accepted. A rule fires when all its facts hold; facts are the
:class:`~pfi.protocols.hl7v2.model.MetaFlags` attributes plus ``action``, ``ins_qualified`` and
``has_professional_recipient`` (``None`` = unknown, never fires).

=========================== ====================================================== ==========
code                        refused when                                           source
=========================== ====================================================== ==========
RULE_FLAG_MISSING           one of the 8 required flags is absent                  meta-dmp-mss
RULE_NO_DESTINATION         DESTDMP=N, DESTMSSANTEPS=N, DESTMSSANTEPAT=N           ours
RULE_PATIENT_INVISIBLE      DESTMSSANTEPAT=Y and INVISIBLE_PATIENT=Y               meta-dmp-mss
RULE_PS_MASKED              DESTMSSANTEPS=Y and MASQUE_PS=Y                        matrix, std
RULE_SECRET_TO_PATIENT      DESTMSSANTEPAT=Y and CONNEXION_SECRETE=Y               matrix row 3
RULE_PATIENT_INS            DESTMSSANTEPAT=Y without a qualified INS               SC.MSS.14
RULE_DMP_INS                DESTDMP=Y without a qualified INS                      DSR DMP
RULE_PS_NO_RECIPIENT        DESTMSSANTEPS=Y and no professional PRT RCT address    profils
RULE_MODIF_CONF_ON_NEW      MODIF_CONF_CODE=Y on an initial transmission           profils
=========================== ====================================================== ==========

Deviations from the written matrix (which says unlisted combinations are errors), each needed
by an official example or by everyday use:

1. Professionals only, document **visible** to the patient (INVISIBLE_PATIENT=N,
   DESTMSSANTEPS=Y, DESTMSSANTEPAT=N) is accepted — the everyday case, and the official v2.1
   MDM replacement and deletion. The matrix lists professionals-only with INVISIBLE_PATIENT=Y.
2. CONNEXION_SECRETE=Y with professionals (and no patient mail) is accepted — official v2.1 MDM
   initial, replacement and deletion; the IG revision merging "cp-regle-connexion-secrete" allows
   it in rows 1–2.
3. CONNEXION_SECRETE=Y with the patient's mailbox is refused, although that IG revision allows
   it in row 1: row 3 (patient only) still requires N, and a document of a secret DMP
   connection should not be announced in a mailbox others may read. Stricter reading kept.
4. INVISIBLE_REP_LEGAUX=Y is accepted with every destination — official v2.1 MDM initial
   (INVISIBLE_PATIENT=Y, INVISIBLE_REP_LEGAUX=Y, CONNEXION_SECRETE=Y, DESTMSSANTEPS=Y); row 3
   already accepts it for the patient's mailbox. It is a DMP visibility code, carried along.
5. DESTDMP is free in every row: the matrix governs MSSanté only (row 3 writes DESTDMP=N; we
   accept DMP + patient). DMP-only requests (DESTMSSANTEPS=N, DESTMSSANTEPAT=N) are accepted.
6. MASQUE_PS=Y is accepted with the DMP (a DMP visibility code) and with the patient's mailbox
   (row 3); only mailing it to professionals is refused.
7. Added refusals the matrix does not state: no destination at all, no qualified INS for the
   DMP or the patient, professionals requested without any professional recipient (not applied
   to volet v1.2 messages, whose recipients came from the CDA header), MODIF_CONF_CODE=Y on an
   initial transmission (there is no previous version whose confidentiality could change).

ACK_RECEPTION and ACK_LECTURE_MSS never change the routing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from pfi.protocols.hl7v2.model import Action, Hl7Request, MetaFlags
from pfi.protocols.ins import InsPolicy, RuleFailure, raise_for_failures

RULE_FLAG_MISSING = "RULE_FLAG_MISSING"
RULE_NO_DESTINATION = "RULE_NO_DESTINATION"
RULE_PATIENT_INVISIBLE = "RULE_PATIENT_INVISIBLE"
RULE_PS_MASKED = "RULE_PS_MASKED"
RULE_SECRET_TO_PATIENT = "RULE_SECRET_TO_PATIENT"
RULE_PATIENT_INS = "RULE_PATIENT_INS"
RULE_DMP_INS = "RULE_DMP_INS"
RULE_PS_NO_RECIPIENT = "RULE_PS_NO_RECIPIENT"
RULE_MODIF_CONF_ON_NEW = "RULE_MODIF_CONF_ON_NEW"

REQUIRED_FLAGS = (
    "masque_ps",
    "invisible_patient",
    "invisible_rep_legaux",
    "connexion_secrete",
    "modif_conf_code",
    "dest_dmp",
    "dest_mss_ps",
    "dest_mss_patient",
)


@dataclass(frozen=True)
class Rule:
    """Refuse with ``code`` when every fact of ``when`` has the given value."""

    code: str
    when: Mapping[str, object]
    message: str
    source: str


RULES: tuple[Rule, ...] = (
    Rule(
        RULE_NO_DESTINATION,
        {"dest_dmp": False, "dest_mss_ps": False, "dest_mss_patient": False},
        "no destination requested (DESTDMP, DESTMSSANTEPS and DESTMSSANTEPAT are all N)",
        "PFI decision",
    ),
    Rule(
        RULE_PATIENT_INVISIBLE,
        {"dest_mss_patient": True, "invisible_patient": True},
        "a document invisible to the patient cannot be mailed to the patient",
        "meta-dmp-mss.md INVISIBLE_PATIENT",
    ),
    Rule(
        RULE_PS_MASKED,
        {"dest_mss_ps": True, "masque_ps": True},
        "a document masked to professionals cannot be mailed to professionals",
        "regles-gestion-mssante.md rows 1-2; standards.md",
    ),
    Rule(
        RULE_SECRET_TO_PATIENT,
        {"dest_mss_patient": True, "connexion_secrete": True},
        "a document of a DMP secret connection cannot be mailed to the patient",
        "regles-gestion-mssante.md row 3",
    ),
    Rule(
        RULE_PATIENT_INS,
        {"dest_mss_patient": True, "ins_qualified": False},
        "mail to the patient requires a qualified INS",
        "DSR SC.MSS.14",
    ),
    Rule(
        RULE_DMP_INS,
        {"dest_dmp": True, "ins_qualified": False},
        "the DMP requires a qualified INS",
        "DSR INS/va1.16, DMP/va1.01",
    ),
    Rule(
        RULE_PS_NO_RECIPIENT,
        {"dest_mss_ps": True, "has_professional_recipient": False},
        "mail to professionals requested without any PRT RCT recipient address",
        "profils-messages.md PRT RCT",
    ),
    Rule(
        RULE_MODIF_CONF_ON_NEW,
        {"modif_conf_code": True, "action": Action.NEW},
        "MODIF_CONF_CODE=Y needs a previous version: not on an initial transmission",
        "profils-messages.md MODIF_CONF_CODE",
    ),
)


@dataclass(frozen=True)
class Routing:
    """The destinations the producer asked for (meaningful once the decision is accepted)."""

    dmp: bool
    professionals: bool
    patient: bool


@dataclass(frozen=True)
class Decision:
    """The routing and every rule the request breaks (accepted when there is none)."""

    routing: Routing
    failures: tuple[RuleFailure, ...] = ()

    @property
    def accepted(self) -> bool:
        return not self.failures

    def raise_for_failures(self) -> None:
        raise_for_failures(self.failures)


def decide(
    flags: MetaFlags,
    *,
    action: Action,
    ins_qualified: bool,
    has_professional_recipient: bool | None = None,
) -> Decision:
    """Apply :data:`RULES` to the flags of one request."""
    routing = Routing(
        dmp=bool(flags.dest_dmp),
        professionals=bool(flags.dest_mss_ps),
        patient=bool(flags.dest_mss_patient),
    )
    missing = [name for name in REQUIRED_FLAGS if getattr(flags, name) is None]
    if missing:
        return Decision(
            routing,
            (
                RuleFailure(
                    RULE_FLAG_MISSING, "required MetaDMPMSS flag(s) missing: " + ", ".join(missing)
                ),
            ),
        )
    facts: dict[str, object] = {f.name: getattr(flags, f.name) for f in fields(flags)}
    facts.update(
        action=action,
        ins_qualified=ins_qualified,
        has_professional_recipient=has_professional_recipient,
    )
    failures = tuple(
        RuleFailure(rule.code, rule.message)
        for rule in RULES
        if all(facts.get(name) == value for name, value in rule.when.items())
    )
    return Decision(routing, failures)


def decide_request(request: Hl7Request, policy: InsPolicy) -> Decision:
    """:func:`decide` for a parsed request on a site; INS reasons are added when they matter.

    When a rule fires for lack of a qualified INS, the INS failures (``INS_KEY``,
    ``INS_OID_ENVIRONMENT``, ``INS_NOT_QUALIFIED``…) follow it so the answer says why.
    """
    patient = request.patient
    ins_failures = policy.check_qualified(patient.ins_identity, patient.identity_reliability)
    vague1 = request.profile is not None and request.profile.is_vague1
    decision = decide(
        request.flags,
        action=request.action,
        ins_qualified=not ins_failures,
        has_professional_recipient=None if vague1 else bool(request.professional_recipients),
    )
    if any(f.code in (RULE_DMP_INS, RULE_PATIENT_INS) for f in decision.failures):
        return Decision(decision.routing, decision.failures + tuple(ins_failures))
    return decision


__all__ = [
    "RULES",
    "Decision",
    "Routing",
    "Rule",
    "decide",
    "decide_request",
]
