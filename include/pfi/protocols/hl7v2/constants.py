"""Codes of the volets "Transmission de document(s) CDA en HL7v2" and "Transmission au LPS de
documents CDA provenant d'un courriel MSSanté", and the HL7 tables they use.

One named constant each, no logic. Sources: IG ``ansforge/IG-hl7v2-volet-transmission-document-
cda-r2`` (``profils-messages.md``, ``meta-dmp-mss.md``, ``ack-metier-zam.md``), IG
``ansforge/IG-hl7v2-volet-trans-lps-doc-cda-courriel-mss`` (``profils-messages.md``), HL7
v2.5/2.6 tables, PAM-FR 2.11 for PID/PV1.
"""

from __future__ import annotations

# MSH-9 message codes and trigger events (profils-messages.md, evenements-declenchants.md).
MSG_MDM = "MDM"
MSG_ORU = "ORU"
MSG_ACK = "ACK"
MSG_ZAM = "ZAM"
EVENT_MDM_INITIAL = "T02"
EVENT_MDM_REPLACE = "T10"
EVENT_MDM_DELETE = "T04"
EVENT_ORU = "R01"
EVENT_ZAM_DMP = "Z01"
EVENT_ZAM_MSS_RECEIPT = "Z02"
EVENT_ZAM_MSS_READ = "Z03"

# MSH-21 message profiles (name part; version part is MSH-21.1).
PROFILE_CDA_HL7_V2 = "CISIS_CDA_HL7_V2"
PROFILE_CDA_HL7_V1 = "CISIS_CDA_HL7_V1"
PROFILE_LPS = "CISIS_CDA_HL7_LPS"
PROFILE_CURRENT_VERSION = "2.1"

# MSH-18 character sets (HL7 table 0211) → Python codecs. "" means "the caller's default".
CHARSET_CODECS = {
    "ASCII": "ascii",
    "8859/1": "iso-8859-1",
    "8859/15": "iso-8859-15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
}

# Batch envelope segments (HL7 v2 §2.10.3).
BATCH_SEGMENTS = ("FHS", "BHS", "BTS", "FTS")

# OBX-11 observation result status (HL7 table 0085) for the document OBX.
RESULT_FINAL = "F"
RESULT_CORRECTED = "C"
RESULT_DELETED = "D"

# ORC-1 order control (HL7 table 0119) as the volet uses it.
ORDER_NEW = "NW"
ORDER_REPLACE = "RO"
ORDER_CANCEL = "CA"

# OBX-2 value types.
VALUE_TYPE_ED = "ED"
VALUE_TYPE_XTN = "XTN"

# OBX-5 ED encoding (ED.4, HL7 table 0299).
ED_BASE64 = "BASE64"
ED_ASCII = "A"
ED_HEX = "HEX"

# OBX-3 coding system of the routing/visibility metadata (meta-dmp-mss.md).
META_TABLE = "MetaDMPMSS"
META_MASQUE_PS = "MASQUE_PS"
META_INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
META_INVISIBLE_REP_LEGAUX = "INVISIBLE_REP_LEGAUX"
META_CONNEXION_SECRETE = "CONNEXION_SECRETE"
META_MODIF_CONF_CODE = "MODIF_CONF_CODE"
META_DESTDMP = "DESTDMP"
META_DESTMSSANTEPS = "DESTMSSANTEPS"
META_DESTMSSANTEPAT = "DESTMSSANTEPAT"
META_ACK_RECEPTION = "ACK_RECEPTION"
META_ACK_LECTURE_MSS = "ACK_LECTURE_MSS"
META_CORPSMAIL_PS = "CORPSMAIL_PS"
META_CORPSMAIL_PATIENT = "CORPSMAIL_PATIENT"
# Volet v1.2 spellings, read as their v2 equivalents; COMP_LOT (v1.2) is ignored.
META_LEGACY_INVISIBLE_REP_LEGAUX = "INVISIBLE_REPRESENTANTS_LEGAUX"
META_LEGACY_MODIF_CONF_CODE = "MODIF_CONFIDENTIALITYCODE"
META_LEGACY_COMP_LOT = "COMP_LOT"
# v1.0 of the LPS volet wrote ACK_LECTURE for ACK_LECTURE_MSS.
META_LEGACY_ACK_LECTURE = "ACK_LECTURE"

