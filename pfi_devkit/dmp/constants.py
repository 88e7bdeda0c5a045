"""What the fake DMP speaks: namespaces, WS-Addressing actions and paths, ebRS statuses, XDS
schemes, registry error codes, the VIHF attributes and DMP metadata it requires, its limits.

No behaviour here; every other module of :mod:`pfi_devkit.dmp` reads these names.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from lxml import etree

HOST = "127.0.0.1"

# -- namespaces ------------------------------------------------------------------------------------
NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS_WSA = "http://www.w3.org/2005/08/addressing"
NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XOP = "http://www.w3.org/2004/08/xop/include"
NS_XDS = "urn:ihe:iti:xds-b:2007"
NS_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS_RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
NSMAP = {
    "soap": NS_SOAP12,
    "wsa": NS_WSA,
    "wsse": NS_WSSE,
    "saml2": NS_SAML2,
    "ds": NS_DS,
    "xop": NS_XOP,
    "xds": NS_XDS,
    "lcm": NS_LCM,
    "rim": NS_RIM,
    "rs": NS_RS,
}

# -- transactions (WS-Addressing actions) and where they are served --------------------------------
ACTION_ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_ITI41_RESPONSE = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
ACTION_ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
ACTION_ITI57_RESPONSE = "urn:ihe:iti:2010:UpdateDocumentSetResponse"
ACTION_FAULT = "http://www.w3.org/2005/08/addressing/soap/fault"
REPOSITORY_PATH = "/si-dmp-server/v2/services/repository"
REGISTRY_PATH = "/si-dmp-server/v2/services/registry"
CONTROL_PATH = "/_devkit"
ACTIONS_BY_PATH = {REPOSITORY_PATH: ACTION_ITI41, REGISTRY_PATH: ACTION_ITI57}
RESPONSE_ACTIONS = {ACTION_ITI41: ACTION_ITI41_RESPONSE, ACTION_ITI57: ACTION_ITI57_RESPONSE}

# -- ebRS statuses ---------------------------------------------------------------------------------
RESPONSE_SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
RESPONSE_FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
SEVERITY_ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
STATUS_APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
STATUS_DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
STATUS_DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"
STATUS_ARCHIVED = "urn:asip:ci-sis:2010:StatusType:Archived"
ITI57_NEW_STATUSES = (STATUS_DELETED, STATUS_ARCHIVED, STATUS_APPROVED, STATUS_DEPRECATED)

# -- XDS associations, object types, classification and identification schemes ---------------------
ASSOC_HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
ASSOC_RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
ASSOC_SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
ASSOC_UPDATE_STATUS = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
OBJECT_TYPE_STABLE_ENTRY = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_CONTENT_TYPE_CODE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_CONFIDENTIALITY_CODE = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_HEALTHCARE_FACILITY_TYPE_CODE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE_SETTING_CODE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
#: classCode of the XAdES signature document the DMP wants in every lot (spec-facts §5.4).
SIGNATURE_CLASS_CODE = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
#: What ``strict_metadata`` requires of every document entry (spec-facts §5.4, IG-CDA mapping):
#: classification schemes by name, then slots.
DMP_REQUIRED_ENTRY_METADATA = (
    ("classCode", DE_CLASS_CODE),
    ("typeCode", DE_TYPE_CODE),
    ("formatCode", DE_FORMAT_CODE),
    ("confidentialityCode", DE_CONFIDENTIALITY_CODE),
    ("healthcareFacilityTypeCode", DE_HEALTHCARE_FACILITY_TYPE_CODE),
    ("practiceSettingCode", DE_PRACTICE_SETTING_CODE),
    ("author", DE_AUTHOR),
)
DMP_REQUIRED_ENTRY_SLOTS = ("creationTime", "languageCode", "sourcePatientId")
#: Digest algorithms accepted in the signature document's IHEManifest.
MANIFEST_DIGESTS = {
    "http://www.w3.org/2001/04/xmlenc#sha256": hashlib.sha256,
    "http://www.w3.org/2000/09/xmldsig#sha1": hashlib.sha1,
}

# -- registry error codes --------------------------------------------------------------------------
XDS_MISSING_DOCUMENT = "XDSMissingDocument"
XDS_MISSING_DOCUMENT_METADATA = "XDSMissingDocumentMetadata"
XDS_REPOSITORY_METADATA_ERROR = "XDSRepositoryMetadataError"
XDS_REGISTRY_METADATA_ERROR = "XDSRegistryMetadataError"
XDS_NON_IDENTICAL_HASH = "XDSNonIdenticalHash"
XDS_NON_IDENTICAL_SIZE = "XDSNonIdenticalSize"
XDS_PATIENT_ID_DOES_NOT_MATCH = "XDSPatientIdDoesNotMatch"
XDS_DUPLICATE_UNIQUE_ID_IN_MESSAGE = "XDSRegistryDuplicateUniqueIdInMessage"
XDS_DUPLICATE_UNIQUE_ID_IN_REGISTRY = "XDSDuplicateUniqueIdInRegistry"
XDS_METADATA_UPDATE_ERROR = "XDSMetadataUpdateError"
UNRESOLVED_REFERENCE = "UnresolvedReferenceException"
#: Default code of the ``fail`` mode: the DMP error seen in the ANS ZAM examples.
DEFAULT_FAIL_CODE = "DMPClosed"

#: VIHF attributes a DMP feed in indirect authentication carries (spec-facts §5.3); pass them
#: as ``required_vihf_attributes`` to refuse an assertion that lacks one.
VIHF_ATTRIBUTES_DMP = (
    "VIHF_Version",
    "Authentification_Mode",
    "Identifiant_Structure",
    "Secteur_Activite",
    "urn:oasis:names:tc:xspa:1.0:subject:subject-id",
    "urn:oasis:names:tc:xacml:2.0:subject:role",
    "urn:oasis:names:tc:xacml:2.0:resource:resource-id",
    "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse",
    "Ressource_URN",
)

Mode = Literal["normal", "fail", "transient", "slow", "drop", "down"]
MODES: tuple[Mode, ...] = ("normal", "fail", "transient", "slow", "drop", "down")
MAX_BODY = 64 * 1024 * 1024
DEFAULT_SLOW_DELAY = 5.0
RETRY_AFTER_SECONDS = 1
CONNECTION_TIMEOUT = 30.0

#: Parses requests safely: no entity resolution, no network, no DTD loading.
SAFE_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=False
)


def qname(ns: str, name: str) -> str:
    """Clark notation ``{namespace}name`` of an element or attribute."""
    return f"{{{ns}}}{name}"
