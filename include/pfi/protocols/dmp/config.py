"""The ``[dmp]`` section of the site settings (``Settings.extra["dmp"]``).

Non-secret identifiers of the VIHF and of the XDS submission, timeouts, batch size and the retry
policy of the deferred-send queue (SC.DMP/ALI/PROG.06-07). Endpoints, certificates and keys are
in the Airflow Connection ``pfi_dmp`` (see ``plugins/pfi_airflow/dmp.py``). Documented in
``config/pfi.example.toml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pfi.base.errors import ConfigurationError
from pfi.base.retry import RetryPolicy
from pfi.base.settings import section
from pfi.protocols.dmp.vihf import AUTOMATE, Role

if TYPE_CHECKING:
    from pfi.base.settings import Settings

DEFAULT_SECTOR = "SA01^1.2.250.1.71.4.2.4"
#: The DMP is slower to come back than a mail relay: start at 2 minutes, cap at 1 hour, and give
#: up after 7 days (a document may be published up to 5 years late anyway, as a backfill).
DEFAULT_RETRY = RetryPolicy(
    first_delay=timedelta(minutes=2),
    factor=2.0,
    max_delay=timedelta(hours=1),
    give_up_after=timedelta(days=7),
)


@section("dmp")
@dataclass(frozen=True)
class DmpConfig:
    """Identifiers and limits of the DMP feed for one site."""

    source_id: str
    structure_id: str = ""
    structure_name: str = ""
    sector: str = DEFAULT_SECTOR
    responsible_id: str = "PFI"
    subject_name: str = ""
    roles: tuple[Role, ...] = (AUTOMATE,)
    software_name: str = "PFI-Airflow"
    software_version: str = ""
    software_id: str = ""
    homologation_id: str = ""
    vihf_version: str = "3.0"
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    batch_size: int = 20
    retry: RetryPolicy = field(default=DEFAULT_RETRY)

    @classmethod
    def from_settings(cls, settings: Settings) -> DmpConfig:
        raw: Mapping[str, Any] = settings.extra.get("dmp") or {}
        site = settings.site
        try:
            roles = tuple(
                Role(str(r["code"]), str(r["code_system"]), str(r.get("display_name", "")))
                for r in raw.get("roles", ())
            ) or (AUTOMATE,)
            config = cls(
                source_id=str(raw.get("source_id") or site.structure_oid),
                structure_id=str(raw.get("structure_id", "")),
                structure_name=str(raw.get("structure_name", site.name)),
                sector=str(raw.get("sector", DEFAULT_SECTOR)),
                responsible_id=str(raw.get("responsible_id", "PFI")),
                subject_name=str(
                    raw.get("subject_name", f"{site.software_name}, PFI, {site.name}")
                ),
                roles=roles,
                software_name=site.software_name,
                software_version=site.software_version,
                software_id=str(raw.get("software_id", "")),
                homologation_id=str(raw.get("homologation_id", "")),
                vihf_version=str(raw.get("vihf_version", "3.0")),
                connect_timeout=float(raw.get("connect_timeout_seconds", 5)),
                read_timeout=float(raw.get("read_timeout_seconds", 60)),
                batch_size=int(raw.get("batch_size", 20)),
                retry=RetryPolicy.from_mapping(raw["retry"]) if "retry" in raw else DEFAULT_RETRY,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"[dmp] settings: {exc!r}", code="DMP_SETTINGS") from None
        if config.batch_size < 1 or config.connect_timeout <= 0 or config.read_timeout <= 0:
            raise ConfigurationError(
                "[dmp] batch_size and timeouts must be positive", code="DMP_SETTINGS"
            )
        return config


__all__ = ["DEFAULT_RETRY", "DEFAULT_SECTOR", "DmpConfig"]
