"""Reading back the archived original of a message: the ledger holds no document content, so each
sending step loads the producer's request again from the file intake kept — or, for a CDA file
of a historical backfill (item kind ``cda_file``), the DMP submission it gives
(:func:`load_submission`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pfi.base.errors import InvalidInput, TransientError
from pfi.base.settings import Settings
from pfi.flows.intake.evaluate import message_checksum
from pfi.protocols.hl7v2 import (
    Hl7Request,
    parse_message,
    split_file,
)
from pfi.protocols.hl7v2.parser import DEFAULT_ENCODING

if TYPE_CHECKING:
    from pfi.ledger import Ledger
    from pfi.protocols.dmp.submission import DmpSubmission

log = logging.getLogger(__name__)


def load_request(
    ledger: Ledger,
    inbound_item_id: int,
    *,
    settings: Settings | None = None,
    default_encoding: str | None = None,
) -> Hl7Request:
    """The parsed request of an ``hl7_message`` item, re-read from its archived original file.

    The ledger keeps no content: an ``hl7_message`` item points to its file (``parent_id``) and
    says which message of the file it is (``original_ref``, 1-based). The message's bytes must
    still have the item's checksum (an archived original never changes). An ``hl7_file`` item
    gives its first message. ``default_encoding`` (else the source's setting, else ISO 8859-1)
    decodes a message without MSH-18.

    Raises :class:`~pfi.base.errors.TransientError` ``INTAKE_ORIGINAL_MISSING`` when the original is
    not where the ledger says (it may be moving to the archive right now: retry), and
    :class:`~pfi.base.errors.InvalidInput` when it changed or holds no document request.
    """
    item = ledger.get_inbound(inbound_item_id)
    if item.kind == "hl7_message":
        if item.parent_id is None:
            raise InvalidInput(
                f"hl7_message item {item.id} has no parent file", code="INTAKE_NO_PARENT"
            )
        index = int(item.original_ref or "1")
        parent_id = item.parent_id
    elif item.kind == "hl7_file":
        index, parent_id = 1, item.id
    else:
        raise InvalidInput(f"item {item.id} is a {item.kind}, not HL7", code="INTAKE_NOT_HL7")
    raw = _read_original(
        ledger, parent_id, item.storage_path if item.kind == "hl7_message" else None
    )
    chunks = split_file(raw)
    if not 1 <= index <= len(chunks):
        raise InvalidInput(
            f"the original of item {item.id} has no message {index}",
            code="INTAKE_ORIGINAL_CHANGED",
        )
    chunk = chunks[index - 1]
    if item.kind == "hl7_message" and message_checksum(chunk) != item.checksum:
        raise InvalidInput(
            f"the archived original of item {item.id} no longer matches its checksum",
            code="INTAKE_ORIGINAL_CHANGED",
        )
    encoding = default_encoding or _default_encoding(settings, item.source)
    message = parse_message(chunk, default_encoding=encoding)
    if not isinstance(message, Hl7Request):
        raise InvalidInput(
            f"item {item.id} is an acknowledgement, not a document request",
            code="INTAKE_NOT_REQUEST",
        )
    return message


def _read_original(ledger: Ledger, file_item_id: int, kept: str | None) -> bytes:
    # The file may be moved to its final place between the read of the ledger and the open;
    # a message item also knows that final place.
    for _ in range(2):
        candidates = [ledger.get_inbound(file_item_id).storage_path, kept]
        for candidate in candidates:
            if not candidate:
                continue
            try:
                return Path(candidate).read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                continue
    raise TransientError(
        f"the original of file item {file_item_id} is not where the ledger says",
        code="INTAKE_ORIGINAL_MISSING",
    )


def _default_encoding(settings: Settings | None, source_name: str) -> str:
    if settings is None:  # the caller's settings only: a flow never reads the file itself
        return DEFAULT_ENCODING
    for source in settings.sources:
        if source.name == source_name:
            return source.default_encoding
    return DEFAULT_ENCODING


def load_submission(
    ledger: Ledger, inbound_item_id: int, *, finess_geo: str | None = None
) -> DmpSubmission:
    """The DMP publication (action ``new``) of a ``cda_file`` item, re-read from its file.

    A CDA file of a backfill comes with no HL7 message: no MetaDMPMSS flags (the document is
    published visible, as the DMP's defaults) and no PRT SB, so the VIHF names the FINESS
    géographique the backfill was run for (``finess_geo``, the document's) and the CDA's first
    author; the submission set's contentTypeCode comes from the encounter's ActCode (IMP, AMB,
    EMER as PV1-2 I, O, E), else "type d'activité indifférencié" (PV1-2 N). The file must still
    have the item's checksum. Raises as :func:`load_request`.
    """
    import hashlib

    from pfi.protocols.cda import read_cda
    from pfi.protocols.dmp.submission import DmpSubmission
    from pfi.protocols.hl7v2 import MetaFlags, VihfAuthor

    item = ledger.get_inbound(inbound_item_id)
    if item.kind != "cda_file":
        raise InvalidInput(
            f"item {item.id} is a {item.kind}, not a CDA file", code="INTAKE_NOT_CDA"
        )
    raw = _read_original(ledger, item.id, None)
    if hashlib.sha256(raw).hexdigest() != item.checksum:
        raise InvalidInput(
            f"the original of item {item.id} no longer matches its checksum",
            code="INTAKE_ORIGINAL_CHANGED",
        )
    header = read_cda(raw)
    author = header.author
    person = author.person_id if author is not None else None
    name = author.name if author is not None else None
    subject_name = (
        " ".join(p.value for p in (*name.family, *name.given[:1]) if p.value) if name else ""
    )
    structure = finess_geo or item.finess_geo or ""
    encounter = header.encounter.code.code if header.encounter and header.encounter.code else ""
    return DmpSubmission(
        action="new",
        cda=raw,
        header=header,
        flags=MetaFlags(dest_dmp=True),
        author=VihfAuthor(
            structure_id=structure,
            structure_id_type="FINEG" if structure else "",
            subject_id=(person.extension or "") if person else "",
            subject_id_type="IDNPS" if person and person.extension else "",
            subject_name=subject_name,
        )
        if structure or person
        else None,
        patient_class=_PATIENT_CLASS_OF_ENCOUNTER.get(encounter.upper(), "N"),
    )


#: HL7 v3 ActCode of ``encompassingEncounter/code`` → the PV1-2 patient class it stands for.
_PATIENT_CLASS_OF_ENCOUNTER = {"IMP": "I", "AMB": "O", "EMER": "E"}


__all__ = ["load_request", "load_submission"]
