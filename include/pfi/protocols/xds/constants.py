"""Code systems and correspondence tables of the CDA → XDS mapping (CI-SIS, DMP value sets).

Data only: one named constant or table each, with its source and version next to it. The
builder (:mod:`pfi.protocols.xds.builder`) looks codes up here; nothing here is derived by hand.

Sources (ANS nomenclatures, "NOS" / SMT; the version is the value set's ``dateMaj``/``version``):

- IG-CDA ``mapping.md`` ("Mapping XDS", Lot de soumission / Fiche; repository
  ``ansforge/IG-hl7v2-volet-transmission-document-cda-r2``, page ``mapping.md``): which table
  gives which attribute (classCode ← ASS_X04, formatCode ← ASS_A11 / N1 PDF, contentTypeCode ←
  JDV_J59 with the PV1-2 proposal, confidentialityCode ← CDA + MetaDMPMSS);
- ASS_X04-CorrespondanceType-Classe-CISIS (OID 1.2.250.1.213.1.1.4.249) version 20240927120000
  — the official SVS export (``urlFichier`` https://mos.esante.gouv.fr/NOS/ASS_X04-…) as copied
  in ``nizarbs2508/interopStudio2024-Jenkins``
  ``src/main/resources/xml/ASS_X04-CorrespondanceType-Classe-CISIS.xml`` (the 20240223 copy in
  ``nizarbs2508/InteropStudio2024`` agrees on every code both contain). No ansforge repository
  in reach holds the ConceptMap's data (the IG-terminologie page only links it);
- ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS ConceptMap version 5.0.0 (2026-02-10) and
  ASS_A12_CorresMediaTypeCDANonStructure-XdsFormatCode-CISIS version 5.0.0 (2026-07-01), IG
  "Terminologies de Santé" (``ansforge/IG-terminologie-de-sante``; older copies in
  ``input/ontoserver/JDV/``);
- JDV_J10-XdsFormatCode-CISIS 1.1.0 (``ansforge/IG-terminologie-de-sante``
  ``input/ontoserver/JDV/JDV_J10_XdsFormatCode_CISIS.json``) and JDV_J60-FormatCode-DMP
  20240927120000 (OID 1.2.250.1.213.1.1.5.8): which formatCode belongs to TRE_A06 or TRE_A11,
  and the display names;
- TRE_A03-ClasseDocument 20231215120000 and JDV_J57-ClassCode-DMP 20230922120000
  (``ansforge/ig-terminlogie-de-sante``
  ``input/DM/input/fsh/Template/ontoserver/TRE/input/fsh/codesystems/TRE_A03_ClasseDocument.fsh``);
- JDV_J59-ContentTypeCode-DMP 20240927120000 (same repository,
  ``…/ontoserver/JDV/input/fsh/valuesets/JDV_J59_ContentTypeCode_DMP.fsh``; codes of TRE_R209
  TypeActivite, OID 1.2.250.1.213.2.2);
- TRE_A07-StatutVisibiliteDocument 20231215120000 (OID 1.2.250.1.213.1.1.4.13) and
  TRE_A08-HL7Confidentiality 20231215120000 (OID 2.16.840.1.113883.5.25), IG "Terminologies de
  Santé" CodeSystem pages;
- JDV_J02-XdsHealthcareFacilityTypeCode-CISIS 20241213120000 and
  JDV_J04-XdsPracticeSettingCode-CISIS 20200424120000 (``ansforge/TestContenuCDA-3-0``
  ``jeuxDeValeurs/JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml``,
  ``jeuxDeValeurs/JDV_J04_XdsPracticeSettingCode_CISIS.xml``): display names used when the CDA
  gives a code without ``displayName``;
- the ANS PDSm-for-DMP IG (``ansforge/IG-FHIR-PDSM4DMP-EEDS``): XCN of a system author
  (``input/fsh/Model/AuthorPersonSystem.fsh``, ``input/fsh/Model/IdentifiantSysteme.fsh``,
  example ``input/fsh/Example/AuthorDispositif.fsh``) and the IdNatStruct prefixes
  (``input/fsh/Model/StructIdNat.fsh``).
"""

from __future__ import annotations

from pfi.protocols.cda import constants as cda  # the code systems a CDA header and XDS share

# --- Coding schemes -------------------------------------------------------------------------------
#: TRE_A03-ClasseDocument: XDS classCode (values restricted by JDV_J57 for the DMP).
CS_CLASS_CODE = "1.2.250.1.213.1.1.4.1"
#: LOINC (JDV_J07 type codes).
CS_LOINC = cda.CS_LOINC
#: TRE_A05-TypeDocComplementaire: the non-LOINC type codes (PRESC-BIO, IMG-KOS…).
CS_TRE_A05 = cda.CS_TRE_A05
#: TRE_A08-HL7Confidentiality (N/R/V).
CS_CONFIDENTIALITY = cda.CS_CONFIDENTIALITY
#: TRE_A07-StatutVisibiliteDocument: the DMP visibility codes added as confidentialityCode.
CS_VISIBILITY = cda.CS_VISIBILITY
#: TRE_A11-IheFormatCode: formatCodes defined by IHE, including IHE France's ``urn:ihe:iti-fr:…``.
CS_FORMAT_CODE_IHE = "1.3.6.1.4.1.19376.1.2.3"
#: TRE_A06-FormatCodeComplementaire: the CI-SIS formatCodes (``urn:asip:…``, ``urn:ans:…``).
CS_FORMAT_CODE_FR = "1.2.250.1.213.1.1.4.2.282"
#: TRE_R209-TypeActivite: the codes of JDV_J59-ContentTypeCode-DMP the PFI uses.
CS_CONTENT_TYPE = "1.2.250.1.213.2.2"
#: TRE_R02-SecteurActivite (healthcareFacilityTypeCode, JDV_J02 / JDV_J61).
CS_FACILITY_TYPE = cda.CS_SECTEUR_ACTIVITE
#: TRE_A01-CadreExercice (practiceSettingCode, JDV_J04).
CS_PRACTICE_SETTING = cda.CS_CADRE_EXERCICE

