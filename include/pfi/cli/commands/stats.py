"""``pfi stats …``: the monthly indicators (SC.STAT/ES.02) without Airflow.

::

    pfi stats month AAAA-MM [--finess FINESS]... [--out DIR] [--url URL]

``month`` writes the same CSVs as the ``report_monthly_stats`` DAG's run for that month (one per
FINESS géographique, every month from January of the previous year up to that month; format in
the README and :mod:`pfi.flows.stats`) into ``--out`` (default ``[stats] output_dir``), and prints
each file written. ``--finess`` (repeatable) writes only those FINESS géographiques' files.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from pfi.cli.commands._common import open_ledger, settings_of


def register(groups: argparse._SubParsersAction) -> None:
    stats = groups.add_parser("stats", help="monthly indicators (CSV)").add_subparsers(
        dest="action", required=True
    )
    month = stats.add_parser("month", help="write a month's CSVs, one per FINESS géographique")
    month.add_argument("month", type=_month, help="the report's month, AAAA-MM (e.g. 2026-10)")
    month.add_argument(
        "--finess",
        action="append",
        type=_finess,
        help="only this FINESS géographique (repeatable)",
    )
    month.add_argument("--out", type=Path, help="folder of the CSVs (default: [stats] output_dir)")
    month.add_argument("--url", help="ledger database URL (default: AIRFLOW_CONN_PFI_LEDGER)")
    month.set_defaults(func=cmd_month)


def _month(text: str):
    from pfi.flows.stats import parse_month

    try:
        return parse_month(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_month.__name__ = "month"


def _finess(text: str) -> str:
    if not re.fullmatch(r"(\d{2}|2A|2B)\d{7}", text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a FINESS number (9 characters)")
    return text.strip()


_finess.__name__ = "FINESS"


def cmd_month(args: argparse.Namespace) -> int:
    from pfi.flows.stats import write_monthly_reports

    settings = settings_of(args, required=True)
    assert settings is not None
    with open_ledger(args) as ledger:
        written = write_monthly_reports(
            ledger, settings, args.month, finess=args.finess, output_dir=args.out
        )
    for path in written:
        print(path)
    return 0
