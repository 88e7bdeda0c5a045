"""``pfi xdm …``: pack CDA documents into an ``IHE_XDM.ZIP``, or look into one.

::

    pfi xdm pack CDA [CDA …] -o IHE_XDM.ZIP [--flags MASQUE_PS,INVISIBLE_PATIENT]
        [--recipient ADDRESS …] [--patient-class I] [--finess-geo F]
    pfi xdm inspect ZIP [--show-identity] [--json] [--extract DIR]

``pack`` builds the metadata with :mod:`pfi.protocols.xds` (one DocumentEntry per CDA, an RPLC
association for a replacement, the SubmissionSet authored by the establishment and the PFI
software from the settings). ``inspect`` reads an archive with the hostile-archive checks of
:func:`pfi.protocols.xdm.read_xdm` (exit 1 with the refusal code) and prints the submission set and the
documents; patient identifiers and recipient addresses only with ``--show-identity``;
``--extract DIR`` writes the documents and their PDF under names of its own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pfi.cli.commands._common import input_file

#: ``--flags`` names (the MetaDMPMSS codes) → :class:`pfi.protocols.hl7v2.MetaFlags` attributes.
FLAG_NAMES = {
    "MASQUE_PS": "masque_ps",
    "INVISIBLE_PATIENT": "invisible_patient",
    "INVISIBLE_REP_LEGAUX": "invisible_rep_legaux",
}


def register(groups: argparse._SubParsersAction) -> None:
    xdm = groups.add_parser("xdm", help="IHE XDM packages (MSSanté)").add_subparsers(
        dest="action", required=True
    )
    pack = xdm.add_parser("pack", help="pack CDA documents into an IHE_XDM.ZIP")
    pack.add_argument("cda", type=input_file, nargs="+")
    pack.add_argument("-o", "--output", type=Path, required=True)
    pack.add_argument("--flags", default="", help=f"comma-separated: {', '.join(FLAG_NAMES)}")
    pack.add_argument("--recipient", action="append", default=[], help="intended recipient")
    pack.add_argument("--patient-class", help="PV1-2 (I, O, E, R, N) → contentTypeCode")
    pack.add_argument("--finess-geo", help="sending FINESS géographique (default: the first)")
    pack.add_argument("--source-id", help="sourceId OID when no settings")
    pack.add_argument("--structure-id", help="IdNatStruct when no settings (1 + FINESS)")
    pack.add_argument("--structure-name")
    pack.set_defaults(func=cmd_pack)

    inspect = xdm.add_parser("inspect", help="check and show an IHE_XDM.ZIP")
    inspect.add_argument("zip", type=input_file)
    inspect.add_argument("--show-identity", action="store_true", help="print patient data")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.add_argument(
        "--extract", type=Path, help="write each document (and its PDF) to this folder"
    )
    inspect.set_defaults(func=cmd_inspect)


def _flags(text: str):
    from pfi.base.errors import InvalidInput
    from pfi.protocols.hl7v2.model import MetaFlags

    names = [n.strip().upper() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FLAG_NAMES]
    if unknown:
        raise InvalidInput(f"unknown flag(s) {', '.join(unknown)}", code="XDM_BAD_INPUT")
    return MetaFlags(**{FLAG_NAMES[n]: True for n in names})


def cmd_pack(args: argparse.Namespace) -> int:
    import uuid
    from datetime import UTC, datetime

    from pfi.protocols import xds
    from pfi.protocols.cda import read_cda
    from pfi.protocols.xdm import pack_xdm

    flags = _flags(args.flags)
    if args.source_id and args.structure_id and args.structure_name:
        source_id, structure_id, structure_name = (
            args.source_id,
            args.structure_id,
            args.structure_name,
        )
        software, software_id = "PFI", None
    else:
        from pfi.cli.commands._common import settings_of
        from pfi.protocols.cda.generator import structure_of_site

        settings = settings_of(args, required=True)
        structure = structure_of_site(settings, args.finess_geo)
        source_id, structure_id, structure_name = (
            settings.site.structure_oid,
            structure.id,
            structure.name,
        )
        software = f"{settings.site.software_name} {settings.site.software_version}"
        software_id = f"1{settings.site.finess_juridique}"
    documents, associations = [], []
    for index, path in enumerate(args.cda, start=1):
        data = path.read_bytes()
        doc = read_cda(data)
        entry = xds.document_entry(doc, flags=flags, entry_id=f"Document{index:02d}")
        documents.append((entry, data))
        replaced = xds.replaced_unique_id(doc)
        if replaced:
            associations.append(
                xds.replacement_association(
                    entry.entry_id, replaced, association_id=f"AssociationRPLC{index:02d}"
                )
            )
    now = datetime.now(UTC).replace(microsecond=0)
    submission_set = xds.submission_set(
        unique_id=f"2.25.{uuid.uuid4().int}",
        source_id=source_id,
        patient_id=documents[0][0].patient_id,
        submission_time=now,
        authors=[
            xds.institution_author(
                structure_name, structure_id, software_name=software, software_id=software_id
            )
        ],
        patient_class=args.patient_class,
        intended_recipients=[xds.mail_recipient(a) for a in args.recipient],
    )
    archive = pack_xdm(documents, submission_set, associations=associations, date_time=now)
    args.output.write_bytes(archive)
    print(f"wrote {args.output} ({len(archive)} bytes, {len(documents)} document(s))")
    return 0


def describe(archive: bytes, *, show_identity: bool = False) -> dict[str, Any]:
    """What ``inspect`` shows of a package (read with every hostile-archive check)."""
    from pfi.protocols.xdm import read_xdm

    package = read_xdm(archive)
    ss = package.submission_set

    def code(value) -> str | None:
        return f"{value.code} ({value.scheme})" if value else None

    out: dict[str, Any] = {
        "subset": package.subset,
        "submission_set": {
            "unique_id": ss.unique_id,
            "source_id": ss.source_id,
            "submission_time": ss.submission_time,
            "content_type": code(ss.content_type_code),
            "authors": [a.institutions[0] if a.institutions else a.person for a in ss.authors],
            "recipients": list(ss.intended_recipients)
            if show_identity
            else len(ss.intended_recipients),
        },
        "documents": [
            {
                "path": d.path,
                "unique_id": d.entry.unique_id,
                "mime_type": d.entry.mime_type,
                "size": len(d.content),
                "class": code(d.entry.class_code),
                "type": code(d.entry.type_code),
                "format": code(d.entry.format_code),
                "confidentiality": [c.code for c in d.entry.confidentiality_codes],
                "creation_time": d.entry.creation_time,
            }
            for d in package.documents
        ],
        "replacements": package.replacements(),
    }
    if show_identity:
        out["patient_id"] = package.patient_id
    return out


def extract(archive: bytes, folder: Path) -> list[Path]:
    """Write the documents as ``DOC01.xml`` (+ ``DOC01.pdf`` for a CDA with a PDF) in ``folder``.

    File names come from the document's position, never from the archive, so nothing can be
    written outside ``folder``.
    """
    from pfi.base.errors import InvalidInput
    from pfi.protocols.cda import pdf_of
    from pfi.protocols.xdm import read_xdm

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, doc in enumerate(read_xdm(archive).documents, start=1):
        suffix = ".xml" if "xml" in doc.entry.mime_type else ".bin"
        path = folder / f"DOC{index:02d}{suffix}"
        path.write_bytes(doc.content)
        written.append(path)
        if suffix == ".xml":
            try:
                pdf = pdf_of(doc.content)
            except InvalidInput:
                continue
            written.append(folder / f"DOC{index:02d}.pdf")
            written[-1].write_bytes(pdf)
    return written


def cmd_inspect(args: argparse.Namespace) -> int:
    data = args.zip.read_bytes()
    info = describe(data, show_identity=args.show_identity)
    if args.extract:
        for path in extract(data, args.extract):
            print(f"wrote {path}")
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return 0
    ss = info["submission_set"]
    print(f"subset: {info['subset']}")
    for key, value in ss.items():
        print(f"submission set {key}: {value}")
    if "patient_id" in info:
        print(f"patient id: {info['patient_id']}")
    for doc in info["documents"]:
        print(f"document {doc['path']}: " + ", ".join(f"{k}={v}" for k, v in doc.items()))
    for new, old in info["replacements"]:
        print(f"replacement: {new} replaces {old}")
    print(f"package OK ({len(info['documents'])} document(s))")
    return 0