# --- Identifier assigning authorities -------------------------------------------------------------
#: PS_IdNat (RPPS/ADELI) — also the "OID de gestion de personnes/systèmes" of system authors.
OID_IDNAT_PS = cda.OID_IDNAT_PS
#: Struct_IdNat: the ``&OID&ISO`` of XON institutions.
OID_IDNAT_STRUCT = cda.OID_IDNAT_STRUCT

# --- classCode: TRE_A03 / JDV_J57 -----------------------------------------------------------------
#: TRE_A03-ClasseDocument 20231215120000, every code with its display name.
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
    "99": "Document technique",
}
#: JDV_J57-ClassCode-DMP 20230922120000: the TRE_A03 classes the DMP accepts (not ``99``).
CLASS_CODES_DMP = frozenset(("10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95"))

#: ASS_X04-CorrespondanceType-Classe-CISIS 20240927120000: document type ``code/@code`` →
#: classCode. LOINC codes (2.16.840.1.113883.6.1) then TRE_A05 codes (1.2.250.1.213.1.1.4.12);
#: the two code systems share no code, so the type code alone is the key. Codes outside JDV_J07
#: (former types) are kept as ASS_X04 lists them. The ConceptMap's last row, ASTM ``E1762`` →
#: ``urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1`` (URN), is the signature document's classCode: it is
#: not a TRE_A03 class and lives with the DMP signature document (``pfi.protocols.dmp``).
CLASS_BY_TYPE = {
    # LOINC
    "10213-7": "10",
    "11369-6": "52",
    "11488-4": "10",  # CR ou fiche de consultation ou de visite
    "11490-0": "10",  # Lettre de liaison à la sortie d'un établissement de soins
    "11493-4": "10",
    "11502-2": "10",  # CR d'examens biologiques
    "11505-5": "10",
    "11506-3": "10",
    "11526-1": "10",
    "11528-7": "10",
    "15507-7": "10",  # CR de passage aux urgences
    "15508-5": "10",
    "18748-4": "31",  # CR d'imagerie médicale
    "18761-7": "11",  # Note de transfert (dont lettre de liaison à l'entrée): Synthèse
    "18776-5": "44",
    "24611-6": "10",
    "27899-4": "10",
    "28617-9": "10",
    "28653-4": "10",
    "29274-8": "10",
    "29550-1": "43",
    "29551-9": "42",
    "29554-3": "10",
    "34112-3": "10",  # CR hospitalier (séjour)
    "34120-6": "10",
    "34133-9": "11",  # Synthèse d'épisode de soins
    "34749-2": "10",
    "34794-8": "10",
    "34842-5": "11",
    "34874-8": "10",  # CR opératoire
    "34875-5": "10",
    "39256-3": "10",
    "46241-6": "10",
    "47420-5": "10",
    "51851-4": "95",
    "51969-4": "10",
    "52040-3": "31",  # Document encapsulant une image d'illustration non DICOM
    "52063-5": "42",
    "52521-2": "42",
    "55115-0": "42",
    "56445-0": "11",
    "56446-8": "95",
    "57055-6": "11",
    "57057-2": "11",
    "57075-4": "11",
    "57828-6": "42",
    "57832-8": "42",
    "57833-6": "42",  # Prescription de produits de santé
    "59283-2": "10",
    "59284-0": "95",
    "60280-5": "11",
    "60568-3": "10",
    "60591-5": "11",  # Synthèse médicale
    "60593-1": "43",
    "61357-0": "42",
    "67851-6": "10",
    "68599-0": "11",
    "68817-6": "11",
    "70004-7": "10",
    "74207-2": "11",
    "74465-6": "90",
    "75468-9": "42",
    "75482-0": "10",
    "75492-9": "10",
    "75497-8": "10",
    "75496-0": "10",
    "77436-4": "10",  # CR d'anesthésie
    "77604-7": "44",
    "78341-5": "11",
    "78489-2": "11",
    "78513-9": "10",
    "78601-2": "10",
    "80565-5": "45",
    "80771-9": "44",
    "80788-3": "44",
    "80820-4": "11",
    "83836-7": "11",
    "83869-8": "44",
    "83901-9": "11",
    "83981-1": "10",
    "85208-7": "10",
    "86531-1": "95",
    "87273-9": "52",
    "89233-1": "10",
    "89235-6": "11",
    "88348-8": "11",
    "89601-9": "52",
    "93024-8": "10",
    "96349-6": "10",
    "96874-3": "52",
    "96173-0": "52",
    "101881-1": "52",
    # TRE_A05-TypeDocComplementaire
    "ATTEST-ASS-COMPL": "95",
    "ATTEST-HEBGT": "95",
    "ATTEST-RESID": "95",
    "ATTEST-DROITS-AM": "95",
    "AUTORIS-SOINS": "95",
    "BIL_AUTO": "10",
    "CERT_DECL": "52",
    "CONTACTS-URGENCE": "95",
    "DISP_AUT": "43",
    "EXPPAT_1": "90",
    "EXPPAT_2": "90",
    "EXPORT_DUI": "11",
    "EXPPAT_3": "90",
    "DOCPAT01": "11",
    "DOCPAT02": "42",
    "DOCPAT03": "10",
    "DOCPAT04": "31",
    "DOCPAT05": "10",
    "DOCPAT06": "10",
    "DOCPAT07": "52",
    "DOCPAT08": "11",
    "DOCPAT09": "95",
    "DOCPAT10": "90",
    "IMG-KOS": "31",
    "PROT_ALD": "44",
    "REMB": "60",
    "SYNTH": "11",
    "PRESC-AAT": "42",
    "PIECE-IDENTITE": "95",
    "PRESC-BIO": "42",  # Prescription d'actes de biologie médicale
    "PRESC-KINE": "42",
    "PRESC-INF": "42",
    "PRESC-PEDI": "42",
    "PRESC-ORTHOPHO": "42",
    "PRESC-ORTHOPTIE": "42",
    "FEUILLE-DE-STYLE": "99",
    "FICHE-CONTACTS": "95",
}

