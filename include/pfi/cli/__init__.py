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

from pfi.base.errors import ConfigurationError, PfiError

Handler = Callable[[argparse.Namespace], int]


def connection_url(conn_id: str) -> str | None:
    """The URL of an Airflow Connection given as ``AIRFLOW_CONN_<ID>`` (URI or JSON form)."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw:
        return None
    if raw.lstrip().startswith("{"):
        data = json.loads(raw)
        user = data.get("login") or ""
        password = f":{data['password']}" if data.get("password") else ""
        auth = f"{user}{password}@" if user else ""
        port = f":{data['port']}" if data.get("port") else ""
        return f"postgresql://{auth}{data.get('host', '')}{port}/{data.get('schema', '')}"
    return raw.replace("postgres://", "postgresql://", 1)


def ledger_connection_id(args: argparse.Namespace) -> str:
    """``[connections] ledger`` of the settings (``--settings`` or ``$PFI_SETTINGS``) when they
    can be read, as the DAGs use it; ``pfi_ledger`` otherwise."""
    from pfi.base.settings import load_settings

    path = getattr(args, "settings", None) or os.environ.get("PFI_SETTINGS")
    if not path:
        return "pfi_ledger"
    try:
        return load_settings(path).ledger_connection_id
    except ConfigurationError:
        return "pfi_ledger"


def ledger_url(args: argparse.Namespace) -> str:
    """``--url``, else ``$PFI_LEDGER_URL``, else the ledger Connection as ``AIRFLOW_CONN_<ID>``."""
    url = getattr(args, "url", None) or os.environ.get("PFI_LEDGER_URL")
    if url:
        return url
    conn_id = ledger_connection_id(args)
    url = connection_url(conn_id)
    if not url:
        raise ConfigurationError(
            f"no ledger URL: pass --url, or set PFI_LEDGER_URL or AIRFLOW_CONN_{conn_id.upper()}"
        )
    return url


#: The settings sections each flow reads for itself, checked by ``pfi config check`` with the
#: flow's own parser (module, class with ``from_settings(settings)``).
FLOW_SECTIONS = (
    ("[intake]", "pfi.flows.intake", "IntakeOptions"),
    ("[dmp]", "pfi.protocols.dmp.config", "DmpConfig"),
    ("[mssante]", "pfi.protocols.mssante.config", "MssConfig"),
)


def section_problems(settings) -> list[str]:
    """What the flows' own parsers find wrong in their sections (``[intake]``, ``[dmp]``…)."""
    import importlib

    from pfi.flows.inlet import InletConfig

    problems = []
    for label, module, name in FLOW_SECTIONS:
        parser = getattr(importlib.import_module(module), name)
        try:
            parser.from_settings(settings)
        except ConfigurationError as exc:
            problems.append(f"{label}: {exc}")
    from pfi.flows.queue import RetryPolicy

    for section in ("mssante",):  # [dmp.retry] is DmpConfig's (checked above)
        raw = settings.extra.get(section, {}) or {}
        try:
            RetryPolicy.from_mapping(raw.get("retry") if isinstance(raw, dict) else None)
        except ConfigurationError as exc:
            problems.append(f"[{section}.retry]: {exc}")
    entries = settings.extra.get("mllp_inlet", []) or []
    for entry in [entries] if isinstance(entries, dict) else entries:
        try:
            InletConfig.from_settings(settings, str(entry.get("source", "")))
        except (ConfigurationError, LookupError) as exc:
            problems.append(f"[[mllp_inlet]]: {exc}")
    return problems


def cmd_config_check(args: argparse.Namespace) -> int:
    from pfi.base.settings import check_settings

    settings, problems = check_settings(args.settings)
    if settings is not None:
        problems.extend(section_problems(settings))
        print(f"site: {settings.site.name} (FINESS juridique {settings.site.finess_juridique})")
        print(f"HL7 sources: {', '.join(s.name for s in settings.sources) or 'none'}")
        print(f"mailboxes: {', '.join(m.name for m in settings.mailboxes) or 'none'}")
        for conn_id in settings.connection_ids:
            where = "environment" if os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}") else None
            state = f"found in the {where}" if where else "not in the environment (check Airflow)"
            print(f"connection {conn_id}: {state}")
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
    from pfi.base.settings import load_settings
    from pfi.flows.intake import acknowledge_items, claim_and_record
    from pfi.ledger import Ledger

    settings = load_settings(args.settings)
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
