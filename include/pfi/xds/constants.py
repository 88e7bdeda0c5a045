"""Code systems and correspondence tables of the CDA → XDS mapping (CI-SIS, DMP value sets).

One named constant or table each, no logic. Sources, cited per table:

- IG-CDA ``mapping.md`` ("Mapping XDS", Lot de soumission / Fiche) and the CI-SIS annex
  "Lien entre l'en-tête CDA et les métadonnées XDS" it points to (``lien-entete-cda-meta-xds``);
- value sets JDV_J57-ClassCode-DMP, JDV_J07-XdsTypeCode-CISIS, JDV_J59-ContentTypeCode-DMP,
  TRE_A07 (visibility), and the ConceptMaps ASS_X04 (type → class), ASS_A11 (CDA model →
  formatCode), ASS_A12 (N1 media type → formatCode); spec-facts §3.6–3.8, §4.3, §5.4.

The ASS_X04 ConceptMap itself is not in the kit: :data:`CLASS_BY_TYPE` is derived from the
class semantics of JDV_J57 for the document types the PFI handles (the Ségur list, spec-facts
§3.7) and is checked in the tests against the type value set JDV_J07. A type missing here gives
no classCode, which :func:`pfi.xds.missing_required` reports.
"""

from __future__ import annotations

# --- Coding schemes -------------------------------------------------------------------------------
#: TRE_A03 ClasseDocument (JDV_J57-ClassCode-DMP): XDS classCode.
CS_CLASS_CODE = "1.2.250.1.213.1.1.4.1"
#: LOINC (JDV_J07 type codes).
CS_LOINC = "2.16.840.1.113883.6.1"
#: TRE_A05 TypeDocComplementaire: the non-LOINC type codes (PRESC-BIO…).
CS_TRE_A05 = "1.2.250.1.213.1.1.4.12"
#: HL7 v3 Confidentiality (N/R/V).
CS_CONFIDENTIALITY = "2.16.840.1.113883.5.25"
#: TRE_A07 StatutVisibiliteDocument: the DMP visibility codes added as confidentialityCode.
CS_VISIBILITY = "1.2.250.1.213.1.1.4.13"
#: TRE_A11 IheFormatCode: formatCodes defined by IHE (``urn:ihe:…``).
CS_FORMAT_CODE_IHE = "1.3.6.1.4.1.19376.1.2.3"
#: TRE_A06 FormatCodeComplementaire: French formatCodes (``urn:asip:…``, ``urn:ans:…``,
#: ``urn:ihe:iti-fr:…``).
CS_FORMAT_CODE_FR = "1.2.250.1.213.1.1.4.2.282"
#: JDV_J59-ContentTypeCode-DMP coding scheme (SubmissionSet contentTypeCode).
CS_CONTENT_TYPE = "1.2.250.1.213.2.2"
#: TRE_R02 SecteurActivite (healthcareFacilityTypeCode).
CS_FACILITY_TYPE = "1.2.250.1.71.4.2.4"
#: TRE_A01 CadreExercice (practiceSettingCode).
CS_PRACTICE_SETTING = "1.2.250.1.213.1.1.4.9"

# --- Identifier assigning authorities -------------------------------------------------------------
#: IdNatPs (RPPS/ADELI) and IdNatStruct: the ``&OID&ISO`` of XCN persons and XON institutions.
OID_IDNAT_PS = "1.2.250.1.71.4.2.1"
OID_IDNAT_STRUCT = "1.2.250.1.71.4.2.2"

# --- classCode: JDV_J57-ClassCode-DMP -------------------------------------------------------------
CLASS_DISPLAY = {
    "10": "Compte rendu",
    "11": "Synthèse",
    "31": "Imagerie médicale",
    "42": "Prescription",
    "43": "Dispensation",
    "44": "Plan de soins, protocole de soins",
    "45": "Traitement administré",
    "52": "Certificat, déclaration",
    "60": "Données de remboursement",
    "90": "Autres documents déposés par le patient",
    "95": "Document de gestion",
}