# --- formatCode -----------------------------------------------------------------------------------
#: ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS 5.0.0: N3 model templateId (TRE_R220) → formatCode.
FORMAT_BY_TEMPLATE = {
    # → TRE_A06
    "1.2.250.1.213.1.1.1.5.1": "urn:asip:ci-sis:cse-cs8:2017",
    "1.2.250.1.213.1.1.1.5.2": "urn:asip:ci-sis:cse-cs9:2017",
    "1.2.250.1.213.1.1.1.5.3": "urn:asip:ci-sis:cse-cs24:2017",
    "1.2.250.1.213.1.1.1.5.4": "urn:ans:ci-sis:cse-mde:2023",
    "1.2.250.1.213.1.1.1.8": "urn:asip:ci-sis:frcp:2011",
    "1.2.250.1.213.1.1.1.9": "urn:asip:ci-sis:idap:2011",
    "1.2.250.1.213.1.1.1.12.1": "urn:asip:ci-sis:obp-sap:2023",
    "1.2.250.1.213.1.1.1.12.2": "urn:asip:ci-sis:obp-snm:2023",
    "1.2.250.1.213.1.1.1.12.3": "urn:asip:ci-sis:obp-sne:2023",
    "1.2.250.1.213.1.1.1.12.4": "urn:asip:ci-sis:obp-scm:2023",
    "1.2.250.1.213.1.1.1.12.5": "urn:asip:ci-sis:obp-sem:2023",
    "1.2.250.1.213.1.1.1.13": "urn:asip:ci-sis:vsm:2012",
    "1.2.250.1.213.1.1.1.15": "urn:asip:ci-sis:aunv:2013",
    "1.2.250.1.213.1.1.1.16": "urn:asip:ci-sis:eunv:2013",
    "1.2.250.1.213.1.1.1.17": "urn:asip:ci-sis:sunv:2013",
    "1.2.250.1.213.1.1.1.18": "urn:asip:ci-sis:crrtn:2013",
    "1.2.250.1.213.1.1.1.2.1.1": "urn:asip:ci-sis:avk:2009",
    "1.2.250.1.213.1.1.1.2.1.2": "urn:asip:ci-sis:tap:2009",
    "1.2.250.1.213.1.1.1.2.1.3": "urn:asip:ci-sis:dci:2009",
    "1.2.250.1.213.1.1.1.2.1.4": "urn:asip:ci-sis:psc:2009",
    "1.2.250.1.213.1.1.1.2.1.5": "urn:asip:ci-sis:ppv:2009",
    "1.2.250.1.213.1.1.1.21": "urn:asip:ci-sis:ldl-ees:2017",
    "1.2.250.1.213.1.1.1.22": "urn:asip:ci-sis:dlu:2015",
    "1.2.250.1.213.1.1.1.23": "urn:asip:ci-sis:fludt:2017",
    "1.2.250.1.213.1.1.1.24": "urn:asip:ci-sis:fludr:2017",
    "1.2.250.1.213.1.1.1.25": "urn:asip:ci-sis:pavc:2016",
    "1.2.250.1.213.1.1.1.26": "urn:asip:ci-sis:pps-cancer:2017",
    "1.2.250.1.213.1.1.1.27": "urn:asip:ci-sis:d2lm-fin:2017",
    "1.2.250.1.213.1.1.1.28": "urn:asip:ci-sis:d2lm-fidd:2017",
    "1.2.250.1.213.1.1.1.29": "urn:asip:ci-sis:ldl-ses:2017",
    "1.2.250.1.213.1.1.1.30": "urn:asip:ci-sis:sdm-mr:2017",
    "1.2.250.1.213.1.1.1.32": "urn:asip:ci-sis:crgm:2018",
    "1.2.250.1.213.1.1.1.36": "urn:asip:ci-sis:hr:2019",
    "1.2.250.1.213.1.1.1.37": "urn:asip:ci-sis:vac:2019",
    "1.2.250.1.213.1.1.1.38": "urn:asip:ci-sis:tlm-da:2020",
    "1.2.250.1.213.1.1.1.40": "urn:asip:ci-sis:cr-anest:2020",
    "1.2.250.1.213.1.1.1.41": "urn:asip:ci-sis:cr-cpa:2020",
    "1.2.250.1.213.1.1.1.46": "urn:asip:ci-sis:vac-note:2021",
    "1.2.250.1.213.1.1.1.47": "urn:ans:ci-sis:img-da:2022",
    "1.2.250.1.213.1.1.1.52": "urn:ans:ci-sis:bio-ep-bio:2022",
    "1.2.250.1.213.1.1.1.58": "urn:asip:ci-sis:export-dui:2023",
    "1.2.250.1.213.1.1.1.56": "urn:asip:ci-sis:ppp:2023",
    "1.2.250.1.213.1.1.1.59": "urn:ans:ci-sis:trod:2024",
    "1.2.250.1.213.1.1.1.61": "urn:asip:ci-sis:ft-su:2024",
    "1.2.250.1.213.1.1.1.62": "urn:asip:ci-sis:fr-su:2024",
    # → TRE_A11
    "1.2.250.1.213.1.1.1.39": "urn:ihe:pharm:pre:2010",
    "1.2.250.1.213.1.1.1.54": "urn:ihe:pharm:dis:2010",
    "1.2.250.1.213.1.1.1.42": "urn:ihe:eyecare:geneyeevalcn:2014",
    "1.2.250.1.213.1.1.1.43": "urn:ihe:eyecare:geneyeevalcn:2014",
    "1.2.250.1.213.1.1.1.44": "urn:ihe:eyecare:geneyeevalcn:2014",
    "1.2.250.1.213.1.1.1.45": "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013",
    "1.2.250.1.213.1.1.1.55": "urn:ihe:lab:xd-lab:2008",
    "1.2.250.1.213.1.1.1.57": "urn:ihe:palm:apsr:2016",
    "1.3.6.1.4.1.19376.1.3.3": "urn:ihe:lab:xd-lab:2008",
    "1.2.250.1.213.1.1.1.51": "urn:ihe:pcc:ips:2020",
    "1.3.6.1.4.1.19376.1.8.1.1.1": "urn:ihe:pat:apsr:all:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.1": "urn:ihe:pat:apsr:breast:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.2": "urn:ihe:pat:apsr:colon:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.3": "urn:ihe:pat:apsr:prostate:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.4": "urn:ihe:pat:apsr:thyroid:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.5": "urn:ihe:pat:apsr:lung:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.6": "urn:ihe:pat:apsr:skin:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.7": "urn:ihe:pat:apsr:kidney:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.8": "urn:ihe:pat:apsr:cervix:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.9": "urn:ihe:pat:apsr:endometrium:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.10": "urn:ihe:pat:apsr:ovary:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.11": "urn:ihe:pat:apsr:esophagus:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.12": "urn:ihe:pat:apsr:stomach:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.13": "urn:ihe:pat:apsr:liver:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.14": "urn:ihe:pat:apsr:pancreas:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.15": "urn:ihe:pat:apsr:testis:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.16": "urn:ihe:pat:apsr:urinary_bladder:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.17": "urn:ihe:pat:apsr:lip_oral_cavity:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.18": "urn:ihe:pat:apsr:pharynx:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.19": "urn:ihe:pat:apsr:salivary_gland:2010",
    "1.3.6.1.4.1.19376.1.8.1.1.2.20": "urn:ihe:pat:apsr:larynx:2010",
}
#: ASS_A11's CI-SIS models (TRE_R220, root 1.2.250.1.213.1.1.1.): a document carrying one of
#: them and an IHE template listed above takes the CI-SIS model's formatCode.
CISIS_MODEL_ROOT = "1.2.250.1.213.1.1.1."
#: ASS_A12_CorresMediaTypeCDANonStructure-XdsFormatCode-CISIS 5.0.0: N1 (XDS-SD templateId
#: 1.3.6.1.4.1.19376.1.2.20) ``nonXMLBody/text/@mediaType`` → formatCode (all TRE_A11).
FORMAT_BY_MEDIA_TYPE = {
    "application/pdf": "urn:ihe:iti:xds-sd:pdf:2008",
    "text/plain": "urn:ihe:iti:xds-sd:text:2008",
    "text/rtf": "urn:ihe:iti-fr:xds-sd:rtf:2010",
    "image/jpeg": "urn:ihe:iti-fr:xds-sd:jpeg:2010",
    "image/tiff": "urn:ihe:iti-fr:xds-sd:tiff:2010",
}