# Yes/no values of the metadata (HL7 table 0136, "expandedYes-NoIndicator").
YES = "Y"
NO = "N"

# NTE-4 after DESTMSSANTEPAT: the patient must not be able to reply (→ X-MSS-MES: FIN).
NTE_END_OF_EXCHANGE = "FIN"

# OBX-3 coding system of the business acknowledgements (ack-metier-zam.md).
ZAM_TABLE = "AckMetierZAM"
ZAM_ACK_RECEPTION_DMP = "ACK_RECEPTION_DMP"
ZAM_ACK_RECEPTION_MSS = "ACK_RECEPTION_MSS"
ZAM_ACK_LECTURE_MSS = "ACK_LECTURE_MSS"
ZAM_DESTINATAIRE_MSS = "DESTINATAIRE_MSS"
ZAM_LECTEUR_MSS = "LECTEUR_MSS"

# PRT-4.1 participation (HL7 v2.9 table 0912).
PARTICIPATION_SENDER = "SB"
PARTICIPATION_RECIPIENT = "RCT"
PARTICIPATION_REPLY_TO = "REPLY"

# PRT-15 / XTN telecommunication equipment type for an MSSanté address.
TELECOM_X400 = "X.400"

# Identifier type codes (HL7 table 0203, Interop'Santé extension).
ID_TYPE_INS = "INS"
ID_TYPE_PATIENT_INTERNAL = "PI"
ID_TYPE_RPPS = "RPPS"
ID_TYPE_IDNPS = "IDNPS"
ID_TYPE_FINESS_GEO = "FINEG"
ID_TYPE_FINESS_JUR = "FINEJ"

# PID-5 name type (HL7 table 0200): PAM-FR puts the birth name in the ``L`` repetition.
NAME_TYPE_LEGAL = "L"
NAME_TYPE_USED = "D"

# PID-11 address type (HL7 table 0190): birthplace, XAD.9 holds the INSEE COG code.
ADDRESS_TYPE_BIRTH = "BDL"

# What the document OBX holds, sniffed from the decoded bytes.
FORMAT_CDA = "cda"
FORMAT_XML = "xml"
FORMAT_PDF = "pdf"
FORMAT_UNKNOWN = "unknown"

# --- Volet "Transmission au LPS de documents CDA provenant d'un courriel MSSanté" v1.1 ---------
# IG ``ansforge/IG-hl7v2-volet-trans-lps-doc-cda-courriel-mss`` (``profils-messages.md``,
# ``meta-dmp-mss.md``): the MDM the PFI sends the DPI for a document received by MSSanté.

#: MSH-9.3 message structure of MDM^T02/T10/T04.
STRUCTURE_MDM = "MDM_T02"
#: MSH-12 of the LPS volet's MDM and of its ACK.
LPS_HL7_VERSION = "2.6"
#: MSH-21.1 of the LPS volet (MSH-21.2 is :data:`PROFILE_LPS`).
PROFILE_LPS_VERSION = "1.1"
#: MSH-17 country code.
COUNTRY_FRANCE = "FRA"
#: MSH-18 the PFI writes (HL7 table 0211).
CHARSET_UTF8 = "UNICODE UTF-8"

#: PV1-2 patient class "not applicable" (HL7 table 0004), required by the LPS volet.
PATIENT_CLASS_NOT_APPLICABLE = "N"
#: TXA-3 document content presentation (HL7 table 0191).
PRESENTATION_TEXT = "TEXT"
#: TXA-17 document completion status "authenticated" (HL7 table 0271).
COMPLETION_AUTHENTICATED = "AU"

