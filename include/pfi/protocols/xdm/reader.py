"""Read an ``IHE_XDM.ZIP`` (IHE ITI-32, portable media as used by MSSanté) from memory.

A received mail's XDM archive is hostile until proven otherwise. The archive is read from bytes
and **never extracted**: nothing is written anywhere, so a member name cannot escape a folder.
Member names are still checked, because the names end up in the ledger, in the MDM sent to
the DPI and in error mails, and a name that would be dangerous on extraction marks a forged
archive. Every refusal is an :class:`~pfi.base.errors.InvalidInput` with one of these codes; messages
name members by their index, never by their name (file names may carry a patient's name):

=============================  ==================================================================
``XDM_TOO_LARGE``              the archive is over ``max_archive_bytes``
``XDM_NOT_ZIP``                not a readable zip (bad central directory, zip64 trickery…)
``XDM_TOO_MANY_MEMBERS``       more than ``max_members`` entries
``XDM_UNSAFE_PATH``            absolute name, drive letter, backslash, ``..`` or ``.`` segment,
                               empty segment, control character, over-long name
``XDM_SYMLINK``                a member whose Unix mode (external attributes) is a symbolic link
``XDM_ENCRYPTED``              a member with the "encrypted" general-purpose flag (central
                               directory or local header)
``XDM_UNSUPPORTED_COMPRESSION``  a method other than stored or deflated
``XDM_DUPLICATE_NAME``         two members with the same name, ignoring case
``XDM_MEMBER_TOO_LARGE``       a member declares more than ``max_member_bytes`` uncompressed
``XDM_TOTAL_TOO_LARGE``        the declared uncompressed sizes add up to over ``max_total_bytes``,
                               or the bytes read do (a member named by many entries counts
                               each time)
``XDM_COMPRESSION_RATIO``      a member expands more than ``max_ratio`` times (zip bomb), as
                               declared or as measured while inflating
``XDM_CORRUPT``                CRC error, a member shorter/longer than declared, or a deflate
                               stream that does not span the declared compressed size
``XDM_NO_METADATA``            no ``IHE_XDM/<subset>/METADATA.XML`` (any subset folder name)
``XDM_MULTIPLE_SUBSETS``       more than one submission set folder (not supported)
``XDM_METADATA_*``             METADATA.XML not XML, with a DTD, too large (:mod:`pfi.protocols.xmlsafe`)
``XDM_METADATA_INVALID``       not an ebRIM ``SubmitObjectsRequest`` with a SubmissionSet and
                               DocumentEntries each carrying a uniqueId
``XDM_PATIENT_MISMATCH``       entries and submission set do not share one ``patientId``
``XDM_NO_URI``                 a DocumentEntry without its ``URI`` slot (required in XDM)
``XDM_UNSAFE_URI``             a ``URI`` that is absolute, has a scheme or climbs with ``..``
``XDM_DOCUMENT_MISSING``       a ``URI`` naming no member of the archive
``XDM_SIZE_MISMATCH``          the ``size`` slot differs from the document's length
``XDM_HASH_MISMATCH``          the ``hash`` slot differs from the document's SHA-1
=============================  ==================================================================

METADATA.XML is read by element local names, so the ``rim``/``lcm`` prefixes or a default
namespace are all accepted (spec-facts §4.2: "be lenient when reading"); the only ANS XDM
sample (DRIM-M_DATA ``SS000001``) also shows that ``URI`` may include the subset folder, so a
URI is resolved against the subset folder, then ``IHE_XDM/``, then the archive root.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from urllib.parse import unquote

from lxml import etree

from pfi.base.errors import InvalidInput
from pfi.protocols import xmlsafe
from pfi.protocols.xdm import constants as media
from pfi.protocols.xds import ebrim as k
from pfi.protocols.xds.model import (
    Association,
    Author,
    Coded,
    DocumentEntry,
    SubmissionSet,
    XdmDocument,
    XdmPackage,
)

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class XdmLimits:
    """Bounds applied before anything is decompressed or parsed.

    Defaults fit MSSanté mails (a few documents of a few MB); the ratio check applies only to
    members above ``ratio_floor_bytes`` so that tiny, very compressible files (README) pass.
    """

    max_archive_bytes: int = 64 * MiB
    max_members: int = 256
    max_member_bytes: int = 32 * MiB
    max_total_bytes: int = 128 * MiB
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1 * MiB
    max_metadata_bytes: int = 8 * MiB
    max_readme_bytes: int = 64 * 1024
    max_name_length: int = 255


def read_xdm(
    source: bytes | bytearray | memoryview | str | os.PathLike[str],
    *,
    limits: XdmLimits = XdmLimits(),  # noqa: B008 - frozen value object
) -> XdmPackage:
    """Check and read an XDM zip (bytes, or a path read into memory) into :class:`XdmPackage`.

    The documents are returned with their metadata; nothing is extracted to disk.
    """
    data = _load(source, limits)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        ValueError,
        OSError,
        NotImplementedError,  # "zip file version 6.4": a forged version-needed field
    ) as exc:
        raise InvalidInput(
            f"the attachment is not a readable zip archive ({type(exc).__name__})",
            code="XDM_NOT_ZIP",
        ) from None
    with archive:
        members = _check_members(infos, limits)
        meta_info, subset = _find_metadata(members)
        reader = _Reader(archive, data, limits)
        metadata = xmlsafe.parse(
            reader.read(meta_info),
            max_bytes=limits.max_metadata_bytes,
            code_prefix="XDM_METADATA",
            what="XDM METADATA.XML",
        )
        submission_set, entries, associations = parse_metadata(metadata)
        _check_single_patient(submission_set, entries)
        documents = tuple(
            _document(reader, members, subset, index, entry)
            for index, entry in enumerate(entries, start=1)
        )
        readme = _readme(reader, members, limits)
    return XdmPackage(
        submission_set=submission_set,
        documents=documents,
        associations=associations,
        subset=subset,
        readme=readme,
        members=tuple(i.filename for i in infos),
    )


# --- archive checks -------------------------------------------------------------------------------


def _load(source, limits: XdmLimits) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        try:
            size = os.stat(source).st_size
            if size > limits.max_archive_bytes:
                raise _too_large(size, limits)
            with open(source, "rb") as handle:
                data = handle.read(limits.max_archive_bytes + 1)
        except OSError as exc:
            raise InvalidInput(
                f"the XDM archive cannot be read ({type(exc).__name__})", code="XDM_NOT_ZIP"
            ) from None
    else:
        raise InvalidInput("the XDM archive must be bytes or a path", code="XDM_NOT_ZIP")
    if len(data) > limits.max_archive_bytes:
        raise _too_large(len(data), limits)
    return data


def _too_large(size: int, limits: XdmLimits) -> InvalidInput:
    return InvalidInput(
        f"the XDM archive is {size} bytes, over the limit of {limits.max_archive_bytes}",
        code="XDM_TOO_LARGE",
    )


_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def unsafe_name_reason(name: str, max_length: int = 255) -> str | None:
    """Why a zip member name is unsafe (``None`` if it is safe).

    Refused: absolute (``/x``), drive letter (``C:``), backslash, ``..`` or ``.`` segment,
    empty segment (``a//b``), control characters (NUL included), longer than ``max_length``.
    """
    if not name:
        return "empty name"
    if len(name) > max_length:
        return "name too long"
    if _CONTROL.search(name):
        return "control character in name"
    if "\\" in name:
        return "backslash in name"
    if name.startswith("/"):
        return "absolute path"
    if _DRIVE.match(name):
        return "drive letter"
    segments = name[:-1].split("/") if name.endswith("/") else name.split("/")
    if any(s == ".." for s in segments):
        return "parent-directory segment"
    if any(s in {"", "."} for s in segments):
        return "empty or '.' segment"
    return None


def _check_members(infos: list[zipfile.ZipInfo], limits: XdmLimits) -> dict[str, zipfile.ZipInfo]:
    if len(infos) > limits.max_members:
        raise InvalidInput(
            f"the XDM archive has {len(infos)} members, over the limit of {limits.max_members}",
            code="XDM_TOO_MANY_MEMBERS",
        )
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for index, info in enumerate(infos, start=1):
        reason = unsafe_name_reason(info.orig_filename, limits.max_name_length)
        if reason is None:
            reason = unsafe_name_reason(info.filename, limits.max_name_length)
        if reason:
            raise InvalidInput(
                f"member #{index} of the XDM archive has an unsafe path: {reason}",
                code="XDM_UNSAFE_PATH",
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise InvalidInput(
                f"member #{index} of the XDM archive is a symbolic link", code="XDM_SYMLINK"
            )
        if info.flag_bits & 0x1:
            raise InvalidInput(
                f"member #{index} of the XDM archive is encrypted", code="XDM_ENCRYPTED"
            )
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise InvalidInput(
                f"member #{index} uses compression method {info.compress_type} "
                "(only stored and deflated are accepted)",
                code="XDM_UNSUPPORTED_COMPRESSION",
            )
        key = _name_key(info.filename.rstrip("/"))
        if key in members:
            raise InvalidInput(
                f"member #{index} of the XDM archive repeats the name of another member "
                "(names are compared ignoring case and Unicode normalisation)",
                code="XDM_DUPLICATE_NAME",
            )
        members[key] = info
        if info.file_size > limits.max_member_bytes:
            raise InvalidInput(
                f"member #{index} declares {info.file_size} bytes uncompressed, over the limit "
                f"of {limits.max_member_bytes}",
                code="XDM_MEMBER_TOO_LARGE",
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise InvalidInput(
                f"the XDM archive expands to over {limits.max_total_bytes} bytes",
                code="XDM_TOTAL_TOO_LARGE",
            )
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise InvalidInput(
                f"member #{index} expands {info.file_size // max(info.compress_size, 1)} times, "
                f"over the limit of {limits.max_ratio:g} (zip bomb)",
                code="XDM_COMPRESSION_RATIO",
            )
    return members


class _Reader:
    """Reads members, counting every byte read against ``max_total_bytes``: the checks of
    :func:`_check_members` bound each member once, but METADATA.XML may name one member from
    many DocumentEntries, and each of them gets its own copy of the content."""

    def __init__(self, archive: zipfile.ZipFile, data: bytes, limits: XdmLimits) -> None:
        self.archive = archive
        self.data = data
        self.limits = limits
        self.total = 0

    def read(self, info: zipfile.ZipInfo) -> bytes:
        self.total += info.file_size
        if self.total > self.limits.max_total_bytes:
            raise InvalidInput(
                f"the XDM archive expands to over {self.limits.max_total_bytes} bytes "
                "(its members counted each time the metadata names them)",
                code="XDM_TOTAL_TOO_LARGE",
            )
        return _read_member(self.archive, self.data, info, self.limits)


def _read_member(
    archive: zipfile.ZipFile, data: bytes, info: zipfile.ZipInfo, limits: XdmLimits
) -> bytes:
    """The member's bytes, decompressed here so that nothing declared is trusted.

    ``zipfile`` opens the member (local header checks: signature, same name as the central
    directory); the compressed bytes are then read from the archive and inflated in chunks,
    measuring while streaming: never more output than the declared (already bounded) size, the
    ratio of output to compressed bytes *actually consumed* kept under ``max_ratio``, and at the
    end the deflate stream must span exactly the declared compressed size, with the right CRC.
    """
    corrupt = InvalidInput(
        "a member of the XDM archive is corrupt (CRC, size or compressed data error)",
        code="XDM_CORRUPT",
    )
    try:
        with archive.open(info):
            pass
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError, NotImplementedError):
        raise corrupt from None
    header = data[info.header_offset : info.header_offset + 30]
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise corrupt
    if header[6] & 0x1:
        raise InvalidInput(
            "a member of the XDM archive is encrypted (local header)", code="XDM_ENCRYPTED"
        )
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    start = info.header_offset + 30 + name_length + extra_length
    compressed = data[start : start + info.compress_size]
    if len(compressed) != info.compress_size:
        raise corrupt
    if info.compress_type == zipfile.ZIP_STORED:
        content = compressed
    else:
        content = _inflate(compressed, info, limits, corrupt)
    if len(content) != info.file_size or zlib.crc32(content) != info.CRC:
        raise corrupt
    return content


_CHUNK = 64 * 1024


def _inflate(
    compressed: bytes, info: zipfile.ZipInfo, limits: XdmLimits, corrupt: InvalidInput
) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out: list[bytes] = []
    produced = consumed = 0
    pending = memoryview(compressed)
    try:
        while not inflater.eof:
            if not inflater.unconsumed_tail and not pending:
                raise corrupt  # the stream does not end within the declared compressed size
            fed = inflater.unconsumed_tail or pending[:_CHUNK]
            if not inflater.unconsumed_tail:
                pending = pending[_CHUNK:]
            before = len(fed)
            piece = inflater.decompress(fed, info.file_size - produced + 1)
            consumed += before - len(inflater.unconsumed_tail) - len(inflater.unused_data)
            produced += len(piece)
            out.append(piece)
            if produced > info.file_size:
                raise corrupt  # longer than declared
            if produced > limits.ratio_floor_bytes and produced > limits.max_ratio * consumed:
                raise InvalidInput(
                    f"a member of the XDM archive expands over {limits.max_ratio:g} times "
                    "(zip bomb)",
                    code="XDM_COMPRESSION_RATIO",
                )
    except zlib.error:
        raise corrupt from None
    if inflater.unused_data or pending or consumed != info.compress_size:
        raise corrupt  # the declared compressed size is not the stream's
    return b"".join(out)


_METADATA = re.compile(r"^IHE_XDM/([^/]+)/METADATA\.XML$", re.IGNORECASE)


def _find_metadata(members: dict[str, zipfile.ZipInfo]) -> tuple[zipfile.ZipInfo, str]:
    found = [info for info in members.values() if _METADATA.match(info.filename)]
    if not found:
        raise InvalidInput(
            "the archive has no IHE_XDM/<subset>/METADATA.XML: not an IHE XDM package",
            code="XDM_NO_METADATA",
        )
    if len(found) > 1:
        raise InvalidInput(
            f"the XDM archive holds {len(found)} submission sets; one is supported",
            code="XDM_MULTIPLE_SUBSETS",
        )
    info = found[0]
    return info, info.filename.rsplit("/", 1)[0]


def _check_single_patient(ss: SubmissionSet, entries: tuple[DocumentEntry, ...]) -> None:
    """One patient per package: the entries' patientId match each other and the submission
    set's (ITI TF-3 §4.1.4; MSSanté: one mail concerns one patient, SC.MSS/CONF.23)."""
    ids = {e.patient_id for e in entries} | ({ss.patient_id} if ss.patient_id else set())
    if len(ids) > 1 or "" in ids:
        raise InvalidInput(
            "the XDM package does not concern exactly one patient "
            "(patientId missing or different between entries and submission set)",
            code="XDM_PATIENT_MISMATCH",
        )


def _document(
    reader: _Reader,
    members: dict[str, zipfile.ZipInfo],
    subset: str,
    index: int,
    entry: DocumentEntry,
) -> XdmDocument:
    if not entry.uri:
        raise InvalidInput(
            f"document entry #{index} has no URI slot (required in XDM)", code="XDM_NO_URI"
        )
    uri = unquote(entry.uri)
    if (
        unsafe_name_reason(uri) is not None
        or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri)
        or uri.endswith("/")
    ):
        raise InvalidInput(
            f"document entry #{index} has an unsafe URI (absolute, with a scheme or '..')",
            code="XDM_UNSAFE_URI",
        )
    candidates = (f"{subset}/{uri}", f"{media.XDM_ROOT}/{uri}", uri)
    info = next((members[_name_key(c)] for c in candidates if _name_key(c) in members), None)
    if info is None:
        raise InvalidInput(
            f"document entry #{index} refers to a file that is not in the archive",
            code="XDM_DOCUMENT_MISSING",
        )
    content = reader.read(info)
    if entry.size is not None and entry.size != len(content):
        raise InvalidInput(
            f"document entry #{index}: size slot {entry.size} but the file has {len(content)} "
            "bytes",
            code="XDM_SIZE_MISMATCH",
        )
    if entry.hash is not None and entry.hash.lower() != hashlib.sha1(content).hexdigest():
        raise InvalidInput(
            f"document entry #{index}: the SHA-1 of the file differs from its hash slot",
            code="XDM_HASH_MISMATCH",
        )
    return XdmDocument(entry=entry, content=content, path=info.filename)


