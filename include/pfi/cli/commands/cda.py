"""``pfi cda …``: look into a CDA document, or make an N1 document around a PDF.

::

    pfi cda inspect FILE [--show-identity] [--json]
    pfi cda from-pdf PDF --type cr-operatoire --ins 279035121518989 --birth-name NOM \\
        --first-given PRENOM --given-names "PRENOM AUTRE" --birth-date 1979-03-28 --sex F \\
        --birthplace 51215 --author-id 801234567897 --author-family NOM [--author-given P] \\
        [--title T] [--date ISO] [--service-start ISO] [--service-stop ISO] \\
        [--finess-geo F] [--replaces OID[^EXT] --set-id OID --version N] -o OUT.xml

``inspect`` prints the header, the XDS codes the mapping gives, the N1 body and the header
defects (exit 1 when there are some) of a CDA file, or of each CDA an HL7 v2 file carries; the patient's identity only with ``--show-identity``
(support staff must not copy it into a ticket by accident). ``from-pdf`` takes the custodian
and author organisation from the settings (``--settings``; or ``--structure-id`` and
``--structure-name``), the INS OID from ``site.ins_environment`` unless ``--ins-oid`` is given.
"""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pfi.cli.commands._common import input_file


def register(groups: argparse._SubParsersAction) -> None:
    cda = groups.add_parser("cda", help="CDA R2 documents").add_subparsers(
        dest="action", required=True
    )
    inspect = cda.add_parser("inspect", help="show a CDA header, its XDS codes and defects")
    inspect.add_argument("file", type=input_file)
    inspect.add_argument("--show-identity", action="store_true", help="print patient data")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(func=cmd_inspect)

    from_pdf = cda.add_parser("from-pdf", help="make an N1 CDA around a PDF")
    from_pdf.add_argument("pdf", type=input_file)
    from_pdf.add_argument("-o", "--output", type=Path, required=True)
    from_pdf.add_argument(
        "--type",
        required=True,
        help="Ségur document type key, e.g. cr-imagerie (list: pfi cda types)",
    )
    from_pdf.add_argument("--title", help="default: the type's label")
    patient = from_pdf.add_argument_group("patient (INS and its traits)")
    patient.add_argument("--ins", required=True, help="15-character INS matricule")
    patient.add_argument("--ins-oid", help="default: from site.ins_environment")
    patient.add_argument("--birth-name", required=True)
    patient.add_argument("--first-given", required=True, help="first given name")
    patient.add_argument("--given-names", help="birth given names (default: --first-given)")
    patient.add_argument("--birth-date", required=True, type=date.fromisoformat)
    patient.add_argument("--sex", required=True, choices=("M", "F", "U"))
    patient.add_argument("--birthplace", required=True, help="INSEE code of the birthplace")
    patient.add_argument("--used-name")
    patient.add_argument("--ipp", help="local patient id, written as ROOT^EXTENSION")
    author = from_pdf.add_argument_group("author and legal authenticator")
    author.add_argument("--author-id", required=True, help="RPPS/ADELI id (IdNatPs)")
    author.add_argument("--author-family", required=True)
    author.add_argument("--author-given", default="")
    author.add_argument("--specialty", help="CODE^label^codeSystem, e.g. G15_10/SM26^…")
    doc = from_pdf.add_argument_group("document")
    doc.add_argument("--date", type=datetime.fromisoformat, help="effectiveTime (default now)")
    doc.add_argument("--service-start", type=datetime.fromisoformat)
    doc.add_argument("--service-stop", type=datetime.fromisoformat)
    doc.add_argument("--confidentiality", default="N", choices=("N", "R", "V"))
    doc.add_argument("--finess-geo", help="FINESS géographique (default: the site's first)")
    doc.add_argument("--structure-id", help="IdNatStruct when no settings (1 + FINESS)")
    doc.add_argument("--structure-name")
    doc.add_argument("--id", help="document id ROOT[^EXT] (default: a new OID)")
    doc.add_argument("--set-id", help="setId ROOT[^EXT] (default: a new OID)")
    doc.add_argument("--version", type=int, default=1)
    doc.add_argument("--replaces", help="id of the replaced version ROOT[^EXT] (RPLC)")
    from_pdf.set_defaults(func=cmd_from_pdf)

    types = cda.add_parser("types", help="list the Ségur document types")
    types.set_defaults(func=cmd_types)


