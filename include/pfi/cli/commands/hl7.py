"""``pfi hl7 …``: what the PFI understands of an HL7 file, and the MLLP inlet.

::

    pfi hl7 inspect FILE [--show-identity] [--source NAME] [--environment test|production]
    pfi hl7 listen SOURCE [--host H] [--port P]

``inspect`` runs exactly the checks of the intake (:func:`pfi.flows.intake.evaluate`: parsing, INS,
CDA/PID consistency, rule table) on every message of the file and prints JSON: the message,
the decision (ACK code, coded reasons with the volet's error code, warnings), the documents, the
flags and the deliveries the intake would create. Nothing is written. Patient data (INS
matricule, names, birth data, recipient addresses) only with ``--show-identity``. Exit 1 when a
message would be refused. The INS environment and the source's default encoding come from the
settings when they can be read (``--settings``/``$PFI_SETTINGS``), else from the options.

``listen`` runs the MLLP inlet of a source in the foreground (``[[mllp_inlet]]`` settings,
overridden by the options) until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pfi.cli.commands._common import input_file


def register(groups: argparse._SubParsersAction) -> None:
    hl7 = groups.add_parser("hl7", help="HL7 v2 messages and the MLLP inlet").add_subparsers(
        dest="action", required=True
    )
    inspect = hl7.add_parser("inspect", help="what the PFI understands of an HL7 file (JSON)")
    inspect.add_argument("file", type=input_file)
    inspect.add_argument("--show-identity", action="store_true", help="print patient data")
    inspect.add_argument("--source", help="hl7_source of the settings (default encoding)")
    inspect.add_argument(
        "--environment",
        choices=("test", "production"),
        help="INS environment (default: site.ins_environment, else test)",
    )
    inspect.add_argument("--encoding", default=None, help="codec when MSH-18 is empty")
    inspect.set_defaults(func=cmd_inspect)

    listen = hl7.add_parser("listen", help="run the MLLP inlet of a source")
    listen.add_argument("source")
    listen.add_argument("--host", help="address to bind (default: settings, else 127.0.0.1)")
    listen.add_argument("--port", type=int, help="TCP port (default: settings, else 2575)")
    listen.set_defaults(func=cmd_listen)


def _settings(args: argparse.Namespace):
    from pfi.base.errors import ConfigurationError
    from pfi.cli.commands._common import settings_of

    try:
        return settings_of(args, required=True)
    except ConfigurationError:
        if getattr(args, "source", None):
            raise
        return None


def _source(args: argparse.Namespace, settings):
    from pfi.base.settings import Hl7Source

    if settings is not None and args.source:
        return settings.source(args.source)
    here = Path(".")
    return Hl7Source(
        name=args.source or "inspect",
        kind="OTHER",
        finess_geo="",
        drop_dir=here,
        outbound_dir=here,
        archive_dir=here,
        quarantine_dir=here,
        work_dir=here,
        default_encoding=args.encoding or "iso-8859-1",
    )


def describe(evaluation, *, show_identity: bool) -> dict[str, Any]:
    """The JSON view of one :class:`pfi.flows.intake.Evaluation` (patient data only when asked)."""
    from pfi.flows.intake import volet_code

    answer, request, header = evaluation.answer, evaluation.request, evaluation.header
    reasons, warnings = [], []
    for error in answer.errors:
        entry = {
            "code": error.alternate_code or error.diagnostic.split(":")[0] or error.condition[0],
            "condition": f"{error.condition[0]} {error.condition[1]}",
            "location": error.location,
        }
        if error.application_code:
            entry["volet_code"] = error.application_code
        if error.diagnostic or error.alternate_text:
            entry["text"] = error.diagnostic or error.alternate_text
        (warnings if error.severity == "W" else reasons).append(entry)
    out: dict[str, Any] = {
        "index": evaluation.index,
        "size": len(evaluation.chunk),
        "control_id": header.control_id,
        "message_type": header.message_type,
        "sending_application": header.sending_application,
        "sending_facility": header.sending_facility,
        "charset": header.charset,
        "ack": answer.code,
        "accepted": answer.accepted,
        "reason": (
            {
                "code": answer.reason_code,
                "text": answer.reason_text,
                "volet_code": volet_code(answer.reason_code)[0],
            }
            if answer.reason_code
            else None
        ),
        "errors": reasons,
        "warnings": warnings,
    }
    if request is None:
        return out
    patient = request.patient
    out["profile"] = asdict(request.profile) if request.profile else None
    out["action"] = request.action.value
    out["flags"] = {k: v for k, v in asdict(request.flags).items()}
    out["patient"] = {
        "has_ins": patient.ins is not None,
        "ins_oid": patient.ins_oid,
        "ins_qualified": evaluation.ins_qualified,
        "identity_reliability": list(patient.identity_reliability),
    }
    if show_identity:
        out["patient"].update(
            ins=patient.ins,
            ipp=patient.ipp,
            birth_name=patient.birth_name,
            first_given_name=patient.first_given_name,
            given_names=list(patient.given_names),
            birth_date=patient.birth_date,
            sex=patient.sex,
            birthplace_code=patient.birthplace_code,
        )
    out["documents"] = [
        {
            "obx": d.set_id,
            "format": d.format,
            "type_code": d.type_code.code,
            "media": f"{d.media_type}/{d.media_subtype}".strip("/"),
            "size": d.size,
        }
        for d in request.documents
    ]
    out["ledger_documents"] = [
        {
            "unique_id": p.unique_id,
            "set_id": p.set_id,
            "version": p.version,
            "type_code": p.type_code,
            "replaces": p.replaces_unique_id,
        }
        for p in evaluation.documents
    ]
    out["deliveries"] = [
        {
            "channel": channel,
            "recipient": recipient if (show_identity or recipient is None) else "(hidden)",
            "action": request.action.value,
        }
        for channel, recipient in evaluation.channels
    ]
    out["defects"] = [
        {"code": d.code, "blocking": d.blocking, "location": d.location, "text": d.message}
        for d in request.defects
    ]
    return out


def cmd_inspect(args: argparse.Namespace) -> int:
    from pfi.flows.intake import Evaluation, IntakeOptions, evaluate, refusal
    from pfi.protocols.hl7v2 import split_file
    from pfi.protocols.hl7v2.ack import MessageHeader
    from pfi.protocols.ins import InsPolicy, RuleFailure

    settings = _settings(args)
    source = _source(args, settings)
    environment = args.environment or (settings.site.ins_environment if settings else "test")
    policy = InsPolicy.for_environment(environment)
    options = IntakeOptions.from_settings(settings) if settings else IntakeOptions()
    structure_oid = settings.site.structure_oid if settings else "1.2.250.1.71.4.2.2"
    raw = args.file.read_bytes()
    chunks = split_file(raw)
    if not chunks:
        empty = refusal([RuleFailure("INTAKE_EMPTY_FILE", "the file holds no HL7 segment")])
        evaluations = [Evaluation(0, b"", MessageHeader(), empty)]
    else:
        evaluations = [
            evaluate(
                index,
                chunk,
                source=source,
                policy=policy,
                options=options,
                structure_oid=structure_oid,
            )
            for index, chunk in enumerate(chunks, 1)
        ]
    report = {
        "file": str(args.file),
        "messages": [describe(e, show_identity=args.show_identity) for e in evaluations],
        "ins_environment": environment,
    }
    print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    return 0 if all(e.answer.accepted for e in evaluations) else 1


def cmd_listen(args: argparse.Namespace) -> int:
    from pfi.cli.commands._common import settings_of
    from pfi.flows.inlet import MllpInlet

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = settings_of(args, required=True)
    inlet = MllpInlet.for_source(settings, args.source, host=args.host, port=args.port)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    host, port = inlet.address
    print(json.dumps({"source": args.source, "host": host, "port": port}), flush=True)
    try:
        inlet.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        inlet.close()
    print("MLLP inlet stopped", file=sys.stderr)
    return 0
