"""Identifiers of the DMP feed: namespaces, WS-Addressing actions, XDS and ebRS codes, VIHF names.

One named constant each, no logic. Sources: IHE ITI TF-2b §3.41 (ITI-41), TF-2b §3.57 (ITI-57),
TF-3 §4.2 (XDS metadata), ebRS 3.0, and spec-facts §5 (DMP, VIHF, signature document).
"""

# -- namespaces ------------------------------------------------------------------------------------
NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_WSA = "http://www.w3.org/2005/08/addressing"
NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XADES = "http://uri.etsi.org/01903/v1.3.2#"
NS_XOP = "http://www.w3.org/2004/08/xop/include"
NS_XDS = "urn:ihe:iti:xds-b:2007"
NS_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS_RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
NS_HL7 = "urn:hl7-org:v3"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {
    "soap": NS_SOAP12,
    "wsa": NS_WSA,
    "wsse": NS_WSSE,
    "saml2": NS_SAML2,
    "ds": NS_DS,
    "xades": NS_XADES,
    "xop": NS_XOP,
    "xds": NS_XDS,
    "lcm": NS_LCM,
    "rim": NS_RIM,
    "rs": NS_RS,
}

# -- transactions ----------------------------------------------------------------------------------
ACTION_ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
ACTION_FAULT = "http://www.w3.org/2005/08/addressing/soap/fault"

# -- ebRS statuses and XDS associations ------------------------------------------------------------
RESPONSE_SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
RESPONSE_FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
RESPONSE_PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
SEVERITY_WARNING = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"
STATUS_APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
#: The availability status the DMP uses for a deleted document (TD3.3c, spec-facts §5.2).
STATUS_DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"
ASSOC_HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
ASSOC_RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
ASSOC_SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
ASSOC_UPDATE_STATUS = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
OBJECT_TYPE_REGISTRY_PACKAGE = (
    "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage"
)
DOCUMENT_ENTRY_STABLE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE_CODE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"

# -- codes -----------------------------------------------------------------------------------------
#: contentTypeCode of the submission set: JDV_J59 (spec-facts §5.4), from PV1-2.
CONTENT_TYPE_SCHEME = "1.2.250.1.213.2.2"
CONTENT_TYPE_BY_PATIENT_CLASS = {"I": "03", "O": "07", "R": "19", "N": "97", "E": "07"}
CONTENT_TYPE_DEFAULT = "97"
#: Visibility codes TRE_A07 (spec-facts §3.6), added as extra confidentialityCode values.
VISIBILITY_SCHEME = "1.2.250.1.213.1.1.4.13"
VISIBILITY_MASQUE_PS = "MASQUE_PS"
VISIBILITY_INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
VISIBILITY_INVISIBLE_REP_LEGAUX = "INVISIBLE_REPRESENTANTS_LEGAUX"
HL7_CONFIDENTIALITY_SCHEME = "2.16.840.1.113883.5.25"
#: The XAdES signature document of every lot (spec-facts §5.4, DRIM-M_DATA publication.xml).
SIGNATURE_CLASS_CODE = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"
SIGNATURE_TYPE_CODE = "E1762"
SIGNATURE_FORMAT_CODE = "http://www.w3.org/2000/09/xmldsig#"
SIGNATURE_EVENT_CODE = "1.2.840.10065.1.12.1.14"
SIGNATURE_EVENT_SCHEME = "1.2.840.10065.1.12"
SIGNATURE_LANGUAGE = "art"
DE_EVENT_CODE = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"

# -- VIHF (spec-facts §5.3) ------------------------------------------------------------------------
VIHF_VERSION = "3.0"
AUTHN_MODE_INDIRECT = "INDIRECTE"
RESOURCE_URN_DMP = "urn:dmp"
NAMEID_FORMAT_X509 = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
AUTHN_CONTEXT_UNSPECIFIED = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
ATTR_SUBJECT_ID = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
ATTR_ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
ATTR_RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
ATTR_PURPOSE_OF_USE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
ATTR_CONFIDENTIALITY = "urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code"
PURPOSE_SCHEME = "1.2.250.1.213.1.1.4.248"
ROLE_AUTOMATE = "AUTOMATE"
ROLE_AUTOMATE_SCHEME = "1.2.250.1.213.1.1.4.6"

# -- registry error codes the client acts on -------------------------------------------------------
#: "Already registered": the same document sent again after a lost answer counts as accepted.
ALREADY_REGISTERED_CODES = frozenset(
    {"XDSDuplicateUniqueIdInRegistry", "XDSDuplicateDocument", "DMPDocumentAlreadyExists"}
)
#: Registry errors that say "try later" (ITI TF-3 table 4.2.4.1-2).
TRANSIENT_CODES = frozenset(
    {
        "XDSRegistryBusy",
        "XDSRepositoryBusy",
        "XDSRegistryOutOfResources",
        "XDSRepositoryOutOfResources",
        "XDSRegistryNotAvailable",
    }
)
