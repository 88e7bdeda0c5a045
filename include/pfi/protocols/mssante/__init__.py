"""MSSanté sending: compose the mail of a delivery, send it over SMTP with the mailbox's client
certificate, read the delivery/read notifications back over IMAP, trace every exchange.

::

    from pfi.protocols.mssante import Mailbox, MssConfig, compose, mail_orders

    orders = mail_orders(request, decide_request(request, policy), policy)
    mail = compose(request, orders[0], Mailbox("pfi@ch.mssante.fr"), MssConfig())
    with SmtpClient(endpoint) as smtp:
        smtp.send(mail)          # TransientError (4xx, network) / RefusedByPartner (5xx)

Receiving (volet "Transmission au LPS de documents CDA provenant d'un courriel MSSanté")::

    mail = read_mail(imap.fetch(uid))            # InvalidInput MSS_MAIL_…
    mail.xdm_archives                            # the IHE_XDM.ZIP attachments
    reply = error_mail(mail, from_address=box, code="902", message_id=reply_message_id(mail, box))
    smtp.send(reply)                             # an MDN, or a standard mail

Modules: :mod:`~pfi.protocols.mssante.compose` (the mail), :mod:`~pfi.protocols.mssante.smtp` (the client),
:mod:`~pfi.protocols.mssante.config` (``[mssante]`` settings, French templates),
:mod:`~pfi.protocols.mssante.inbound` (a received mail), :mod:`~pfi.protocols.mssante.error_mail`
(the error mail / MDN), :mod:`~pfi.protocols.mssante.imap` (reports, received mails),
:mod:`~pfi.protocols.mssante.constants`. Spec: spec-digest §2, §3 and §6, spec-facts §1.8-1.13,
§2.7, §4, §6.
"""

from pfi.protocols.mssante.compose import (
    CHANNELS,
    PATIENT,
    PROFESSIONAL,
    ComposedMail,
    Mailbox,
    MailOrder,
    SiteInfo,
    compose,
    mail_orders,
    message_id_for,
    order_for_delivery,
    patient_address,
    request_id_of,
)
from pfi.protocols.mssante.config import DEFAULT_TEMPLATES, MssConfig
from pfi.protocols.mssante.error_mail import (
    ReplyMail,
    error_mail,
    processed_mdn,
    reply_message_id,
)
from pfi.protocols.mssante.inbound import Attachment, ReceivedMail, read_mail

__all__ = [
    "CHANNELS",
    "DEFAULT_TEMPLATES",
    "PATIENT",
    "PROFESSIONAL",
    "Attachment",
    "ComposedMail",
    "MailOrder",
    "Mailbox",
    "MssConfig",
    "ReceivedMail",
    "ReplyMail",
    "SiteInfo",
    "compose",
    "error_mail",
    "mail_orders",
    "message_id_for",
    "order_for_delivery",
    "patient_address",
    "processed_mdn",
    "read_mail",
    "reply_message_id",
    "request_id_of",
]
