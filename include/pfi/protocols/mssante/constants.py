"""MSSanté header names, file names and error codes (one named constant each, no logic)."""

# Statistics headers of the ANS (Référentiel #2 ECO.2.4.x; DSR SC.MSS/CONF.14-16, CONF.21).
X_MSS_INS = "X-MSS-INS"
X_MSS_CODECDA = "X-MSS-CODECDA"
X_MSS_NIL = "X-MSS-NIL"
X_MSS_MES = "X-MSS-MES"
#: ``X-MSS-MES`` value closing the channel with the patient (NTE-4 ``FIN`` after DESTMSSANTEPAT).
MES_FIN = "FIN"

#: Name of the IHE XDM archive attached to MSSanté mails.
XDM_FILENAME = "IHE_XDM.ZIP"
#: Slot of the XDM DocumentEntry carrying the volet LPS extra-metadata "action" (C, D).
XDM_ACTION_SLOT = "action"

#: Root of the XDS submission set ``sourceId`` when the site gives none (UUID OID arc).
SOURCE_ID_ROOT = "2.25.233431374297104815787215283398391838047"

# Error codes (pfi.base.errors ``.code``).
NO_PATIENT_INS = "MSS_PATIENT_INS"
UNKNOWN_RECIPIENT = "MSS_UNKNOWN_RECIPIENT"
BAD_ADDRESS = "MSS_BAD_ADDRESS"
NO_DOCUMENT = "MSS_NO_DOCUMENT"
CONNECTION = "MSS_CONNECTION"
TLS = "MSS_TLS"
SERVER_CERTIFICATE = "MSS_SERVER_CERTIFICATE"
TIMEOUT = "MSS_TIMEOUT"
#: The connection was lost after the mail's data was sent, before the server's answer.
OUTCOME_UNKNOWN = "MSS_OUTCOME_UNKNOWN"
AUTH = "MSS_AUTH"
NO_MAILBOX = "MSS_NO_MAILBOX"
#: Prefix of the code of an SMTP reply: ``SMTP_550``.
SMTP_PREFIX = "SMTP_"

# --- Receiving side (volet "Transmission au LPS de documents CDA provenant d'un courriel
# MSSanté" v1.1, IG-MSS) -----------------------------------------------------------------------

#: Header asking for an MDN (RFC 8098 §2.1); its presence makes the error mail an MDN.
DISPOSITION_NOTIFICATION_TO = "Disposition-Notification-To"
#: Subject prefix of the error mail, MDN or standard (IG-MSS struct-msg-mdn.md,
#: struct-email-standard.md): ``[KO Intégration système !][<code erreur>] <objet d'origine>``.
KO_SUBJECT_PREFIX = "[KO Intégration système !]"
#: MDN ``Disposition`` of a processed mail, and of a refused one (+ ``<code>^<libellé>``).
MDN_PROCESSED = "automatic-action/MDN-sent-automatically; processed"
MDN_ERROR = "automatic-action/MDN-sent-automatically; processed/Error: "
#: File name of the original mail attached to the standard error mail (struct-email-standard.md).
ORIGINAL_MAIL_FILENAME = "message_original.eml"
#: HL7 table 0357 messageErrorCondition as the volet lists it (error-codes.md): ERR-3 codes.
MESSAGE_ERRORS = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "198": "Non-conformant cardinality",
    "199": "Other HL7 Error",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing",
    "203": "Unsupported version",
    "207": "Application error",
}

# Error codes of the receiving side.
MAIL_UNREADABLE = "MSS_MAIL_UNREADABLE"
MAIL_NO_SENDER = "MSS_MAIL_NO_SENDER"
MAIL_TOO_LARGE = "MSS_MAIL_TOO_LARGE"
#: An automatic mail (RFC 3834 ``Auto-Submitted``) is never answered: two PFIs would loop.
AUTO_SUBMITTED = "MSS_AUTO_SUBMITTED"
#: The folder's UIDVALIDITY changed under an open session: its UIDs name other mails now.
UIDVALIDITY_CHANGED = "MSS_UIDVALIDITY_CHANGED"
BAD_FOLDER = "MSS_BAD_FOLDER"
#: The IMAP server does not offer IDLE (RFC 2177): new mails are only found by polling.
NO_IDLE = "MSS_NO_IDLE"
