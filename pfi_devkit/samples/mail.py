"""A professional's mail to an application mailbox, built from the project's samples.

What the receiving flow (``dags/poll_mssante_inbox.py``) takes: the sample MDM's document as an
MSSanté mail (``IHE_XDM.ZIP`` + PDF) composed by the project's own sender
(:func:`pfi.protocols.mssante.compose`) from a human mailbox, or the same mail text only (no
XDM: the PFI refuses it with the volet's error mail, code ``MSS_NO_XDM``). Used by ``make run``'s
demo (:func:`pfi_devkit.demo.mail_samples`) and the tests (``tests/pfi_fixtures/mail.py``).
"""

from __future__ import annotations

import dataclasses
import uuid
from email.message import EmailMessage

TEXT_ONLY_BODY = "Bonjour, le document suit."


def document_mail(
    hl7: bytes,
    sender: str,
    recipient: str,
    *,
    with_xdm: bool = True,
    message_id: str | None = None,
    software_reference: str = "PFI-DEVKIT",
    sender_name: str = "Cabinet de démonstration",
) -> EmailMessage:
    """The mail ``sender`` (a professional) sends to ``recipient`` with the document of ``hl7``
    (an MDM/ORU sample asking for a professional's mail), with ``message_id`` (a new one when
    None); ``with_xdm=False``: the same mail, text only."""
    from pfi.protocols.hl7v2 import decide_request, parse_message
    from pfi.protocols.ins import InsPolicy
    from pfi.protocols.mssante import Mailbox, MssConfig, compose, mail_orders

    policy = InsPolicy.for_environment("test")
    request = parse_message(hl7)
    order = mail_orders(request, decide_request(request, policy), policy)[0]
    order = dataclasses.replace(order, recipient=recipient)
    config = MssConfig(software_reference=software_reference, sender_name=sender_name)
    message = compose(request, order, Mailbox(sender), config).message
    del message["Message-ID"]
    domain = sender.rsplit("@", 1)[-1]
    message["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@{domain}>"
    if not with_xdm:
        message.clear_content()
        message.set_content(TEXT_ONLY_BODY)
    return message
