"""Reading back the archived original of a message: the ledger holds no document content, so each
sending step loads the producer's request again from the file intake kept."""

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


__all__ = ["load_request"]