#: ASS_X04-like correspondence: document type ``code/@code`` → classCode (JDV_J57).
CLASS_BY_TYPE = {
    # Comptes rendus (class 10)
    "11488-4": "10",  # CR ou fiche de consultation ou de visite
    "11490-0": "10",  # Lettre de liaison à la sortie d'un établissement de soins
    "11502-2": "10",  # CR d'examens biologiques
    "15507-7": "10",  # CR de passage aux urgences
    "18761-7": "10",  # Note de transfert (lettre de liaison à l'entrée)
    "34112-3": "10",  # CR hospitalier (séjour)
    "34874-8": "10",  # CR opératoire
    "77436-4": "10",  # CR d'anesthésie
    # Synthèses (class 11)
    "34133-9": "11",  # Synthèse d'épisode de soins
    "60591-5": "11",  # Synthèse médicale
    # Imagerie (class 31)
    "18748-4": "31",  # CR d'imagerie médicale
    "52040-3": "31",  # Document encapsulant une image d'illustration non DICOM
    # Prescriptions (class 42)
    "57833-6": "42",  # Prescription de produits de santé
    "PRESC-BIO": "42",  # Prescription d'actes de biologie médicale (TRE_A05)
}

# --- formatCode -----------------------------------------------------------------------------------
#: ASS_A11 (N3): CI-SIS model templateId → formatCode (the Ségur models; the ConceptMap has more).
FORMAT_BY_TEMPLATE = {
    "1.2.250.1.213.1.1.1.29": "urn:asip:ci-sis:ldl-ses:2017",
    "1.2.250.1.213.1.1.1.21": "urn:asip:ci-sis:ldl-ees:2017",
    "1.2.250.1.213.1.1.1.55": "urn:ihe:lab:xd-lab:2008",
    "1.2.250.1.213.1.1.1.45": "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013",
    "1.2.250.1.213.1.1.1.39": "urn:ihe:pharm:pre:2010",
    "1.3.6.1.4.1.19376.1.3.3": "urn:ihe:lab:xd-lab:2008",
    "1.2.250.1.213.1.1.1.40": "urn:asip:ci-sis:cr-anest:2020",
    "1.2.250.1.213.1.1.1.41": "urn:asip:ci-sis:cr-cpa:2020",
    "1.2.250.1.213.1.1.1.13": "urn:asip:ci-sis:vsm:2012",
    "1.2.250.1.213.1.1.1.47": "urn:ans:ci-sis:img-da:2022",
    "1.2.250.1.213.1.1.1.52": "urn:ans:ci-sis:bio-ep-bio:2022",
    "1.2.250.1.213.1.1.1.54": "urn:ihe:pharm:dis:2010",
    "1.2.250.1.213.1.1.1.51": "urn:ihe:pcc:ips:2020",
}
#: ASS_A12 (N1): ``nonXMLBody/text/@mediaType`` → formatCode.
FORMAT_BY_MEDIA_TYPE = {
    "application/pdf": "urn:ihe:iti:xds-sd:pdf:2008",
    "text/plain": "urn:ihe:iti:xds-sd:text:2008",
    "text/rtf": "urn:ihe:iti-fr:xds-sd:rtf:2010",
    "image/jpeg": "urn:ihe:iti-fr:xds-sd:jpeg:2010",
    "image/tiff": "urn:ihe:iti-fr:xds-sd:tiff:2010",
}
#: formatCode prefixes of TRE_A06 (French extensions); other codes are TRE_A11 (IHE).
FORMAT_FR_PREFIXES = ("urn:asip:", "urn:ans:", "urn:ihe:iti-fr:")
FORMAT_DISPLAY = {
    "urn:ihe:iti:xds-sd:pdf:2008": "Document à corps non structuré en Pdf/A-1",
    "urn:ihe:iti:xds-sd:text:2008": "Document à corps non structuré en texte brut",
    "urn:ihe:iti-fr:xds-sd:rtf:2010": "Document à corps non structuré en RTF",
    "urn:ihe:iti-fr:xds-sd:jpeg:2010": "Document à corps non structuré en JPEG",
    "urn:ihe:iti-fr:xds-sd:tiff:2010": "Document à corps non structuré en TIFF",
    "urn:asip:ci-sis:ldl-ses:2017": "Lettre de liaison à la sortie d'un établissement de soins",
    "urn:asip:ci-sis:ldl-ees:2017": "Lettre de liaison à l'entrée en établissement de soins",
    "urn:ihe:lab:xd-lab:2008": "CR d'examens biologiques",
    "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013": "CR d'imagerie médicale",
    "urn:ihe:pharm:pre:2010": "Prescription de médicaments",
    "urn:asip:ci-sis:cr-anest:2020": "CR d'anesthésie",
    "urn:asip:ci-sis:vsm:2012": "Volet de synthèse médicale",
    "urn:asip:ci-sis:cr-cpa:2020": "CR de consultation pré-anesthésique",
    "urn:ans:ci-sis:img-da:2022": "Demande d'actes d'imagerie",
    "urn:ans:ci-sis:bio-ep-bio:2022": "Prescription d'actes de biologie médicale",
    "urn:ihe:pharm:dis:2010": "Dispensation de médicaments",
    "urn:ihe:pcc:ips:2020": "Patient Summary (IPS)",
}

