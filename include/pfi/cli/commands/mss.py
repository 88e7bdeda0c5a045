"""``pfi mss …``: MSSanté mails without Airflow.

::

    pfi mss compose HL7FILE --dry-run [-o DIR] [--message N] [--from ADDRESS]
    pfi mss send [--channel mss_professional|mss_patient] [--limit N] [--url URL]
    pfi mss poll [--url URL]
    pfi mss check [--mailbox NAME]
    pfi mss traces [--since DATE] [--until DATE] [--channel C] [--document UID]
                   [--recipient ADDRESS] [--url URL]
    pfi mss inspect FILE.eml [--mailbox NAME] [--show-identity]
    pfi mss inbox MAILBOX [--status S] [--given-up] [--limit N] [--url URL]
    pfi mss release MAILBOX [--mail ITEM] [--url URL]

``compose --dry-run`` applies the rule table to a producer's HL7 message and writes each mail it
would send as an ``.eml`` file (``<n>_<channel>_<request id>.eml``), nothing sent, nothing
recorded. ``send`` and ``poll`` do what the ``deliver_mssante`` DAG does, with the ledger URL and
the mailbox Connections taken from ``AIRFLOW_CONN_<ID>`` (URI or JSON form) like Airflow.
``traces`` prints the MSSanté traces (SC.MSS/CONF.17-18) as ``;``-separated CSV. ``check``
opens an SMTP and an IMAP session of each mailbox with its certificate (nothing sent) and prints
the error code of what fails (exit 1). ``inspect`` says what the PFI would do with a received
mail (its documents and the MDM event, or its refusal with the code), and prints the MDM it would
send the DPI with ``--show-identity`` (it names the patient); nothing sent, nothing recorded.
``inbox`` lists what the ledger knows of a mailbox's received mails (JSON lines: status, reason,
UIDVALIDITY/UID, where the mail stands — ``pending``, ``given_up``, ``sent``, ``refused`` — and
each ``dpi`` delivery's outcome); ``--given-up`` keeps the mails whose sending to the DPI was given
up after ``[receiving.retry]`` (the DPI unreachable all along: no error mail, the mail left in the
INBOX). ``release`` makes those due again at once, with a fresh retry period (all the mailbox's,
or one mail's with ``--mail``); the operator is the trail's actor.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from pfi.cli.commands._common import (
    input_file,
    open_ledger,
    read_request,
    settings_of,
)


def register(groups: argparse._SubParsersAction) -> None:
    mss = groups.add_parser("mss", help="MSSanté mails").add_subparsers(
        dest="action", required=True
    )
    compose = mss.add_parser("compose", help="write the mails a message asks for as .eml")
    compose.add_argument("hl7", type=input_file, help="an HL7 v2 MDM/ORU file of a producer")
    compose.add_argument("--dry-run", action="store_true", help="write .eml files, send nothing")
    compose.add_argument("-o", "--output", type=Path, default=Path("."), help="folder of the .eml")
    compose.add_argument("--message", type=int, default=1, help="message of a batch file (1-based)")
    compose.add_argument("--from", dest="sender", help="sending mailbox (default: the settings')")
    compose.add_argument("--ins-environment", choices=("test", "production"))
    compose.set_defaults(func=cmd_compose)

    for name, func, text in (
        ("send", cmd_send, "send the due MSSanté deliveries"),
        ("poll", cmd_poll, "read DSN/MDN back from the mailboxes"),
    ):
        sub = mss.add_parser(name, help=text)
        sub.add_argument("--url", help="ledger database URL (default: AIRFLOW_CONN_PFI_LEDGER)")
        if name == "send":
            sub.add_argument("--channel", choices=("mss_professional", "mss_patient"))
            sub.add_argument("--limit", type=int, default=200)
        sub.set_defaults(func=func)

    check = mss.add_parser("check", help="open the mailboxes' SMTP and IMAP sessions")
    check.add_argument("--mailbox", help="a [[mailbox]] name (default: all)")
    check.set_defaults(func=cmd_check)

    traces = mss.add_parser("traces", help="who was mailed what, when, and how it went (CSV)")
    traces.add_argument("--since", type=_date, help="ISO date or date-time (UTC if naive)")
    traces.add_argument("--until", type=_date, help="ISO date or date-time, excluded")
    traces.add_argument("--channel", choices=("mss_professional", "mss_patient"))
    traces.add_argument("--document", help="document unique id (root^extension)")
    traces.add_argument("--recipient", help="a professional's MSSanté address")
    traces.add_argument("--limit", type=int, default=10000)
    traces.add_argument("--url", help="ledger database URL (default: AIRFLOW_CONN_PFI_LEDGER)")
    traces.set_defaults(func=cmd_traces)

    inspect = mss.add_parser("inspect", help="what the PFI would do with a received mail")
    inspect.add_argument(
        "eml", type=input_file, help="a received mail (.eml, as the mailbox holds it)"
    )
    inspect.add_argument("--mailbox", help="the [[mailbox]] it came to (default: the first)")
    inspect.add_argument(
        "--show-identity", action="store_true", help="also print the MDM (it names the patient)"
    )
    inspect.set_defaults(func=cmd_inspect)

    inbox = mss.add_parser("inbox", help="the received mails the ledger knows of a mailbox")
    inbox.add_argument("mailbox", help="a [[mailbox]] name")
    inbox.add_argument("--status", choices=("received", "done", "rejected", "failed"))
    inbox.add_argument(
        "--given-up", action="store_true", help="only the mails the DPI queue gave up"
    )
    inbox.add_argument("--limit", type=int, default=100)
    inbox.add_argument("--url", help="ledger database URL (default: AIRFLOW_CONN_PFI_LEDGER)")
    inbox.set_defaults(func=cmd_inbox)

    release = mss.add_parser("release", help="send again the mails the DPI queue gave up")
    release.add_argument("mailbox", help="a [[mailbox]] name")
    release.add_argument("--mail", type=int, help="one mail (its ledger item, see inbox)")
    release.add_argument("--url", help="ledger database URL (default: AIRFLOW_CONN_PFI_LEDGER)")
    release.set_defaults(func=cmd_release)


def _date(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_date.__name__ = "ISO date"  # argparse: "invalid ISO date value: 'yesterday'"


def cmd_compose(args: argparse.Namespace) -> int:
    from pfi.base.errors import ConfigurationError
    from pfi.flows.mssante import sending_mailbox
    from pfi.protocols.hl7v2 import decide_request
    from pfi.protocols.ins import InsPolicy
    from pfi.protocols.mssante import PATIENT, Mailbox, MssConfig, SiteInfo, compose, mail_orders

    if not args.dry_run:
        raise ConfigurationError(
            "compose only writes files (--dry-run); mails are sent from the ledger: pfi mss send"
        )
    settings = settings_of(args, required=False)
    config = MssConfig.from_settings(settings) if settings else MssConfig()
    request = read_request(args.hl7, args.message)
    if isinstance(request, int):
        return request
    environment = args.ins_environment or (settings.site.ins_environment if settings else "test")
    policy = InsPolicy.for_environment(environment)
    if args.sender:
        mailbox = Mailbox(args.sender, config.sender_name)
        site = SiteInfo(name=config.sender_name)
    elif settings is not None:
        geo = request.sender.organization_id if request.sender else None
        setting = sending_mailbox(settings, config, (geo or "")[-9:] or None)
        mailbox = Mailbox(setting.address, config.sender_name, setting.finess_geo)
        site = SiteInfo(
            settings.site.name, settings.site.structure_oid, settings.site.software_name
        )
    else:
        raise ConfigurationError("no sending mailbox: pass --from or --settings")
    orders = mail_orders(request, decide_request(request, policy), policy)
    args.output.mkdir(parents=True, exist_ok=True)
    for index, order in enumerate(orders, start=1):
        mail = compose(request, order, mailbox, config, site=site)
        path = args.output / f"{index}_{order.channel}_{order.request_id}.eml"
        path.write_bytes(mail.as_bytes())
        to = "patient" if order.channel == PATIENT else order.recipient
        print(f"{path}\t{order.channel}\t{to}\t{', '.join(mail.attachments)}")
    if not orders:
        print("the request asks for no MSSanté mail")
    return 0


def _endpoints(mailbox):
    """The mailbox's endpoints from its Connection (``AIRFLOW_CONN_<ID>``), as the hook maps it."""
    from pfi.base.connections import from_environment
    from pfi.protocols.mssante.connection import endpoints

    return endpoints(from_environment(mailbox.connection_id), mailbox.address)