#: TRE_A06-FormatCodeComplementaire codes with their JDV_J10 1.1.0 display names (``trod`` from
#: JDV_J60 20240927120000). A code of this table is written with :data:`CS_FORMAT_CODE_FR`.
FORMAT_DISPLAY_TRE_A06 = {
    "urn:ans:ci-sis:bio-ep-bio:2022": "Prescription d'actes de biologie médicale",
    "urn:ans:ci-sis:cse-mde:2023": "Mesures de signes vitaux",
    "urn:asip:ci-sis:aunv:2013": "Fiche d'admission en unité neuro-vasculaire",
    "urn:asip:ci-sis:avk:2009": "Fiche patient à risque en cardiologie - Traitement AVK",
    "urn:asip:ci-sis:crgm:2018": "Compte rendu de génétique moléculaire",
    "urn:asip:ci-sis:crrtn:2013": "Compte-rendu de rétinographie",
    "urn:asip:ci-sis:cr-anest:2020": "Compte rendu d'anesthésie",
    "urn:asip:ci-sis:cr-cpa:2020": "Compte rendu de consultation pré-anesthésique",
    "urn:asip:ci-sis:cse-cs24:2017": "Certificat de santé du 24ème mois de l'enfant",
    "urn:asip:ci-sis:cse-cs8:2017": "Certificat de santé du 8ème jour de l'enfant",
    "urn:asip:ci-sis:cse-cs9:2017": "Certificat de santé du 9ème mois de l'enfant",
    "urn:asip:ci-sis:d2lm-fidd:2017": (
        "Seconde lecture de mammographie - Fiche d'interprétation du bilan de diagnostic différé"
    ),
    "urn:asip:ci-sis:d2lm-fin:2017": (
        "Seconde lecture de mammographie - Fiche d'interprétation nationale"
    ),
    "urn:asip:ci-sis:dci:2009": (
        "Fiche patient à risque en cardiologie - Défibrillateur cardiaque interne"
    ),
    "urn:asip:ci-sis:dlu:2015": "Document de liaison d'urgence",
    "urn:asip:ci-sis:eunv:2013": "Fiche d'épisode de soin en unité neuro-vasculaire",
    "urn:asip:ci-sis:fludr:2017": "Fiche de liaison d'urgence - Retour des urgences vers l'EHPAD",
    "urn:asip:ci-sis:fludt:2017": (
        "Fiche de liaison d'urgence - Transfert de l'EHPAD vers les urgences"
    ),
    "urn:asip:ci-sis:frcp:2011": "Fiche de réunion de concertation pluridisciplinaire",
    "urn:asip:ci-sis:hr:2019": "Données de remboursement",
    "urn:asip:ci-sis:idap:2011": "Information et directives anticipées du patient",
    "urn:asip:ci-sis:ldl-ees:2017": "Lettre de Liaison à l'entrée d'un établissement de santé",
    "urn:asip:ci-sis:ldl-ses:2017": "Lettre de Liaison à la sortie de l'établissement de santé",
    "urn:ans:ci-sis:img-da:2022": "Demande d'actes d'imagerie",
    "urn:asip:ci-sis:pavc:2016": (
        "Compte-rendu de consultation d'évaluation pluri-professionnelle post AVC"
    ),
    "urn:asip:ci-sis:ppp:2023": "Plan personnalisé de prévention",
    "urn:asip:ci-sis:pps-cancer:2017": "Programme Personnalisé de Soins - Cancer",
    "urn:asip:ci-sis:pps-paerpa:2017": "Plan Personnalisé de Santé - PAERPA",
    "urn:asip:ci-sis:ppv:2009": (
        "Fiche patient à risque en cardiologie - Porteur d'une prothèse valvulaire"
    ),
    "urn:asip:ci-sis:psc:2009": (
        "Fiche patient à risque en cardiologie - Porteur d'un stimulateur cardiaque"
    ),
    "urn:asip:ci-sis:sdm-mr:2017": "Set de Données Minimum - Maladies Rares",
    "urn:asip:ci-sis:sunv:2013": "Fiche de sortie d'unité neuro-vasculaire",
    "urn:asip:ci-sis:tap:2009": (
        "Fiche patient à risque en cardiologie - Traitement antiagrégant plaquettaire, stent"
    ),
    "urn:asip:ci-sis:tlm-da:2020": "Demande d'acte de télémédecine",
    "urn:asip:ci-sis:vac:2019": "Historique des vaccinations",
    "urn:asip:ci-sis:vac-note:2021": "Note de vaccination",
    "urn:asip:ci-sis:vsm:2012": "Synthèse médicale",
    "urn:asipSante:modelesHorsProfils:2011": "Document non référencé IHE ou CI-SIS",
    "urn:asip:ci-sis:obp-sap:2023": "Synthèse antepartum",
    "urn:asip:ci-sis:obp-snm:2023": "Synthèse Salle de Naissance Mère",
    "urn:asip:ci-sis:obp-sne:2023": "Synthèse Salle de Naissance Enfant",
    "urn:asip:ci-sis:obp-scm:2023": "Synthèse Suites de Couches Mère",
    "urn:asip:ci-sis:obp-sem:2023": "Synthèse Enfant en Maternité",
    "urn:ans:ci-sis:feuille-de-style:2023": "Feuille de style",
    "urn:asip:ci-sis:dlu:2024": "Document de liaison d'urgence",
    "urn:asip:ci-sis:ft-su:2024": "Fiche de transfert vers le service des urgences",
    "urn:asip:ci-sis:fr-su:2024": "Fiche de retour du service des urgences",
    "urn:asip:ci-sis:export-dui:2023": "Export du Dossier Usager informatisé",
    "urn:asip:ci-sis:cva:2017": "Carnet de vaccination électronique",
    "urn:ans:ci-sis:trod:2024": "Test rapide d'orientation diagnostique",
}
#: TRE_A11-IheFormatCode codes with their JDV_J10 1.1.0 display names (the ``urn:ihe:pat:apsr``
#: organ codes have no display name in JDV_J10). Written with :data:`CS_FORMAT_CODE_IHE`.
FORMAT_DISPLAY_TRE_A11 = {
    "urn:ihe:iti:dsg:detached:2014": "Signature détachée",
    "urn:ihe:iti:dsg:enveloping:2014": "Document signé avec une signature enveloppante",
    "urn:ihe:iti:xds-sd:pdf:2008": "Document à corps non structuré en Pdf/A-1",
    "urn:ihe:iti:xds-sd:text:2008": "Document à corps non structuré en texte brut",
    "urn:ihe:iti-fr:xds-sd:jpeg:2010": "Document à corps non structuré en format jpeg",
    "urn:ihe:iti-fr:xds-sd:rtf:2010": "Document à corps non structuré en format rtf",
    "urn:ihe:iti-fr:xds-sd:tiff:2010": "Document à corps non structuré en format tiff",
    "urn:ihe:lab:xd-lab:2008": "Compte rendu structuré d'examens de biologie médicale",
    "urn:ihe:pharm:dis:2010": "Dispensation médicamenteuse",
    "urn:ihe:pcc:ips:2020": "Synthèse médicale",
    "urn:ihe:pharm:pre:2010": "Prescription de médicaments",
    "urn:ihe:palm:apsr:2016": "CR d'anatomie et de cytologie pathologiques",
    "urn:ihe:eyecare:geneyeevalcn:2014": "CR de consultation en ophtalmologie",
    "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013": "Compte-rendu d'imagerie médicale",
    "urn:ihe:pat:apsr:all:2010": (
        "Compte rendu d'anatomie et de cytologie pathologiques - Modèle générique"
    ),
    "urn:ihe:pat:apsr:breast:2010": "",
    "urn:ihe:pat:apsr:colon:2010": "",
    "urn:ihe:pat:apsr:prostate:2010": "",
    "urn:ihe:pat:apsr:thyroid:2010": "",
    "urn:ihe:pat:apsr:lung:2010": "",
    "urn:ihe:pat:apsr:skin:2010": "",
    "urn:ihe:pat:apsr:kidney:2010": "",
    "urn:ihe:pat:apsr:cervix:2010": "",
    "urn:ihe:pat:apsr:endometrium:2010": "",
    "urn:ihe:pat:apsr:ovary:2010": "",
    "urn:ihe:pat:apsr:esophagus:2010": "",
    "urn:ihe:pat:apsr:stomach:2010": "",
    "urn:ihe:pat:apsr:liver:2010": "",
    "urn:ihe:pat:apsr:pancreas:2010": "",
    "urn:ihe:pat:apsr:testis:2010": "",
    "urn:ihe:pat:apsr:urinary_bladder:2010": "",
    "urn:ihe:pat:apsr:lip_oral_cavity:2010": "",
    "urn:ihe:pat:apsr:pharynx:2010": "",
    "urn:ihe:pat:apsr:salivary_gland:2010": "",
    "urn:ihe:pat:apsr:larynx:2010": "",
}
#: formatCode prefixes of the CI-SIS (TRE_A06) for a code in neither table above.
FORMAT_FR_PREFIXES = ("urn:asip:", "urn:ans:", "urn:asipSante:")
#: JDV_J60-FormatCode-DMP 20240927120000: the TRE_A06 / TRE_A11 formatCodes the DMP accepts
#: (plus, outside these TREs, the DICOM KOS and the XML-DSig signature style).
FORMAT_CODES_DMP = frozenset(
    (
        "urn:ans:ci-sis:bio-ep-bio:2022",
        "urn:ans:ci-sis:img-da:2022",
        "urn:asip:ci-sis:aunv:2013",
        "urn:asip:ci-sis:avk:2009",
        "urn:asip:ci-sis:crgm:2018",
        "urn:asip:ci-sis:crrtn:2013",
        "urn:asip:ci-sis:cse-cs24:2017",
        "urn:asip:ci-sis:cse-cs8:2017",
        "urn:asip:ci-sis:cse-cs9:2017",
        "urn:asip:ci-sis:d2lm-fidd:2017",
        "urn:asip:ci-sis:d2lm-fin:2017",
        "urn:asip:ci-sis:dci:2009",
        "urn:asip:ci-sis:dlu:2015",
        "urn:ans:ci-sis:cse-mde:2023",
        "urn:asip:ci-sis:eunv:2013",
        "urn:asip:ci-sis:fludr:2017",
        "urn:asip:ci-sis:fludt:2017",
        "urn:asip:ci-sis:frcp:2011",
        "urn:asip:ci-sis:hr:2019",
        "urn:asip:ci-sis:idap:2011",
        "urn:asip:ci-sis:ldl-ees:2017",
        "urn:asip:ci-sis:ldl-ses:2017",
        "urn:asip:ci-sis:pavc:2016",
        "urn:asip:ci-sis:pps-cancer:2017",
        "urn:asip:ci-sis:pps-paerpa:2017",
        "urn:asip:ci-sis:ppv:2009",
        "urn:asip:ci-sis:psc:2009",
        "urn:asip:ci-sis:sdm-mr:2017",
        "urn:asip:ci-sis:sunv:2013",
        "urn:asip:ci-sis:tap:2009",
        "urn:asip:ci-sis:vac:2019",
        "urn:asip:ci-sis:vsm:2012",
        "urn:asipSante:modelesHorsProfils:2011",
        "urn:asip:ci-sis:cr-cpa:2020",
        "urn:asip:ci-sis:cr-anest:2020",
        "urn:asip:ci-sis:tlm-da:2020",
        "urn:asip:ci-sis:vac-note:2021",
        "urn:asip:ci-sis:obp-sap:2023",
        "urn:asip:ci-sis:obp-snm:2023",
        "urn:asip:ci-sis:obp-sne:2023",
        "urn:asip:ci-sis:obp-scm:2023",
        "urn:asip:ci-sis:obp-sem:2023",
        "urn:asip:ci-sis:ppp:2023",
        "urn:asip:ci-sis:dlu:2024",
        "urn:asip:ci-sis:ft-su:2024",
        "urn:asip:ci-sis:fr-su:2024",
        "urn:ans:ci-sis:trod:2024",
        "urn:ihe:iti:dsg:detached:2014",
        "urn:ihe:iti:xds-sd:pdf:2008",
        "urn:ihe:iti:xds-sd:text:2008",
        "urn:ihe:pharm:dis:2010",
        "urn:ihe:iti-fr:xds-sd:jpeg:2010",
        "urn:ihe:iti-fr:xds-sd:rtf:2010",
        "urn:ihe:iti-fr:xds-sd:tiff:2010",
        "urn:ihe:lab:xd-lab:2008",
        "urn:ihe:palm:apsr:2016",
        "urn:ihe:pcc:ips:2020",
        "urn:ihe:pharm:pre:2010",
        "urn:ihe:eyecare:geneyeevalcn:2014",
        "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013",
        "1.2.840.10008.5.1.4.1.1.88.59",
        "http://www.w3.org/2000/09/xmldsig#",
    )
)

