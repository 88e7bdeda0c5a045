"""Reading the DMP's answers: registry responses, SOAP faults, HTTP statuses.

Outcome of one request (IHE ITI TF-3 §4.2.4, ebRS 3.0 ``rs:RegistryResponse``):

==============================================  ============================================
answer                                          meaning for the PFI
==============================================  ============================================
``Success``                                     accepted
``Failure`` whose errors are all                accepted: the document was registered by an
"already registered" (:data:`ALREADY_…`)        earlier attempt whose answer was lost
``Failure`` with a transient registry code      :class:`~pfi.base.errors.TransientError` (retry)
``Failure`` otherwise, ``PartialSuccess``       :class:`~pfi.base.errors.RefusedByPartner`, with the
                                                first registry error code as the error's code
SOAP Fault ``Receiver``, HTTP 5xx, 429          :class:`~pfi.base.errors.TransientError`
HTTP 401, 403, 404, 405, 407, 408, 421, 425     :class:`~pfi.base.errors.TransientError`
without a SOAP answer                           (``DMP_HTTP_<status>``): nothing at that URL,
                                                credentials or proxy, timeout — the
                                                connection's fault, fixed by the operator;
                                                the DMP never read the request
SOAP Fault ``Sender`` / ``VersionMismatch``,    :class:`~pfi.base.errors.RefusedByPartner`
other HTTP 4xx                                  (``DMP_SOAP_FAULT`` / ``DMP_HTTP_<status>``)
==============================================  ============================================

Registry error codes are kept (``DmpResponse.errors``); their ``codeContext`` texts may quote
the request (a patient id), so error messages carry the codes only.
"""

from __future__ import annotations

import email.message
from dataclasses import dataclass, field
from typing import Literal

from lxml import etree

from pfi.base.errors import RefusedByPartner, TransientError
from pfi.protocols.dmp import constants as k

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

Status = Literal["success", "partial", "failure"]

#: HTTP statuses that, without a SOAP answer, say "not here / not you / not now" about the
#: connection (wrong URL, credentials, proxy, timeout), not "no" about the document: retried,
#: like a TLS failure, instead of refusing for good a document the DMP never read.
ENDPOINT_STATUSES = frozenset({401, 403, 404, 405, 407, 408, 421, 425})


@dataclass(frozen=True)
class RegistryError:
    """One ``rs:RegistryError``: ``code`` (errorCode), ``context`` (codeContext, may quote
    patient data: never logged), ``severity``, ``location``."""

    code: str
    context: str = field(default="", repr=False)
    severity: str = ""
    location: str = field(default="", repr=False)

    @property
    def is_warning(self) -> bool:
        return self.severity == k.SEVERITY_WARNING


@dataclass(frozen=True)
class DmpResponse:
    """A registry response as received: ``status`` and every error, in order."""

    status: Status
    errors: tuple[RegistryError, ...] = ()
    relates_to: str = ""
    http_status: int = 200

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(e.code for e in self.errors if not e.is_warning)

    @property
    def already_registered(self) -> bool:
        """A failure whose every error says "this document is already there"."""
        codes = self.codes
        return self.status == "failure" and bool(codes) and set(codes) <= k.ALREADY_REGISTERED_CODES

    @property
    def accepted(self) -> bool:
        return self.status == "success" or self.already_registered

    def raise_for_outcome(self) -> DmpResponse:
        """Return ``self`` when accepted; raise the error the answer stands for otherwise."""
        if self.accepted:
            return self
        codes = self.codes or ("DMP_UNKNOWN_ERROR",)
        listed = ", ".join(codes[:5])
        if any(code in k.TRANSIENT_CODES for code in codes):
            raise TransientError(f"the DMP asks to retry later ({listed})", code=codes[0][:60])
        if self.status == "partial":
            raise RefusedByPartner(
                f"the DMP accepted only part of the lot ({listed})", code="DMP_PARTIAL"
            )
        raise RefusedByPartner(f"the DMP refused the submission ({listed})", code=codes[0][:60])


