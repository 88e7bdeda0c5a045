"""The fake DMP's registry and repository: the XDS.b transactions and what they store.

ITI-41 (Provide and Register Document Set-b): every ExtrinsicObject is checked against its
bytes (uniqueId, patientId, hash, size, submission set membership), RPLC associations deprecate
their target, the XAdES signature document and the DMP's metadata are checked when asked; the
same document sent again (same uniqueId, same bytes) is the idempotent case (``duplicates``).
ITI-57 (Update Document Set): ``UpdateAvailabilityStatus`` associations change an entry's status
(Deleted, Archived…); an update sent again is ``XDSDuplicateUniqueIdInRegistry``. Errors are
collected so that one answer lists them all. Accepted requests are kept in memory (``accepted``,
``entries``) and, with a ``store_dir``, written as one folder each (``request.bin``, the documents,
``metadata.json``): what ``make run`` shows under ``var/devkit/dmp-accepted/``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from lxml import etree

from pfi_devkit.dmp.constants import (
    ASSOC_HAS_MEMBER,
    ASSOC_RPLC,
    ASSOC_UPDATE_STATUS,
    DE_CLASS_CODE,
    DE_CONFIDENTIALITY_CODE,
    DE_FORMAT_CODE,
    DE_HEALTHCARE_FACILITY_TYPE_CODE,
    DE_PATIENT_ID,
    DE_PRACTICE_SETTING_CODE,
    DE_TYPE_CODE,
    DE_UNIQUE_ID,
    ITI57_NEW_STATUSES,
    NSMAP,
    OBJECT_TYPE_STABLE_ENTRY,
    STATUS_APPROVED,
    STATUS_DEPRECATED,
    UNRESOLVED_REFERENCE,
    XDS_DUPLICATE_UNIQUE_ID_IN_MESSAGE,
    XDS_DUPLICATE_UNIQUE_ID_IN_REGISTRY,
    XDS_METADATA_UPDATE_ERROR,
    XDS_MISSING_DOCUMENT,
    XDS_MISSING_DOCUMENT_METADATA,
    XDS_NON_IDENTICAL_HASH,
    XDS_NON_IDENTICAL_SIZE,
    XDS_PATIENT_ID_DOES_NOT_MATCH,
    XDS_REGISTRY_METADATA_ERROR,
    XDS_REPOSITORY_METADATA_ERROR,
)
from pfi_devkit.dmp.metadata import (
    Association,
    Package,
    associations_of,
    check_dmp_metadata,
    code_of,
    codes_of,
    document_bytes,
    external_id_of,
    slots_of,
    submission_set_of,
)
from pfi_devkit.dmp.model import (
    DocumentEntry,
    Errors,
    Refusal,
    RegistryFailure,
    RequestContext,
    SoapFault,
    Submission,
)
from pfi_devkit.dmp.security import check_signature_content, check_signature_document


def now_iso() -> str:
    """Local time, ISO 8601 to the second (``received_at`` of a submission)."""
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


class Registry:
    """Mixin of :class:`~pfi_devkit.dmp.DmpEndpoint`: the stored entries and the transactions.

    State (set by the endpoint): ``entries`` (uniqueId → :class:`DocumentEntry`), ``accepted``,
    ``refusals``, ``duplicates``, the checks asked for (``require_signature_document``,
    ``strict_metadata``, ``ca_bundle``), ``store_dir``; ``_fail_mode`` comes from
    :class:`~pfi_devkit.dmp.modes.FailureModes`.
    """

    entries: dict[str, DocumentEntry]
    accepted: list[Submission]
    refusals: list[Refusal]
    duplicates: int
    require_signature_document: bool
    strict_metadata: bool
    ca_bundle: Path
    store_dir: Path | None
    _lock: threading.RLock
    _seq: itertools.count

    def entry_by_uuid(self, entry_uuid: str) -> DocumentEntry | None:
        with self._lock:
            return next((e for e in self.entries.values() if e.entry_uuid == entry_uuid), None)

    def _refused(self, refusal: Refusal) -> None:
        with self._lock:
            self.refusals.append(refusal)

    def _provide_and_register(
        self, envelope: etree._Element, attachments: Mapping[str, bytes], ctx: RequestContext
    ) -> None:
        request = envelope.find("soap:Body/xds:ProvideAndRegisterDocumentSetRequest", NSMAP)
        objects = None
        if request is not None:
            objects = request.find("lcm:SubmitObjectsRequest/rim:RegistryObjectList", NSMAP)
        if objects is None:
            raise SoapFault(
                "Sender",
                None,
                "body is not xds:ProvideAndRegisterDocumentSetRequest/lcm:SubmitObjectsRequest"
                "/rim:RegistryObjectList",
            )
        package = submission_set_of(objects)
        errors = Errors()
        if not package.unique_id:
            errors.add(XDS_REGISTRY_METADATA_ERROR, "XDSSubmissionSet.uniqueId missing", package.id)
        if not package.patient_id:
            errors.add(
                XDS_REGISTRY_METADATA_ERROR, "XDSSubmissionSet.patientId missing", package.id
            )
        documents: dict[str, bytes] = {}
        for document in request.iterfind("xds:Document", NSMAP):
            try:
                documents[document.get("id", "")] = document_bytes(document, attachments)
            except RegistryFailure as failure:
                errors.extend(failure.errors)
        extrinsics = list(objects.iterfind("rim:ExtrinsicObject", NSMAP))
        extrinsic_ids = {e.get("id", "") for e in extrinsics}
        for doc_id in documents.keys() - extrinsic_ids:
            errors.add(
                XDS_MISSING_DOCUMENT_METADATA,
                f"xds:Document {doc_id} has no rim:ExtrinsicObject",
                doc_id,
            )
        associations = associations_of(objects)
        members = {
            a.target for a in associations if a.type == ASSOC_HAS_MEMBER and a.source == package.id
        }
        with self._lock:
            new_entries: list[DocumentEntry] = []
            duplicates: list[str] = []
            seen: set[str] = set()
            for extrinsic in extrinsics:
                entry = self._check_entry(extrinsic, documents, package, members, seen, errors)
                if entry is None:
                    continue
                stored = self.entries.get(entry.unique_id)
                if stored is None:
                    new_entries.append(entry)
                elif stored.sha1 == entry.sha1:
                    duplicates.append(entry.unique_id)
                else:
                    errors.add(
                        XDS_NON_IDENTICAL_HASH,
                        f"uniqueId {entry.unique_id} already stored with other content",
                        extrinsic.get("id", ""),
                    )
            replaced = self._check_replacements(associations, extrinsics, new_entries, errors)
            if self.require_signature_document:
                check_signature_document(associations, extrinsics, package, errors)
                check_signature_content(extrinsics, documents, errors, self.ca_bundle)
            if self.strict_metadata:
                check_dmp_metadata(objects, extrinsics, package, errors)
            if errors:
                raise RegistryFailure(errors)
            self._fail_mode()
            for target, new in replaced:
                target.status = STATUS_DEPRECATED
                target.replaced_by = new.entry_uuid
                new.replaces = target.entry_uuid
            for entry in new_entries:
                self.entries[entry.unique_id] = entry
            self.duplicates += len(duplicates)
            submission = Submission(
                "ITI-41",
                ctx.message_id,
                package.unique_id,
                package.patient_id,
                package.source_id,
                tuple(e.unique_id for e in new_entries),
                tuple(duplicates),
                tuple(t.entry_uuid for t, _ in replaced),
                (),
                ctx.client_cn,
                ctx.vihf,
                now_iso(),
            )
            self.accepted.append(submission)
            self._store(submission, ctx.body, new_entries)

    def _check_entry(
        self,
        extrinsic: etree._Element,
        documents: Mapping[str, bytes],
        package: Package,
        members: set[str],
        seen: set[str],
        errors: Errors,
    ) -> DocumentEntry | None:
        """One ExtrinsicObject against its bytes; None (and ``errors`` extended) when wrong."""
        oid = extrinsic.get("id", "")
        before = len(errors)
        unique_id = external_id_of(extrinsic, DE_UNIQUE_ID)
        patient_id = external_id_of(extrinsic, DE_PATIENT_ID)
        slots = slots_of(extrinsic)
        if extrinsic.get("objectType") != OBJECT_TYPE_STABLE_ENTRY:
            errors.add(
                XDS_REGISTRY_METADATA_ERROR, f"objectType is not {OBJECT_TYPE_STABLE_ENTRY}", oid
            )
        if not unique_id:
            errors.add(XDS_REPOSITORY_METADATA_ERROR, "XDSDocumentEntry.uniqueId missing", oid)
        elif unique_id in seen:
            errors.add(
                XDS_DUPLICATE_UNIQUE_ID_IN_MESSAGE,
                f"uniqueId {unique_id} twice in the request",
                oid,
            )
        seen.add(unique_id)
        if not patient_id or patient_id != package.patient_id:
            errors.add(
                XDS_PATIENT_ID_DOES_NOT_MATCH,
                f"XDSDocumentEntry.patientId {patient_id!r} ≠ the submission set's "
                f"{package.patient_id!r}",
                oid,
            )
        if oid not in members:
            errors.add(
                XDS_REGISTRY_METADATA_ERROR, "entry is not a HasMember of the submission set", oid
            )
        content = documents.get(oid)
        if content is None:
            errors.add(XDS_MISSING_DOCUMENT, f"no xds:Document for ExtrinsicObject {oid}", oid)
            return None
        sha1 = hashlib.sha1(content).hexdigest()  # XDS metadata's hash is SHA-1
        declared_hash = (slots.get("hash") or ("",))[0].lower()
        if declared_hash and not re.fullmatch(r"[0-9a-f]{40}", declared_hash):
            errors.add(
                XDS_REPOSITORY_METADATA_ERROR, "hash slot is not 40 hex digits of SHA-1", oid
            )
        elif declared_hash and declared_hash != sha1:
            errors.add(
                XDS_NON_IDENTICAL_HASH,
                f"hash slot {declared_hash} ≠ SHA-1 {sha1} of the bytes",
                oid,
            )
        declared_size = (slots.get("size") or ("",))[0]
        if declared_size and not declared_size.isdigit():
            errors.add(XDS_REPOSITORY_METADATA_ERROR, "size slot is not an integer", oid)
        elif declared_size and int(declared_size) != len(content):
            errors.add(
                XDS_NON_IDENTICAL_SIZE, f"size slot {declared_size} ≠ {len(content)} bytes", oid
            )
        if len(errors) > before:
            return None
        return DocumentEntry(
            entry_uuid=oid if oid.startswith("urn:uuid:") else f"urn:uuid:{uuid.uuid4()}",
            unique_id=unique_id,
            patient_id=patient_id,
            mime_type=extrinsic.get("mimeType", ""),
            class_code=code_of(extrinsic, DE_CLASS_CODE),
            type_code=code_of(extrinsic, DE_TYPE_CODE),
            format_code=code_of(extrinsic, DE_FORMAT_CODE),
            confidentiality_codes=codes_of(extrinsic, DE_CONFIDENTIALITY_CODE),
            healthcare_facility_type_code=code_of(extrinsic, DE_HEALTHCARE_FACILITY_TYPE_CODE),
            practice_setting_code=code_of(extrinsic, DE_PRACTICE_SETTING_CODE),
            sha1=sha1,
            size=len(content),
            submission_set=package.unique_id,
            slots=slots,
            content=content,
        )

    def _check_replacements(
        self,
        associations: Sequence[Association],
        extrinsics: Sequence[etree._Element],
        new_entries: Sequence[DocumentEntry],
        errors: Errors,
    ) -> list[tuple[DocumentEntry, DocumentEntry]]:
        """RPLC associations: (stored target, new entry) pairs, targets found by entryUUID."""
        unique_by_id = {e.get("id", ""): external_id_of(e, DE_UNIQUE_ID) for e in extrinsics}
        new_by_unique = {e.unique_id: e for e in new_entries}
        by_symbolic_id = {
            oid: new_by_unique[uid] for oid, uid in unique_by_id.items() if uid in new_by_unique
        }
        pairs = []
        for assoc in associations:
            if assoc.type != ASSOC_RPLC:
                continue
            new = by_symbolic_id.get(assoc.source)
            target = self.entry_by_uuid(assoc.target)
            if assoc.source in unique_by_id and new is None:
                continue  # the replacing entry is a duplicate or already refused
            if new is None:
                errors.add(
                    XDS_REGISTRY_METADATA_ERROR,
                    f"RPLC source {assoc.source} is not an entry of this submission",
                    assoc.source,
                )
            elif target is None:
                errors.add(
                    UNRESOLVED_REFERENCE,
                    f"RPLC target {assoc.target} is not a stored entry (entryUUID expected)",
                    assoc.target,
                )
            elif target.status != STATUS_APPROVED:
                errors.add(
                    XDS_REGISTRY_METADATA_ERROR,
                    f"RPLC target {assoc.target} is {target.status}",
                    assoc.target,
                )
            elif target.patient_id != new.patient_id:
                errors.add(
                    XDS_PATIENT_ID_DOES_NOT_MATCH,
                    "RPLC target belongs to another patient",
                    assoc.target,
                )
            else:
                pairs.append((target, new))
        return pairs

    def _update_document_set(self, envelope: etree._Element, ctx: RequestContext) -> None:
        objects = envelope.find("soap:Body/lcm:SubmitObjectsRequest/rim:RegistryObjectList", NSMAP)
        if objects is None:
            raise SoapFault(
                "Sender", None, "body is not lcm:SubmitObjectsRequest/rim:RegistryObjectList"
            )
        package = submission_set_of(objects)
        errors = Errors()
        updates = [a for a in associations_of(objects) if a.type == ASSOC_UPDATE_STATUS]
        if not updates:
            errors.add(
                XDS_METADATA_UPDATE_ERROR,
                f"no {ASSOC_UPDATE_STATUS} association (other metadata updates not simulated)",
            )
        with self._lock:
            if package.unique_id and any(
                s.transaction == "ITI-57" and s.submission_set_unique_id == package.unique_id
                for s in self.accepted
            ):
                # A registry package's uniqueId is registered once: an update sent again (its
                # answer was lost) is refused as a duplicate before its statuses are compared.
                raise RegistryFailure.one(
                    XDS_DUPLICATE_UNIQUE_ID_IN_REGISTRY,
                    "submission set already registered",
                    package.id,
                )
            planned: list[tuple[DocumentEntry, str, str]] = []
            for assoc in updates:
                original = (assoc.slots.get("OriginalStatus") or ("",))[0]
                new = (assoc.slots.get("NewStatus") or ("",))[0]
                target = self.entry_by_uuid(assoc.target)
                if assoc.source != package.id:
                    errors.add(
                        XDS_METADATA_UPDATE_ERROR,
                        "association source is not the submission set",
                        assoc.source,
                    )
                elif target is None:
                    errors.add(
                        UNRESOLVED_REFERENCE,
                        f"{assoc.target} is not a stored entry (entryUUID expected)",
                        assoc.target,
                    )
                elif original != target.status:
                    errors.add(
                        XDS_METADATA_UPDATE_ERROR,
                        f"OriginalStatus {original!r} ≠ current status {target.status}",
                        assoc.target,
                    )
                elif new not in ITI57_NEW_STATUSES:
                    errors.add(
                        XDS_METADATA_UPDATE_ERROR, f"NewStatus {new!r} not supported", assoc.target
                    )
                elif package.patient_id and package.patient_id != target.patient_id:
                    errors.add(
                        XDS_PATIENT_ID_DOES_NOT_MATCH,
                        "target belongs to another patient",
                        assoc.target,
                    )
                else:
                    planned.append((target, original, new))
            if errors:
                raise RegistryFailure(errors)
            self._fail_mode()
            for target, _, new in planned:
                target.status = new
            submission = Submission(
                "ITI-57",
                ctx.message_id,
                package.unique_id,
                package.patient_id,
                package.source_id,
                (),
                (),
                (),
                tuple((t.entry_uuid, o, n) for t, o, n in planned),
                ctx.client_cn,
                ctx.vihf,
                now_iso(),
            )
            self.accepted.append(submission)
            self._store(submission, ctx.body, [])

    def _store(self, submission: Submission, body: bytes, entries: Sequence[DocumentEntry]) -> None:
        if not self.store_dir:
            return
        name = re.sub(r"[^A-Za-z0-9._-]", "_", submission.submission_set_unique_id or "no-ss")
        folder = self.store_dir / f"{next(self._seq):05d}-{submission.transaction}-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "request.bin").write_bytes(body)
        for entry in entries:
            safe = re.sub(r"[^A-Za-z0-9._-]", "_", entry.unique_id)
            (folder / f"{safe}.document").write_bytes(entry.content)
        metadata = {
            "submission": asdict(submission),
            "entries": [e.summary() for e in entries],
        }
        (folder / "metadata.json").write_text(
            json.dumps(metadata, indent=2, ensure_ascii=False, default=list)
        )
