"""The core of the site settings: the establishment, its HL7 sources, its mailboxes, the ids of its
Connections; the one loader of the settings file.

The other sections (``[intake]``, ``[dmp]``, ``[mssante]``, ``[[mllp_inlet]]``…) belong to the
layer that uses them and are parsed there (:mod:`pfi.base.settings.sections`).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfi.base.errors import ConfigurationError

ENV_SETTINGS = "PFI_SETTINGS"
ENV_DATA_DIR = "PFI_DATA_DIR"

INS_ENVIRONMENTS = ("production", "test")
HL7_SOURCE_KINDS = ("DPI", "SGL", "RIS", "OTHER")

_FINESS = re.compile(r"^(\d{2}|2A|2B)\d{7}$")
_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")
_MAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def finess_key_ok(finess: str) -> bool:
    """Check the Luhn key of a 9-character FINESS number.

    Corsican numbers (département ``2A``/``2B``) carry no checkable key and are accepted as
    long as they have the right shape.
    """
    if not _FINESS.match(finess):
        return False
    if not finess.isdigit():
        return True
    total = 0
    for index, char in enumerate(reversed(finess)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


@dataclass(frozen=True)
class FinessGeo:
    """A FINESS géographique: a site of the establishment; statistics are kept per site."""

    finess: str
    name: str


@dataclass(frozen=True)
class Site:
    """The establishment (FINESS juridique) and the identifiers it uses in documents and VIHF."""

    name: str
    finess_juridique: str
    finess_geo: tuple[FinessGeo, ...]
    structure_oid: str
    ins_environment: str = "test"
    software_name: str = "PFI-Airflow"
    software_version: str = "0.1.0"

    def geo(self, finess: str) -> FinessGeo:
        for geo in self.finess_geo:
            if geo.finess == finess:
                return geo
        raise ConfigurationError(f"FINESS géographique {finess} is not declared in [site]")


@dataclass(frozen=True)
class Hl7Source:
    """A producer (DPI, SGL, RIS…) dropping HL7 v2 files into a directory.

    ``outbound_dir`` receives the acknowledgement files; ``archive_dir`` and ``quarantine_dir``
    keep every original (by date, and with the reason beside rejected ones).

    ``zam_mllp_connection`` (TOML key ``zam_mllp``): the id of an Airflow Connection (host, port;
    extra ``timeout``, ``connect_timeout``) to which the business acknowledgements (ZAM) are
    **also** sent over MLLP (:func:`pfi.flows.producer_acks.emit`); the ZAM file is written all the same. Empty:
    files only. The technical ACKs of dropped files stay files.
    """

    name: str
    kind: str
    finess_geo: str
    drop_dir: Path
    outbound_dir: Path
    archive_dir: Path
    quarantine_dir: Path
    work_dir: Path
    default_encoding: str = "iso-8859-1"
    file_patterns: tuple[str, ...] = ("*.hl7", "*.er7", "*.txt")
    settle_seconds: float = 2.0
    zam_mllp_connection: str | None = None


@dataclass(frozen=True)
class Mailbox:
    """An MSSanté application mailbox (BAL applicative) and where its error mails go."""

    name: str
    address: str
    connection_id: str
    finess_geo: str
    error_mailbox: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything a site configures, except secrets (those are Airflow Connections)."""

    site: Site
    data_dir: Path
    sources: tuple[Hl7Source, ...]
    mailboxes: tuple[Mailbox, ...] = ()
    ledger_connection_id: str = "pfi_ledger"
    dpi_connection_id: str = "pfi_dpi_mllp"
    dmp_connection_id: str = "pfi_dmp"
    source_file: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def source(self, name: str) -> Hl7Source:
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigurationError(f"unknown HL7 source {name!r}")

    @property
    def connection_ids(self) -> tuple[str, ...]:
        """Every Airflow Connection the configured flows need."""
        ids = [self.ledger_connection_id, self.dpi_connection_id, self.dmp_connection_id]
        ids += [mailbox.connection_id for mailbox in self.mailboxes]
        ids += [s.zam_mllp_connection for s in self.sources if s.zam_mllp_connection]
        return tuple(dict.fromkeys(ids))


def settings_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The settings file to read: the argument, else ``$PFI_SETTINGS``."""
    chosen = path or os.environ.get(ENV_SETTINGS)
    if not chosen:
        raise ConfigurationError(
            f"no settings file: set {ENV_SETTINGS} (see config/pfi.example.toml)"
        )
    return Path(chosen)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate the settings file; raise :class:`ConfigurationError` listing problems."""
    file = settings_path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"settings file not found: {file}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"settings file {file} is not valid TOML: {exc}") from exc
    settings, problems = _parse(raw, base=file.parent)
    if problems:
        raise ConfigurationError(
            f"settings file {file} has {len(problems)} problem(s): " + "; ".join(problems)
        )
    assert settings is not None
    return settings.__class__(**{**settings.__dict__, "source_file": file})


def check_settings(path: str | os.PathLike[str] | None = None) -> tuple[Settings | None, list[str]]:
    """Validate without raising: the settings (if readable) and the list of problems found."""
    try:
        file = settings_path(path)
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (ConfigurationError, OSError, tomllib.TOMLDecodeError) as exc:
        return None, [str(exc)]
    settings, problems = _parse(raw, base=file.parent)
    if settings is not None:
        for source in settings.sources:
            if not source.drop_dir.is_dir():
                problems.append(
                    f"hl7_source {source.name}: drop_dir {source.drop_dir} does not exist"
                )
    return settings, problems