def _identifier(value: str):
    from pfi.protocols.cda.model import Identifier

    root, _, extension = value.partition("^")
    return Identifier(root, extension or None)


def summary(data: bytes, *, show_identity: bool = False) -> dict[str, Any]:
    """What ``inspect`` shows: header, XDS codes, body, defects; patient data only if asked."""
    from pfi.base.errors import InvalidInput
    from pfi.protocols import xds
    from pfi.protocols.cda import check_header, pdf_of, read_cda

    doc = read_cda(data)
    out: dict[str, Any] = {
        "level": f"N{doc.level}",
        "id": str(doc.id),
        "set_id": str(doc.set_id) if doc.set_id else None,
        "version": doc.version_number,
        "replaces": xds.replaced_unique_id(doc),
        "type": f"{doc.code.code} {doc.code.display_name or ''}".strip() if doc.code else None,
        "title": doc.title,
        "effective_time": doc.effective_time.isoformat() if doc.effective_time else None,
        "confidentiality": doc.confidentiality_code.code if doc.confidentiality_code else None,
        "templates": list(doc.template_roots),
        "authors": [
            str(a.person_id) if a.person_id else (a.device_name or "?") for a in doc.authors
        ],
        "custodian": doc.custodian.name if doc.custodian else None,
        "facility": doc.encounter.facility_code.code
        if doc.encounter and doc.encounter.facility_code
        else None,
        "practice_setting": doc.practice_setting.code if doc.practice_setting else None,
        "size": doc.size,
    }
    class_code = xds.class_code_for(doc.code)
    format_code = xds.format_code_for(doc)
    out["xds"] = {
        "classCode": class_code.code if class_code else None,
        "formatCode": format_code.code if format_code else None,
    }
    if doc.level == 1:
        try:
            out["pdf_bytes"] = len(pdf_of(doc))
        except InvalidInput as exc:
            out["pdf_error"] = exc.code
    patient = doc.patient
    ins = patient.ins if patient else None
    if show_identity and patient:
        out["patient"] = {
            "ins": str(ins) if ins else None,
            "other_ids": [str(i) for i in patient.other_ids],
            "birth_name": patient.birth_family_name,
            "first_given_name": patient.first_given_name,
            "birth_date": patient.birth_time.isoformat() if patient.birth_time else None,
            "sex": patient.gender,
        }
    else:
        out["patient"] = {"ins_oid": ins.root if ins else None, "identity": "hidden"}
    out["defects"] = [f"{d.code}: {d.message}" for d in check_header(doc)]
    return out


def cda_documents(data: bytes) -> list[tuple[str, bytes]]:
    """``(label, CDA bytes)``: the file itself, or each CDA carried by an HL7 v2 file's OBX."""
    if data.lstrip()[:3] not in (b"MSH", b"FHS", b"BHS"):
        return [("", data)]
    from pfi.protocols.hl7v2 import Hl7Request, parse_file

    out = []
    for index, message in enumerate(parse_file(data), start=1):
        if isinstance(message, Hl7Request):
            for doc in message.documents:
                if doc.format == "cda":
                    out.append((f"message {index} OBX {doc.set_id}", doc.content))
    return out


