"""``pfi ins check``: is this a valid INS on this site, qualified, consistent with a CDA?

::

    pfi ins check --ins MATRICULE [--oid OID] [--status QUAL ...] [--environment E]
                  [--birth-name N --first-given P --birth-date YYYYMMDD --sex F
                   --birthplace 63220 [--given-names "P Q"]] [--cda FILE]

Applies :mod:`pfi.protocols.ins` as the intake does: the matricule (shape, sex digit, month, NIR/NIA key
with Corsica 2A/2B), the OID against the site's INS environment (production ``…4.8``/``…4.9``,
test ``…4.10``/``…4.11``), the identity status (PID-32 codes given with ``--status``) and, when
the traits are given, their presence; with ``--cda``, the traits are compared with the CDA
header's ``recordTarget``. Prints JSON with coded failures (never the matricule or a name), and
whether the DMP, the patient's MSSanté mailbox and professionals' mail may be used (none when the
INS is not valid or differs from the CDA: the intake refuses such a message). Exit 1 when the INS is not valid
(or differs from the CDA), 0 otherwise — a valid but unqualified INS exits 0 with
``"qualified": false``.
"""

from __future__ import annotations

import argparse
import json

from pfi.cli.commands._common import input_file


def register(groups: argparse._SubParsersAction) -> None:
    ins = groups.add_parser("ins", help="INS identity checks").add_subparsers(
        dest="action", required=True
    )
    check = ins.add_parser("check", help="check an INS matricule, its OID, status and traits")
    check.add_argument("--ins", required=True, help="15-character matricule (NIR/NIA + key)")
    check.add_argument("--oid", help="assigning authority (default: the environment's NIR OID)")
    check.add_argument("--status", nargs="*", default=[], help="PID-32 codes, e.g. QUAL VALI")
    check.add_argument("--environment", choices=("test", "production"))
    check.add_argument("--birth-name", default="")
    check.add_argument("--first-given", default="")
    check.add_argument("--given-names", default="")
    check.add_argument("--birth-date", default="", help="YYYYMMDD")
    check.add_argument("--sex", default="", choices=("", "M", "F", "U"))
    check.add_argument("--birthplace", default="", help="INSEE code of the birthplace")
    check.add_argument("--cda", type=input_file, help="compare with this CDA header's patient")
    check.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from pfi.base.errors import ConfigurationError
    from pfi.cli.commands._common import settings_of
    from pfi.protocols.ins import (
        OID_INS_NIR,
        OID_INS_NIR_TEST,
        InsIdentity,
        InsPolicy,
        compare_identities,
    )

    environment = args.environment
    if environment is None:
        try:
            environment = settings_of(args, required=True).site.ins_environment
        except ConfigurationError:
            environment = "test"
    policy = InsPolicy.for_environment(environment)
    oid = args.oid or (OID_INS_NIR if environment == "production" else OID_INS_NIR_TEST)
    identity = InsIdentity(
        matricule=args.ins.strip().upper(),
        oid=oid,
        birth_name=args.birth_name,
        first_given_name=args.first_given,
        birth_date=args.birth_date,
        sex=args.sex,
        birthplace_code=args.birthplace,
        given_names=tuple(args.given_names.split()),
    )
    traits_given = any((args.birth_name, args.first_given, args.birth_date, args.sex))
    invalid = policy.check_ins(identity)
    if traits_given:
        invalid += policy.check_traits(identity)
    mismatches = []
    if args.cda is not None:
        from pfi.flows.intake import cda_identity
        from pfi.protocols.cda import read_cda

        header = cda_identity(read_cda(args.cda.read_bytes()))
        if header is None:
            mismatches.append({"code": "CDA_NO_INS", "message": "the CDA header has no INS"})
        else:
            mismatches += [
                {"code": f.code, "message": f.message}
                for f in compare_identities(identity, header, first_label="given identity")
            ]
    qualification = policy.check_qualified(identity, args.status)
    qualified = not qualification
    # The intake refuses (AE) a message whose INS is not valid or differs from its CDA: then
    # nothing is sent, not even to professionals.
    accepted = not invalid and not mismatches
    report = {
        "environment": environment,
        "oid": oid,
        "valid": not invalid,
        "qualified": qualified,
        "failures": [{"code": f.code, "message": f.message} for f in invalid],
        "not_qualified_because": [
            {"code": f.code, "message": f.message} for f in qualification if f not in invalid
        ],
        "cda_mismatches": mismatches,
        "dmp_allowed": accepted and qualified,
        "patient_mailbox_allowed": accepted and qualified,
        "professional_mail_allowed": accepted,
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0 if not invalid and not mismatches else 1
