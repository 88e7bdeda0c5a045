"""The ``[mssante]`` section of the site settings, and the French mail templates.

The core settings do not know this section (``Settings.extra["mssante"]``); it is parsed here::

    [mssante]
    software_reference = "PFI-0000"     # X-MSS-NIL: the product reference given by convergence.esante
    sender_name = "CH de Démonstration"  # From display name (SC.MSS.15: the functional entity)
    contact_address = "secretariat@ch-demo.mssante.test"  # named at the end of every mail (SC.MSS.13)
    reply_to = ""                        # Reply-To when the request has no PRT REPLY (SC.MSS.26)
    sending_mailbox = ""                 # [[mailbox]] name sending every mail (default: per FINESS)
    request_dsn = true                   # ask the operator for delivery notifications (DSN)
    dsn_wait_hours = 24                  # no DSN after this long: the Z02 rests on SMTP's 250

    [mssante.templates]                  # any key below overrides the built-in French text
    subject = "XDM/1.0/DDM+{title} {birth_name} {given_name} {birth_date}"

    [mssante.retry]                      # pfi.base.retry.RetryPolicy.from_mapping
    first_delay_seconds = 60

Template placeholders: ``{title}`` (document title, else the type's label), ``{type_label}``,
``{birth_name}``, ``{given_name}``, ``{birth_date}`` (``JJ/MM/AAAA``), ``{site}`` (site name),
``{sender_name}``, ``{contact}`` (contact address), ``{document_date}``. An unknown placeholder
is a configuration error, found when the settings are checked, not when a mail is sent.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pfi.base.errors import ConfigurationError
from pfi.base.retry import RetryPolicy
from pfi.base.settings import section

PLACEHOLDERS = frozenset(
    {
        "title",
        "type_label",
        "birth_name",
        "given_name",
        "birth_date",
        "site",
        "sender_name",
        "contact",
        "document_date",
    }
)

#: Built-in texts (French: hospital staff and patients read them). Keys: ``subject``,
#: ``body_<audience>_<action>`` (audience ``professional``/``patient``, action
#: ``new``/``replace``/``delete``), ``replace_notice`` (prepended to a producer's own body on a
#: replacement, SC.MSS.15.PFI), ``delete_notice`` (idem on a deletion, IG-CDA ``exemples.md``),
#: ``footer`` and ``footer_no_reply`` (patient mails closed to replies, SC.MSS/CONF.21).
DEFAULT_TEMPLATES: Mapping[str, str] = {
    # SC.MSS/CONF.25: "XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>".
    "subject": "XDM/1.0/DDM+{title} {birth_name} {given_name} {birth_date}",
    "body_professional_new": (
        "Bonjour,\n\n"
        "Veuillez trouver ci-joint le document « {title} » du {document_date} concernant "
        "{birth_name} {given_name}, né(e) le {birth_date}.\n"
    ),
    "body_professional_replace": (
        "Bonjour,\n\n"
        "Veuillez trouver ci-joint une nouvelle version du document « {title} » concernant "
        "{birth_name} {given_name}, né(e) le {birth_date}.\n"
        "Ce document annule et remplace la version transmise précédemment.\n"
    ),
    "body_professional_delete": (
        "Bonjour,\n\n"
        "Le document « {title} » concernant {birth_name} {given_name}, né(e) le {birth_date}, "
        "qui vous a été transmis précédemment, a été supprimé par son auteur : il doit être "
        "supprimé de vos dossiers. L'archive IHE_XDM jointe identifie le document concerné.\n"
    ),
    "body_patient_new": (
        "Bonjour,\n\n"
        "{site} vous adresse le document « {title} » du {document_date}. "
        "Vous le trouverez en pièce jointe.\n"
    ),
    "body_patient_replace": (
        "Bonjour,\n\n"
        "{site} vous adresse une nouvelle version du document « {title} ». "
        "Elle annule et remplace la version transmise précédemment.\n"
    ),
    "body_patient_delete": (
        "Bonjour,\n\n"
        "Le document « {title} » que {site} vous a transmis précédemment a été retiré par son "
        "auteur. Merci de ne plus en tenir compte.\n"
    ),
    "replace_notice": "Ce document annule et remplace la version transmise précédemment.\n\n",
    "delete_notice": (
        "Le document joint a été supprimé par son auteur : il doit être supprimé de vos "
        "dossiers.\n\n"
    ),
    "footer": (
        "\n-- \n"
        "Ce message a été généré automatiquement par la plateforme d'échanges de {site}. "
        "Pour joindre l'établissement : {contact}\n"
    ),
    "footer_no_reply": (
        "\n-- \n"
        "Ce message a été généré automatiquement par la plateforme d'échanges de {site}. "
        "Il n'est pas possible d'y répondre.\n"
    ),
}


@section("mssante")
@dataclass(frozen=True)
class MssConfig:
    """What the MSSanté sender needs from the site settings besides the mailboxes."""

    software_reference: str = "PFI-Airflow"
    sender_name: str = ""
    contact_address: str = ""
    reply_to: str = ""
    sending_mailbox: str = ""
    request_dsn: bool = True
    #: How long a DSN is awaited before the Z02 rests on the SMTP acceptance alone.
    dsn_wait_hours: float = 24.0
    templates: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TEMPLATES))
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def dsn_wait(self) -> timedelta:
        return timedelta(hours=self.dsn_wait_hours)

    def template(self, key: str) -> str:
        return self.templates.get(key, DEFAULT_TEMPLATES[key])

    @classmethod
    def check_settings(cls, settings: Any) -> MssConfig:
        """``[mssante]`` without its ``[mssante.retry]`` table (checked as its own section)."""
        raw = dict(settings.extra.get("mssante", {}) or {})
        raw.pop("retry", None)
        return cls.from_mapping(raw)

    @classmethod
    def from_settings(cls, settings: Any) -> MssConfig:
        """From :class:`pfi.base.settings.Settings` (``extra["mssante"]``), defaults from ``[site]``."""
        raw = settings.extra.get("mssante", {}) if settings is not None else {}
        site = getattr(settings, "site", None)
        config = cls.from_mapping(raw)
        if site is not None:
            defaults: dict[str, Any] = {}
            if not config.sender_name:
                defaults["sender_name"] = site.name
            if not raw.get("software_reference"):
                defaults["software_reference"] = site.software_name
            if defaults:
                config = cls(**{**config.__dict__, **defaults})
        return config

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> MssConfig:
        raw = dict(raw or {})
        templates_raw = raw.pop("templates", {}) or {}
        retry = raw.pop("retry", {}) or {}
        if not isinstance(templates_raw, Mapping) or not isinstance(retry, Mapping):
            raise ConfigurationError("[mssante.templates] and [mssante.retry] must be tables")
        known = {"software_reference", "sender_name", "contact_address", "reply_to"}
        known |= {"sending_mailbox", "request_dsn", "dsn_wait_hours"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigurationError(f"[mssante]: unknown setting(s) {', '.join(unknown)}")
        templates = dict(DEFAULT_TEMPLATES)
        for key, text in templates_raw.items():
            if key not in DEFAULT_TEMPLATES:
                raise ConfigurationError(f"[mssante.templates]: unknown template {key!r}")
            check_template(key, str(text))
            templates[key] = str(text)
        return cls(
            software_reference=str(raw.get("software_reference", cls.software_reference)),
            sender_name=str(raw.get("sender_name", "")),
            contact_address=str(raw.get("contact_address", "")),
            reply_to=str(raw.get("reply_to", "")),
            sending_mailbox=str(raw.get("sending_mailbox", "")),
            request_dsn=bool(raw.get("request_dsn", True)),
            dsn_wait_hours=_hours(raw.get("dsn_wait_hours", 24)),
            templates=templates,
            retry=retry_policy(retry),
        )


def _hours(value: Any) -> float:
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError("[mssante] dsn_wait_hours must be a number") from None
    if hours <= 0:
        raise ConfigurationError("[mssante] dsn_wait_hours must be positive")
    return hours


def check_template(key: str, text: str) -> None:
    """Refuse a template with a placeholder we do not fill (or broken braces)."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ConfigurationError(f"[mssante.templates] {key}: {exc}") from None
    unknown = sorted(names - PLACEHOLDERS)
    if unknown:
        raise ConfigurationError(
            f"[mssante.templates] {key}: unknown placeholder(s) {', '.join(unknown)}"
        )


def retry_policy(raw: Mapping[str, Any] | None) -> RetryPolicy:
    try:
        return RetryPolicy.from_mapping(raw)
    except ConfigurationError as exc:
        raise ConfigurationError(f"[mssante.retry]: {exc}") from None


@section("mssante.retry")
class MssRetrySection:
    """``[mssante.retry]``: the backoff of deferred mails (:class:`pfi.base.retry.RetryPolicy`)."""

    @staticmethod
    def from_settings(settings: Any) -> RetryPolicy:
        raw = settings.extra.get("mssante", {}) or {}
        return RetryPolicy.from_mapping(raw.get("retry") if isinstance(raw, Mapping) else None)


__all__ = ["DEFAULT_TEMPLATES", "PLACEHOLDERS", "MssConfig", "check_template", "retry_policy"]