def _name_key(name: str) -> str:
    """How member names are compared: ignoring case and Unicode normalisation (an "é" written
    as one character or as "e" and its accent is the same name on most file systems)."""
    return unicodedata.normalize("NFC", name).casefold()


def _readme(reader: _Reader, members: dict[str, zipfile.ZipInfo], limits: XdmLimits) -> str | None:
    info = members.get(_name_key(media.README_NAME))
    if info is None or info.file_size > limits.max_readme_bytes:
        return None
    data = reader.read(info)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# --- METADATA.XML ---------------------------------------------------------------------------------


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _kids(el: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in el if _local(child) == name]


def _kid(el: etree._Element, name: str) -> etree._Element | None:
    return next(iter(_kids(el, name)), None)


def _slots(el: etree._Element) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for slot in _kids(el, "Slot"):
        value_list = _kid(slot, "ValueList")
        values = tuple(
            v.text or "" for v in (_kids(value_list, "Value") if value_list is not None else [])
        )
        out.append((slot.get("name", ""), values))
    return out


def _localized(el: etree._Element, name: str) -> str | None:
    holder = _kid(el, name)
    string = _kid(holder, "LocalizedString") if holder is not None else None
    return string.get("value") if string is not None else None


def _coded(cl: etree._Element) -> Coded:
    slots = dict(_slots(cl))
    scheme = slots.get(k.SLOT_CODING_SCHEME, ("",))
    return Coded(
        code=cl.get("nodeRepresentation", ""),
        scheme=scheme[0] if scheme else "",
        display_name=_localized(cl, "Name") or "",
    )


