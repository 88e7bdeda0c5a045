"""SOAP 1.2 envelopes of the DMP transactions, and the MTOM/XOP package of ITI-41.

- **ITI-41** Provide and Register Document Set-b (IHE ITI TF-2b §3.41): ``wsa:Action``
  ``urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b`` (mustUnderstand), ``wsa:MessageID``,
  ``wsa:To``, ``wsse:Security`` holding the VIHF; body ``xds:ProvideAndRegisterDocumentSetRequest``
  = ``lcm:SubmitObjectsRequest`` + one ``xds:Document`` per entry. Documents travel as MTOM/XOP
  parts (``xop:Include href="cid:…"``), binary, so the bytes hashed are the bytes sent.
  zeep cannot send MTOM; the multipart/related body is built here (RFC 2387, XOP 1.0).
- **ITI-57** Update Document Set (TF-2b §3.57), served by the registry: an availability-status
  update, which is how the DMP deletes (spec-facts §5.2, DRIMbox ``DeleteRequest.java``).
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from lxml import etree

from pfi.protocols.dmp import constants as k

_SOAP = f"{{{k.NS_SOAP12}}}"
_WSA = f"{{{k.NS_WSA}}}"
_XDS = f"{{{k.NS_XDS}}}"
_RIM = f"{{{k.NS_RIM}}}"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


@dataclass(frozen=True)
class Attachment:
    """One MTOM part: the document of the ``xds:Document`` whose id is ``document_id``."""

    document_id: str
    content: bytes = field(repr=False)
    media_type: str = "text/xml"
    content_id: str = field(default_factory=lambda: f"{uuid.uuid4().hex}@pfi")


@dataclass(frozen=True)
class SoapRequest:
    """A request ready to POST: ``body`` with its ``content_type`` to the service of
    ``transaction`` (ITI-41 → repository, ITI-57 → registry). The body holds patient data."""

    transaction: Literal["ITI-41", "ITI-57"]
    action: str
    message_id: str
    content_type: str
    body: bytes = field(repr=False)
    envelope: bytes = field(repr=False, default=b"")


def envelope(
    action: str, to: str, message_id: str, vihf: etree._Element, body_child: etree._Element
) -> etree._Element:
    """SOAP 1.2 envelope with WS-Addressing headers and the VIHF in ``wsse:Security``."""
    env = etree.Element(
        _SOAP + "Envelope", nsmap={"soap": k.NS_SOAP12, "wsa": k.NS_WSA, "wsse": k.NS_WSSE}
    )
    header = etree.SubElement(env, _SOAP + "Header")
    action_el = etree.SubElement(header, _WSA + "Action")
    action_el.set(_SOAP + "mustUnderstand", "true")
    action_el.text = action
    etree.SubElement(header, _WSA + "MessageID").text = message_id
    etree.SubElement(header, _WSA + "To").text = to
    security = etree.SubElement(header, f"{{{k.NS_WSSE}}}Security")
    security.set(_SOAP + "mustUnderstand", "true")
    security.append(vihf)
    etree.SubElement(env, _SOAP + "Body").append(body_child)
    return env


def mtom_package(
    root_xml: bytes, attachments: Sequence[Attachment], action: str
) -> tuple[bytes, str]:
    """``(body, Content-Type)`` of a ``multipart/related; type="application/xop+xml"`` package.

    The boundary is random and checked against every part, so no document can contain it.
    """
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    marker = b"--" + boundary.encode("ascii")
    for part in (root_xml, *(a.content for a in attachments)):
        if marker in part:  # astronomically unlikely; never build a broken package
            return mtom_package(root_xml, attachments, action)
    root_cid = f"root.{uuid.uuid4().hex}@pfi"
    chunks = [
        marker + b"\r\n",
        (
            'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n'
            "Content-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{root_cid}>\r\n\r\n"
        ).encode("ascii"),
        root_xml,
        b"\r\n",
    ]
    for attachment in attachments:
        chunks += [
            marker + b"\r\n",
            (
                f"Content-Type: {attachment.media_type}\r\n"
                "Content-Transfer-Encoding: binary\r\n"
                f"Content-ID: <{attachment.content_id}>\r\n\r\n"
            ).encode("ascii"),
            attachment.content,
            b"\r\n",
        ]
    chunks.append(marker + b"--\r\n")
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
        f'start="<{root_cid}>"; start-info="application/soap+xml"; action="{action}"'
    )
    return b"".join(chunks), content_type


def iti41(
    submit_objects_request: bytes,
    attachments: Sequence[Attachment],
    *,
    to: str,
    vihf: etree._Element,
    message_id: str | None = None,
) -> SoapRequest:
    """ITI-41 from an ``lcm:SubmitObjectsRequest`` (as :func:`pfi.protocols.xdm.build_metadata` writes it)
    and the documents, each referenced by ``xop:Include`` from its ``xds:Document``."""
    message_id = message_id or f"urn:uuid:{uuid.uuid4()}"
    request = etree.Element(
        _XDS + "ProvideAndRegisterDocumentSetRequest",
        nsmap={"xds": k.NS_XDS, "lcm": k.NS_LCM, "rim": k.NS_RIM, "xop": k.NS_XOP},
    )
    request.append(etree.fromstring(submit_objects_request, _PARSER))
    for attachment in attachments:
        document = etree.SubElement(request, _XDS + "Document", id=attachment.document_id)
        etree.SubElement(
            document,
            f"{{{k.NS_XOP}}}Include",
            href=f"cid:{urllib.parse.quote(attachment.content_id)}",
        )
    env = envelope(k.ACTION_ITI41, to, message_id, vihf, request)
    xml = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    body, content_type = mtom_package(xml, attachments, k.ACTION_ITI41)
    return SoapRequest("ITI-41", k.ACTION_ITI41, message_id, content_type, body, xml)


def iti57(
    submit_objects_request: bytes,
    *,
    to: str,
    vihf: etree._Element,
    message_id: str | None = None,
) -> SoapRequest:
    """ITI-57 (plain SOAP 1.2: no document travels) from an ``lcm:SubmitObjectsRequest``."""
    message_id = message_id or f"urn:uuid:{uuid.uuid4()}"
    body = etree.fromstring(submit_objects_request, _PARSER)
    env = envelope(k.ACTION_ITI57, to, message_id, vihf, body)
    xml = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    content_type = f'application/soap+xml; charset=UTF-8; action="{k.ACTION_ITI57}"'
    return SoapRequest("ITI-57", k.ACTION_ITI57, message_id, content_type, xml, xml)


def status_update(
    submit_objects_request: bytes,
    submission_set_id: str,
    entry_uuid: str,
    *,
    original: str = k.STATUS_APPROVED,
    new: str = k.STATUS_DELETED,
) -> bytes:
    """Add the ``UpdateAvailabilityStatus`` association (submission set → entry) to a
    submission-set-only ``lcm:SubmitObjectsRequest``."""
    root = etree.fromstring(submit_objects_request, _PARSER)
    objects = root.find("rim:RegistryObjectList", k.NSMAP)
    assoc = etree.SubElement(
        objects,
        _RIM + "Association",
        id=f"urn:uuid:{uuid.uuid4()}",
        associationType=k.ASSOC_UPDATE_STATUS,
        sourceObject=submission_set_id,
        targetObject=entry_uuid,
    )
    for name, value in (("OriginalStatus", original), ("NewStatus", new)):
        slot = etree.SubElement(assoc, _RIM + "Slot", name=name)
        etree.SubElement(etree.SubElement(slot, _RIM + "ValueList"), _RIM + "Value").text = value
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


__all__ = [
    "Attachment",
    "SoapRequest",
    "envelope",
    "iti41",
    "iti57",
    "mtom_package",
    "status_update",
]