#: OBR-4.3 / OBX-3.3 coding systems of the document type (LOINC, or the ANS TRE_A05).
CODING_LOINC = "LN"
CODING_TRE_A05 = "TRE_A05"

#: OBX-5 ED components as the volet writes them: type ``text``, subtype ``XML``, ``Base64``.
ED_TYPE_TEXT = "text"
ED_SUBTYPE_XML = "XML"
ED_BASE64_TEXT = "Base64"

#: OBX-5.3 coding system of the Y/N metadata (HL7 table 0136).
YES_NO_TABLE = "expandedYes-NoIndicator"

#: OBX-3.2 labels of the ``MetaDMPMSS`` items (``meta-dmp-mss.md``; the LPS volet's four first).
META_LABELS = {
    META_MASQUE_PS: "Masqué aux professionnels de Santé",
    META_INVISIBLE_PATIENT: "Document Non Visible par le patient",
    META_INVISIBLE_REP_LEGAUX: "Non visible par les représentants Légaux du patient",
    META_MODIF_CONF_CODE: "Modification Confidentiality Code",
    META_CONNEXION_SECRETE: "Connexion Secrete",
    META_DESTDMP: "Destinataire DMP",
    META_DESTMSSANTEPS: "Destinataire (Professionnel de Santé, organisation ou BAL applicative)",
    META_DESTMSSANTEPAT: "Destinataire Patient",
    META_ACK_RECEPTION: "Accusé de réception",
    META_ACK_LECTURE_MSS: "Accusé de lecture",
    META_CORPSMAIL_PS: "Corps du mail pour un PS",
    META_CORPSMAIL_PATIENT: "Corps du mail pour le patient",
}
#: The metadata OBX of the LPS volet, required, in this order (OBX 3 to 6).
LPS_META_ITEMS = (
    META_MASQUE_PS,
    META_INVISIBLE_PATIENT,
    META_INVISIBLE_REP_LEGAUX,
    META_MODIF_CONF_CODE,
)

#: PRT-2 action code "unchanged" (HL7 table 0206).
PRT_ACTION_UNCHANGED = "UC"
#: PRT-4.3 coding system and PRT-4.2 labels (HL7 v2.9 table 0912, as the LPS volet's tables).
PARTICIPATION_TABLE = "participation"
PARTICIPATION_LABELS = {
    PARTICIPATION_SENDER: "Send by",
    PARTICIPATION_RECIPIENT: "Result Copies To",
    PARTICIPATION_REPLY_TO: "Reply To",
}

#: XCN.10 name type of a professional's name as the CI-SIS examples write it (table 0200).
NAME_TYPE_DISPLAY = "D"
#: XCN.13 identifier type of an id under any other OID than IdNatPs (table 0203).
ID_TYPE_ENTITY = "EI"
#: HD namespaces the CI-SIS examples give beside the OIDs (PID-3.4.1, PRT-5.9.1).
NAMESPACE_IDNAT_PS = "ASIP-SANTE-PS"
NAMESPACE_INS_NIR = "ASIP-SANTE-INS-NIR"
NAMESPACE_INS_NIA = "ASIP-SANTE-INS-NIA"
#: HD universal id type.
UNIVERSAL_ID_ISO = "ISO"

#: PID-32 identity reliability written when the CDA carries an INS, as the official examples do
#: (an INS travels only with a qualified identity; the receiver re-qualifies it, RNIV règle 30).
IDENTITY_VALIDATED = "VALI"
#: PID-31 identity unknown indicator.
IDENTITY_KNOWN = NO

#: XDM extra-metadata "action" (volet CDA en HL7v2 ``exemples.md``): replacement, deletion.
XDM_ACTION_REPLACE = "C"
XDM_ACTION_DELETE = "D"