def cmd_inspect(args: argparse.Namespace) -> int:
    from pfi.base.errors import InvalidInput

    documents = cda_documents(args.file.read_bytes())
    if not documents:
        raise InvalidInput("the HL7 file carries no CDA document", code="CDA_NONE_FOUND")
    status = 0
    for label, data in documents:
        if label:
            print(f"== {label}")
        info = summary(data, show_identity=args.show_identity)
        if args.json:
            print(json.dumps(info, ensure_ascii=False, indent=2))
        else:
            for key, value in info.items():
                if key != "defects":
                    print(f"{key}: {value}")
            for defect in info["defects"]:
                print(f"defect {defect}")
            print("header OK" if not info["defects"] else f"{len(info['defects'])} defect(s)")
        status = max(status, 1 if info["defects"] else 0)
    return status


def cmd_types(args: argparse.Namespace) -> int:
    from pfi.protocols.cda.generator import SEGUR_DOCUMENT_TYPES

    for key, doc_type in SEGUR_DOCUMENT_TYPES.items():
        print(f"{key:20} {doc_type.code:10} {doc_type.display_name}")
    return 0


def cmd_from_pdf(args: argparse.Namespace) -> int:
    from datetime import UTC

    from pfi.base.errors import ConfigurationError, InvalidInput
    from pfi.protocols.cda import constants as c
    from pfi.protocols.cda.generator import (
        SEGUR_DOCUMENT_TYPES,
        N1Document,
        PatientIdentity,
        Professional,
        Structure,
        build_n1,
        new_oid,
        structure_of_site,
    )
    from pfi.protocols.cda.model import Code, Identifier

    doc_type = SEGUR_DOCUMENT_TYPES.get(args.type)
    if doc_type is None:
        raise InvalidInput(
            f"unknown document type {args.type!r}; one of {', '.join(SEGUR_DOCUMENT_TYPES)}"
            " (pfi cda types)",
            code="CDA_BAD_INPUT",
        )
    settings = None
    if args.structure_id and args.structure_name:
        structure = Structure(args.structure_id, args.structure_name)
    else:
        from pfi.cli.commands._common import settings_of

        settings = settings_of(args, required=True)
        structure = structure_of_site(settings, args.finess_geo)
    ins_oid = args.ins_oid
    if ins_oid is None:
        if settings is None:
            raise ConfigurationError("--ins-oid is required without settings")
        ins_oid = (
            c.OID_INS_NIR if settings.site.ins_environment == "production" else (c.OID_INS_NIR_TEST)
        )
    specialty = None
    if args.specialty:
        code, _, rest = args.specialty.partition("^")
        label, _, system = rest.partition("^")
        specialty = Code(code, system or "1.2.250.1.213.1.1.4.5", label or None)
    doctor = Professional(args.author_id, args.author_family, args.author_given, specialty)
    now = datetime.now(UTC).replace(microsecond=0)
    effective = args.date or now
    document = N1Document(
        pdf=args.pdf.read_bytes(),
        document_type=doc_type,
        title=args.title or doc_type.display_name,
        patient=PatientIdentity(
            ins=args.ins,
            ins_oid=ins_oid,
            birth_family_name=args.birth_name,
            first_given_name=args.first_given,
            birth_given_names=args.given_names or args.first_given,
            birth_date=args.birth_date,
            sex=args.sex,
            birthplace_code=args.birthplace,
            used_family_name=args.used_name,
            local_ids=(_identifier(args.ipp),) if args.ipp else (),
        ),
        organization=structure,
        effective_time=effective,
        service_start=args.service_start or effective,
        service_stop=args.service_stop,
        author=doctor,
        legal_authenticator=doctor,
        confidentiality=args.confidentiality,
        document_id=_identifier(args.id) if args.id else Identifier(new_oid()),
        set_id=_identifier(args.set_id) if args.set_id else Identifier(new_oid()),
        version=args.version,
        replaces=_identifier(args.replaces) if args.replaces else None,
    )
    data = build_n1(document)
    args.output.write_bytes(data)
    print(f"wrote {args.output} ({len(data)} bytes, id {document.document_id})")
    return 0
