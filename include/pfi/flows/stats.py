"""The monthly indicators (DSR SC.STAT/ES.02): one CSV per FINESS géographique.

One report is written for one month *M* (the month of the DAG run's data interval, or the
month given to ``pfi stats month``; never "now"). For each FINESS géographique it is one CSV,
``indicateurs_<FINESS>_<AAAA-MM>.csv``, holding one row per month × Ségur document type for
every month from January of the previous year (``[stats] previous_years``) up to *M* included,
and one column per indicator (:data:`COLUMNS`; the README's table is their definition).

How it is counted, once for all channels (:meth:`pfi.ledger.Ledger.indicator_counts`, the one
query of a report):

- **success** = the delivery is ``sent`` (accepted by the DMP, by the MSSanté server, by the DPI's
  ``AA``); **failure** = ``failed`` (given up after its retries) or ``refused`` (refused by the
  partner, a bounce or a negative DSN arriving later included); ``pending`` and ``held`` ones
  have no outcome yet and count nowhere;
- a delivery counts in the month of its outcome, **Paris time** (``sent_at``, else its last
  attempt: ``delivery.stat_month``): a document sent at 23:30 UTC on 31 October counts in
  November;
- each delivery is one send: a new document, a replacement or a deletion each count once
  (SC.TBB.01.PFI counts "tentatives d'envoi"); MSSanté to professionals also has the
  replacements and deletions sent apart;
- received: each document of a mail is its own message to the DPI (one ``dpi`` delivery), counted
  under its type and the receiving mailbox's FINESS géographique; a mail the PFI refused before
  reading any document (no ``IHE_XDM.ZIP``, hostile archive, identity mismatch) is a failure of
  type "Type non déterminé", in the month it was received; update and deletion requests count in
  the month their mail was received, whatever became of them.

Which files: every FINESS géographique of ``[site]`` (zeros when nothing happened: an empty
month gives a file of zeros, never a missing file) plus any other one the ledger names in those
months. Rows: the Ségur document types in their list order, then other type codes seen
("Hors liste Ségur"), then documents without type, for every month; sorted by month. ``;``
separated, UTF-8 with BOM, CRLF line ends (Excel), integers only: the same ledger gives the same
bytes, and each file is written atomically.

Settings (``[stats]``, all optional; :class:`StatsConfig`)::

    output_dir = "stats"     # relative to [paths] data_dir (default <data_dir>/stats)
    previous_years = 1       # whole years covered before the report's (≥ 1, SC.STAT/ES.02)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pandas as pd

from pfi.base.errors import ConfigurationError
from pfi.base.files import write_atomically
from pfi.base.settings import Settings, section
from pfi.ledger.records import IndicatorCount
from pfi.ledger.schema import STATS_TIME_ZONE
from pfi.protocols.cda.generator import SEGUR_DOCUMENT_TYPES

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from pfi.ledger import Ledger

log = logging.getLogger(__name__)

PARIS = ZoneInfo(STATS_TIME_ZONE)
FILE_PATTERN = "indicateurs_{finess}_{month}.csv"
#: File name part of the rows whose FINESS géographique the ledger does not know.
NO_FINESS = "sans-finess"

#: The key columns of a row, then the indicators: (French header, what it sums).
KEYS = ("FINESS géographique", "Mois", "Code type de document", "Type de document")
OTHER_TYPE = "Hors liste Ségur"
NO_TYPE = "Type non déterminé"

_OUTCOME = "outcome"
_SENT = ("sent",)
_FAILED = ("failed", "refused")


@dataclass(frozen=True)
class Indicator:
    """One column: the rows of :meth:`Ledger.indicator_counts` it sums."""

    header: str
    channel: str
    statuses: tuple[str, ...]
    basis: tuple[str, ...] = (_OUTCOME,)
    historical: bool | None = None
    qualified_ins: bool | None = None
    actions: tuple[str, ...] | None = None


#: The indicators of SC.STAT/ES.02, in column order.
COLUMNS = (
    Indicator("DMP flux - succès", "dmp", _SENT, historical=False),
    Indicator("DMP flux - échecs", "dmp", _FAILED, historical=False),
    Indicator("DMP historique - succès", "dmp", _SENT, historical=True),
    Indicator("DMP historique - échecs", "dmp", _FAILED, historical=True),
    Indicator("MSSanté professionnels - succès", "mss_professional", _SENT),
    Indicator("MSSanté professionnels - échecs", "mss_professional", _FAILED),
    Indicator(
        "MSSanté professionnels INS qualifié - succès",
        "mss_professional",
        _SENT,
        qualified_ins=True,
    ),
    Indicator(
        "MSSanté professionnels INS qualifié - échecs",
        "mss_professional",
        _FAILED,
        qualified_ins=True,
    ),
    Indicator(
        "MSSanté professionnels - documents mis à jour envoyés",
        "mss_professional",
        _SENT,
        actions=("replace",),
    ),
    Indicator(
        "MSSanté professionnels - documents supprimés envoyés",
        "mss_professional",
        _SENT,
        actions=("delete",),
    ),
    Indicator("MSSanté patient - succès", "mss_patient", _SENT),
    Indicator("MSSanté patient - échecs", "mss_patient", _FAILED),
    Indicator("Réception MSSanté - transmis au DPI succès", "dpi", _SENT),
    Indicator(
        "Réception MSSanté - transmis au DPI échecs",
        "dpi",
        _FAILED,
        basis=(_OUTCOME, "mail_refused"),
    ),
    Indicator(
        "Réception MSSanté - demandes de mise à jour ou suppression reçues",
        "dpi",
        ("pending", "held", "sent", "failed", "refused"),
        basis=("received",),
    ),
)
HEADERS = (*KEYS, *(column.header for column in COLUMNS))


@section("stats")
@dataclass(frozen=True)
class StatsConfig:
    """The ``[stats]`` section (see the module docstring)."""

    output_dir: Path
    previous_years: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> StatsConfig:
        raw = dict(settings.extra.get("stats", {}) or {})
        unknown = sorted(set(raw) - {"output_dir", "previous_years"})
        if unknown:
            raise ConfigurationError(f"[stats]: unknown setting(s) {', '.join(unknown)}")
        folder = Path(str(raw.get("output_dir", "stats"))).expanduser()
        try:
            years = int(raw.get("previous_years", 1))
        except (TypeError, ValueError):
            raise ConfigurationError("[stats]: previous_years is a whole number") from None
        if not 1 <= years <= 10:
            raise ConfigurationError("[stats]: previous_years from 1 to 10 (SC.STAT/ES.02: ≥ 1)")
        return cls(
            output_dir=folder if folder.is_absolute() else settings.data_dir / folder,
            previous_years=years,
        )


def month_of_interval(start: datetime, end: datetime) -> date:
    """The calendar month (Paris time) a run's data interval stands for: the month of its start,
    whose next month must hold its end (``CronDataIntervalTimetable("0 3 1 * *")`` gives 03:00
    on the 1st to 03:00 on the 1st of the next month); ``ValueError`` otherwise."""
    first = start.astimezone(PARIS).date().replace(day=1)
    last = end.astimezone(PARIS).date()
    if (last.year, last.month) != _next_month(first) or last.day != 1:
        raise ValueError(f"the data interval {start} – {end} is not one calendar month")
    return first


def parse_month(text: str) -> date:
    """``AAAA-MM`` → the first day of that month; ``ValueError`` otherwise."""
    try:
        parsed = datetime.strptime(text.strip(), "%Y-%m").date()
    except ValueError:
        raise ValueError(f"{text!r} is not a month (AAAA-MM, e.g. 2026-10)") from None
    return parsed


def months_covered(month: date, previous_years: int = 1) -> list[date]:
    """January of ``previous_years`` before ``month``'s year, up to ``month`` included."""
    current, last = date(month.year - previous_years, 1, 1), month.replace(day=1)
    months = []
    while current <= last:
        months.append(current)
        current = date(*_next_month(current), 1)
    return months