def cmd_send(args: argparse.Namespace) -> int:
    from pfi.flows.mssante import deliver_due
    from pfi.protocols.mssante.smtp import SmtpClient

    settings = settings_of(args, required=True)
    channels = [args.channel] if args.channel else ["mss_professional", "mss_patient"]
    with open_ledger(args) as ledger:
        for channel in channels:
            counts = deliver_due(
                ledger,
                settings,
                lambda mailbox: SmtpClient(_endpoints(mailbox)[0]),
                channel=channel,
                actor="cli",
                limit=args.limit,
            )
            print(json.dumps(counts))
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    from pfi.flows.mssante import poll_notifications
    from pfi.protocols.mssante.imap import ImapClient

    settings = settings_of(args, required=True)
    with open_ledger(args) as ledger:
        counts = poll_notifications(
            ledger, settings, lambda mailbox: ImapClient(_endpoints(mailbox)[1]), actor="cli"
        )
    print(json.dumps(counts))
    return 0 if not counts["errors"] else 1


def cmd_traces(args: argparse.Namespace) -> int:
    from pfi.flows.traces import mss_traces, traces_csv

    with open_ledger(args) as ledger:
        traces = mss_traces(
            ledger,
            since=args.since,
            until=args.until,
            channel=args.channel,
            document_unique_id=args.document,
            recipient=args.recipient,
            limit=args.limit,
        )
    sys.stdout.write(traces_csv(traces))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from pfi.base.errors import ConfigurationError, PfiError
    from pfi.protocols.mssante.imap import ImapClient
    from pfi.protocols.mssante.smtp import SmtpClient

    settings = settings_of(args, required=True)
    names = [m.name for m in settings.mailboxes]
    if args.mailbox and args.mailbox not in names:
        raise ConfigurationError(
            f"unknown mailbox {args.mailbox!r}; [[mailbox]] names: {', '.join(names) or 'none'}"
        )
    failures = 0
    for mailbox in settings.mailboxes:
        if args.mailbox and mailbox.name != args.mailbox:
            continue
        for protocol, client_class, index in (("smtp", SmtpClient, 0), ("imap", ImapClient, 1)):
            try:
                with client_class(_endpoints(mailbox)[index]) as client:
                    client.connect()
            except PfiError as exc:
                failures += 1
                print(f"{mailbox.name}\t{protocol}\t{exc.code}\t{exc.reason}")
            else:
                print(f"{mailbox.name}\t{protocol}\tOK")
    return 1 if failures else 0


