"""The frozen model of an XDM package: submission set, document entries, associations.

Values keep the XDS wire formats of IHE ITI TF-3 §4.2.3 (``CX`` patient ids such as
``279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH``, ``XCN``/``XON`` authors, ``DTM`` times
``YYYY[MM[DD[hh[mm[ss]]]]]`` in UTC) so that reading and packing are exact inverses and a round
trip compares equal. :func:`xds_time` turns an aware datetime into a ``DTM``.

Patient data (``patient_id``, ``source_patient_id``, ``source_patient_info``) and document bytes
are kept out of every ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from pfi.protocols.xds.ebrim import ASSOC_RPLC, DOCUMENT_ENTRY_STABLE


@dataclass(frozen=True, slots=True)
class Coded:
    """An XDS coded value: ``nodeRepresentation``, its ``codingScheme`` slot and display name."""

    code: str
    scheme: str
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class Author:
    """An XDS author classification (ITI TF-3 §4.2.3.1.4): ``XCN`` person, ``XON`` institutions."""

    person: str | None = None
    institutions: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    specialties: tuple[str, ...] = ()
    telecoms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    """One ``rim:ExtrinsicObject`` (XDS DocumentEntry) of ``METADATA.XML``.

    ``hash`` (SHA-1, hex), ``size`` and ``uri`` are computed by the packer; the reader checks
    them against the document bytes.
    """

    entry_id: str
    unique_id: str
    patient_id: str = field(repr=False)
    mime_type: str = "text/xml"
    object_type: str = DOCUMENT_ENTRY_STABLE
    title: str | None = None
    comments: str | None = None
    class_code: Coded | None = None
    type_code: Coded | None = None
    format_code: Coded | None = None
    confidentiality_codes: tuple[Coded, ...] = ()
    healthcare_facility_type_code: Coded | None = None
    practice_setting_code: Coded | None = None
    event_codes: tuple[Coded, ...] = ()
    authors: tuple[Author, ...] = ()
    legal_authenticator: str | None = None
    creation_time: str | None = None
    service_start_time: str | None = None
    service_stop_time: str | None = None
    language_code: str | None = None
    source_patient_id: str | None = field(default=None, repr=False)
    source_patient_info: tuple[str, ...] = field(default=(), repr=False)
    hash: str | None = None
    size: int | None = None
    uri: str | None = None
    #: Slots this model has no field for (e.g. ``urn:ihe:iti:xds:2013:referenceIdList``), kept
    #: in document order so that nothing a sender wrote is lost.
    extra_slots: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class SubmissionSet:
    """The ``rim:RegistryPackage`` classified as XDS SubmissionSet."""

    entry_id: str
    unique_id: str
    source_id: str
    patient_id: str | None = field(default=None, repr=False)
    submission_time: str | None = None
    content_type_code: Coded | None = None
    authors: tuple[Author, ...] = ()
    title: str | None = None
    comments: str | None = None
    #: XDM/XDR ``intendedRecipient`` (``XON|XCN|XTN``; ITI TF-3 §4.2.3.3.7).
    intended_recipients: tuple[str, ...] = field(default=(), repr=False)
    extra_slots: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class Association:
    """A ``rim:Association``: HasMember (submission set → entry), RPLC (new → old entry)…"""

    id: str
    type: str
    source: str
    target: str
    status: str | None = None


@dataclass(frozen=True, slots=True)
class XdmDocument:
    """A document entry and its bytes, as found at ``path`` in the archive."""

    entry: DocumentEntry
    content: bytes = field(repr=False)
    path: str = ""


@dataclass(frozen=True, slots=True)
class XdmPackage:
    """What :func:`pfi.protocols.xdm.read_xdm` found in an ``IHE_XDM.ZIP``."""

    submission_set: SubmissionSet
    documents: tuple[XdmDocument, ...]
    associations: tuple[Association, ...] = ()
    #: Folder of the submission set inside the archive, e.g. ``IHE_XDM/SUBSET01``.
    subset: str = ""
    readme: str | None = field(default=None, repr=False)
    #: Names of every member of the archive, in archive order.
    members: tuple[str, ...] = field(default=(), repr=False)

    @property
    def patient_id(self) -> str | None:
        """The ``patientId`` the receiver identifies the patient by (SC.MSS/CONF.24)."""
        if self.submission_set.patient_id:
            return self.submission_set.patient_id
        return self.documents[0].entry.patient_id if self.documents else None

    def replacements(self) -> list[tuple[str, str]]:
        """``(new entry id, replaced entry id or uniqueId)`` for each RPLC association."""
        return [(a.source, a.target) for a in self.associations if a.type == ASSOC_RPLC]


def xds_time(value: datetime | date) -> str:
    """An XDS ``DTM`` (ITI TF-3 Table 4.2.3.1.7-2): UTC, ``YYYYMMDDhhmmss``.

    An aware datetime is converted to UTC; a naive one is taken as already UTC; a date keeps
    day precision (``YYYYMMDD``).
    """
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y%m%d%H%M%S")
    return value.strftime("%Y%m%d")
