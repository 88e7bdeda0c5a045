"""MSSanté sending: compose the mail of a delivery, send it over SMTP with the mailbox's client
certificate, read the delivery/read notifications back over IMAP, trace every exchange.

::

    from pfi.protocols.mssante import Mailbox, MssConfig, compose, mail_orders

    orders = mail_orders(request, decide_request(request, policy), policy)
    mail = compose(request, orders[0], Mailbox("pfi@ch.mssante.fr"), MssConfig())
    with SmtpClient(endpoint) as smtp:
        smtp.send(mail)          # TransientError (4xx, network) / RefusedByPartner (5xx)

Modules: :mod:`~pfi.protocols.mssante.compose` (the mail), :mod:`~pfi.protocols.mssante.smtp` (the client),
:mod:`~pfi.protocols.mssante.config` (``[mssante]`` settings, French templates),
:mod:`~pfi.protocols.mssante.constants`. Spec: spec-digest §2 and §6, spec-facts §1.8-1.13, §4, §6.
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

__all__ = [
    "CHANNELS",
    "DEFAULT_TEMPLATES",
    "PATIENT",
    "PROFESSIONAL",
    "ComposedMail",
    "MailOrder",
    "Mailbox",
    "MssConfig",
    "SiteInfo",
    "compose",
    "mail_orders",
    "message_id_for",
    "order_for_delivery",
    "patient_address",
    "request_id_of",
]
