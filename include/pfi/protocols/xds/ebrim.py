"""ebRIM 3.0 namespaces and the XDS.b metadata identifiers used in an XDM ``METADATA.XML``.

One named constant each, no logic. Source: IHE ITI TF-3 §4.2.5 ("Metadata identifiers": the
classification schemes, external identifier schemes and object types of XDS.b), OASIS ebXML
RegRep 3.0 (``rim.xsd``, ``lcm.xsd``), IHE ITI TF-2b §3.32 (XDM media layout).
"""

from __future__ import annotations

# --- Namespaces -----------------------------------------------------------------------------------
NS_RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
NSMAP = {"lcm": NS_LCM, "rim": NS_RIM}

# --- DocumentEntry (ExtrinsicObject) --------------------------------------------------------------
DOCUMENT_ENTRY_STABLE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
DOCUMENT_ENTRY_ON_DEMAND = "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"
DOCUMENT_ENTRY_TYPES = frozenset({DOCUMENT_ENTRY_STABLE, DOCUMENT_ENTRY_ON_DEMAND})

DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_CONFIDENTIALITY_CODE = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_EVENT_CODE = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
DE_FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_HEALTHCARE_FACILITY_TYPE_CODE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE_SETTING_CODE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"

# --- SubmissionSet (RegistryPackage) --------------------------------------------------------------
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE_CODE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"

# --- Folder (RegistryPackage): recognised only to tell it apart from the SubmissionSet -----------
FOLDER_NODE = "urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2"

# --- Associations ---------------------------------------------------------------------------------
ASSOC_HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
ASSOC_RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
ASSOC_XFRM = "urn:ihe:iti:2007:AssociationType:XFRM"
ASSOC_APND = "urn:ihe:iti:2007:AssociationType:APND"
ASSOC_XFRM_RPLC = "urn:ihe:iti:2007:AssociationType:XFRM_RPLC"
ASSOC_SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
SLOT_SUBMISSION_SET_STATUS = "SubmissionSetStatus"
SUBMISSION_SET_STATUS_ORIGINAL = "Original"

# --- Object types and status written by the packer ------------------------------------------------
OBJECT_TYPE_REGISTRY_PACKAGE = (
    "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage"
)
OBJECT_TYPE_ASSOCIATION = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association"
OBJECT_TYPE_CLASSIFICATION = (
    "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification"
)
OBJECT_TYPE_EXTERNAL_IDENTIFIER = (
    "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier"
)
STATUS_APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"

# --- Slot names (ITI TF-3 §4.2.3) -----------------------------------------------------------------
SLOT_CREATION_TIME = "creationTime"
SLOT_SERVICE_START_TIME = "serviceStartTime"
SLOT_SERVICE_STOP_TIME = "serviceStopTime"
SLOT_LANGUAGE_CODE = "languageCode"
SLOT_LEGAL_AUTHENTICATOR = "legalAuthenticator"
SLOT_SOURCE_PATIENT_ID = "sourcePatientId"
SLOT_SOURCE_PATIENT_INFO = "sourcePatientInfo"
SLOT_HASH = "hash"
SLOT_SIZE = "size"
SLOT_URI = "URI"
SLOT_REPOSITORY_UNIQUE_ID = "repositoryUniqueId"
SLOT_SUBMISSION_TIME = "submissionTime"
SLOT_INTENDED_RECIPIENT = "intendedRecipient"
SLOT_CODING_SCHEME = "codingScheme"
SLOT_AUTHOR_PERSON = "authorPerson"
SLOT_AUTHOR_INSTITUTION = "authorInstitution"
SLOT_AUTHOR_ROLE = "authorRole"
SLOT_AUTHOR_SPECIALTY = "authorSpecialty"
SLOT_AUTHOR_TELECOMMUNICATION = "authorTelecommunication"

# --- Format codes (CI-SIS ASS_A11/ASS_A12, IHE XDS-SD; spec-facts §3.8) ---------------------------
FORMAT_XDS_SD_PDF = "urn:ihe:iti:xds-sd:pdf:2008"
FORMAT_XDS_SD_TEXT = "urn:ihe:iti:xds-sd:text:2008"
FORMAT_CODING_SCHEME = "1.3.6.1.4.1.19376.1.2.3"
