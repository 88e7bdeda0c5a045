"""The site's settings: who the establishment is, where messages come from and go to.

Non-secret settings live in one TOML file (``config/pfi.example.toml`` documents every key), found
through the ``PFI_SETTINGS`` environment variable. Secrets and endpoints (hosts, ports,
certificates, passwords) are **Airflow Connections**: the settings only name their connection ids
(:mod:`pfi.base.connections` reads them).

Settings are read lazily — :func:`load_settings` is called inside tasks and commands, never when a
DAG file is parsed — and validated into frozen dataclasses: the core sections here
(:mod:`.core`), every other section by the parser its owner registers (:mod:`.sections`).
:func:`check_settings` lists every problem at once, for ``pfi config check``.
"""

from pfi.base.settings.core import (
    CORE_SECTIONS,
    ENV_SETTINGS,
    FinessGeo,
    Hl7Source,
    Mailbox,
    Settings,
    Site,
    check_settings,
    finess_key_ok,
    load_settings,
)
from pfi.base.settings.sections import (
    Section,
    registered,
    section,
    section_problems,
)

__all__ = [
    "CORE_SECTIONS",
    "ENV_SETTINGS",
    "FinessGeo",
    "Hl7Source",
    "Mailbox",
    "Section",
    "Settings",
    "Site",
    "check_settings",
    "finess_key_ok",
    "load_settings",
    "registered",
    "section",
    "section_problems",
]
