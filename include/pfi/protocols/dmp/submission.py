"""From a producer's request to the DMP request: metadata, signature document, VIHF, envelope.

One document version per lot (the volet sends one CDA per message to the DMP):

- **new** (TD2.1, ITI-41): the CDA + the XAdES signature document, a submission set with two
  ``HasMember`` associations and a ``signs`` association (signature → submission set);
- **replace** (ITI-41): the same, plus an **RPLC** association from the new entry to the entryUUID
  of the version it replaces (PDSM ``transaction_td2.1.md``; spec-facts §1.11);
- **delete** (TD3.3c, ITI-57): an ``UpdateAvailabilityStatus`` association to
  ``urn:asip:ci-sis:2010:StatusType:Deleted`` on the document's entryUUID.

Identifiers are derived, so that a retry or a replayed task sends the same lot again and the DMP
can recognise it:

- entryUUID of a document = UUID-5 of its uniqueId (:func:`entry_uuid`): the PFI assigns it at
  the first submission, which is what later RPLC and ITI-57 requests point at, without a search;
- submission set uniqueId = ``2.25.<delivery request id as an integer>`` (ISO/IEC 9834-8 UUID OID
  form, :func:`submission_set_unique_id`): fixed per delivery before the first attempt.

Metadata come from the CI-SIS CDA → XDS mapping of :mod:`pfi.protocols.xds` (strict: a DMP-required
attribute left empty refuses the document with ``XDS_METADATA_INCOMPLETE``). Visibility
(spec-facts §3.6): MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REP_LEGAUX = Y add the TRE_A07 codes
as extra ``confidentialityCode`` values (:func:`pfi.protocols.xds.visibility_codes`); CONNEXION_SECRETE = Y
sets the VIHF's confidentiality attribute (:func:`pfi.protocols.xds.secret_connection_code`).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pfi.base.errors import InvalidInput
from pfi.protocols import xds
from pfi.protocols.cda import CdaDocument, read_cda
from pfi.protocols.dmp import constants as k
from pfi.protocols.dmp.signing import Signer, signature_document
from pfi.protocols.dmp.soap import Attachment, SoapRequest, iti41, iti57, status_update
from pfi.protocols.dmp.vihf import VihfClaims, signed_vihf, structure_id
from pfi.protocols.xdm import (
    Association,
    Coded,
    DocumentEntry,
    SubmissionSet,
    build_metadata,
    xds_time,
)

if TYPE_CHECKING:
    from pfi.protocols.dmp.client import DmpEndpoints
    from pfi.protocols.dmp.config import DmpConfig
    from pfi.protocols.hl7v2 import Hl7Request, MetaFlags, VihfAuthor

#: Namespace of the entryUUIDs the PFI assigns (UUID-5 of the document's uniqueId).
ENTRY_UUID_NAMESPACE = uuid.UUID("6f1c1b1e-3c0a-5d7e-9a52-5046492d444d")
SUBMISSION_SET_ID = "SubmissionSet01"

DmpAction = Literal["new", "replace", "delete"]


def entry_uuid(unique_id: str) -> str:
    """The entryUUID the PFI gives the document whose uniqueId is ``unique_id``."""
    return f"urn:uuid:{uuid.uuid5(ENTRY_UUID_NAMESPACE, unique_id)}"


def submission_set_unique_id(request_id: uuid.UUID | str) -> str:
    """``2.25.<integer of the UUID>``: the OID form of a UUID (ITU-T X.667)."""
    return f"2.25.{uuid.UUID(str(request_id)).int}"


@dataclass(frozen=True)
class DmpSubmission:
    """One document version and what the producer asked the DMP to do with it."""

    action: DmpAction
    cda: bytes = field(repr=False)
    header: CdaDocument = field(repr=False)
    flags: MetaFlags
    author: VihfAuthor | None = field(default=None, repr=False)
    patient_class: str = ""
    replaces_unique_id: str | None = None

    @property
    def unique_id(self) -> str:
        return str(self.header.id)

    @classmethod
    def from_request(
        cls,
        request: Hl7Request,
        *,
        unique_id: str | None = None,
        replaces_unique_id: str | None = None,
    ) -> DmpSubmission:
        """The CDA of ``request`` whose id is ``unique_id`` (else its first CDA)."""
        found: list[tuple[CdaDocument, bytes]] = []
        for document in request.documents:
            if document.format != "cda":
                continue
            header = read_cda(document.content)
            if unique_id is None or str(header.id) == unique_id:
                found.append((header, document.content))
                break
            found.append((header, document.content))
        if not found:
            raise InvalidInput("the request carries no CDA document", code="DMP_NO_CDA")
        header, content = found[-1]
        if unique_id is not None and str(header.id) != unique_id:
            header, content = found[0]
        action: DmpAction = str(request.action.value)  # type: ignore[assignment]
        replaced = replaces_unique_id
        if action == "replace" and not replaced and header.replaced_id is not None:
            replaced = str(header.replaced_id)
        return cls(
            action=action,
            cda=content,
            header=header,
            flags=request.flags,
            author=request.vihf_author,
            patient_class=request.visit.patient_class if request.visit else "",
            replaces_unique_id=replaced,
        )


def _secret_connection(flags: MetaFlags) -> tuple[str, str, str] | None:
    code = xds.secret_connection_code(flags)
    return (code.code, code.scheme, code.display_name) if code is not None else None


def vihf_claims(submission: DmpSubmission, patient_id: str, config: DmpConfig) -> VihfClaims:
    """VIHF values from the request's sender (PRT SB) and the site's ``[dmp]`` settings."""
    author = submission.author
    structure = config.structure_id
    if not structure and author is not None and author.structure_id:
        structure = structure_id(author.structure_id)
    if not structure:
        raise InvalidInput(
            "no structure identifier for the VIHF (PRT SB PRT-8.10 or [dmp] structure_id)",
            code="DMP_NO_STRUCTURE_ID",
        )
    person = author.subject_id if author is not None and author.subject_id else ""
    return VihfClaims(
        structure_id=structure,
        sector=config.sector,
        subject_id=person or config.responsible_id,
        subject_name=(author.subject_name if author is not None and person else "")
        or config.subject_name,
        patient_id=patient_id,
        roles=config.roles,
        software_name=config.software_name,
        software_version=config.software_version,
        software_id=config.software_id,
        homologation_id=config.homologation_id,
        secret_connection=_secret_connection(submission.flags),
        version=config.vihf_version,
    )


def _signature_entry(
    entry: DocumentEntry, content: bytes, submission_time: str, ss: SubmissionSet
) -> DocumentEntry:
    return DocumentEntry(
        entry_id=f"urn:uuid:{uuid.uuid4()}",
        unique_id=f"2.25.{uuid.uuid4().int}",
        patient_id=entry.patient_id,
        mime_type="text/xml",
        title="Signature du lot de soumission",
        class_code=Coded(k.SIGNATURE_CLASS_CODE, "URN", "Digital Signature"),
        type_code=Coded(k.SIGNATURE_TYPE_CODE, "ASTM", "Full Document"),
        format_code=Coded(k.SIGNATURE_FORMAT_CODE, "URN", "Default Signature Style"),
        # the same codes as the document it signs (spec-facts §5.4): a signature entry left
        # "N" would show the lot to those the document is masked from
        confidentiality_codes=entry.confidentiality_codes,
        healthcare_facility_type_code=entry.healthcare_facility_type_code,
        practice_setting_code=entry.practice_setting_code,
        event_codes=(Coded(k.SIGNATURE_EVENT_CODE, k.SIGNATURE_EVENT_SCHEME, "Source"),),
        authors=ss.authors,
        creation_time=submission_time,
        language_code=k.SIGNATURE_LANGUAGE,
        source_patient_id=entry.source_patient_id,
        hash=hashlib.sha1(content).hexdigest(),  # XDS hash is SHA-1 (ITI TF-3 §4.2.3.2.10)
        size=len(content),
    )


def document_entry(submission: DmpSubmission) -> DocumentEntry:
    """The CDA's DocumentEntry: header mapping, visibility codes, entryUUID, hash and size."""
    entry = xds.document_entry(
        submission.header,
        flags=submission.flags,
        entry_id=entry_uuid(submission.unique_id),
        strict=True,
    )
    return replace(
        entry,
        hash=hashlib.sha1(submission.cda).hexdigest(),
        size=len(submission.cda),
    )


