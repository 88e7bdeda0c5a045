"""The fake DMP's data: what it stores (document entries, accepted submissions), how it refuses
(SOAP faults, registry errors), and the small records passed between its parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pfi_devkit.dmp.constants import SIGNATURE_CLASS_CODE, STATUS_APPROVED


class CredentialLike(Protocol):
    """What the endpoint needs of a ``pfi_devkit.pki.Credential`` (no import of the PKI)."""

    cert_path: Path
    key_path: Path


@dataclass(frozen=True)
class Code:
    """A coded XDS classification: ``nodeRepresentation`` and its ``codingScheme`` slot."""

    code: str
    scheme: str = ""


@dataclass
class DocumentEntry:
    """A stored XDSDocumentEntry and its bytes; ``status`` changes with RPLC and ITI-57."""

    entry_uuid: str
    unique_id: str
    patient_id: str
    mime_type: str
    class_code: Code | None
    type_code: Code | None
    format_code: Code | None
    confidentiality_codes: tuple[Code, ...]
    healthcare_facility_type_code: Code | None
    practice_setting_code: Code | None
    sha1: str
    size: int
    submission_set: str
    status: str = STATUS_APPROVED
    replaces: str | None = None  # entryUUID of the entry this one replaced (RPLC)
    replaced_by: str | None = None
    slots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    content: bytes = field(default=b"", repr=False)

    @property
    def is_signature(self) -> bool:
        return self.class_code is not None and self.class_code.code == SIGNATURE_CLASS_CODE

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("content")
        data["slots"] = {k: list(v) for k, v in self.slots.items()}
        return data


@dataclass(frozen=True)
class Submission:
    """One accepted request: ITI-41 (entries stored) or ITI-57 (status updates applied)."""

    transaction: Literal["ITI-41", "ITI-57"]
    message_id: str
    submission_set_unique_id: str
    patient_id: str
    source_id: str
    entries: tuple[str, ...]  # uniqueIds stored by this request
    duplicates: tuple[str, ...]  # uniqueIds sent again with the same bytes (idempotent)
    replaced: tuple[str, ...]  # entryUUIDs deprecated by an RPLC association
    updates: tuple[tuple[str, str, str], ...]  # ITI-57: (entryUUID, original, new status)
    client_cn: str | None
    vihf: Mapping[str, tuple[str, ...]]
    received_at: str


@dataclass(frozen=True)
class RegistryError:
    code: str
    context: str
    location: str = ""


class Errors(list[RegistryError]):
    """The registry errors of one request, collected so that the answer lists them all."""

    def add(self, code: str, context: str, location: str = "") -> None:
        self.append(RegistryError(code, context, location))


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused (for tests and the demo): fault subcode or registry codes."""

    kind: Literal["fault", "registry", "http"]
    codes: tuple[str, ...]
    text: str


class SoapFault(Exception):
    """A SOAP 1.2 fault; HTTP status per the SOAP 1.2 HTTP binding (Sender → 400, else 500)."""

    def __init__(self, code: str, subcode: str | None, reason: str, http_status: int = 0):
        super().__init__(reason)
        self.code, self.subcode, self.reason = code, subcode, reason
        self.http_status = http_status or (400 if code == "Sender" else 500)


class RegistryFailure(Exception):
    """Metadata or documents refused: answered as ``rs:RegistryResponse`` Failure (HTTP 200)."""

    def __init__(self, errors: Sequence[RegistryError]):
        super().__init__("; ".join(f"{e.code}: {e.context}" for e in errors))
        self.errors = tuple(errors)

    @classmethod
    def one(cls, code: str, context: str, location: str = "") -> RegistryFailure:
        return cls([RegistryError(code, context, location)])


# -- passed between the parts ----------------------------------------------------------------------


@dataclass(frozen=True)
class RequestContext:
    message_id: str
    client_cn: str | None
    vihf: Mapping[str, tuple[str, ...]]
    body: bytes


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    content_type: str = "application/soap+xml; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
