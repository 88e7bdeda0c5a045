"""SOAP 1.2 over HTTP, the DMP's way: reading a request (plain or MTOM/XOP ``multipart/related``,
parsed safely), its WS-Addressing headers, and writing answers (``rs:RegistryResponse``, faults).
"""

from __future__ import annotations

import base64
import email.message
import email.parser
import urllib.parse
from collections.abc import Sequence

from lxml import etree

from pfi_devkit.dmp.constants import (
    ACTION_FAULT,
    NS_RS,
    NS_SOAP12,
    NS_WSA,
    NSMAP,
    RESPONSE_FAILURE,
    RESPONSE_SUCCESS,
    SAFE_PARSER,
    SEVERITY_ERROR,
    qname,
)
from pfi_devkit.dmp.model import RegistryError, SoapFault


def _content_type(value: str) -> email.message.Message:
    holder = email.message.Message()
    holder["Content-Type"] = value or "application/octet-stream"
    return holder


def split_mtom(body: bytes, content_type: str) -> tuple[bytes, dict[str, bytes]]:
    """Split an MTOM/XOP ``multipart/related`` body into the root XML and parts by Content-ID.

    Split by hand, not with ``email``: parts are ``Content-Transfer-Encoding: binary`` and must
    come back byte for byte (the hash check depends on it).
    """
    ct = _content_type(content_type)
    boundary = ct.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise SoapFault("Sender", None, "multipart/related without a boundary")
    if ct.get_param("type") != "application/xop+xml":
        raise SoapFault("Sender", None, 'MTOM needs type="application/xop+xml"', 415)
    start = ct.get_param("start")
    delimiter = b"\r\n--" + boundary.encode("ascii")
    pieces = (b"\r\n" + body).split(delimiter)
    parts: list[tuple[email.message.Message, bytes]] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break
        _, _, piece = piece.partition(b"\r\n")  # transport padding after the delimiter
        raw_headers, sep, content = piece.partition(b"\r\n\r\n")
        if not sep:
            raise SoapFault("Sender", None, "a MIME part has no header/body separator")
        headers = email.parser.BytesHeaderParser().parsebytes(raw_headers + b"\r\n\r\n")
        if (headers.get("Content-Transfer-Encoding") or "").strip().lower() == "base64":
            content = base64.b64decode(content)
        parts.append((headers, content))
    if not parts:
        raise SoapFault("Sender", None, "multipart/related body without parts")
    root_index = 0
    if isinstance(start, str) and start:
        ids = [content_id(h.get("Content-ID", "")) for h, _ in parts]
        if content_id(start) not in ids:
            raise SoapFault("Sender", None, f"no MIME part for start={start}")
        root_index = ids.index(content_id(start))
    root_headers, root = parts.pop(root_index)
    if root_headers.get_content_type() != "application/xop+xml":
        raise SoapFault(
            "Sender", None, f"MTOM root part is {root_headers.get_content_type()}, not xop+xml"
        )
    return root, {content_id(h.get("Content-ID", "")): c for h, c in parts if h.get("Content-ID")}


def content_id(value: str) -> str:
    value = value.strip()
    if value.lower().startswith("cid:"):
        value = urllib.parse.unquote(value[4:])
    return value.strip("<>").strip()


def parse_envelope(body: bytes, content_type: str) -> tuple[etree._Element, dict[str, bytes]]:
    """The SOAP 1.2 envelope (parsed safely) and the MTOM attachments of a request body."""
    media = _content_type(content_type).get_content_type()
    if media == "multipart/related":
        xml, attachments = split_mtom(body, content_type)
    elif media in ("application/soap+xml", "text/xml"):
        xml, attachments = body, {}
    else:
        raise SoapFault("Sender", None, f"unsupported content type {media}", 415)
    try:
        tree = etree.fromstring(xml, SAFE_PARSER).getroottree()
    except etree.XMLSyntaxError as exc:
        raise SoapFault("Sender", None, f"not well-formed XML: {exc}") from exc
    if tree.docinfo.doctype:
        raise SoapFault("Sender", None, "a DTD is not allowed in a SOAP message")
    root = tree.getroot()
    if root.tag != qname(NS_SOAP12, "Envelope"):
        raise SoapFault("VersionMismatch", None, f"root {root.tag} is not a SOAP 1.2 Envelope")
    if media == "text/xml":
        raise SoapFault("Sender", None, "SOAP 1.2 goes as application/soap+xml", 415)
    return root, attachments


# -- WS-Addressing ---------------------------------------------------------------------------------


def addressing(envelope: etree._Element) -> tuple[str, str]:
    """``(wsa:Action, wsa:MessageID)`` of the request, both required."""
    header = envelope.find("soap:Header", NSMAP)
    values = []
    for name in ("Action", "MessageID"):
        node = header.find(f"wsa:{name}", NSMAP) if header is not None else None
        if node is None or not (node.text or "").strip():
            raise SoapFault("Sender", "wsa:MessageAddressingHeaderRequired", f"wsa:{name} missing")
        values.append(node.text.strip())
    return values[0], values[1]


# -- answers ---------------------------------------------------------------------------------------


def soap_envelope(action: str, relates_to: str | None, body_child: etree._Element) -> bytes:
    env = etree.Element(qname(NS_SOAP12, "Envelope"), nsmap={"soap": NS_SOAP12, "wsa": NS_WSA})
    header = etree.SubElement(env, qname(NS_SOAP12, "Header"))
    action_el = etree.SubElement(header, qname(NS_WSA, "Action"))
    action_el.set(qname(NS_SOAP12, "mustUnderstand"), "true")
    action_el.text = action
    if relates_to:
        etree.SubElement(header, qname(NS_WSA, "RelatesTo")).text = relates_to
    body = etree.SubElement(env, qname(NS_SOAP12, "Body"))
    body.append(body_child)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def registry_response(errors: Sequence[RegistryError] = ()) -> etree._Element:
    """``rs:RegistryResponse``: Success, or Failure with a ``rs:RegistryErrorList``."""
    response = etree.Element(qname(NS_RS, "RegistryResponse"), nsmap={"rs": NS_RS})
    response.set("status", RESPONSE_FAILURE if errors else RESPONSE_SUCCESS)
    if errors:
        error_list = etree.SubElement(response, qname(NS_RS, "RegistryErrorList"))
        error_list.set("highestSeverity", SEVERITY_ERROR)
        for error in errors:
            item = etree.SubElement(error_list, qname(NS_RS, "RegistryError"))
            item.set("errorCode", error.code)
            item.set("codeContext", error.context)
            item.set("severity", SEVERITY_ERROR)
            if error.location:
                item.set("location", error.location)
    return response


def fault_envelope(fault: SoapFault, relates_to: str | None = None) -> bytes:
    node = etree.Element(qname(NS_SOAP12, "Fault"), nsmap={"soap": NS_SOAP12})
    code = etree.SubElement(node, qname(NS_SOAP12, "Code"))
    etree.SubElement(code, qname(NS_SOAP12, "Value")).text = f"soap:{fault.code}"
    if fault.subcode:
        prefix = fault.subcode.split(":", 1)[0]
        sub = etree.SubElement(code, qname(NS_SOAP12, "Subcode"), nsmap={prefix: NSMAP[prefix]})
        etree.SubElement(sub, qname(NS_SOAP12, "Value")).text = fault.subcode
    reason = etree.SubElement(node, qname(NS_SOAP12, "Reason"))
    text = etree.SubElement(reason, qname(NS_SOAP12, "Text"))
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    text.text = fault.reason
    return soap_envelope(ACTION_FAULT, relates_to, node)
