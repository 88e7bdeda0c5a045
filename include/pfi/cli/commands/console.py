"""``pfi console …``: the operator console's search, timeline, replay and trail without the UI.

::

    pfi console search [--unique-id ID] [--control-id MSH10] [--message-id ID] [--since DAY]
                       [--until DAY] [--source S] [--finess F] [--channel C] [--status S]
                       [--items] [--before ID] [--size N] [--show-identity [--ins INS]]
    pfi console timeline DOCUMENT [--show-identity]
    pfi console replay DELIVERY... --reason TEXT [--force] [--operator NAME]
    pfi console audit [--before ID]

The same operations as the UI's console (:mod:`pfi.flows.console`), printed as JSON. The one
who runs the command is the operator (``--operator``, default the login name): the trail says
``operator:<name>``. Patient identity (the INS) is masked unless ``--show-identity``, and that
view is written to the trail like the UI's. ``replay`` of a delivery already sent is refused
without ``--force`` (a possible duplicate: a new delivery, linked to the original).
"""

from __future__ import annotations

import argparse
import getpass
import json
from datetime import timedelta

from pfi.cli.commands._common import open_ledger


def register(groups: argparse._SubParsersAction) -> None:
    console = groups.add_parser(
        "console", help="operator console: search, timeline, replay, trail"
    ).add_subparsers(dest="action", required=True)

    search = console.add_parser("search", help="one page of deliveries (or received items)")
    for name in ("unique-id", "control-id", "message-id", "source", "finess", "channel", "status"):
        search.add_argument(f"--{name}")
    search.add_argument("--since", help="first day, AAAA-MM-JJ (Paris)")
    search.add_argument("--until", help="last day, AAAA-MM-JJ (Paris)")
    search.add_argument("--items", action="store_true", help="received items, not deliveries")
    search.add_argument("--before", type=int, help="the next page: ids below this one")
    search.add_argument("--size", type=int, default=50, help="rows a page (at most 100)")
    search.add_argument("--ins", help="the INS matricule (with --show-identity only)")
    search.set_defaults(func=cmd_search)

    timeline = console.add_parser("timeline", help="a document's timeline")
    timeline.add_argument("document", help="the document's unique id, or its ledger id")
    timeline.set_defaults(func=cmd_timeline)

    replay = console.add_parser("replay", help="replay deliveries (a new attempt, or forced)")
    replay.add_argument("delivery", type=int, nargs="+", help="delivery ids")
    replay.add_argument("--reason", required=True, help="why (written to the trail)")
    replay.add_argument(
        "--force", action="store_true", help="also the deliveries already sent (duplicates)"
    )
    replay.set_defaults(func=cmd_replay)

    audit = console.add_parser("audit", help="one page of the operators' trail")
    audit.add_argument("--before", type=int, help="the next page: ids below this one")
    audit.set_defaults(func=cmd_audit)

    for parser in (search, timeline, replay, audit):
        parser.add_argument("--operator", help="who acts (default: the login name)")
        parser.add_argument(
            "--show-identity", action="store_true", help="do not mask patient identity"
        )
        parser.add_argument("--url", help="ledger database URL (default: AIRFLOW_CONN_PFI_LEDGER)")


def _operator(args: argparse.Namespace):
    from pfi.flows import console

    rights = {console.METADATA, console.REPLAY}
    if args.show_identity:
        rights.add(console.CONTENT)
    return console.Operator(args.operator or getpass.getuser(), frozenset(rights))


def _print(value: object) -> None:
    print(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def cmd_search(args: argparse.Namespace) -> int:
    from pfi.flows import console
    from pfi.ledger.console import Search

    until = console.parse_day(args.until)
    criteria = Search(
        unique_id=args.unique_id,
        control_id=args.control_id,
        message_id=args.message_id,
        ins=args.ins,
        since=console.parse_day(args.since),
        until=until + timedelta(days=1) if until else None,
        source=args.source,
        finess_geo=args.finess,
        channel=args.channel,
        status=args.status,
    )
    with open_ledger(args) as ledger:
        page = console.search(
            ledger,
            _operator(args),
            criteria,
            what="items" if args.items else "deliveries",
            before_id=args.before,
            limit=args.size,
        )
    _print(page)
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    from pfi.flows import console

    with open_ledger(args) as ledger:
        operator = _operator(args)
        document_id = console.find(ledger, operator, args.document)
        if document_id is None:
            print(json.dumps({"error": "no such document"}))
            return 1
        found = console.timeline(ledger, operator, document_id)
    for step in found["steps"]:
        task = step.pop("task")
        step["task"] = vars(task) if task is not None else None
    _print(found)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from pfi.flows import console

    with open_ledger(args) as ledger:
        done = console.replay(
            ledger, _operator(args), args.delivery, reason=args.reason, force=args.force
        )
    _print(done)
    return 1 if done["duplicate"] else 0


def cmd_audit(args: argparse.Namespace) -> int:
    from pfi.flows import console

    with open_ledger(args) as ledger:
        _print(console.audit(ledger, _operator(args), before_id=args.before))
    return 0