def build_reports(
    counts: Iterable[IndicatorCount],
    months: Sequence[date],
    finess: Iterable[str],
    *,
    only: Iterable[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """One table per FINESS géographique (key: the FINESS, ``""`` for rows without one) of
    ``months`` × document types × :data:`COLUMNS`, from the ledger's counts. ``finess``: the ones
    that get a table even with no row (the site's); ``only``: keep these alone."""
    frame = pd.DataFrame(
        [vars(row) for row in counts],
        columns=[column.name for column in fields(IndicatorCount)],
    )
    frame["finess_geo"] = frame["finess_geo"].fillna("").astype(str)
    frame["type_code"] = frame["type_code"].fillna("").astype(str)
    frame = frame[frame["month"].isin(set(months))]
    for column in COLUMNS:
        mask = (
            frame["basis"].isin(column.basis)
            & (frame["channel"] == column.channel)
            & frame["status"].isin(column.statuses)
        )
        if column.historical is not None:
            mask &= frame["historical"] == column.historical
        if column.qualified_ins is not None:
            mask &= frame["qualified_ins"] == column.qualified_ins
        if column.actions is not None:
            mask &= frame["action"].isin(column.actions)
        frame[column.header] = frame["count"].where(mask, 0).astype("int64")
    headers = [column.header for column in COLUMNS]
    sums = frame.groupby(["finess_geo", "month", "type_code"], sort=False)[headers].sum()

    wanted = set(only) if only is not None else None
    keys = set(finess) | set(frame["finess_geo"])
    if wanted is not None:
        keys = wanted
    reports = {}
    for key in sorted(keys):
        seen = sorted(set(frame.loc[frame["finess_geo"] == key, "type_code"]))
        types = _type_order(seen)
        grid = pd.MultiIndex.from_product(
            [[key], list(months), [code for code, _ in types]],
            names=["finess_geo", "month", "type_code"],
        )
        table = sums.reindex(grid, fill_value=0).astype("int64").reset_index()
        labels = dict(types)
        table.insert(0, KEYS[0], table.pop("finess_geo"))
        table.insert(1, KEYS[1], table.pop("month").map(lambda m: f"{m:%Y-%m}"))
        codes = table.pop("type_code")
        table.insert(2, KEYS[2], codes)
        table.insert(3, KEYS[3], codes.map(labels))
        reports[key] = table[list(HEADERS)]
    return reports


def to_csv(table: pd.DataFrame) -> bytes:
    """The file's bytes: ``;``-separated, UTF-8 with BOM, CRLF (what Excel opens as is)."""
    text = table.to_csv(sep=";", index=False, lineterminator="\r\n")
    return ("\ufeff" + text).encode("utf-8")


def write_monthly_reports(
    ledger: Ledger,
    settings: Settings,
    month: date,
    *,
    finess: Sequence[str] | None = None,
    output_dir: Path | None = None,
    config: StatsConfig | None = None,
) -> list[Path]:
    """Write month ``month``'s CSVs (one per FINESS géographique, or those of ``finess``) into
    ``output_dir`` (default ``[stats] output_dir``), from ONE ledger query; their paths."""
    config = config or StatsConfig.from_settings(settings)
    months = months_covered(month, config.previous_years)
    counts = ledger.indicator_counts(months[0], date(*_next_month(months[-1]), 1))
    reports = build_reports(
        counts, months, [geo.finess for geo in settings.site.finess_geo], only=finess
    )
    folder = output_dir or config.output_dir
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for key, table in reports.items():
        path = folder / FILE_PATTERN.format(finess=key or NO_FINESS, month=f"{month:%Y-%m}")
        write_atomically(path, to_csv(table))
        written.append(path)
    log.info(
        "statistics of %s: %d file(s) in %s, months %s to %s",
        f"{month:%Y-%m}",
        len(written),
        folder,
        f"{months[0]:%Y-%m}",
        f"{months[-1]:%Y-%m}",
    )
    return written


def _type_order(seen: Iterable[str]) -> list[tuple[str, str]]:
    """(code, label) of the rows: the Ségur list in its order, other codes, no code last."""
    segur = [(t.code, t.display_name) for t in SEGUR_DOCUMENT_TYPES.values()]
    known = {code for code, _ in segur}
    others = sorted(code for code in set(seen) - known if code)
    rows = segur + [(code, OTHER_TYPE) for code in others]
    if "" in set(seen):
        rows.append(("", NO_TYPE))
    return rows


def _next_month(day: date) -> tuple[int, int]:
    return (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)


__all__ = [
    "COLUMNS",
    "HEADERS",
    "StatsConfig",
    "build_reports",
    "month_of_interval",
    "months_covered",
    "parse_month",
    "to_csv",
    "write_monthly_reports",
]