# --- confidentialityCode --------------------------------------------------------------------------
#: TRE_A08-HL7Confidentiality 20231215120000.
CONFIDENTIALITY_DISPLAY = {"N": "Normal", "R": "Restreint", "V": "Très restreint"}

#: TRE_A07-StatutVisibiliteDocument 20231215120000 codes, one per MetaDMPMSS masking flag.
VISIBILITY_MASQUE_PS = "MASQUE_PS"
VISIBILITY_INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
VISIBILITY_INVISIBLE_REP_LEGAUX = "INVISIBLE_REPRESENTANTS_LEGAUX"
#: TRE_A07 display names (the CodeSystem's ``display``).
VISIBILITY_DISPLAY = {
    VISIBILITY_MASQUE_PS: "Masqué aux professionnels de santé",
    VISIBILITY_INVISIBLE_PATIENT: "Non visible par le patient",
    VISIBILITY_INVISIBLE_REP_LEGAUX: "Non visible par représentants légaux du patient",
}
#: ``pfi.protocols.hl7v2.MetaFlags`` attribute → TRE_A07 code (the HL7 code INVISIBLE_REP_LEGAUX is the
#: TRE code INVISIBLE_REPRESENTANTS_LEGAUX). CONNEXION_SECRETE is not a document
#: confidentialityCode: it goes into the VIHF (:func:`pfi.protocols.xds.secret_connection_code`).
VISIBILITY_BY_FLAG = (
    ("masque_ps", VISIBILITY_MASQUE_PS),
    ("invisible_patient", VISIBILITY_INVISIBLE_PATIENT),
    ("invisible_rep_legaux", VISIBILITY_INVISIBLE_REP_LEGAUX),
)