def _parse(raw: Mapping[str, Any], *, base: Path) -> tuple[Settings | None, list[str]]:
    problems: list[str] = []
    site_raw = raw.get("site")
    if not isinstance(site_raw, Mapping):
        return None, ["[site] section is missing"]

    geos = tuple(
        FinessGeo(finess=str(g.get("finess", "")), name=str(g.get("name", "")))
        for g in site_raw.get("finess_geo", [])
    )
    site = Site(
        name=str(site_raw.get("name", "")),
        finess_juridique=str(site_raw.get("finess_juridique", "")),
        finess_geo=geos,
        structure_oid=str(site_raw.get("structure_oid", "")),
        ins_environment=str(site_raw.get("ins_environment", "test")),
        software_name=str(site_raw.get("software_name", "PFI-Airflow")),
        software_version=str(site_raw.get("software_version", "0.1.0")),
    )
    if not site.name:
        problems.append("site.name is empty")
    if not finess_key_ok(site.finess_juridique):
        problems.append(
            "site.finess_juridique is not a valid FINESS number (9 characters, Luhn key)"
        )
    if not geos:
        problems.append("site.finess_geo: declare at least one FINESS géographique")
    for geo in geos:
        if not finess_key_ok(geo.finess):
            problems.append(f"site.finess_geo {geo.finess!r} is not a valid FINESS number")
    if not _OID.match(site.structure_oid):
        problems.append("site.structure_oid is not an OID")
    if site.ins_environment not in INS_ENVIRONMENTS:
        problems.append(f"site.ins_environment must be one of {', '.join(INS_ENVIRONMENTS)}")
    geo_ids = {geo.finess for geo in geos}

    data_dir = _path(
        os.environ.get(ENV_DATA_DIR) or raw.get("paths", {}).get("data_dir", "var/data"), base
    )

    sources: list[Hl7Source] = []
    for entry in raw.get("hl7_source", []):
        name = str(entry.get("name", ""))
        if not _NAME.match(name):
            problems.append(f"hl7_source name {name!r}: use lower-case letters, digits and _")
            continue
        kind = str(entry.get("kind", "OTHER")).upper()
        if kind not in HL7_SOURCE_KINDS:
            problems.append(f"hl7_source {name}: kind must be one of {', '.join(HL7_SOURCE_KINDS)}")
        finess = str(entry.get("finess_geo", geos[0].finess if geos else ""))
        if finess not in geo_ids:
            problems.append(f"hl7_source {name}: finess_geo {finess!r} is not declared in [site]")
        if "drop_dir" not in entry:
            problems.append(f"hl7_source {name}: drop_dir is missing")
            continue
        source_dir = data_dir / "sources" / name
        sources.append(
            Hl7Source(
                name=name,
                kind=kind,
                finess_geo=finess,
                drop_dir=_path(entry["drop_dir"], base),
                outbound_dir=_path(entry.get("outbound_dir", source_dir / "outbound"), base),
                archive_dir=_path(entry.get("archive_dir", source_dir / "archive"), base),
                quarantine_dir=_path(entry.get("quarantine_dir", source_dir / "quarantine"), base),
                work_dir=_path(entry.get("work_dir", source_dir / "work"), base),
                default_encoding=str(entry.get("default_encoding", "iso-8859-1")),
                file_patterns=tuple(entry.get("file_patterns", ("*.hl7", "*.er7", "*.txt"))),
                settle_seconds=float(entry.get("settle_seconds", 2.0)),
                zam_mllp_connection=str(entry.get("zam_mllp") or "") or None,
            )
        )
    if len({s.name for s in sources}) != len(sources):
        problems.append("hl7_source names must be unique")

    mailboxes: list[Mailbox] = []
    for entry in raw.get("mailbox", []):
        name = str(entry.get("name", ""))
        address = str(entry.get("address", ""))
        if not _NAME.match(name):
            problems.append(f"mailbox name {name!r}: use lower-case letters, digits and _")
            continue
        if not _MAIL.match(address):
            problems.append(f"mailbox {name}: address {address!r} is not a mail address")
        error_mailbox = entry.get("error_mailbox") or None
        if error_mailbox is not None and not _MAIL.match(str(error_mailbox)):
            problems.append(f"mailbox {name}: error_mailbox is not a mail address")
        finess = str(entry.get("finess_geo", geos[0].finess if geos else ""))
        if finess not in geo_ids:
            problems.append(f"mailbox {name}: finess_geo {finess!r} is not declared in [site]")
        mailboxes.append(
            Mailbox(
                name=name,
                address=address,
                connection_id=str(entry.get("connection_id", f"pfi_mss_{name}")),
                finess_geo=finess,
                error_mailbox=str(error_mailbox) if error_mailbox else None,
            )
        )

    connections = raw.get("connections", {})
    settings = Settings(
        site=site,
        data_dir=data_dir,
        sources=tuple(sources),
        mailboxes=tuple(mailboxes),
        ledger_connection_id=str(connections.get("ledger", "pfi_ledger")),
        dpi_connection_id=str(connections.get("dpi_mllp", "pfi_dpi_mllp")),
        dmp_connection_id=str(connections.get("dmp", "pfi_dmp")),
        extra={k: v for k, v in raw.items() if k not in CORE_SECTIONS},
    )
    return settings, problems


#: The sections parsed here; every other one is kept in ``Settings.extra`` for its own parser.
CORE_SECTIONS = frozenset({"site", "paths", "hl7_source", "mailbox", "connections"})


def _path(value: Any, base: Path) -> Path:
    path = Path(os.path.expandvars(str(value))).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


__all__ = [
    "CORE_SECTIONS",
    "ENV_SETTINGS",
    "FinessGeo",
    "Hl7Source",
    "Mailbox",
    "Settings",
    "Site",
    "check_settings",
    "finess_key_ok",
    "load_settings",
]