def _author(cl: etree._Element) -> Author:
    slots: dict[str, tuple[str, ...]] = {}
    for name, values in _slots(cl):
        slots[name] = slots.get(name, ()) + values
    person = slots.get(k.SLOT_AUTHOR_PERSON, ())
    return Author(
        person=person[0] if person else None,
        institutions=slots.get(k.SLOT_AUTHOR_INSTITUTION, ()),
        roles=slots.get(k.SLOT_AUTHOR_ROLE, ()),
        specialties=slots.get(k.SLOT_AUTHOR_SPECIALTY, ()),
        telecoms=slots.get(k.SLOT_AUTHOR_TELECOMMUNICATION, ()),
    )


def _external_ids(el: etree._Element) -> dict[str, str]:
    return {
        x.get("identificationScheme", ""): x.get("value", "")
        for x in _kids(el, "ExternalIdentifier")
    }


def _joined_uri(values: tuple[str, ...]) -> str | None:
    """The ``URI`` slot; long URIs are split into ``n|part`` values (ITI TF-3 §4.2.3.2.24)."""
    if not values:
        return None
    parts = [re.match(r"^(\d+)\|(.*)$", v, re.S) for v in values]
    if len(values) > 1 and all(parts):
        return "".join(m.group(2) for m in sorted(parts, key=lambda m: int(m.group(1))))
    return values[0]