def build_request(
    submission: DmpSubmission,
    *,
    config: DmpConfig,
    signer: Signer,
    endpoints: DmpEndpoints,
    request_id: uuid.UUID | str,
    now: datetime | None = None,
) -> SoapRequest:
    """The signed SOAP request for ``submission`` (ITI-41 for new/replace, ITI-57 for delete)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if "^" in submission.unique_id:
        # IG-CDA profils-messages.md (TXA-12): "La version actuelle du DMP ne supporte pas le
        # format OID^Extension" — refused here rather than by the DMP.
        raise InvalidInput(
            "the DMP does not accept a document id with an extension (OID^extension)",
            code="DMP_UNIQUE_ID_FORMAT",
        )
    entry = document_entry(submission)
    stamp = xds_time(now)
    claims = vihf_claims(submission, entry.patient_id, config)
    ss = xds.submission_set(
        entry_id=SUBMISSION_SET_ID,
        unique_id=submission_set_unique_id(request_id),
        source_id=config.source_id,
        patient_id=entry.patient_id,
        submission_time=now,
        authors=[
            xds.institution_author(
                config.structure_name,
                claims.structure_id,
                software_name=config.software_name,
                software_id=config.software_id or None,
            )
        ],
        patient_class=submission.patient_class,
    )
    vihf = signed_vihf(claims, signer, now=now)
    if submission.action == "delete":
        metadata = status_update(
            build_metadata(ss, [], []), SUBMISSION_SET_ID, entry_uuid(submission.unique_id)
        )
        return iti57(metadata, to=endpoints.registry_url, vihf=vihf)
    signature_uid = f"2.25.{uuid.uuid4().int}"
    signature = signature_document(
        signer, [(entry.unique_id, submission.cda)], signature_id=signature_uid, signing_time=now
    )
    sig_entry = replace(_signature_entry(entry, signature, stamp, ss), unique_id=signature_uid)
    associations = [
        Association(
            "urn:uuid:" + str(uuid.uuid4()),
            k.ASSOC_HAS_MEMBER,
            SUBMISSION_SET_ID,
            e.entry_id,
            "Original",
        )
        for e in (entry, sig_entry)
    ]
    associations.append(
        Association(
            "urn:uuid:" + str(uuid.uuid4()), k.ASSOC_SIGNS, sig_entry.entry_id, SUBMISSION_SET_ID
        )
    )
    if submission.action == "replace":
        if not submission.replaces_unique_id:
            raise InvalidInput(
                "a replacement without the id of the version it replaces",
                code="DMP_NO_REPLACED_ID",
            )
        associations.append(
            Association(
                "urn:uuid:" + str(uuid.uuid4()),
                k.ASSOC_RPLC,
                entry.entry_id,
                entry_uuid(submission.replaces_unique_id),
            )
        )
    metadata = build_metadata(ss, [entry, sig_entry], associations)
    return iti41(
        metadata,
        [
            Attachment(entry.entry_id, submission.cda, "text/xml"),
            Attachment(sig_entry.entry_id, signature, "text/xml"),
        ],
        to=endpoints.repository_url,
        vihf=vihf,
    )


__all__ = [
    "ENTRY_UUID_NAMESPACE",
    "DmpSubmission",
    "build_request",
    "document_entry",
    "entry_uuid",
    "submission_set_unique_id",
    "vihf_claims",
]