# --- contentTypeCode (SubmissionSet) --------------------------------------------------------------
#: IG-CDA ``mapping.md`` (Lot de soumission, contentTypeCode): "Proposition de mapping sur le
#: PV1-2 : I => 03; O => 07; R => 19; N => 97; E => 07" (JDV_J59 codes from TRE_R209).
CONTENT_TYPE_BY_PATIENT_CLASS = {"I": "03", "O": "07", "R": "19", "N": "97", "E": "07"}
#: JDV_J59-ContentTypeCode-DMP 20240927120000 display names of the TRE_R209 codes above (and
#: ``04``, the day hospital of the DRIM-M_DATA example).
CONTENT_TYPE_DISPLAY = {
    "03": "Hospitalisation complète (non compris hospitalisation de semaine)",
    "04": "Hospitalisation de jour",
    "07": "Consultations soins externes",
    "19": "Traitement et cure ambulatoire",
    "97": "Type d'activité indifférencié",
}

# --- healthcareFacilityTypeCode / practiceSettingCode display names -------------------------------
#: JDV_J02-XdsHealthcareFacilityTypeCode-CISIS 20241213120000, TRE_R02 codes (the code comes
#: from the CDA; this only names a code the CDA gives without ``displayName``).
FACILITY_TYPE_DISPLAY = {
    "SA01": "Etablissement public de santé",
    "SA02": "Hôpital militaire du Service de santé des armées",
    "SA03": "Etablissement privé PSPH",
    "SA04": "Etablissement privé non PSPH",
    "SA05": "Centre de santé",
    "SA06": "Autre structure du Service de santé des armées",
    "SA07": "Cabinet individuel",
    "SA08": "Cabinet de groupe",
    "SA09": "Exercice en société",
    "SA10": "Transporteur sanitaire",
    "SA12": "Etablissement de soins et prévention",
    "SA13": "Prévention et soins en entreprise",
    "SA14": "Etablissements scolaires, universitaires et de formation hors champ FINESS",
    "SA15": "PMI et Planification familiale",
    "SA16": "Etablissement pour personnes handicapées",
    "SA17": "Etablissement pour personnes âgées",
    "SA18": "Etablissement aide à la famille",
    "SA19": "Etablissements FINESS de formation aux professions sanitaires et sociales",
    "SA20": "Etablissement pour la protection de l'enfance",
    "SA21": "Etablissement d'hébergement et de réadaptation",
    "SA22": "Recherche",
    "SA23": "Assurance privée",
    "SA24": "Organisme de sécurité sociale",
    "SA25": "Laboratoire de biologie médicale",
    "SA26": "Ministère ou Service déconcentré",
    "SA27": "Collectivité territoriale",
    "SA28": "Association ou organisme humanitaire",
    "SA29": "Laboratoire d'analyses et de biologie médicale",
    "SA30": "Autre établissement sanitaire",
    "SA31": "Répartition et Distribution de médicaments et dispositifs médicaux",
    "SA32": "Fabrication, Exploitation et Importation de médicaments et dispositifs médicaux",
    "SA33": "Pharmacie d'officine",
    "SA34": "Centre de dialyse",
    "SA35": "Para-pharmacie",
    "SA36": "Centre anti-cancer",
    "SA37": "Centre de transfusion sanguine",
    "SA38": "Pharmacie minière",
    "SA39": "Pharmacie mutualiste",
    "SA40": "Secteur privé, praticien hospitalier temps plein",
    "SA41": "Autre établissement du domaine social ou médico-social",
    "SA42": "Appareillage médical",
    "SA43": "Secteur non défini",
    "SA44": "Recrutement ou Gestion RH",
    "SA45": "Communication, Marketing, Consulting, Média",
    "SA46": (
        "Fabrication, Exploitation, Importation, Répartition, Distribution médicaments et "
        "dispositifs médicaux"
    ),
    "SA47": "Incendie et secours",
    "SA48": "Entreprise industrielle et tertiaire hors industrie pharmaceutique",
    "SA49": "Entité Outre-Mer",
    "SA50": "Permanence des soins ambulatoires hors cabinet",
    "SA51": "Structure de coopération avec autorisation de soins",
    "SA52": "Maison de santé ou Pôle de santé",
    "SA53": "Siège administratif d'un établissement de santé",
    "SA54": "Centre de dépistage et de prévention",
    "SA55": "Laboratoire pharmaceutique préparant et délivrant des allergènes",
    "SA56": "Propharmacie",
    "SA57": "Structure de coopération avec mission de coordination de soins",
    "SA58": "Entreprise de taxis",
    "SA59": "Laboratoire de biologie médicale hors catégorie standard",
    "SA60": "Centres médicaux SNCF",
    "SA61": "Structure Dispensatrice à domicile d'Oxygène à usage médical",
    "SA63": "Communauté professionnelle territoriale de santé et équipe de soins spécialisés",
    "SA64": "Société de téléconsultation",
    "SA65": "Antenne de pharmacie",
    "SA66": "Services de Prévention et de Santé au Travail (SPST)",
    "SA67": "Maisons médicales de garde (MMG)",
    "SA68": "Services départementaux d'incendie et de secours",
    "SA69": "Maisons de naissance",
}
#: JDV_J04-XdsPracticeSettingCode-CISIS 20200424120000, TRE_A01 codes.
PRACTICE_SETTING_DISPLAY = {
    "AMBULATOIRE": "Ambulatoire",
    "AMO": "Organisme d'assurance maladie obligatoire",
    "DEPISTAGE": "Dépistage",
    "ETABLISSEMENT": "Etablissement de santé",
    "HAD": "Hospitalisation à domicile",
    "MAD": "Maintien à domicile",
    "PALLIATIF": "Soins palliatifs",
    "SAD": "Soins à domicile",
    "SAMU_SMUR": "SAMU/SMUR",
}