_ENTRY_SLOTS = {
    k.SLOT_CREATION_TIME,
    k.SLOT_SERVICE_START_TIME,
    k.SLOT_SERVICE_STOP_TIME,
    k.SLOT_LANGUAGE_CODE,
    k.SLOT_LEGAL_AUTHENTICATOR,
    k.SLOT_SOURCE_PATIENT_ID,
    k.SLOT_SOURCE_PATIENT_INFO,
    k.SLOT_HASH,
    k.SLOT_SIZE,
    k.SLOT_URI,
}


def _first(slots: dict[str, tuple[str, ...]], name: str) -> str | None:
    values = slots.get(name)
    return values[0] if values else None


def _entry(el: etree._Element, index: int) -> DocumentEntry:
    slot_list = _slots(el)
    slots = dict(slot_list)
    classes: dict[str, list[etree._Element]] = {}
    for cl in _kids(el, "Classification"):
        classes.setdefault(cl.get("classificationScheme", ""), []).append(cl)

    def one(scheme: str) -> Coded | None:
        found = classes.get(scheme)
        return _coded(found[0]) if found else None

    ids = _external_ids(el)
    unique_id = ids.get(k.DE_UNIQUE_ID)
    if not unique_id:
        raise InvalidInput(
            f"document entry #{index} has no XDSDocumentEntry.uniqueId",
            code="XDM_METADATA_INVALID",
        )
    size = _first(slots, k.SLOT_SIZE)
    try:
        size_value = int(size) if size is not None else None
    except ValueError:
        raise InvalidInput(
            f"document entry #{index} has a non-numeric size slot", code="XDM_METADATA_INVALID"
        ) from None
    return DocumentEntry(
        entry_id=el.get("id", ""),
        unique_id=unique_id,
        patient_id=ids.get(k.DE_PATIENT_ID, ""),
        mime_type=el.get("mimeType", ""),
        object_type=el.get("objectType", k.DOCUMENT_ENTRY_STABLE),
        title=_localized(el, "Name"),
        comments=_localized(el, "Description"),
        class_code=one(k.DE_CLASS_CODE),
        type_code=one(k.DE_TYPE_CODE),
        format_code=one(k.DE_FORMAT_CODE),
        confidentiality_codes=tuple(_coded(c) for c in classes.get(k.DE_CONFIDENTIALITY_CODE, [])),
        healthcare_facility_type_code=one(k.DE_HEALTHCARE_FACILITY_TYPE_CODE),
        practice_setting_code=one(k.DE_PRACTICE_SETTING_CODE),
        event_codes=tuple(_coded(c) for c in classes.get(k.DE_EVENT_CODE, [])),
        authors=tuple(_author(c) for c in classes.get(k.DE_AUTHOR, [])),
        legal_authenticator=_first(slots, k.SLOT_LEGAL_AUTHENTICATOR),
        creation_time=_first(slots, k.SLOT_CREATION_TIME),
        service_start_time=_first(slots, k.SLOT_SERVICE_START_TIME),
        service_stop_time=_first(slots, k.SLOT_SERVICE_STOP_TIME),
        language_code=_first(slots, k.SLOT_LANGUAGE_CODE),
        source_patient_id=_first(slots, k.SLOT_SOURCE_PATIENT_ID),
        source_patient_info=slots.get(k.SLOT_SOURCE_PATIENT_INFO, ()),
        hash=_first(slots, k.SLOT_HASH),
        size=size_value,
        uri=_joined_uri(slots.get(k.SLOT_URI, ())),
        extra_slots=tuple((n, v) for n, v in slot_list if n not in _ENTRY_SLOTS),
    )


