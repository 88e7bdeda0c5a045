"""The ``pfi`` command: every step of the PFI without Airflow.

::

    pfi config check [--settings FILE]        validate the site settings, list what is missing
    pfi ledger upgrade [--url URL]            apply the ledger migrations
    pfi ledger current [--url URL]            print the ledger's migration revision
    pfi intake run SOURCE [--url URL]         claim a source's files, record them, write ACKs

and the groups defined in :mod:`pfi.cli.commands` (one module per group).

Connections (the ledger URL…) come from options or from the same ``AIRFLOW_CONN_<ID>``
environment variables Airflow reads, so a support engineer can run a step by hand with the
demo's env file sourced. Exit codes: 0 ok, 1 the step found problems, 2 usage or settings error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pfi.base.errors import ConfigurationError, PfiError
from pfi.cli.commands._common import ledger_url

if TYPE_CHECKING:
    from pfi.base.settings import Section

Handler = Callable[[argparse.Namespace], int]


def register_all() -> tuple[Section, ...]:
    """Import every module of the product so that each layer's settings section registers
    itself ([intake], [dmp], [mssante], [[mllp_inlet]], [receiving]…); all of them."""
    import importlib
    import pkgutil

    import pfi
    from pfi.base.settings import registered

    for info in pkgutil.walk_packages(pfi.__path__, "pfi."):
        if ".migrations" not in info.name and not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    return registered()


def connection_state(conn_id: str, problems: list[str]) -> str:
    """Whether the Connection is in the environment and reads as one (a problem if not)."""
    from pfi.base.connections import MissingConnection, from_environment

    try:
        from_environment(conn_id)
    except MissingConnection:
        return "not in the environment (check Airflow)"
    except ConfigurationError as exc:
        problems.append(f"connection {conn_id}: {exc}")
        return "found in the environment, not readable"
    return "found in the environment"


def cmd_config_check(args: argparse.Namespace) -> int:
    from pfi.base.settings import check_settings, section_problems

    settings, problems = check_settings(args.settings)
    if settings is not None:
        problems.extend(section_problems(settings, register_all()))
        print(f"site: {settings.site.name} (FINESS juridique {settings.site.finess_juridique})")
        print(f"HL7 sources: {', '.join(s.name for s in settings.sources) or 'none'}")
        print(f"mailboxes: {', '.join(m.name for m in settings.mailboxes) or 'none'}")
        for conn_id in settings.connection_ids:
            print(f"connection {conn_id}: {connection_state(conn_id, problems)}")
    for problem in problems:
        print(f"problem: {problem}")
    print("settings OK" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


def cmd_ledger_upgrade(args: argparse.Namespace) -> int:
    from pfi.ledger import current_revision, upgrade

    url = ledger_url(args)
    upgrade(url)
    print(f"ledger at revision {current_revision(url)}")
    return 0


def cmd_ledger_current(args: argparse.Namespace) -> int:
    from pfi.ledger import current_revision

    print(current_revision(ledger_url(args)) or "empty (no migration applied)")
    return 0


def cmd_intake_run(args: argparse.Namespace) -> int:
    from pfi.cli.commands._common import settings_of
    from pfi.flows.intake import acknowledge_items, claim_and_record
    from pfi.ledger import Ledger

    settings = settings_of(args, required=True)
    settings.source(args.source)  # unknown source: a clear error before anything is claimed
    ledger = Ledger.from_url(ledger_url(args))
    batches = claim_and_record(
        ledger, settings, batch_size=100, limit=args.limit, actor="cli", sources=[args.source]
    )
    for batch in batches:
        print(json.dumps(acknowledge_items(ledger, settings, batch, actor="cli")))
    if not batches:
        print(json.dumps({"source": args.source, "claimed": 0}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pfi", description=__doc__.split("\n")[0])
    parser.add_argument("--settings", help="settings file (default: $PFI_SETTINGS)")
    groups = parser.add_subparsers(dest="group", required=True)

    config = groups.add_parser("config", help="site settings").add_subparsers(
        dest="action", required=True
    )
    check = config.add_parser("check", help="validate the settings")
    check.add_argument("--settings", default=argparse.SUPPRESS, help="settings file")
    check.set_defaults(func=cmd_config_check)

    ledger = groups.add_parser("ledger", help="the ledger database").add_subparsers(
        dest="action", required=True
    )
    for name, func in (("upgrade", cmd_ledger_upgrade), ("current", cmd_ledger_current)):
        sub = ledger.add_parser(name)
        sub.add_argument("--url", help="ledger database URL (default: AIRFLOW_CONN_PFI_LEDGER)")
        sub.set_defaults(func=func)

    intake = groups.add_parser("intake", help="HL7 drop directories").add_subparsers(
        dest="action", required=True
    )
    run = intake.add_parser("run", help="claim, record and acknowledge a source's files")
    run.add_argument("source")
    run.add_argument("--limit", type=int, default=1000, help="at most this many files")
    run.add_argument("--url", help="ledger database URL (default: AIRFLOW_CONN_PFI_LEDGER)")
    run.set_defaults(func=cmd_intake_run)

    from pfi.cli.commands import register_all

    register_all(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # the output was piped into `head` (or the like), which stopped
        try:  # no second error when Python flushes stdout on exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except PfiError as exc:
        print(f"error {exc.code}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
