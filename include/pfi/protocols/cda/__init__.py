"""CDA R2 documents (CI-SIS): read the header into a frozen model, list its defects, make N1.

::

    from pfi.protocols.cda import build_n1, check_header, pdf_of, read_cda

    doc = read_cda(data)              # InvalidInput CDA_NOT_XML / CDA_NOT_CDA / CDA_MISSING_ID …
    for defect in check_header(doc):  # CDA_NO_SETID, CDA_NAME_QUALIFIER, CDA_N1_TEMPLATE_IDS …
        ...
    pdf = pdf_of(doc)                 # N1 only: the encapsulated PDF (mail attachment)

    data = build_n1(N1Document(pdf=..., document_type=SEGUR_DOCUMENT_TYPES["cr-operatoire"],
                               patient=PatientIdentity(...), organization=structure_of_site(s),
                               author=..., legal_authenticator=..., ...))   # N1 around a PDF

Model / reader split as in the stdlib ``email`` package; the CDA → XDS metadata mapping lives
in :mod:`pfi.protocols.xds`. Spec: CI-SIS "Structuration minimale des documents de
santé" (spec-facts §3), HL7 CDA R2.
"""

from pfi.protocols.cda.generator import (
    SEGUR_DOCUMENT_TYPES,
    DocumentType,
    N1Document,
    PatientIdentity,
    Professional,
    Software,
    Structure,
    build_n1,
    document_type_of,
    n1_from_request,
    software_of_site,
    structure_of_site,
)
from pfi.protocols.cda.model import (
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
from pfi.protocols.cda.reader import (
    DEFAULT_MAX_BYTES,
    check_header,
    parse_ts,
    pdf_of,
    read_cda,
    require_valid_header,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SEGUR_DOCUMENT_TYPES",
    "DocumentType",
    "N1Document",
    "PatientIdentity",
    "Professional",
    "Software",
    "Structure",
    "build_n1",
    "document_type_of",
    "n1_from_request",
    "software_of_site",
    "structure_of_site",
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
