"""HL7 v2 messages the PFI receives: parser, frozen model, MSSanté/DMP routing rules.

Parse → model → rules (stdlib ``email`` vocabulary): :func:`parse_message`/:func:`parse_file`
turn bytes into :class:`Hl7Request` (MDM/ORU, volet "Transmission de document(s) CDA en HL7v2"
v2.1) or :class:`Hl7Ack` (ACK, ZAM); :func:`decide` applies the one routing rule table to a
request's ``MetaDMPMSS`` flags. Errors are :class:`Hl7Error`, an
:class:`~pfi.base.errors.InvalidInput` carrying the partial MSH (``header``) needed to answer.
"""

from pfi.protocols.hl7v2.model import (
    Action,
    Coded,
    Defect,
    Document,
    DocumentInfo,
    EntityId,
    Hl7Ack,
    Hl7Message,
    Hl7Request,
    MetaFlags,
    Order,
    Participant,
    Patient,
    PatientId,
    Profile,
    VihfAuthor,
    Visit,
)
from pfi.protocols.hl7v2.parser import Hl7Error, parse_file, parse_message, split_file
from pfi.protocols.hl7v2.rules import RULES, Decision, Routing, Rule, decide, decide_request

__all__ = [
    "RULES",
    "Action",
    "Coded",
    "Decision",
    "Defect",
    "Document",
    "DocumentInfo",
    "EntityId",
    "Hl7Ack",
    "Hl7Error",
    "Hl7Message",
    "Hl7Request",
    "MetaFlags",
    "Order",
    "Participant",
    "Patient",
    "PatientId",
    "Profile",
    "Routing",
    "Rule",
    "VihfAuthor",
    "Visit",
    "decide",
    "decide_request",
    "parse_file",
    "parse_message",
    "split_file",
]