def _mailbox_setting(settings, name: str | None):
    from pfi.base.errors import ConfigurationError

    for mailbox in settings.mailboxes:
        if name is None or mailbox.name == name:
            return mailbox
    names = ", ".join(m.name for m in settings.mailboxes) or "none"
    raise ConfigurationError(f"no [[mailbox]] {name!r} in the settings (known: {names})")


def cmd_inspect(args: argparse.Namespace) -> int:
    from pfi.base.errors import InvalidInput
    from pfi.flows.mssante_inbox import ReceivingConfig, documents_of, mdm_for
    from pfi.protocols.hl7v2.lps import Action
    from pfi.protocols.mssante.inbound import read_mail

    settings = settings_of(args, required=True)
    mailbox = _mailbox_setting(settings, args.mailbox)
    raw = args.eml.read_bytes()
    try:
        mail = read_mail(raw)
        documents, action = documents_of(mail)
    except InvalidInput as exc:
        print(
            json.dumps(
                {"decision": "refused", "code": exc.code, "reason": str(exc)}, ensure_ascii=False
            )
        )
        print(
            "the mail would get the volet's error mail and go to the errors folder", file=sys.stderr
        )
        return 1
    report = {
        "decision": "to the DPI",
        "message_id": mail.message_id,
        "mdn_requested": mail.mdn_requested,
        "action": action,
        "documents": [
            {"unique_id": d["unique_id"], "type_code": d["type_code"], "version": d["version"]}
            for d in documents
        ],
    }
    print(json.dumps(report, ensure_ascii=False))
    if args.show_identity:
        now = datetime.now(UTC)
        config = ReceivingConfig.from_settings(settings)
        for number, document in enumerate(documents, 1):
            message = mdm_for(
                mail,
                settings,
                config,
                mailbox,
                unique_id=document["unique_id"],
                action=Action(action),
                control_id=f"PFIINSPECT{number}",
                received_at=now,
                now=now,
            )
            sys.stdout.write(message.decode("utf-8").replace("\r", "\n"))
    return 0


