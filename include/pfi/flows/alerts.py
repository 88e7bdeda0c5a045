"""Operations alerts: a French mail to the operations mailbox when the PFI needs a human.

Four conditions, read from the ledger (:mod:`pfi.ledger.alerts`) by :func:`check_conditions`
every few minutes (DAG ``watch_operations``), and one raised by Airflow itself:

``given_up``
    deliveries given up since the previous alert of this kind (``failed``,
    :data:`pfi.flows.queue.GIVEN_UP`: every retry of ``[dmp.retry]``, ``[mssante.retry]`` or
    ``[receiving.retry]`` failed) — per channel, with the last error's code;
``partner_failing:<partner>``
    a partner — the DMP (``dmp``), the MSSanté operator (``mss_professional`` and
    ``mss_patient``), the DPI (``dpi``: received documents) — that has answered nothing for more
    than ``partner_failing_minutes``: deliveries wait for a retry after a transient failure, and
    the first failure of those deliveries since the partner's last answer (a delivery sent or
    refused) is older than that;
``quarantine``
    more than ``quarantine_threshold`` received items refused (HL7 messages and files in
    quarantine, mails moved to the errors folder) over the last ``quarantine_window_hours``;
``pending:<channel>``
    more than the channel's ``pending_threshold`` deliveries waiting in the queue;
``task_failed:<dag>.<task>``
    a PFI task failed after its retries (the Airflow notifier attached to every PFI task:
    :func:`task_failure_alert`) — the DAG, task and run named, the error's type and code only.

Each condition is mailed **once per** ``repeat_minutes``: a condition that lasts is mailed again
as a reminder after that time, never at each check. What was mailed is remembered in the ledger's
trail (``alert.sent``: the condition, when, counts, codes and ledger ids — no patient data); the
given-up deliveries of one alert are the ones given up since the previous one.

**No patient data** in an alert: counts, channels, codes, ledger ids, DAG/task/run ids, and a link
to the operator console (``/pfi/``), where the operator's rights decide what is shown. Reason
texts, exception messages, recipients' addresses and INS are never copied.

The mail goes through the project's own SMTP client (:mod:`pfi.protocols.mssante.smtp`), from
an application mailbox with its certificate: by default the site's sending mailbox
(``[mssante] sending_mailbox``: :func:`pfi.flows.mssante.sending_mailbox`), or the
``[[mailbox]]`` named by ``mailbox``, or a dedicated Connection (``connection_id`` + ``sender``,
mapped like a ``pfi_mss_<mailbox>`` one). An MSSanté operator only carries mail inside the
MSSanté space: the operations mailbox is then the team's own MSSanté (organisational) mailbox.

Settings (``[alerts]``; without ``recipients`` the checks run and log, nothing is mailed)::

    recipients = ["exploitation@ch-x.mssante.fr"]   # the operations mailbox(es)
    mailbox = ""                     # a [[mailbox]] name; default: the [mssante] sending mailbox
    connection_id = ""               # or a dedicated Connection …
    sender = ""                      # … and its address
    console_url = ""                 # the Airflow UI's address, for the links (e.g. https://pfi.ch-x.fr)
    partner_failing_minutes = 30
    quarantine_threshold = 20
    quarantine_window_hours = 24
    pending_threshold = 500          # or per channel: { dmp = 500, mss_professional = 1000 }
    repeat_minutes = 60
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pfi.base.errors import ConfigurationError, PfiError
from pfi.base.settings import Mailbox, Settings, section
from pfi.flows.mssante import sending_mailbox
from pfi.flows.queue import GIVEN_UP
from pfi.ledger import CHANNELS
from pfi.protocols.mssante.config import MssConfig

if TYPE_CHECKING:
    from pfi.ledger import Ledger
    from pfi.protocols.mssante.smtp import SmtpClient

log = logging.getLogger(__name__)

EVENT_SENT = "alert.sent"
GIVEN_UP_CONDITION = "given_up"
QUARANTINE_CONDITION = "quarantine"
#: The partners watched, each with the channels it answers for.
PARTNERS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "dmp": ("le DMP", ("dmp",)),
    "mssante": ("l'opérateur MSSanté", ("mss_professional", "mss_patient")),
    "dpi": ("le DPI", ("dpi",)),
}
CHANNEL_LABELS = {
    "dmp": "DMP",
    "mss_professional": "MSSanté professionnels",
    "mss_patient": "MSSanté patient",
    "dpi": "DPI (documents reçus par MSSanté)",
}
#: How far back the partner's last answer is looked for, and the alerts already sent.
LOOKBACK = timedelta(days=7)
#: The given-up deliveries of a first alert (none mailed within :data:`LOOKBACK`): the last day's.
FIRST_WINDOW = timedelta(hours=24)
PARIS = ZoneInfo("Europe/Paris")
_MAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")

SmtpFactory = Callable[[Mailbox], "SmtpClient"]


@section("alerts")
@dataclass(frozen=True)
class AlertsConfig:
    """The ``[alerts]`` section (see the module docstring)."""

    recipients: tuple[str, ...] = ()
    mailbox: str = ""
    connection_id: str = ""
    sender: str = ""
    console_url: str = ""
    partner_failing_minutes: int = 30
    quarantine_threshold: int = 20
    quarantine_window_hours: int = 24
    pending_threshold: Mapping[str, int] = field(
        default_factory=lambda: dict.fromkeys(CHANNELS, 500)
    )
    repeat_minutes: int = 60

    @property
    def repeat(self) -> timedelta:
        return timedelta(minutes=self.repeat_minutes)

    @property
    def console(self) -> str:
        """The operator console's address (``/pfi/`` alone without ``console_url``)."""
        return f"{self.console_url.rstrip('/')}/pfi/"

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertsConfig:
        raw = dict(settings.extra.get("alerts", {}) or {})
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigurationError(f"[alerts]: unknown setting(s) {', '.join(unknown)}")
        recipients = raw.pop("recipients", ())
        if isinstance(recipients, str):
            recipients = (recipients,)
        recipients = tuple(str(r).strip() for r in recipients)
        bad = [r for r in recipients if not _MAIL.match(r)]
        if bad:
            raise ConfigurationError(f"[alerts] recipients: not an address: {', '.join(bad)}")
        threshold = raw.pop("pending_threshold", 500)
        try:
            if isinstance(threshold, Mapping):
                wrong = sorted(set(threshold) - set(CHANNELS))
                if wrong:
                    raise ConfigurationError(
                        f"[alerts] pending_threshold: unknown channel(s) {', '.join(wrong)}"
                    )
                pending = {c: int(threshold.get(c, 500)) for c in CHANNELS}
            else:
                pending = dict.fromkeys(CHANNELS, int(threshold))
            config = cls(
                recipients=recipients,
                pending_threshold=pending,
                **{
                    key: int(value) if key in _INTEGERS else str(value)
                    for key, value in raw.items()
                },
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"[alerts]: {exc}") from None
        if min(config.partner_failing_minutes, config.repeat_minutes) < 1:
            raise ConfigurationError("[alerts]: partner_failing_minutes, repeat_minutes ≥ 1")
        if min(config.quarantine_threshold, config.quarantine_window_hours, *pending.values()) < 0:
            raise ConfigurationError("[alerts]: thresholds and window ≥ 0")
        if bool(config.connection_id) != bool(config.sender):
            raise ConfigurationError("[alerts]: connection_id and sender go together")
        if config.sender and not _MAIL.match(config.sender):
            raise ConfigurationError("[alerts] sender: not an address")
        if config.recipients and not config.connection_id and not settings.mailboxes:
            raise ConfigurationError(
                "[alerts]: no [[mailbox]] to send the alerts from: give connection_id and sender"
            )
        if config.mailbox and not any(m.name == config.mailbox for m in settings.mailboxes):
            raise ConfigurationError(f"[alerts] mailbox {config.mailbox!r} is not a [[mailbox]]")
        return config

    def sender_mailbox(self, settings: Settings) -> Mailbox:
        """The mailbox the alerts are sent from (see the module docstring)."""
        if self.connection_id:
            return Mailbox("alerts", self.sender, self.connection_id, finess_geo="")
        for mailbox in settings.mailboxes:
            if mailbox.name == self.mailbox:
                return mailbox
        return sending_mailbox(settings, MssConfig.from_settings(settings), None)