# --- XCN / XON / CX type codes --------------------------------------------------------------------
CX_TYPE_INS = "NH"
CX_TYPE_LOCAL = "PI"
#: XCN-13 of a professional (PDSm ``AuthorPersonPS``: IDNPS, name type D).
XCN_TYPE_PS = "IDNPS"
#: XCN-13 and XCN-10 of a system author (PDSm ``AuthorPersonSystem``: RI, name type U, assigning
#: authority :data:`OID_IDNAT_PS`, id ``<prefix><structure id>/<system id in the structure>``).
XCN_TYPE_SYSTEM = "RI"
XCN_NAME_TYPE_SYSTEM = "U"
XON_TYPE_STRUCT = "IDNST"
#: Struct_IdNat prefix (PDSm ``StructIdNat``: 0 ADELI cabinet, 1 FINESS, 2 SIREN, 3 SIRET,
#: 4 RPPS cabinet) → IdentifiantSysteme prefix of a system of that structure (PDSm
#: ``IdentifiantSysteme``: 1 ADELI cabinet, 3 FINESS, 4 SIREN, 5 SIRET, 6 RPPS cabinet).
SYSTEM_ID_PREFIX_BY_STRUCT_PREFIX = {"0": "1", "1": "3", "2": "4", "3": "5", "4": "6"}
#: PRT-8.7 identifier type of the ``SB`` organisation (IG-CDA ``profils-messages.md``: FINEJ,
#: FINEG or IDNST — an IDNST is already a Struct_IdNat; FINESS and SIRET accepted too) → its
#: Struct_IdNat prefix (PDSm ``StructIdNat``: 1 FINESS, 3 SIRET).
STRUCT_PREFIX_BY_ORG_ID_TYPE = {"FINEG": "1", "FINEJ": "1", "FINESS": "1", "SIRET": "3"}