_SUBMISSION_SLOTS = {k.SLOT_SUBMISSION_TIME, k.SLOT_INTENDED_RECIPIENT}


def _submission_set(el: etree._Element) -> SubmissionSet:
    slot_list = _slots(el)
    slots = dict(slot_list)
    classes = _kids(el, "Classification")
    ids = _external_ids(el)
    content = [c for c in classes if c.get("classificationScheme") == k.SS_CONTENT_TYPE_CODE]
    if not ids.get(k.SS_UNIQUE_ID):
        raise InvalidInput(
            "the submission set has no XDSSubmissionSet.uniqueId", code="XDM_METADATA_INVALID"
        )
    return SubmissionSet(
        entry_id=el.get("id", ""),
        unique_id=ids[k.SS_UNIQUE_ID],
        source_id=ids.get(k.SS_SOURCE_ID, ""),
        patient_id=ids.get(k.SS_PATIENT_ID),
        submission_time=_first(slots, k.SLOT_SUBMISSION_TIME),
        content_type_code=_coded(content[0]) if content else None,
        authors=tuple(_author(c) for c in classes if c.get("classificationScheme") == k.SS_AUTHOR),
        title=_localized(el, "Name"),
        comments=_localized(el, "Description"),
        intended_recipients=slots.get(k.SLOT_INTENDED_RECIPIENT, ()),
        extra_slots=tuple((n, v) for n, v in slot_list if n not in _SUBMISSION_SLOTS),
    )


