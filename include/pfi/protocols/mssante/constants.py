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