_INTEGERS = {
    "partner_failing_minutes",
    "quarantine_threshold",
    "quarantine_window_hours",
    "repeat_minutes",
}


@dataclass(frozen=True)
class Alert:
    """One condition to tell the operations team: its key, its French title and text lines, and
    what the trail keeps of it (codes, counts, ids)."""

    condition: str
    title: str
    lines: tuple[str, ...]
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return f"[PFI] Alerte : {self.title}"


# --- the checks -----------------------------------------------------------------------------------


def check_conditions(
    ledger: Ledger,
    config: AlertsConfig,
    *,
    now: datetime,
    given_up_since: datetime | None = None,
) -> list[Alert]:
    """Every condition true now (mailed or not: :func:`run_checks` decides)."""
    alerts: list[Alert] = []
    since = given_up_since or now - FIRST_WINDOW
    given_up = ledger.given_up_since(since, reason_code=GIVEN_UP)
    if given_up.total:
        alerts.append(
            Alert(
                GIVEN_UP_CONDITION,
                f"{given_up.total} envoi(s) abandonné(s)",
                (
                    f"{given_up.total} envoi(s) abandonné(s) depuis le {_paris(since)} : toutes "
                    "leurs tentatives ont échoué pendant la durée de relance configurée.",
                    *_counts("Par canal", given_up.by_channel, CHANNEL_LABELS),
                    *_counts("Dernière erreur (code)", given_up.by_reason),
                    _ids("Envois (identifiants du registre)", given_up.ids, given_up.total),
                    "À faire : vérifier le partenaire, puis rejouer ces envois depuis la "
                    "console PFI (Envois, statut « échec »).",
                ),
                {
                    "since": since,
                    "until": now,
                    "count": given_up.total,
                    "channels": given_up.by_channel,
                    "codes": given_up.by_reason,
                    "delivery_ids": list(given_up.ids),
                },
            )
        )
    limit = timedelta(minutes=config.partner_failing_minutes)
    for partner, (label, channels) in PARTNERS.items():
        failure = ledger.channel_failure(channels, answers_after=now - LOOKBACK)
        if failure.failing_since is None or now - failure.failing_since < limit:
            continue
        minutes = int((now - failure.failing_since).total_seconds() // 60)
        last = _paris(failure.last_answer) if failure.last_answer else "aucune sur 7 jours"
        alerts.append(
            Alert(
                f"partner_failing:{partner}",
                f"{label} ne répond plus depuis {minutes} min",
                (
                    f"{label[0].upper()}{label[1:]} est en échec depuis le "
                    f"{_paris(failure.failing_since)} ({minutes} min, seuil "
                    f"{config.partner_failing_minutes} min) : aucun envoi n'a abouti, "
                    "les tentatives échouent sur des erreurs temporaires.",
                    f"Dernière réponse du partenaire : {last}.",
                    f"Canaux : {', '.join(CHANNEL_LABELS[c] for c in channels)}.",
                    f"{failure.retrying} envoi(s) en attente de nouvelle tentative.",
                    *_counts("Erreurs (code)", failure.by_reason),
                    _ids("Envois (identifiants du registre)", failure.ids, failure.retrying),
                    "Les envois repartent seuls dès que le partenaire répond ; au-delà de la "
                    "durée de relance, ils sont abandonnés (alerte distincte).",
                ),
                {
                    "partner": partner,
                    "failing_since": failure.failing_since,
                    "minutes": minutes,
                    "retrying": failure.retrying,
                    "codes": failure.by_reason,
                    "delivery_ids": list(failure.ids),
                },
            )
        )
    window = now - timedelta(hours=config.quarantine_window_hours)
    refused = ledger.refused_items_since(window)
    if refused.total > config.quarantine_threshold:
        alerts.append(
            Alert(
                QUARANTINE_CONDITION,
                f"{refused.total} éléments reçus refusés en {config.quarantine_window_hours} h",
                (
                    f"{refused.total} éléments reçus (messages HL7, courriels) ont été refusés "
                    f"depuis le {_paris(window)} (seuil {config.quarantine_threshold}) : "
                    "ils sont en quarantaine ou dans le dossier d'erreurs de la BAL.",
                    *_counts("Par source", refused.by_source),
                    *_counts("Motif (code)", refused.by_reason),
                    _ids("Éléments reçus (identifiants du registre)", refused.ids, refused.total),
                    "À faire : consulter les motifs dans la console PFI (Réceptions, statut "
                    "« refusé »), corriger avec le producteur.",
                ),
                {
                    "since": window,
                    "count": refused.total,
                    "threshold": config.quarantine_threshold,
                    "sources": refused.by_source,
                    "codes": refused.by_reason,
                    "item_ids": list(refused.ids),
                },
            )
        )
    for channel, count in sorted(ledger.pending_per_channel().items()):
        threshold = config.pending_threshold.get(channel, 500)
        if count <= threshold:
            continue
        alerts.append(
            Alert(
                f"pending:{channel}",
                f"{count} envois en attente ({CHANNEL_LABELS.get(channel, channel)})",
                (
                    f"{count} envois {CHANNEL_LABELS.get(channel, channel)} attendent dans la "
                    f"file (seuil {threshold}) : premiers envois non encore faits ou nouvelles "
                    "tentatives après une erreur temporaire.",
                    "À faire : vérifier que le DAG d'envoi tourne et que le partenaire répond.",
                ),
                {"channel": channel, "count": count, "threshold": threshold},
            )
        )
    return alerts


def task_failure_alert(
    *,
    dag_id: str,
    task_id: str,
    run_id: str,
    map_index: int = -1,
    try_number: int | None = None,
    error: BaseException | None = None,
    console_url: str = "",
) -> Alert:
    """The alert of a PFI task that failed after its retries: its DAG, task, run, and the
    error's type and code (:class:`~pfi.base.errors.PfiError`), never its message — an
    exception's text may quote what it choked on."""
    error_type = type(error).__name__ if error is not None else None
    error_code = getattr(error, "code", None) if isinstance(error, PfiError) else None
    mapped = f"/mapped/{map_index}" if map_index is not None and map_index >= 0 else ""
    link = f"{console_url.rstrip('/')}/dags/{dag_id}/runs/{run_id}/tasks/{task_id}{mapped}"
    error_line = f"Erreur : {error_type or 'inconnue'}" + (
        f", code {error_code}" if error_code else ""
    )
    return Alert(
        f"task_failed:{dag_id}.{task_id}",
        f"la tâche {dag_id}.{task_id} a échoué",
        (
            f"La tâche {task_id} du DAG {dag_id} a échoué après ses nouvelles tentatives.",
            f"Exécution : {run_id}"
            + (f", instance {map_index}" if map_index is not None and map_index >= 0 else "")
            + (f", tentative {try_number}" if try_number else "")
            + ".",
            error_line + " (le détail est dans le journal de la tâche).",
            f"Journal de la tâche : {link}",
            "Les envois et réceptions concernés restent dans le registre : la prochaine "
            "exécution les reprend.",
        ),
        {
            "dag_id": dag_id,
            "task_id": task_id,
            "run_id": run_id,
            "map_index": map_index,
            "try_number": try_number,
            "error_type": error_type,
            "error_code": error_code,
        },
    )


# --- remembering and sending ----------------------------------------------------------------------


def last_alerts(ledger: Ledger, *, now: datetime) -> dict[str, Mapping[str, Any]]:
    """The newest ``alert.sent`` detail of each condition within :data:`LOOKBACK`."""
    last: dict[str, Mapping[str, Any]] = {}
    for line in ledger.events_since(EVENT_SENT, now - LOOKBACK):
        last.setdefault(str(line.detail.get("condition")), line.detail)
    return last


def _sent_at(detail: Mapping[str, Any] | None) -> datetime | None:
    try:
        return datetime.fromisoformat(str(detail["at"])) if detail else None
    except (KeyError, ValueError):
        return None


def is_due(
    alert: Alert, last: Mapping[str, Mapping[str, Any]], config: AlertsConfig, now: datetime
) -> bool:
    """Whether ``alert`` is mailed now: never mailed, or mailed ``repeat_minutes`` ago or more."""
    at = _sent_at(last.get(alert.condition))
    return at is None or now - at >= config.repeat


def run_checks(
    ledger: Ledger,
    settings: Settings,
    smtp_for: SmtpFactory,
    *,
    actor: str,
    config: AlertsConfig | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Check every condition, mail those due to ``[alerts] recipients``, remember them; counts
    (XCom-safe) and the conditions true now (keys only)."""
    config = config or AlertsConfig.from_settings(settings)
    now = now or datetime.now(UTC)
    last = last_alerts(ledger, now=now)
    given_up_until = (last.get(GIVEN_UP_CONDITION) or {}).get("until")
    since = datetime.fromisoformat(given_up_until) if given_up_until else None
    alerts = check_conditions(ledger, config, now=now, given_up_since=since)
    due = [alert for alert in alerts if is_due(alert, last, config, now)]
    counts: dict[str, Any] = {
        "conditions": sorted(a.condition for a in alerts),
        "due": len(due),
        "mailed": 0,
    }
    if due and not config.recipients:
        log.warning(
            "%s alert(s) due (%s) but [alerts] recipients is empty: nothing mailed",
            len(due),
            ", ".join(a.condition for a in due),
        )
        return counts
    if due:
        counts["mailed"] = send_alerts(
            ledger, settings, due, smtp_for, actor=actor, config=config, now=now
        )
    return counts


def send_alerts(
    ledger: Ledger | None,
    settings: Settings,
    alerts: list[Alert],
    smtp_for: SmtpFactory,
    *,
    actor: str,
    config: AlertsConfig,
    now: datetime | None = None,
) -> int:
    """Mail each alert to every recipient on one SMTP session and write its ``alert.sent`` line
    (when ``ledger`` is given); how many alerts went. A failure to mail one alert is raised
    after the others were tried (its line is not written: it is mailed again next time)."""
    now = now or datetime.now(UTC)
    mailbox = config.sender_mailbox(settings)
    failures: list[PfiError] = []
    sent = 0
    with smtp_for(mailbox) as smtp:
        for alert in alerts:
            try:
                for recipient in config.recipients:
                    smtp.send(
                        alert_mail(
                            alert,
                            sender=mailbox.address,
                            recipient=recipient,
                            site=settings.site.name,
                            console=config.console,
                            repeat_minutes=config.repeat_minutes,
                            now=now,
                        )
                    )
            except PfiError as exc:
                log.error(
                    "alert %s not mailed: %s %s", alert.condition, type(exc).__name__, exc.code
                )
                failures.append(exc)
                continue
            sent += 1
            log.info("alert %s mailed to %s recipient(s)", alert.condition, len(config.recipients))
            if ledger is not None:
                ledger.add_event(
                    EVENT_SENT,
                    actor=actor,
                    detail={
                        "condition": alert.condition,
                        "at": now,
                        "recipients": len(config.recipients),
                        **alert.detail,
                    },
                )
    if failures:
        raise failures[0]
    return sent


def notify_once(
    ledger: Ledger | None,
    settings: Settings,
    alert: Alert,
    smtp_for: SmtpFactory,
    *,
    actor: str,
    config: AlertsConfig | None = None,
    now: datetime | None = None,
) -> bool:
    """Mail one alert unless the same condition was mailed within ``repeat_minutes`` (no ledger:
    mailed, not remembered); whether it was mailed."""
    config = config or AlertsConfig.from_settings(settings)
    now = now or datetime.now(UTC)
    if not config.recipients:
        log.warning("alert %s: [alerts] recipients is empty, nothing mailed", alert.condition)
        return False
    if ledger is not None and not is_due(alert, last_alerts(ledger, now=now), config, now):
        log.info("alert %s already mailed within %s min", alert.condition, config.repeat_minutes)
        return False
    return (
        send_alerts(ledger, settings, [alert], smtp_for, actor=actor, config=config, now=now) == 1
    )


# --- the mail -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertMail:
    """An alert ready for :meth:`pfi.protocols.mssante.smtp.SmtpClient.send` (one recipient)."""

    message: EmailMessage = field(repr=False)
    message_id: str
    sender: str
    recipient: str
    dsn: bool = False

    @property
    def envelope_id(self) -> str:
        return self.message_id.strip("<>")

    def as_bytes(self) -> bytes:
        return self.message.as_bytes(policy=SMTP_POLICY)


def alert_mail(
    alert: Alert,
    *,
    sender: str,
    recipient: str,
    site: str,
    console: str,
    repeat_minutes: int,
    now: datetime,
) -> AlertMail:
    """The French mail of ``alert`` (plain text, ``Auto-Submitted: auto-generated``)."""
    domain = sender.rsplit("@", 1)[-1]
    message_id = f"<pfi-alert.{uuid.uuid4().hex}@{domain}>"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = alert.subject
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message["X-PFI-Alert"] = alert.condition
    body = [
        f"Plateforme d'intermédiation (PFI) — {site}",
        f"Alerte du {_paris(now)} (heure de Paris)",
        "",
        *alert.lines,
        "",
        f"Console PFI : {console}",
        "",
        "Cette alerte ne contient aucune donnée patient. Tant que la situation dure, elle est "
        f"renvoyée au plus toutes les {repeat_minutes} min.",
    ]
    message.set_content("\n".join(body) + "\n", charset="utf-8")
    return AlertMail(message, message_id, sender, recipient)


def _paris(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")


def _counts(
    title: str, counts: Mapping[str, int], labels: Mapping[str, str] | None = None
) -> list[str]:
    if not counts:
        return []
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [f"{title} :", *(f"  - {(labels or {}).get(k, k)} : {n}" for k, n in rows)]


def _ids(title: str, ids: tuple[int, ...], total: int) -> str:
    more = f" (et {total - len(ids)} autres)" if total > len(ids) else ""
    return f"{title} : {', '.join(str(i) for i in ids)}{more}"


__all__ = [
    "EVENT_SENT",
    "PARTNERS",
    "Alert",
    "AlertMail",
    "AlertsConfig",
    "alert_mail",
    "check_conditions",
    "is_due",
    "last_alerts",
    "notify_once",
    "run_checks",
    "send_alerts",
    "task_failure_alert",
]