def _root_part(body: bytes, content_type: str) -> bytes:
    """The XML of a response, whether plain SOAP or MTOM (first part, or the ``start`` one)."""
    holder = email.message.Message()
    holder["Content-Type"] = content_type or "application/soap+xml"
    if holder.get_content_type() != "multipart/related":
        return body
    boundary = holder.get_param("boundary")
    if not isinstance(boundary, str):
        return body
    start = holder.get_param("start")
    parts = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("ascii"))
    found = []
    for part in parts[1:]:
        if part.startswith(b"--"):
            break
        _, _, part = part.partition(b"\r\n")
        headers, _, content = part.partition(b"\r\n\r\n")
        found.append((headers, content))
    if isinstance(start, str) and start:
        cid = start.strip("<>").encode("ascii", "replace")
        for headers, content in found:
            if cid in headers:
                return content
    return found[0][1] if found else body


def parse_response(http_status: int, content_type: str, body: bytes) -> DmpResponse:
    """Read an answer; raise :class:`TransientError` / :class:`RefusedByPartner` for faults and
    for HTTP errors that carry no registry response."""
    xml = _root_part(body, content_type)
    root = None
    if xml.strip():
        try:
            root = etree.fromstring(xml.strip(), _PARSER)
        except etree.XMLSyntaxError:
            root = None
    if root is not None and root.tag == f"{{{k.NS_SOAP12}}}Envelope":
        fault = root.find("soap:Body/soap:Fault", k.NSMAP)
        if fault is not None:
            _raise_fault(fault, http_status)
        response = root.find("soap:Body/rs:RegistryResponse", k.NSMAP)
        if response is not None:
            return _registry_response(root, response, http_status)
    if http_status >= 500 or http_status == 429 or http_status in ENDPOINT_STATUSES:
        raise TransientError(f"the DMP answered HTTP {http_status}", code=f"DMP_HTTP_{http_status}")
    if http_status >= 400:
        raise RefusedByPartner(
            f"the DMP answered HTTP {http_status}", code=f"DMP_HTTP_{http_status}"
        )
    raise TransientError(
        f"the DMP's answer (HTTP {http_status}) holds no registry response",
        code="DMP_BAD_RESPONSE",
    )


def _registry_response(
    envelope: etree._Element, response: etree._Element, http_status: int
) -> DmpResponse:
    raw = response.get("status", "")
    status: Status = (
        "success"
        if raw == k.RESPONSE_SUCCESS
        else "partial"
        if raw == k.RESPONSE_PARTIAL
        else "failure"
    )
    errors = tuple(
        RegistryError(
            code=e.get("errorCode", ""),
            context=e.get("codeContext", ""),
            severity=e.get("severity", ""),
            location=e.get("location", ""),
        )
        for e in response.iterfind("rs:RegistryErrorList/rs:RegistryError", k.NSMAP)
    )
    relates_to = envelope.findtext("soap:Header/wsa:RelatesTo", "", k.NSMAP).strip()
    return DmpResponse(status, errors, relates_to, http_status)


def _raise_fault(fault: etree._Element, http_status: int) -> None:
    code = fault.findtext("soap:Code/soap:Value", "", k.NSMAP).strip()
    subcode = fault.findtext("soap:Code/soap:Subcode/soap:Value", "", k.NSMAP).strip()
    local = code.rsplit(":", 1)[-1]
    detail = f"{local}{' ' + subcode if subcode else ''}"
    if local == "Receiver" or http_status >= 500 and local not in ("Sender", "VersionMismatch"):
        raise TransientError(f"the DMP answered a SOAP fault ({detail})", code="DMP_UNAVAILABLE")
    raise RefusedByPartner(f"the DMP refused the request ({detail})", code="DMP_SOAP_FAULT")


__all__ = ["DmpResponse", "RegistryError", "parse_response"]