# --- confidentialityCode --------------------------------------------------------------------------
CONFIDENTIALITY_DISPLAY = {"N": "Normal", "R": "Restreint", "V": "Très restreint"}

#: TRE_A07 visibility codes (DRIM-M_DATA display names), one per MetaDMPMSS masking flag.
VISIBILITY_MASQUE_PS = "MASQUE_PS"
VISIBILITY_INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
VISIBILITY_INVISIBLE_REP_LEGAUX = "INVISIBLE_REPRESENTANTS_LEGAUX"
VISIBILITY_DISPLAY = {
    VISIBILITY_MASQUE_PS: "Masqué aux professionnels de santé",
    VISIBILITY_INVISIBLE_PATIENT: "Non visible par le patient",
    VISIBILITY_INVISIBLE_REP_LEGAUX: "Non visible par les représentants légaux du patient",
}
#: ``pfi.hl7v2.MetaFlags`` attribute → TRE_A07 code (the HL7 code INVISIBLE_REP_LEGAUX is the
#: TRE code INVISIBLE_REPRESENTANTS_LEGAUX). CONNEXION_SECRETE is not a document
#: confidentialityCode: it goes into the VIHF (:func:`pfi.xds.secret_connection_code`).
VISIBILITY_BY_FLAG = (
    ("masque_ps", VISIBILITY_MASQUE_PS),
    ("invisible_patient", VISIBILITY_INVISIBLE_PATIENT),
    ("invisible_rep_legaux", VISIBILITY_INVISIBLE_REP_LEGAUX),
)

# --- contentTypeCode (SubmissionSet) --------------------------------------------------------------
#: IG-CDA ``mapping.md`` proposal, PV1-2 patient class → JDV_J59 code (``E`` is left open by the
#: IG; spec-facts §5.4 maps it like an outpatient visit).
CONTENT_TYPE_BY_PATIENT_CLASS = {"I": "03", "O": "07", "R": "19", "N": "97", "E": "07"}
CONTENT_TYPE_DISPLAY = {"04": "Hospitalisation de jour"}

# --- XCN / XON / CX type codes --------------------------------------------------------------------
CX_TYPE_INS = "NH"
CX_TYPE_LOCAL = "PI"
XCN_TYPE_PS = "IDNPS"
XON_TYPE_STRUCT = "IDNST"
