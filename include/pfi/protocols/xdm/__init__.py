"""IHE XDM packages (``IHE_XDM.ZIP``, IHE ITI-32) as exchanged over MSSanté.

::

    from pfi.protocols.xdm import read_xdm, pack_xdm

    package = read_xdm(zip_bytes)            # InvalidInput XDM_UNSAFE_PATH, XDM_HASH_MISMATCH …
    for doc in package.documents:            # XdmDocument(entry=DocumentEntry, content=bytes)
        ...
    data = pack_xdm([(entry, cda_bytes)], submission_set, date_time=(2024, 1, 16, 15, 11, 12))

Model (:mod:`pfi.protocols.xds.model`), reader (:mod:`pfi.protocols.xdm.reader`: archive checks, METADATA.XML
parsing), packer (:mod:`pfi.protocols.xdm.packer`: METADATA.XML generation, zip layout), identifiers
(:mod:`pfi.protocols.xds.ebrim`: XDS.b scheme UUIDs). The metadata of a CDA document (the CI-SIS
CDA → XDS mapping, visibility codes, submission set) is built by :mod:`pfi.protocols.xds`.
Spec: IHE ITI TF-2b §3.32, TF-3 §4.2; spec-facts §4 (XDM for MSSanté).
"""

from pfi.protocols.xdm.packer import build_metadata, finalize_entries, metadata_from_cda, pack_xdm
from pfi.protocols.xdm.reader import XdmLimits, parse_metadata, read_xdm, unsafe_name_reason
from pfi.protocols.xds.model import (
    Association,
    Author,
    Coded,
    DocumentEntry,
    SubmissionSet,
    XdmDocument,
    XdmPackage,
    xds_time,
)

__all__ = [
    "Association",
    "Author",
    "Coded",
    "DocumentEntry",
    "SubmissionSet",
    "XdmDocument",
    "XdmLimits",
    "XdmPackage",
    "build_metadata",
    "finalize_entries",
    "metadata_from_cda",
    "pack_xdm",
    "parse_metadata",
    "read_xdm",
    "unsafe_name_reason",
    "xds_time",
]
