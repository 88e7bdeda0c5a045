"""``pfi dmp …``: the DMP feed without Airflow.

::

    pfi dmp submit HL7FILE --dry-run [--message N] [--action new|replace|delete]
                   [--show-identity] [--signing-cert PEM --signing-key PEM]
    pfi dmp status DOCUMENT_ID [--url URL]
    pfi dmp run [--limit N] [--url URL]
    pfi dmp hold|release DOCUMENT_ID [--url URL]
    pfi dmp backfill --dry-run --source hl7|cda|ledger [--folder DIR] --finess FINESS
                     --from DATE [--to DATE] [--type CODE]... [--reference DATE]
                     [--show-identity] [--url URL]

``submit --dry-run`` prints the SOAP request the PFI would send for a producer's message (ITI-41
or ITI-57, VIHF, metadata; documents summarised), nothing sent, nothing recorded. Patient data
(INS, IPP, names, birth date, sourcePatientInfo) is masked unless ``--show-identity``; the
signature uses the signing certificate given, else the one of the DMP Connection the settings
name (``[connections] dmp``, default ``pfi_dmp``, given as ``AIRFLOW_CONN_<ID>``), else a
throw-away key (said so); the Connection is read as the ``deliver_dmp`` DAG reads it
(:mod:`pfi.protocols.dmp.connection`: endpoints, TLS files, signer, timeouts). ``status`` prints
what the ledger knows of a document (by unique id ``root^extension`` or ledger id): its DMP
deliveries and their trail. ``run`` does what the ``deliver_dmp`` DAG does, once. ``hold`` parks a document's pending DMP deliveries (never
claimed while held: SC.DMP/ALI/PROG deferred sends) and ``release`` makes them due at once.
``backfill --dry-run`` plans a historical backfill (:mod:`pfi.flows.backfill`, what the
``backfill_dmp_history`` DAG does) and prints what it would send: counts per document type and
per reason a document is skipped, nothing recorded or sent; ``--show-identity`` adds one line
per document with its INS. Without ``--dry-run`` it sends, lot after lot, through the DMP
Connection as ``run`` does. The 5-year limit counts from ``--reference`` (default: today).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid

from pfi.base.connections import Connection, MissingConnection, environment_key, from_environment
from pfi.cli.commands._common import (
    input_file,
    open_ledger,
    read_request,
    settings_of,
)

MASK = "***"


def register(groups: argparse._SubParsersAction) -> None:
    dmp = groups.add_parser("dmp", help="the DMP feed").add_subparsers(dest="action", required=True)
    submit = dmp.add_parser("submit", help="print the DMP request a message would give")
    submit.add_argument("hl7", type=input_file, help="an HL7 v2 MDM/ORU file of a producer")
    submit.add_argument("--dry-run", action="store_true", help="print, send nothing")
    submit.add_argument("--message", type=int, default=1, help="message of a batch file (1-based)")
    submit.add_argument("--action", dest="dmp_action", choices=("new", "replace", "delete"))
    submit.add_argument("--show-identity", action="store_true", help="do not mask patient data")
    submit.add_argument("--signing-cert", type=input_file)
    submit.add_argument("--signing-key", type=input_file)
    submit.set_defaults(func=cmd_submit)

    status = dmp.add_parser("status", help="what the ledger knows of a document's DMP feed")
    status.add_argument("document", help="unique id (root^extension) or ledger document id")
    status.add_argument("--url", help="ledger database URL (default: AIRFLOW_CONN_PFI_LEDGER)")
    status.set_defaults(func=cmd_status)

    run = dmp.add_parser("run", help="send the due DMP deliveries once (what deliver_dmp does)")
    run.add_argument("--limit", type=int, help="at most this many (default: [dmp] batch_size)")
    run.add_argument("--url", help="ledger database URL (default: AIRFLOW_CONN_PFI_LEDGER)")
    run.set_defaults(func=cmd_run)

    backfill = dmp.add_parser(
        "backfill", help="plan (and send) a historical DMP backfill: what backfill_dmp_history does"
    )
    backfill.add_argument("--dry-run", action="store_true", help="count, record and send nothing")
    backfill.add_argument("--source", required=True, choices=("hl7", "cda", "ledger"))
    backfill.add_argument("--folder", help="the folder of HL7 or CDA files (hl7, cda)")
    backfill.add_argument("--finess", required=True, help="the FINESS géographique")
    backfill.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD")
    backfill.add_argument("--to", dest="end", help="last day, YYYY-MM-DD (default: --reference)")
    backfill.add_argument(
        "--type", dest="types", action="append", default=[], help="a LOINC type (repeatable)"
    )
    backfill.add_argument("--max-rate", type=float, default=0.0, help="documents/s (0: no limit)")
    backfill.add_argument("--batch-size", type=int, default=250)
    backfill.add_argument(
        "--include-not-requested",
        action="store_true",
        help="also documents whose producer said DESTDMP=N (a site's choice, never an opposition)",
    )
    backfill.add_argument("--reference", help="the run's day for the 5-year limit (default: today)")
    backfill.add_argument(
        "--show-identity", action="store_true", help="list each document with its INS"
    )
    backfill.add_argument("--url", help="ledger database URL (default: AIRFLOW_CONN_PFI_LEDGER)")
    backfill.set_defaults(func=cmd_backfill)

    for name, text in (
        ("hold", "park a document's pending DMP deliveries"),
        ("release", "make a document's held DMP deliveries due now"),
    ):
        sub = dmp.add_parser(name, help=text)
        sub.add_argument("document", help="unique id (root^extension) or ledger document id")
        sub.add_argument("--url", help="ledger database URL (default: AIRFLOW_CONN_PFI_LEDGER)")
        sub.set_defaults(func=cmd_hold_release, order=name)


def _dmp_connection_id(settings) -> str:
    """The DMP Connection the settings name (``[connections] dmp``), as ``deliver_dmp`` uses."""
    return settings.dmp_connection_id if settings is not None else "pfi_dmp"


def _dmp_connection(settings) -> Connection | None:
    """The DMP Connection from the environment; None when it is not set (a dry run's case)."""
    try:
        return from_environment(_dmp_connection_id(settings))
    except MissingConnection:
        return None


def _signer(args: argparse.Namespace, connection: Connection | None):
    """The signing certificate: options, else the Connection's, else a throw-away one."""
    from pfi.protocols.dmp import Signer
    from pfi.protocols.dmp import connection as dmp_connection

    if args.signing_cert and args.signing_key:
        return Signer.from_files(args.signing_cert, args.signing_key), "given"
    if connection is not None and dmp_connection.has_signer(connection):
        return dmp_connection.signer(connection), environment_key(connection.conn_id)
    return _throwaway_signer(), "a throw-away key (dry run)"


def _throwaway_signer():
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    from pfi.protocols.dmp import Signer

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PFI DRY RUN (NOT A CERTIFICATE)")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Signer(key_pem, (cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),))


def _sensitive(request, submission) -> list[str]:
    """Every patient value the request may quote, longest first (masking order)."""
    patient = request.patient
    values = {
        patient.ins or "",
        patient.ipp or "",
        patient.birth_name,
        patient.first_given_name,
        patient.birth_date,
        patient.birthplace_code,
        patient.account_number,
        *patient.given_names,
        *(i.id for i in patient.identifiers),
    }
    cda_patient = submission.header.patient
    if cda_patient is not None:
        values |= {i.extension or "" for i in (cda_patient.ins, *cda_patient.other_ids) if i}
        values |= {cda_patient.birth_family_name or "", cda_patient.first_given_name or ""}
        if cda_patient.birth_time:
            values.add(cda_patient.birth_time.strftime("%Y%m%d"))
    return sorted((v for v in values if v and len(v) >= 2), key=len, reverse=True)


def masked_envelope(envelope: bytes, sensitive: list[str]) -> str:
    """The envelope, pretty-printed, with patient slots and values replaced by ``***``."""
    from lxml import etree

    from pfi.protocols.dmp import constants as k

    root = etree.fromstring(envelope, etree.XMLParser(resolve_entities=False, no_network=True))
    for slot in root.iter(f"{{{k.NS_RIM}}}Slot"):
        if slot.get("name") in ("sourcePatientId", "sourcePatientInfo"):
            for value in slot.iter(f"{{{k.NS_RIM}}}Value"):
                value.text = MASK
    for ext in root.iter(f"{{{k.NS_RIM}}}ExternalIdentifier"):
        if ext.get("identificationScheme") in (
            k.SS_PATIENT_ID,
            "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427",
        ):
            ext.set("value", MASK)
    for attribute in root.iter(f"{{{k.NS_SAML2}}}Attribute"):
        if attribute.get("Name") == k.ATTR_RESOURCE_ID:
            for value in attribute.iter(f"{{{k.NS_SAML2}}}AttributeValue"):
                value.text = MASK
    text = etree.tostring(root, pretty_print=True, encoding="unicode")
    for value in sensitive:
        text = re.sub(re.escape(value), MASK, text)
    return text


def cmd_submit(args: argparse.Namespace) -> int:
    from pfi.base.errors import ConfigurationError
    from pfi.protocols.dmp import DmpEndpoints, DmpSubmission, build_request
    from pfi.protocols.dmp import connection as dmp_connection
    from pfi.protocols.dmp.config import DmpConfig

    if not args.dry_run:
        raise ConfigurationError(
            "submit only prints (--dry-run); the DMP is fed from the ledger: pfi dmp run"
        )
    request = read_request(args.hl7, args.message)
    if isinstance(request, int):
        return request
    settings = settings_of(args, required=False)
    config = DmpConfig.from_settings(settings) if settings else DmpConfig(source_id="1.2.250.1.999")
    submission = DmpSubmission.from_request(request)
    if args.dmp_action:
        from dataclasses import replace

        submission = replace(submission, action=args.dmp_action)
    connection = _dmp_connection(settings)
    endpoints = (
        dmp_connection.endpoints(connection)
        if connection is not None
        else DmpEndpoints(
            "https://dmp.invalid" + dmp_connection.REPOSITORY_PATH,
            "https://dmp.invalid" + dmp_connection.REGISTRY_PATH,
        )
    )
    signer, origin = _signer(args, connection)
    soap = build_request(
        submission, config=config, signer=signer, endpoints=endpoints, request_id=uuid.uuid4()
    )
    print(f"# {soap.transaction} {soap.action}")
    print(f"# POST {endpoints.url_for(soap)}")
    print(f"# Content-Type: {soap.content_type}")
    print(f"# wsa:MessageID {soap.message_id}; signed with {origin}")
    if args.show_identity:
        print(soap.envelope.decode("utf-8"))
    else:
        print("# patient data masked (--show-identity to show it)")
        print(masked_envelope(soap.envelope, _sensitive(request, submission)))
    if soap.transaction == "ITI-41":
        import hashlib

        print(
            f"# MTOM part: CDA {len(submission.cda)} bytes, SHA-1 {hashlib.sha1(submission.cda).hexdigest()}"
        )
        print("# MTOM part: XAdES signature document")
    return 0


def _find_document(ledger, reference: str):
    """By unique id or ledger id; None (said on stderr) when the ledger has no such document."""
    from pfi.flows.operations import find_document

    document = find_document(ledger, reference)
    if document is None:
        print(f"no document {reference} in the ledger", file=sys.stderr)
    return document


def cmd_hold_release(args: argparse.Namespace) -> int:
    from pfi.flows.operations import order

    with open_ledger(args) as ledger:
        document = _find_document(ledger, args.document)
        if document is None:
            return 1
        changed = order(ledger, document, args.order, channel="dmp", actor="cli")
    print(json.dumps({"document": document.id, args.order: [d.id for d in changed]}))
    return 0 if changed else 1


def cmd_status(args: argparse.Namespace) -> int:
    from pfi.flows.operations import status

    with open_ledger(args) as ledger:
        document = _find_document(ledger, args.document)
        if document is None:
            return 1
        report = status(ledger, document, channels=["dmp"])
    deliveries = [
        {key: value for key, value in d.items() if key != "channel"} for d in report["deliveries"]
    ]
    print(
        json.dumps(
            {"document": report["document"], "dmp_deliveries": deliveries},
            indent=2,
            default=str,
            ensure_ascii=False,
        )
    )
    if not deliveries:  # said on stderr: stdout stays one JSON document
        print(
            "(no DMP delivery: the producer did not ask for the DMP, or it was refused)",
            file=sys.stderr,
        )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from pfi.flows.dmp import submit_due_deliveries
    from pfi.protocols.dmp import connection as dmp_connection
    from pfi.protocols.dmp.config import DmpConfig

    settings = settings_of(args, required=True)
    config = DmpConfig.from_settings(settings)
    if args.limit:
        config = replace(config, batch_size=args.limit)
    connection = from_environment(_dmp_connection_id(settings))  # as the deliver_dmp DAG
    signer = dmp_connection.signer(connection)
    with (
        open_ledger(args) as ledger,
        dmp_connection.client(
            connection,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
        ) as client,
    ):
        counts = submit_due_deliveries(
            ledger, client, signer, config, settings=settings, actor="cli"
        )
    print(json.dumps(counts))
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    import datetime as dt

    from pfi.base.errors import InvalidInput
    from pfi.flows.backfill import REASONS, BackfillRequest, plan, run_batch, summarize

    settings = settings_of(args, required=True)
    reference = dt.date.fromisoformat(args.reference) if args.reference else dt.date.today()
    params = {
        "source_kind": args.source,
        "folder": args.folder,
        "finess_geo": args.finess,
        "start_date": args.start,
        "end_date": args.end,
        "document_types": args.types,
        "dry_run": args.dry_run,
        "max_rate": args.max_rate,
        "batch_size": args.batch_size,
        "include_not_requested": args.include_not_requested,
    }
    try:
        request = BackfillRequest.from_params(params, reference=reference, settings=settings)
    except InvalidInput as exc:
        print(f"{exc.code}: {exc.reason}", file=sys.stderr)
        return 2
    documents: list[dict] = []

    def show(seen) -> None:
        documents.append(
            {
                "unique_id": seen.unique_id,
                "type": seen.type_code,
                "date": seen.effective_time.date().isoformat() if seen.effective_time else None,
                "ins": seen.ins,
                "decision": seen.decision,
                "reason": seen.reason or None,
            }
        )

    listing = show if args.show_identity else None
    with open_ledger(args) as ledger:
        batches = plan(ledger, request, reference=reference)
        if request.dry_run:
            results = [run_batch(ledger, settings, b, show=listing) for b in batches]
        else:
            results = _send_backfill(args, ledger, settings, batches, listing)
    total = summarize(results)
    total["dry_run"] = request.dry_run
    total["reasons"] = {code: REASONS.get(code, code) for code in total["skipped"]}
    if args.show_identity:
        total["listed"] = documents
    else:
        print("# patient data masked (--show-identity to list each document)", file=sys.stderr)
    print(json.dumps(total, indent=2, ensure_ascii=False))
    return 0


def _send_backfill(args, ledger, settings, batches, listing) -> list[dict]:
    from pfi.flows.backfill import run_batch
    from pfi.protocols.dmp import connection as dmp_connection
    from pfi.protocols.dmp.config import DmpConfig

    config = DmpConfig.from_settings(settings)
    connection = from_environment(_dmp_connection_id(settings))  # as the DAG's DmpHook
    signer = dmp_connection.signer(connection)
    with dmp_connection.client(
        connection, connect_timeout=config.connect_timeout, read_timeout=config.read_timeout
    ) as client:
        return [
            run_batch(
                ledger,
                settings,
                batch,
                client=client,
                signer=signer,
                config=config,
                actor="cli",
                show=listing,
            )
            for batch in batches
        ]