def cmd_inbox(args: argparse.Namespace) -> int:
    settings = settings_of(args, required=True)
    mailbox = _mailbox_setting(settings, args.mailbox)
    with open_ledger(args) as ledger:
        items = ledger.find_inbound(
            source=mailbox.name, kind="mail", status=args.status, limit=args.limit
        )
        asked = ledger.deliveries_asked_by_each([item.id for item in items])
        shown = 0
        for item in items:
            deliveries = asked.get(item.id, [])
            stands = _stands(item, deliveries)
            if args.given_up and stands != "given_up":
                continue
            shown += 1
            line = {
                "item": item.id,
                "received_at": item.received_at.isoformat() if item.received_at else None,
                "status": item.status,
                "stands": stands,
                "reason_code": item.reason_code,
                "uidvalidity_uid": item.original_ref,
                "message_id": item.control_id,
                "to_dpi": [
                    {
                        "delivery": d.id,
                        "status": d.status,
                        "attempts": d.attempts,
                        "reason_code": d.reason_code,
                    }
                    for d in deliveries
                ],
            }
            print(json.dumps(line, ensure_ascii=False))
    if not shown:
        print(f"no received mail of {mailbox.name} in the ledger", file=sys.stderr)
    return 0


def _stands(item, deliveries) -> str:
    """Where a received mail stands, from its deliveries to the DPI."""
    from pfi.flows.operations import GIVEN_UP

    if item.status == "rejected":
        return "refused"
    statuses = {d.status for d in deliveries}
    if any(d.status == "failed" and d.reason_code == GIVEN_UP for d in deliveries):
        return "given_up"
    if not statuses or statuses & {"pending", "held"}:
        return "pending"
    return "sent" if statuses == {"sent"} else "refused"


def _operator() -> str:
    """The trail's actor of an operator's order: ``cli:<login>``."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (a container without passwd entry)
        return "cli"


def cmd_release(args: argparse.Namespace) -> int:
    from pfi.flows.operations import retry_given_up

    settings = settings_of(args, required=True)
    mailbox = _mailbox_setting(settings, args.mailbox)
    with open_ledger(args) as ledger:
        given_up = ledger.find_deliveries(
            "dpi", status="failed", recipient_prefix=f"{mailbox.name}#", limit=100_000
        )
        if args.mail is not None:
            given_up = [d for d in given_up if d.inbound_item_id == args.mail]
        released = retry_given_up(ledger, given_up, actor=_operator())
    for delivery in released:
        print(json.dumps({"delivery": delivery.id, "item": delivery.inbound_item_id}))
    print(f"{len(released)} delivery(ies) to the DPI due again", file=sys.stderr)
    return 0
