"""CDA R2 documents (CI-SIS): read the header into a frozen model, list its known defects.

::

    from pfi.cda import read_cda, check_header

    doc = read_cda(data)              # InvalidInput CDA_NOT_XML / CDA_NOT_CDA / CDA_MISSING_ID …
    for defect in check_header(doc):  # CDA_NO_SETID, CDA_NAME_QUALIFIER, CDA_N1_TEMPLATE_IDS …
        ...
    pdf = pdf_of(doc)                 # N1 only: the encapsulated PDF (mail attachment)

Model / reader split as in the stdlib ``email`` package; the CDA → XDS metadata mapping lives
in :mod:`pfi.xds`. Spec: CI-SIS "Structuration minimale des documents de
santé" (spec-facts §3), HL7 CDA R2.
"""

from pfi.cda.model import (
    CdaDocument,
    Code,
    Defect,
    Encounter,
    Identifier,
    NamePart,
    Organization,
    Participant,
    Patient,
    PersonName,
    RelatedDocument,
    ServiceEvent,
)
from pfi.cda.reader import (
    DEFAULT_MAX_BYTES,
    check_header,
    parse_ts,
    pdf_of,
    read_cda,
    require_valid_header,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "CdaDocument",
    "Code",
    "Defect",
    "Encounter",
    "Identifier",
    "NamePart",
    "Organization",
    "Participant",
    "Patient",
    "PersonName",
    "RelatedDocument",
    "ServiceEvent",
    "check_header",
    "parse_ts",
    "pdf_of",
    "read_cda",
    "require_valid_header",
]
