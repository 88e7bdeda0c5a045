"""``python -m pfi_devkit up|down|status [--state DIR]``: the demo's local partner servers.

Run it from the clone's root: the devkit sits beside the product (``pfi_devkit/``), it is not
installed with it. ``make run`` and ``make stop`` call it; by hand::

    .venv/bin/python -m pfi_devkit status      # what runs where: mailboxes, DPI peer, DMP endpoint

- ``up`` starts the servers in one detached process unless they already run, and prints
  ``stack.json`` (what runs where); idempotent.
- ``down`` stops them (and the private PostgreSQL cluster, if the demo had to create one).
- ``status`` prints ``stack.json`` (exit 0), or ``devkit not running`` (exit 1).
- ``serve`` runs them in the foreground until SIGTERM: what ``up`` starts detached, and what the
  docker-compose demo service runs (``--host 0.0.0.0 --fixed-ports``).
- ``dpi-answers`` sets how the DPI peer answers, per patient (an identifier of PID-3 or the
  family name) or per document type (TXA-2), read at its next message::

      python -m pfi_devkit dpi-answers --patient 279035121518989 --code AE --error 902
      python -m pfi_devkit dpi-answers --document-type 11502-2 --code AR --error 906
      python -m pfi_devkit dpi-answers             # prints the rules
      python -m pfi_devkit dpi-answers --clear     # back to AA for everything

- ``outage PARTNER SECONDS`` takes a partner down for that long (``dmp``, ``smtp``, ``imap``,
  ``dpi``; 0 brings it back), applied by the running servers within half a second, the same
  ports afterwards — what ``make chaos`` does to them::

      python -m pfi_devkit outage dmp 120

- ``audit [--root CLONE]`` searches the clone's logs, XComs and ledger texts for the patient
  data of what its stack received (:mod:`pfi_devkit.audit`); exit 1 when one is found.

The state folder defaults to ``$PFI_DEVKIT_STATE``, else ``var/devkit``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pfi_devkit", description="local partner servers (demo, tests)"
    )
    parser.add_argument(
        "action", choices=("up", "down", "status", "serve", "dpi-answers", "outage", "audit")
    )
    parser.add_argument("partner", nargs="?", help="outage: dmp, smtp, imap or dpi")
    parser.add_argument("seconds", nargs="?", type=float, help="outage: how long (0: back now)")
    parser.add_argument("--state", default=os.environ.get("PFI_DEVKIT_STATE", "var/devkit"))
    parser.add_argument("--host", default="127.0.0.1", help="serve: MLLP and DMP listen here")
    parser.add_argument(
        "--fixed-ports", action="store_true", help="serve: MLLP on 2575, DMP on 8443"
    )
    answers = parser.add_argument_group("dpi-answers")
    answers.add_argument("--patient", help="an identifier of PID-3 or the family name")
    answers.add_argument("--document-type", help="TXA-2's code (LOINC), MDM only")
    answers.add_argument("--code", choices=("AA", "AE", "AR"), default="AE")
    answers.add_argument("--error", help="ERR-5 application code, 900-906")
    answers.add_argument("--text", help="ERR-5 text (default: the volet's label)")
    answers.add_argument("--clear", action="store_true", help="remove every rule")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pfi_devkit import stack

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["audit"]:  # its own options: python -m pfi_devkit audit --help
        from pfi_devkit import audit

        return audit.main(argv[1:])
    args = build_parser().parse_args(argv)
    state = Path(args.state)
    if args.action == "serve":
        return stack.serve(state, host=args.host, fixed_ports=args.fixed_ports)
    if args.action == "outage":
        if args.partner is None or args.seconds is None:
            print("usage: python -m pfi_devkit outage dmp|smtp|imap|dpi SECONDS", file=sys.stderr)
            return 2
        print(json.dumps(stack.outage(state, args.partner, args.seconds)))
        return 0
    if args.action == "dpi-answers":
        rule = {
            key: value
            for key, value in {
                "patient": args.patient,
                "document_type": args.document_type,
                "code": args.code,
                "error": args.error,
                "text": args.text,
            }.items()
            if value
        }
        wanted = args.patient or args.document_type
        print(json.dumps(stack.dpi_answers(state, rule if wanted else None, clear=args.clear)))
        return 0
    if args.action == "up":
        info = stack.up(state)
        print(json.dumps(info, indent=2))
    elif args.action == "down":
        stack.down(state)
        print("devkit stopped")
    else:
        info = stack.status(state)
        print(json.dumps(info, indent=2) if info else "devkit not running")
        return 0 if info else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