def parse_metadata(
    root: etree._Element,
) -> tuple[SubmissionSet, tuple[DocumentEntry, ...], tuple[Association, ...]]:
    """Read an ebRIM 3.0 ``SubmitObjectsRequest`` (already safely parsed) into the model.

    Also usable on the ``lcm:SubmitObjectsRequest`` of an ITI-41 body. Folders are ignored.
    """
    if _local(root) != "SubmitObjectsRequest":
        raise InvalidInput(
            "METADATA.XML is not an ebRIM SubmitObjectsRequest", code="XDM_METADATA_INVALID"
        )
    objects = _kid(root, "RegistryObjectList")
    if objects is None:
        raise InvalidInput("METADATA.XML has no RegistryObjectList", code="XDM_METADATA_INVALID")
    extrinsic = _kids(objects, "ExtrinsicObject")
    packages = _kids(objects, "RegistryPackage")
    classified = {
        (c.get("classifiedObject"), c.get("classificationNode"))
        for c in [*_kids(objects, "Classification")]
        + [c for p in packages for c in _kids(p, "Classification")]
    }
    submission = [p for p in packages if (p.get("id"), k.SUBMISSION_SET_NODE) in classified]
    if not submission:
        submission = [p for p in packages if (p.get("id"), k.FOLDER_NODE) not in classified]
    if len(submission) != 1:
        raise InvalidInput(
            f"METADATA.XML must hold exactly one SubmissionSet (found {len(submission)})",
            code="XDM_METADATA_INVALID",
        )
    entries = tuple(
        _entry(el, index)
        for index, el in enumerate(extrinsic, start=1)
        if el.get("objectType", k.DOCUMENT_ENTRY_STABLE) in k.DOCUMENT_ENTRY_TYPES
    )
    if not entries:
        raise InvalidInput("METADATA.XML describes no document entry", code="XDM_METADATA_INVALID")
    associations = tuple(
        Association(
            id=a.get("id", ""),
            type=a.get("associationType", ""),
            source=a.get("sourceObject", ""),
            target=a.get("targetObject", ""),
            status=_first(dict(_slots(a)), k.SLOT_SUBMISSION_SET_STATUS),
        )
        for a in _kids(objects, "Association")
    )
    return _submission_set(submission[0]), entries, associations
