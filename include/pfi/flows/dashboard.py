"""The indicators dashboard of the operator console (draft SC.TBB.01.PFI): the monthly
indicators of :mod:`pfi.flows.stats` per FINESS géographique × channel × document type × result,
for the current month, the current year and the previous year, and each month's CSV as
``report_monthly_stats`` writes it.

Everything comes from ONE ledger query (:meth:`pfi.ledger.Ledger.indicator_counts` from January
of the previous year to the current month) through :func:`pfi.flows.stats.build_reports`, so the
dashboard and the CSVs count the same way (the README's "Monthly indicators" table). Counts only:
no patient data, the ``metadata`` right is enough.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from pfi.flows.console import METADATA, Operator

if TYPE_CHECKING:
    from pfi.ledger import Ledger

#: The periods shown, in order: (key, French label).
PERIODS = (
    ("month", "Mois en cours"),
    ("year", "Année en cours"),
    ("previous_year", "Année précédente"),
)
#: Channels of the summary, each with its success and failure columns (SC.STAT/ES.02 headers).
CHANNELS = (
    ("DMP (flux)", "DMP flux - succès", "DMP flux - échecs"),
    ("DMP (historique)", "DMP historique - succès", "DMP historique - échecs"),
    (
        "MSSanté professionnels",
        "MSSanté professionnels - succès",
        "MSSanté professionnels - échecs",
    ),
    ("MSSanté patient", "MSSanté patient - succès", "MSSanté patient - échecs"),
    (
        "Réception MSSanté → DPI",
        "Réception MSSanté - transmis au DPI succès",
        "Réception MSSanté - transmis au DPI échecs",
    ),
)


def _tables(
    ledger: Ledger,
    month: date,
    finess: list[str],
    only: list[str] | None = None,
    previous_years: int = 1,
) -> Any:
    from pfi.flows.stats import build_reports, months_covered

    months = months_covered(month, previous_years)
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    counts = ledger.indicator_counts(months[0], following)
    return build_reports(counts, months, finess, only=only)


def dashboard(
    ledger: Ledger, operator: Operator, today: date, *, site_finess: list[str] | None = None
) -> dict[str, Any]:
    """The dashboard's figures for ``today``'s month (Paris time): per FINESS géographique,
    per period, the success and failure counts per channel (``summary``) and the indicators per
    document type (``types``: rows with any count only)."""
    operator.need(METADATA)
    from pfi.flows.stats import COLUMNS, KEYS

    month = today.replace(day=1)
    tables = _tables(ledger, month, list(site_finess or []))
    headers = [c.header for c in COLUMNS]
    periods = {
        "month": lambda m: m == f"{month:%Y-%m}",
        "year": lambda m: m.startswith(f"{month:%Y}-"),
        "previous_year": lambda m: m.startswith(f"{month.year - 1}-"),
    }
    sites = []
    for finess, table in tables.items():
        site: dict[str, Any] = {"finess": finess or "sans FINESS", "key": finess, "periods": {}}
        for key, label in PERIODS:
            rows = table[table[KEYS[1]].map(periods[key])]
            by_type = rows.groupby([KEYS[2], KEYS[3]], sort=False)[headers].sum()
            totals = rows[headers].sum()
            summary = []
            for name, success, failure in CHANNELS:
                ok, ko = int(totals[success]), int(totals[failure])
                summary.append(
                    {
                        "channel": name,
                        "success": ok,
                        "failure": ko,
                        "rate": round(100 * ok / (ok + ko), 1) if ok + ko else None,
                    }
                )
            types = [
                {"code": code, "label": label_, "values": [int(v) for v in values]}
                for (code, label_), values in by_type.iterrows()
                if int(values.sum())
            ]
            site["periods"][key] = {"label": label, "summary": summary, "types": types}
        sites.append(site)
    return {
        "month": f"{month:%Y-%m}",
        "headers": headers,
        "periods": PERIODS,
        "sites": sites,
        "months": [f"{date(month.year - 1, 1, 1):%Y-%m}", f"{month:%Y-%m}"],
    }


def monthly_csv(
    ledger: Ledger, operator: Operator, finess: str, month: date, *, previous_years: int = 1
) -> tuple[str, bytes]:
    """The file name and bytes of ``month``'s CSV for ``finess`` (``""``: rows without FINESS),
    the same bytes as ``report_monthly_stats`` writes for that month (``previous_years``: the
    site's ``[stats] previous_years``)."""
    operator.need(METADATA)
    from pfi.flows.stats import FILE_PATTERN, NO_FINESS, to_csv

    month = month.replace(day=1)
    table = _tables(ledger, month, [finess], only=[finess], previous_years=previous_years)[finess]
    name = FILE_PATTERN.format(finess=finess or NO_FINESS, month=f"{month:%Y-%m}")
    return name, to_csv(table)


def paris_today(now: datetime | None = None) -> date:
    """Today in Paris (the indicators' months are Paris months)."""
    from zoneinfo import ZoneInfo

    return (
        (now or datetime.now(ZoneInfo("Europe/Paris"))).astimezone(ZoneInfo("Europe/Paris")).date()
    )


__all__ = ["CHANNELS", "PERIODS", "dashboard", "monthly_csv", "paris_today"]
