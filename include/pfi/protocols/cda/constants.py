"""Namespaces, OIDs and code systems of CDA R2 as profiled by the CI-SIS.

One named constant each, no logic. Sources: HL7 CDA R2 (POCD_HD000040), CI-SIS "Structuration
minimale des documents de santé" (schematron ``1.2.250.1.213.1.1.1.1``), IHE XDS-SD, the INS
referential (OIDs of the national health identifier).
"""

from __future__ import annotations

# --- XML namespaces -------------------------------------------------------------------------------
NS_HL7 = "urn:hl7-org:v3"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS_SDTC = "urn:hl7-org:sdtc"
NS_DICOM_PS3_20 = "urn:dicom-org:ps3-20"

#: Prefix map for XPath over a CDA document.
NSMAP = {"hl7": NS_HL7}

# --- Skeleton -------------------------------------------------------------------------------------
#: ``typeId/@root`` and ``@extension`` of every CDA R2 document.
TYPE_ID_ROOT = "2.16.840.1.113883.1.3"
TYPE_ID_EXTENSION = "POCD_HD000040"
#: ``realmCode/@code`` of French documents.
REALM_FR = "FR"

# --- Header templateIds ---------------------------------------------------------------------------
#: HL7 France.
TEMPLATE_HL7_FRANCE = "2.16.840.1.113883.2.8.2.1"
#: CI-SIS "Structuration minimale".
TEMPLATE_CISIS_STRUCT_MIN = "1.2.250.1.213.1.1.1.1"
#: IHE XDS-SD: an unstructured (N1) document. Replaces the volet's templateId in N1 documents.
TEMPLATE_XDS_SD = "1.3.6.1.4.1.19376.1.2.20"
#: The exactly three templateIds of a CI-SIS N1 document (spec-facts §3.1).
N1_TEMPLATE_IDS = frozenset({TEMPLATE_HL7_FRANCE, TEMPLATE_CISIS_STRUCT_MIN, TEMPLATE_XDS_SD})
#: The two templateIds every CI-SIS document carries.
REQUIRED_TEMPLATE_IDS = frozenset({TEMPLATE_HL7_FRANCE, TEMPLATE_CISIS_STRUCT_MIN})

#: CI-SIS document-model templateIds seen in the official examples (N3).
TEMPLATE_LDL_SES = "1.2.250.1.213.1.1.1.29"
TEMPLATE_LDL_EES = "1.2.250.1.213.1.1.1.21"
TEMPLATE_CR_BIO = "1.2.250.1.213.1.1.1.55"
TEMPLATE_IHE_XD_LAB = "1.3.6.1.4.1.19376.1.3.3"
TEMPLATE_CR_IMG = "1.2.250.1.213.1.1.1.45"
TEMPLATE_EP_MED_DM = "1.2.250.1.213.1.1.1.39"

# --- Patient identifiers (INS) --------------------------------------------------------------------
OID_INS_NIR = "1.2.250.1.213.1.4.8"
OID_INS_NIA = "1.2.250.1.213.1.4.9"
OID_INS_NIR_TEST = "1.2.250.1.213.1.4.10"
OID_INS_NIR_DEMO = "1.2.250.1.213.1.4.11"
#: ``recordTarget/patientRole/id/@root`` values that carry an INS matricule.
INS_OIDS = frozenset({OID_INS_NIR, OID_INS_NIA, OID_INS_NIR_TEST, OID_INS_NIR_DEMO})
#: Length of the INS matricule (NIR or NIA, 13 characters + 2-digit key).
INS_MATRICULE_LENGTH = 15

#: Name-part qualifiers allowed by the CI-SIS with an INS: birth (BR) and used name (CL).
NAME_QUALIFIER_BIRTH = "BR"
NAME_QUALIFIER_USED = "CL"
ALLOWED_NAME_QUALIFIERS = frozenset({NAME_QUALIFIER_BIRTH, NAME_QUALIFIER_USED})

# --- Professionals and organisations --------------------------------------------------------------
#: RPPS/ADELI national identifiers of professionals (IdNatPs).
OID_IDNAT_PS = "1.2.250.1.71.4.2.1"
#: National structure identifiers (IdNatSt: FINESS, SIRET… with a type prefix).
OID_IDNAT_STRUCT = "1.2.250.1.71.4.2.2"

# --- Code systems ---------------------------------------------------------------------------------
CS_LOINC = "2.16.840.1.113883.6.1"
CS_CONFIDENTIALITY = "2.16.840.1.113883.5.25"
CS_ADMINISTRATIVE_GENDER = "2.16.840.1.113883.5.1"
#: TRE_A07 "Visibilité" (MASQUE_PS, INVISIBLE_PATIENT…), used as extra XDS confidentiality codes.
CS_VISIBILITY = "1.2.250.1.213.1.1.4.13"
#: TRE_R02 "SecteurActivite" (healthCareFacility/code, XDS healthcareFacilityTypeCode).
CS_SECTEUR_ACTIVITE = "1.2.250.1.71.4.2.4"
#: TRE_A01 "CadreExercice" (standardIndustryClassCode, XDS practiceSettingCode).
CS_CADRE_EXERCICE = "1.2.250.1.213.1.1.4.9"
#: TRE_A05 document types that are not LOINC (e.g. PRESC-BIO).
CS_TRE_A05 = "1.2.250.1.213.1.1.4.12"

#: ``confidentialityCode/@code`` values allowed in a CI-SIS header.
CONFIDENTIALITY_CODES = frozenset({"N", "R", "V"})

# --- relatedDocument ------------------------------------------------------------------------------
RELATED_REPLACE = "RPLC"

# --- nonXMLBody -----------------------------------------------------------------------------------
MEDIA_PDF = "application/pdf"
REPRESENTATION_B64 = "B64"
