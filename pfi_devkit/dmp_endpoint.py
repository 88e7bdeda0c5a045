"""An HTTPS SOAP 1.2 endpoint playing the DMP: IHE XDS.b ITI-41 (feed) and ITI-57 (deletion).

Why our own: no XDS.b registry/repository installs from PyPI, Debian or npm, and the real DMP
test platform needs a CNDA homologation. This endpoint checks what the DMP is known to check
(spec-digest §8, spec-facts §5) and refuses loudly, so that a wrong request fails in the tests
rather than at the CNDA:

=====================  ================================================================  ======
check                  refusal                                                           HTTP
=====================  ================================================================  ======
TLS client cert        handshake refused (``CERT_REQUIRED``, CA bundle, CRLs)            --
content type           ``application/soap+xml`` or MTOM ``multipart/related;             415
                       type="application/xop+xml"``, else SOAP Fault ``Sender``
SOAP 1.2 envelope      SOAP Fault ``VersionMismatch`` (a SOAP 1.1 or foreign root)       500
DTD in the request     SOAP Fault ``Sender`` (SOAP 1.2 forbids it; nothing is resolved)  400
``wsa:Action``         missing → ``wsa:MessageAddressingHeaderRequired``; not the path's 400
                       transaction → ``wsa:ActionNotSupported``; same for MessageID
VIHF                   no ``wsse:Security/saml2:Assertion`` → ``wsse:InvalidSecurity``;  400
                       with ``verify_vihf`` a bad signature → ``wsse:FailedCheck``
metadata / documents   ``rs:RegistryResponse`` Failure + ``rs:RegistryErrorList``         200
=====================  ================================================================  ======

Registry error codes (IHE ITI TF-3 table 4.2.4.1-2, ebRS 3.0): ``XDSMissingDocument`` (an
ExtrinsicObject without ``xds:Document``, or an ``xop:Include`` without its MIME part),
``XDSMissingDocumentMetadata`` (a Document without ExtrinsicObject), ``XDSRepositoryMetadataError``
(uniqueId missing, bad base64, bad ``hash``/``size`` syntax), ``XDSNonIdenticalHash`` (``hash``
slot ≠ SHA-1 of the bytes, or a uniqueId already stored with other bytes), ``XDSNonIdenticalSize``,
``XDSPatientIdDoesNotMatch``, ``XDSRegistryDuplicateUniqueIdInMessage``,
``XDSRegistryMetadataError`` (no submission set, entry not a member of it, missing signature
document when required), ``UnresolvedReferenceException`` (RPLC / ITI-57 target unknown),
``XDSMetadataUpdateError`` (ITI-57 status change refused), ``XDSDuplicateUniqueIdInRegistry`` (an
ITI-57 submission set whose uniqueId was already accepted: the update sent again). The same document sent again (same
uniqueId, same bytes) is the idempotent case: Success, counted in ``duplicates``, stored once.

What is stored on success (``accepted``: one ``Submission`` per request; ``entries``: uniqueId →
``DocumentEntry`` with its bytes and availability status): an RPLC association deprecates the
target entry; ITI-57 ``UpdateAvailabilityStatus`` sets ``urn:asip:ci-sis:2010:StatusType:Deleted``
(or Archived). ITI-41 is served at ``REPOSITORY_PATH``, ITI-57 at ``REGISTRY_PATH`` (the DMP's
shape); the other action on a path is refused as unsupported.

Modes, settable at runtime (``set_mode``) or from another process with ``POST /_devkit/mode``
(JSON ``{"mode": ..., "error_code": ..., "delay": ..., "duration": ...}``, same TLS client
authentication; ``GET /_devkit/state`` returns ``describe()``): ``normal``; ``fail`` (a valid
request gets a registry Failure with ``error_code``); ``transient`` (HTTP 503 with a SOAP
``Receiver`` fault and ``Retry-After``); ``slow`` (wait ``delay`` s, then normal); ``drop`` (read
the request, close the connection without answering); ``down`` (stop listening, sever open
connections: connection refused until the mode changes). ``duration`` makes any mode revert to
``normal`` after that many seconds, which is how a separate process brings ``down`` back.

With ``require_signature_document`` the lot must carry the XAdES signature document (classCode
``urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1``) with a ``signs`` association to the submission set, and
that document is checked: its XML-DSig signature (every reference, incl. the XAdES
``SignedProperties``) against the CA bundle, and its ``IHEManifest`` must list every other
document of the lot (``urn:oid:<uniqueId>``) with the digest of the bytes received (SHA-256 or
SHA-1) — else ``XDSRegistryMetadataError``. With ``strict_metadata`` every document entry must
carry what the DMP requires (:data:`DMP_REQUIRED_ENTRY_METADATA`: classCode, typeCode,
formatCode, confidentialityCode, healthcareFacilityTypeCode, practiceSettingCode, creationTime,
languageCode, sourcePatientId, an author) and the submission set its contentTypeCode — else
``XDSRegistryMetadataError`` naming what is missing.

Not simulated: registry queries (ITI-18), metadata updates other than availability status,
the XAdES signature policy of the DMP guide (not public), DMP business rules (DMP existence,
patient consent).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import datetime as dt
import email.message
import email.parser
import hashlib
import itertools
import json
import re
import signal
import socket
import ssl
import threading
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Protocol

from lxml import etree

HOST = "127.0.0.1"

# -- namespaces -----------------------------------------------------------------------------------
NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS_WSA = "http://www.w3.org/2005/08/addressing"
NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XOP = "http://www.w3.org/2004/08/xop/include"
NS_XDS = "urn:ihe:iti:xds-b:2007"
NS_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS_RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
NSMAP = {
    "soap": NS_SOAP12,
    "wsa": NS_WSA,
    "wsse": NS_WSSE,
    "saml2": NS_SAML2,
    "ds": NS_DS,
    "xop": NS_XOP,
    "xds": NS_XDS,
    "lcm": NS_LCM,
    "rim": NS_RIM,
    "rs": NS_RS,
}

# -- transactions (WS-Addressing actions) and where they are served -------------------------------
ACTION_ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_ITI41_RESPONSE = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
ACTION_ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
ACTION_ITI57_RESPONSE = "urn:ihe:iti:2010:UpdateDocumentSetResponse"
ACTION_FAULT = "http://www.w3.org/2005/08/addressing/soap/fault"
REPOSITORY_PATH = "/si-dmp-server/v2/services/repository"
REGISTRY_PATH = "/si-dmp-server/v2/services/registry"
CONTROL_PATH = "/_devkit"
ACTIONS_BY_PATH = {REPOSITORY_PATH: ACTION_ITI41, REGISTRY_PATH: ACTION_ITI57}
RESPONSE_ACTIONS = {ACTION_ITI41: ACTION_ITI41_RESPONSE, ACTION_ITI57: ACTION_ITI57_RESPONSE}

# -- ebRS statuses --------------------------------------------------------------------------------
RESPONSE_SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
RESPONSE_FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
SEVERITY_ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
STATUS_APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
STATUS_DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
STATUS_DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"
STATUS_ARCHIVED = "urn:asip:ci-sis:2010:StatusType:Archived"
ITI57_NEW_STATUSES = (STATUS_DELETED, STATUS_ARCHIVED, STATUS_APPROVED, STATUS_DEPRECATED)

# -- XDS associations, object types, classification and identification schemes --------------------
ASSOC_HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
ASSOC_RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
ASSOC_SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
ASSOC_UPDATE_STATUS = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
OBJECT_TYPE_STABLE_ENTRY = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_CONTENT_TYPE_CODE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_CONFIDENTIALITY_CODE = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_HEALTHCARE_FACILITY_TYPE_CODE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE_SETTING_CODE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
#: classCode of the XAdES signature document the DMP wants in every lot (spec-facts §5.4).
SIGNATURE_CLASS_CODE = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
#: What ``strict_metadata`` requires of every document entry (spec-facts §5.4, IG-CDA mapping):
#: classification schemes by name, then slots.
DMP_REQUIRED_ENTRY_METADATA = (
    ("classCode", DE_CLASS_CODE),
    ("typeCode", DE_TYPE_CODE),
    ("formatCode", DE_FORMAT_CODE),
    ("confidentialityCode", DE_CONFIDENTIALITY_CODE),
    ("healthcareFacilityTypeCode", DE_HEALTHCARE_FACILITY_TYPE_CODE),
    ("practiceSettingCode", DE_PRACTICE_SETTING_CODE),
    ("author", DE_AUTHOR),
)
DMP_REQUIRED_ENTRY_SLOTS = ("creationTime", "languageCode", "sourcePatientId")
_DIGESTS = {
    "http://www.w3.org/2001/04/xmlenc#sha256": hashlib.sha256,
    "http://www.w3.org/2000/09/xmldsig#sha1": hashlib.sha1,
}

# -- registry error codes -------------------------------------------------------------------------
XDS_MISSING_DOCUMENT = "XDSMissingDocument"
XDS_MISSING_DOCUMENT_METADATA = "XDSMissingDocumentMetadata"
XDS_REPOSITORY_METADATA_ERROR = "XDSRepositoryMetadataError"
XDS_REGISTRY_METADATA_ERROR = "XDSRegistryMetadataError"
XDS_NON_IDENTICAL_HASH = "XDSNonIdenticalHash"
XDS_NON_IDENTICAL_SIZE = "XDSNonIdenticalSize"
XDS_PATIENT_ID_DOES_NOT_MATCH = "XDSPatientIdDoesNotMatch"
XDS_DUPLICATE_UNIQUE_ID_IN_MESSAGE = "XDSRegistryDuplicateUniqueIdInMessage"
XDS_DUPLICATE_UNIQUE_ID_IN_REGISTRY = "XDSDuplicateUniqueIdInRegistry"
XDS_METADATA_UPDATE_ERROR = "XDSMetadataUpdateError"
UNRESOLVED_REFERENCE = "UnresolvedReferenceException"
#: Default code of the ``fail`` mode: the DMP error seen in the ANS ZAM examples.
DEFAULT_FAIL_CODE = "DMPClosed"

#: VIHF attributes a DMP feed in indirect authentication carries (spec-facts §5.3); pass them
#: as ``required_vihf_attributes`` to refuse an assertion that lacks one.
VIHF_ATTRIBUTES_DMP = (
    "VIHF_Version",
    "Authentification_Mode",
    "Identifiant_Structure",
    "Secteur_Activite",
    "urn:oasis:names:tc:xspa:1.0:subject:subject-id",
    "urn:oasis:names:tc:xacml:2.0:subject:role",
    "urn:oasis:names:tc:xacml:2.0:resource:resource-id",
    "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse",
    "Ressource_URN",
)

Mode = Literal["normal", "fail", "transient", "slow", "drop", "down"]
MODES: tuple[Mode, ...] = ("normal", "fail", "transient", "slow", "drop", "down")
MAX_BODY = 64 * 1024 * 1024
DEFAULT_SLOW_DELAY = 5.0
RETRY_AFTER_SECONDS = 1
CONNECTION_TIMEOUT = 30.0

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=False
)


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


class CredentialLike(Protocol):
    """What the endpoint needs of a ``pfi_devkit.pki.Credential`` (no import of the PKI)."""

    cert_path: Path
    key_path: Path


# -- model ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    """A coded XDS classification: ``nodeRepresentation`` and its ``codingScheme`` slot."""

    code: str
    scheme: str = ""


@dataclass
class DocumentEntry:
    """A stored XDSDocumentEntry and its bytes; ``status`` changes with RPLC and ITI-57."""

    entry_uuid: str
    unique_id: str
    patient_id: str
    mime_type: str
    class_code: Code | None
    type_code: Code | None
    format_code: Code | None
    confidentiality_codes: tuple[Code, ...]
    healthcare_facility_type_code: Code | None
    practice_setting_code: Code | None
    sha1: str
    size: int
    submission_set: str
    status: str = STATUS_APPROVED
    replaces: str | None = None  # entryUUID of the entry this one replaced (RPLC)
    replaced_by: str | None = None
    slots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    content: bytes = field(default=b"", repr=False)

    @property
    def is_signature(self) -> bool:
        return self.class_code is not None and self.class_code.code == SIGNATURE_CLASS_CODE

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("content")
        data["slots"] = {k: list(v) for k, v in self.slots.items()}
        return data


@dataclass(frozen=True)
class Submission:
    """One accepted request: ITI-41 (entries stored) or ITI-57 (status updates applied)."""

    transaction: Literal["ITI-41", "ITI-57"]
    message_id: str
    submission_set_unique_id: str
    patient_id: str
    source_id: str
    entries: tuple[str, ...]  # uniqueIds stored by this request
    duplicates: tuple[str, ...]  # uniqueIds sent again with the same bytes (idempotent)
    replaced: tuple[str, ...]  # entryUUIDs deprecated by an RPLC association
    updates: tuple[tuple[str, str, str], ...]  # ITI-57: (entryUUID, original, new status)
    client_cn: str | None
    vihf: Mapping[str, tuple[str, ...]]
    received_at: str


@dataclass(frozen=True)
class RegistryError:
    code: str
    context: str
    location: str = ""


class _Errors(list[RegistryError]):
    """The registry errors of one request, collected so that the answer lists them all."""

    def add(self, code: str, context: str, location: str = "") -> None:
        self.append(RegistryError(code, context, location))


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused (for tests and the demo): fault subcode or registry codes."""

    kind: Literal["fault", "registry", "http"]
    codes: tuple[str, ...]
    text: str


class SoapFault(Exception):
    """A SOAP 1.2 fault; HTTP status per the SOAP 1.2 HTTP binding (Sender → 400, else 500)."""

    def __init__(self, code: str, subcode: str | None, reason: str, http_status: int = 0):
        super().__init__(reason)
        self.code, self.subcode, self.reason = code, subcode, reason
        self.http_status = http_status or (400 if code == "Sender" else 500)


class RegistryFailure(Exception):
    """Metadata or documents refused: answered as ``rs:RegistryResponse`` Failure (HTTP 200)."""

    def __init__(self, errors: Sequence[RegistryError]):
        super().__init__("; ".join(f"{e.code}: {e.context}" for e in errors))
        self.errors = tuple(errors)

    @classmethod
    def one(cls, code: str, context: str, location: str = "") -> RegistryFailure:
        return cls([RegistryError(code, context, location)])


# -- parsing the HTTP body ------------------------------------------------------------------------


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
        ids = [_cid(h.get("Content-ID", "")) for h, _ in parts]
        if _cid(start) not in ids:
            raise SoapFault("Sender", None, f"no MIME part for start={start}")
        root_index = ids.index(_cid(start))
    root_headers, root = parts.pop(root_index)
    if root_headers.get_content_type() != "application/xop+xml":
        raise SoapFault(
            "Sender", None, f"MTOM root part is {root_headers.get_content_type()}, not xop+xml"
        )
    return root, {_cid(h.get("Content-ID", "")): c for h, c in parts if h.get("Content-ID")}


def _cid(value: str) -> str:
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
        tree = etree.fromstring(xml, _PARSER).getroottree()
    except etree.XMLSyntaxError as exc:
        raise SoapFault("Sender", None, f"not well-formed XML: {exc}") from exc
    if tree.docinfo.doctype:
        raise SoapFault("Sender", None, "a DTD is not allowed in a SOAP message")
    root = tree.getroot()
    if root.tag != _q(NS_SOAP12, "Envelope"):
        raise SoapFault("VersionMismatch", None, f"root {root.tag} is not a SOAP 1.2 Envelope")
    if media == "text/xml":
        raise SoapFault("Sender", None, "SOAP 1.2 goes as application/soap+xml", 415)
    return root, attachments


# -- WS-Addressing and the VIHF -------------------------------------------------------------------


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


def find_vihf(envelope: etree._Element) -> etree._Element:
    """The VIHF: the SAML 2 assertion in the ``wsse:Security`` header."""
    assertion = envelope.find("soap:Header/wsse:Security/saml2:Assertion", NSMAP)
    if assertion is None:
        raise SoapFault("Sender", "wsse:InvalidSecurity", "no wsse:Security/saml2:Assertion (VIHF)")
    return assertion


def vihf_attributes(assertion: etree._Element) -> dict[str, tuple[str, ...]]:
    """Attributes of the VIHF by Name, plus ``Issuer`` and ``NameID``. Coded values
    (``<Role code=... codeSystem=...>``) come back as ``code^codeSystem``."""
    values: dict[str, tuple[str, ...]] = {}
    for key, path in (("Issuer", "saml2:Issuer"), ("NameID", "saml2:Subject/saml2:NameID")):
        node = assertion.find(path, NSMAP)
        if node is not None:
            values[key] = ((node.text or "").strip(),)
    for attribute in assertion.iterfind("saml2:AttributeStatement/saml2:Attribute", NSMAP):
        found = []
        for value in attribute.iterfind("saml2:AttributeValue", NSMAP):
            child = next(iter(value), None)
            if child is not None and child.get("code"):
                found.append(f"{child.get('code')}^{child.get('codeSystem', '')}")
            else:
                found.append((value.text or "").strip())
        values[attribute.get("Name", "")] = tuple(found)
    return values


def verify_vihf(assertion: etree._Element, ca_bundle: Path) -> str:
    """Check the VIHF's XML-DSig signature and its signer's chain to ``ca_bundle``.

    The signature must be enveloped in the assertion and cover the assertion itself (its
    ``ID``), not another element (signature wrapping). Returns the signer's subject DN; raises
    ``SoapFault`` (``wsse:FailedCheck``) otherwise. Uses signxml's defaults: RSA-SHA256 or
    stronger, X.509 certificates in KeyInfo (the signer's intermediate alongside).
    """
    from signxml import XMLVerifier
    from signxml.exceptions import InvalidInput, InvalidSignature

    standalone = etree.fromstring(etree.tostring(assertion), _PARSER)
    if standalone.find("ds:Signature", NSMAP) is None:
        raise SoapFault("Sender", "wsse:FailedCheck", "the VIHF is not signed")
    try:
        result = XMLVerifier().verify(standalone, ca_pem_file=str(ca_bundle))
    except (InvalidSignature, InvalidInput, ValueError) as exc:
        raise SoapFault("Sender", "wsse:FailedCheck", f"VIHF signature refused: {exc}") from exc
    signed = result.signed_xml
    if (
        signed is None
        or signed.tag != _q(NS_SAML2, "Assertion")
        or signed.get("ID") != assertion.get("ID")
    ):
        raise SoapFault("Sender", "wsse:FailedCheck", "the VIHF signature does not cover it")
    return _signer_subject(result.signature_xml, result.signature_key)


def _signer_subject(signature: etree._Element, key_pem: bytes) -> str:
    """Subject DN of the KeyInfo certificate whose public key verified the signature."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    for node in signature.iterfind("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NSMAP):
        cert = x509.load_der_x509_certificate(base64.b64decode("".join(node.text.split())))
        pem = cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if pem == key_pem:
            return cert.subject.rfc4514_string()
    return ""


def verify_signature_document(content: bytes, ca_bundle: Path) -> dict[str, tuple[str, str]]:
    """Check an XAdES signature document (IHE DSG; spec-facts §5.4) against ``ca_bundle``.

    Every reference of its ``SignedInfo`` must verify (the ``IHEManifest`` and the XAdES
    ``SignedProperties``), signed with RSA-SHA256 or stronger by a certificate chaining to the
    bundle. Returns the manifest: ``{uniqueId: (digest algorithm URI, base64 digest)}``; raises
    ``SoapFault`` (``Sender``) with the reason otherwise.
    """
    from signxml import SignatureConfiguration, XMLVerifier
    from signxml.exceptions import InvalidInput, InvalidSignature

    try:
        root = etree.fromstring(content, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise SoapFault("Sender", None, f"signature document is not XML: {exc}") from exc
    if root.tag != _q(NS_DS, "Signature"):
        raise SoapFault("Sender", None, "signature document root is not ds:Signature")
    try:
        results = XMLVerifier().verify(
            root,
            ca_pem_file=str(ca_bundle),
            expect_config=SignatureConfiguration(location="./", expect_references=True),
        )
    except (InvalidSignature, InvalidInput, ValueError, etree.DocumentInvalid) as exc:
        raise SoapFault("Sender", None, f"signature document refused: {exc}") from exc
    references = results if isinstance(results, list) else [results]
    signed_ids = {r.signed_xml.get("Id") for r in references if r.signed_xml is not None}
    manifest = root.find("ds:Object/ds:Manifest", NSMAP)
    if manifest is None or manifest.get("Id") not in signed_ids:
        raise SoapFault("Sender", None, "the signature does not cover an IHEManifest")
    if not any(
        r.signed_xml is not None and r.signed_xml.tag.endswith("SignedProperties")
        for r in references
    ):
        raise SoapFault("Sender", None, "the signature does not cover XAdES SignedProperties")
    listed: dict[str, tuple[str, str]] = {}
    for ref in manifest.iterfind("ds:Reference", NSMAP):
        method = ref.find("ds:DigestMethod", NSMAP)
        algorithm = method.get("Algorithm", "") if method is not None else ""
        if algorithm not in _DIGESTS:
            raise SoapFault("Sender", None, f"manifest digest algorithm {algorithm!r} not accepted")
        uri = ref.get("URI", "")
        listed[uri.removeprefix("urn:oid:")] = (
            algorithm,
            "".join((ref.findtext("ds:DigestValue", "", NSMAP) or "").split()),
        )
    return listed


def _check_dmp_metadata(
    objects: etree._Element,
    extrinsics: Sequence[etree._Element],
    package: _Package,
    errors: _Errors,
) -> None:
    """``strict_metadata``: what the DMP requires of each entry and of the submission set."""
    for extrinsic in extrinsics:
        oid = extrinsic.get("id", "")
        schemes = {
            c.get("classificationScheme") for c in extrinsic.iterfind("rim:Classification", NSMAP)
        }
        slots = _slots(extrinsic)
        missing = [name for name, scheme in DMP_REQUIRED_ENTRY_METADATA if scheme not in schemes]
        missing += [name for name in DMP_REQUIRED_ENTRY_SLOTS if not any(slots.get(name, ()))]
        if missing:
            errors.add(
                XDS_REGISTRY_METADATA_ERROR,
                f"document entry lacks what the DMP requires: {', '.join(missing)}",
                oid,
            )
    ss = next(
        (p for p in objects.iterfind("rim:RegistryPackage", NSMAP) if p.get("id") == package.id),
        None,
    )
    if ss is not None and not _codes(ss, SS_CONTENT_TYPE_CODE):
        errors.add(
            XDS_REGISTRY_METADATA_ERROR, "submission set lacks its contentTypeCode", package.id
        )


# -- ebRIM metadata -------------------------------------------------------------------------------


def _slots(node: etree._Element) -> dict[str, tuple[str, ...]]:
    return {
        slot.get("name", ""): tuple(
            (v.text or "").strip() for v in slot.iterfind("rim:ValueList/rim:Value", NSMAP)
        )
        for slot in node.iterfind("rim:Slot", NSMAP)
    }


def _external_id(node: etree._Element, scheme: str) -> str:
    for ext in node.iterfind("rim:ExternalIdentifier", NSMAP):
        if ext.get("identificationScheme") == scheme:
            return (ext.get("value") or "").strip()
    return ""


def _codes(node: etree._Element, scheme: str) -> tuple[Code, ...]:
    found = []
    for cl in node.iterfind("rim:Classification", NSMAP):
        if cl.get("classificationScheme") == scheme:
            coding = _slots(cl).get("codingScheme", ("",))
            found.append(Code(cl.get("nodeRepresentation", ""), coding[0] if coding else ""))
    return tuple(found)


def _code(node: etree._Element, scheme: str) -> Code | None:
    codes = _codes(node, scheme)
    return codes[0] if codes else None


@dataclass(frozen=True)
class _Package:
    id: str
    unique_id: str
    patient_id: str
    source_id: str


def _submission_set(objects: etree._Element) -> _Package:
    """The RegistryPackage classified as XDSSubmissionSet (classification inside or beside)."""
    ids = {
        cl.get("classifiedObject")
        for cl in objects.iter(_q(NS_RIM, "Classification"))
        if cl.get("classificationNode") == SUBMISSION_SET_NODE
    }
    for package in objects.iterfind("rim:RegistryPackage", NSMAP):
        if package.get("id") in ids:
            return _Package(
                package.get("id", ""),
                _external_id(package, SS_UNIQUE_ID),
                _external_id(package, SS_PATIENT_ID),
                _external_id(package, SS_SOURCE_ID),
            )
    raise RegistryFailure.one(
        XDS_REGISTRY_METADATA_ERROR,
        f"no RegistryPackage classified as XDSSubmissionSet ({SUBMISSION_SET_NODE})",
    )


@dataclass(frozen=True)
class _Association:
    type: str
    source: str
    target: str
    slots: Mapping[str, tuple[str, ...]]


def _associations(objects: etree._Element) -> list[_Association]:
    return [
        _Association(
            a.get("associationType", ""),
            a.get("sourceObject", ""),
            a.get("targetObject", ""),
            _slots(a),
        )
        for a in objects.iterfind("rim:Association", NSMAP)
    ]


def _document_bytes(document: etree._Element, attachments: Mapping[str, bytes]) -> bytes:
    include = document.find("xop:Include", NSMAP)
    if include is not None:
        cid = _cid(include.get("href", ""))
        if cid not in attachments:
            raise RegistryFailure.one(
                XDS_MISSING_DOCUMENT,
                f"xop:Include cid:{cid} has no MIME part",
                document.get("id", ""),
            )
        return attachments[cid]
    try:
        return base64.b64decode("".join((document.text or "").split()), validate=True)
    except binascii.Error as exc:
        raise RegistryFailure.one(
            XDS_REPOSITORY_METADATA_ERROR,
            f"xds:Document is not base64: {exc}",
            document.get("id", ""),
        ) from exc


# -- responses ------------------------------------------------------------------------------------


def _envelope(action: str, relates_to: str | None, body_child: etree._Element) -> bytes:
    env = etree.Element(_q(NS_SOAP12, "Envelope"), nsmap={"soap": NS_SOAP12, "wsa": NS_WSA})
    header = etree.SubElement(env, _q(NS_SOAP12, "Header"))
    action_el = etree.SubElement(header, _q(NS_WSA, "Action"))
    action_el.set(_q(NS_SOAP12, "mustUnderstand"), "true")
    action_el.text = action
    if relates_to:
        etree.SubElement(header, _q(NS_WSA, "RelatesTo")).text = relates_to
    body = etree.SubElement(env, _q(NS_SOAP12, "Body"))
    body.append(body_child)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def registry_response(errors: Sequence[RegistryError] = ()) -> etree._Element:
    """``rs:RegistryResponse``: Success, or Failure with a ``rs:RegistryErrorList``."""
    response = etree.Element(_q(NS_RS, "RegistryResponse"), nsmap={"rs": NS_RS})
    response.set("status", RESPONSE_FAILURE if errors else RESPONSE_SUCCESS)
    if errors:
        error_list = etree.SubElement(response, _q(NS_RS, "RegistryErrorList"))
        error_list.set("highestSeverity", SEVERITY_ERROR)
        for error in errors:
            item = etree.SubElement(error_list, _q(NS_RS, "RegistryError"))
            item.set("errorCode", error.code)
            item.set("codeContext", error.context)
            item.set("severity", SEVERITY_ERROR)
            if error.location:
                item.set("location", error.location)
    return response


def fault_envelope(fault: SoapFault, relates_to: str | None = None) -> bytes:
    node = etree.Element(_q(NS_SOAP12, "Fault"), nsmap={"soap": NS_SOAP12})
    code = etree.SubElement(node, _q(NS_SOAP12, "Code"))
    etree.SubElement(code, _q(NS_SOAP12, "Value")).text = f"soap:{fault.code}"
    if fault.subcode:
        prefix = fault.subcode.split(":", 1)[0]
        sub = etree.SubElement(code, _q(NS_SOAP12, "Subcode"), nsmap={prefix: NSMAP[prefix]})
        etree.SubElement(sub, _q(NS_SOAP12, "Value")).text = fault.subcode
    reason = etree.SubElement(node, _q(NS_SOAP12, "Reason"))
    text = etree.SubElement(reason, _q(NS_SOAP12, "Text"))
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    text.text = fault.reason
    return _envelope(ACTION_FAULT, relates_to, node)


# -- the endpoint ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    content_type: str = "application/soap+xml; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


class DmpEndpoint:
    """The DMP over HTTPS with mutual TLS; ``start()``/``stop()`` or ``with``.

    ``server_cert`` is a ``pfi_devkit.pki.Credential`` (or anything with ``cert_path`` and
    ``key_path``); ``ca_bundle`` the CAs a client certificate must chain to; ``crl_bundle``
    (optional) their CRLs, checked for the whole chain. Runtime attributes: ``mode`` (see
    ``set_mode``), ``verify_vihf``, ``required_vihf_attributes``, ``require_signature_document``,
    ``strict_metadata``.
    Results: ``accepted``, ``entries``, ``requests``, ``duplicates``, ``refusals``.
    """

    def __init__(
        self,
        server_cert: CredentialLike,
        ca_bundle: Path,
        *,
        crl_bundle: Path | None = None,
        host: str = HOST,
        port: int = 0,
        store_dir: Path | None = None,
        verify_vihf: bool = False,
        required_vihf_attributes: Iterable[str] = (),
        require_signature_document: bool = False,
        strict_metadata: bool = False,
        verbose: bool = False,
    ) -> None:
        self.server_cert = server_cert
        self.ca_bundle = Path(ca_bundle)
        self.crl_bundle = Path(crl_bundle) if crl_bundle else None
        self.host = host
        self.port = port
        self._requested_port = port
        self.store_dir = Path(store_dir).resolve() if store_dir else None
        self._defaults = (
            verify_vihf,
            tuple(required_vihf_attributes),
            require_signature_document,
            strict_metadata,
        )
        (
            self.verify_vihf,
            self.required_vihf_attributes,
            self.require_signature_document,
            self.strict_metadata,
        ) = self._defaults
        self.verbose = verbose
        self.mode: Mode = "normal"
        self.fail_code = DEFAULT_FAIL_CODE
        self.fail_text = "DMP du patient fermé (devkit)"
        self.delay = DEFAULT_SLOW_DELAY
        self.accepted: list[Submission] = []
        self.entries: dict[str, DocumentEntry] = {}
        self.refusals: list[Refusal] = []
        self.requests = 0
        self.duplicates = 0
        self.tls_refusals = 0
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._revert: threading.Timer | None = None
        self._mode_lock = threading.Lock()
        self._generation = 0  # bumped at each mode change: a stale revert timer does nothing
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[ssl.SSLSocket] = set()
        self._seq = itertools.count(1)
        self._ssl = self._server_context()

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> DmpEndpoint:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        if self.store_dir:
            self.store_dir.mkdir(parents=True, exist_ok=True)
        self._listen()
        return self

    def stop(self) -> None:
        """Stop listening, sever open connections, cancel a pending mode revert. Fast."""
        self._stopping.set()
        with self._mode_lock:
            self._generation += 1
            if self._revert is not None:
                self._revert.cancel()
                self._revert = None
        self._unlisten()
        self._sever_connections()
        self.port = self._requested_port

    def __enter__(self) -> DmpEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to a fresh endpoint (mode normal, nothing stored), between tests."""
        self.set_mode("normal")
        (
            self.verify_vihf,
            self.required_vihf_attributes,
            self.require_signature_document,
            self.strict_metadata,
        ) = self._defaults
        with self._lock:
            self.accepted.clear()
            self.entries.clear()
            self.refusals.clear()
            self.requests = self.duplicates = self.tls_refusals = 0

    # -- modes ------------------------------------------------------------------------------------

    def set_mode(
        self,
        mode: Mode,
        *,
        error_code: str | None = None,
        error_text: str | None = None,
        delay: float | None = None,
        duration: float | None = None,
    ) -> None:
        """Change how requests are answered (see the module docstring).

        ``error_code``/``error_text``: the registry error of ``fail``; ``delay``: seconds of
        ``slow``; ``duration``: revert to ``normal`` after that many seconds.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        with self._mode_lock:
            self._apply_mode(mode, error_code, error_text, delay, duration)

    def _apply_mode(
        self,
        mode: Mode,
        error_code: str | None = None,
        error_text: str | None = None,
        delay: float | None = None,
        duration: float | None = None,
    ) -> None:
        self._generation += 1
        if self._revert is not None:
            self._revert.cancel()
            self._revert = None
        if mode == "fail":
            self.fail_code = error_code or DEFAULT_FAIL_CODE
            self.fail_text = error_text or f"{self.fail_code} (devkit fail mode)"
        if mode == "slow":
            self.delay = DEFAULT_SLOW_DELAY if delay is None else float(delay)
        previous, self.mode = self.mode, mode
        if mode == "down" and previous != "down":
            self._unlisten()
            self._sever_connections()
        elif mode != "down" and previous == "down" and not self._stopping.is_set():
            self._listen()
        if duration is not None and mode != "normal":
            self._revert = threading.Timer(
                float(duration), self._revert_to_normal, (self._generation,)
            )
            self._revert.daemon = True
            self._revert.start()

    def _revert_to_normal(self, generation: int) -> None:
        with self._mode_lock:
            if generation == self._generation:  # no set_mode since this timer was armed
                self._apply_mode("normal")

    # -- what tests and the demo use --------------------------------------------------------------

    @property
    def base_url(self) -> str:
        # A wildcard bind (0.0.0.0, in a container) is reached on loopback from this machine.
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host  # noqa: S104
        return f"https://{host}:{self.port}"

    @property
    def repository_url(self) -> str:
        """Where ITI-41 goes."""
        return self.base_url + REPOSITORY_PATH

    @property
    def registry_url(self) -> str:
        """Where ITI-57 goes."""
        return self.base_url + REGISTRY_PATH

    def entry_by_uuid(self, entry_uuid: str) -> DocumentEntry | None:
        with self._lock:
            return next((e for e in self.entries.values() if e.entry_uuid == entry_uuid), None)

    def describe(self) -> dict[str, Any]:
        """JSON-able description (for the demo's state file and ``GET /_devkit/state``)."""
        with self._lock:
            return {
                "host": self.host,
                "port": self.port,
                "listening": self._httpd is not None,
                "repository_url": self.repository_url,
                "registry_url": self.registry_url,
                "control_url": self.base_url + CONTROL_PATH,
                "mode": self.mode,
                "fail_code": self.fail_code,
                "delay": self.delay,
                "verify_vihf": self.verify_vihf,
                "require_signature_document": self.require_signature_document,
                "strict_metadata": self.strict_metadata,
                "server_cert": str(self.server_cert.cert_path),
                "ca_bundle": str(self.ca_bundle),
                "crl_bundle": str(self.crl_bundle) if self.crl_bundle else None,
                "store_dir": str(self.store_dir) if self.store_dir else None,
                "requests": self.requests,
                "accepted": len(self.accepted),
                "duplicates": self.duplicates,
                "refused": len(self.refusals),
                "tls_refusals": self.tls_refusals,
                "entries": {uid: e.status for uid, e in self.entries.items()},
            }

    # -- request handling (called by the HTTP handler threads) ------------------------------------

    def handle(self, path: str, content_type: str, body: bytes, client_cn: str | None) -> _Response:
        """Answer one SOAP request; faults and registry failures are answers, not exceptions."""
        try:
            return self._handle(path, content_type, body, client_cn)
        except Exception as exc:  # a devkit bug must answer, not hang up: show it to the client
            fault = SoapFault("Receiver", None, f"devkit DMP endpoint error: {exc!r}")
            self._refused(Refusal("fault", ("Receiver",), fault.reason))
            return _Response(500, fault_envelope(fault))

    def _handle(
        self, path: str, content_type: str, body: bytes, client_cn: str | None
    ) -> _Response:
        message_id = None
        try:
            envelope, attachments = parse_envelope(body, content_type)
            action, message_id = addressing(envelope)
            expected = ACTIONS_BY_PATH.get(path)
            if action not in RESPONSE_ACTIONS or action != expected:
                raise SoapFault(
                    "Sender",
                    "wsa:ActionNotSupported",
                    f"action {action} is not served at {path} (expected {expected})",
                )
            assertion = find_vihf(envelope)
            if self.verify_vihf:
                verify_vihf(assertion, self.ca_bundle)
            vihf = vihf_attributes(assertion)
            missing = [a for a in self.required_vihf_attributes if not any(vihf.get(a, ()))]
            if missing:
                raise SoapFault(
                    "Sender", "wsse:InvalidSecurityToken", f"VIHF attributes missing: {missing}"
                )
            context = _Context(message_id, client_cn, vihf, body)
            if action == ACTION_ITI41:
                self._provide_and_register(envelope, attachments, context)
            else:
                self._update_document_set(envelope, context)
        except SoapFault as fault:
            self._refused(Refusal("fault", (fault.subcode or fault.code,), fault.reason))
            return _Response(fault.http_status, fault_envelope(fault, message_id))
        except RegistryFailure as failure:
            self._refused(Refusal("registry", tuple(e.code for e in failure.errors), str(failure)))
            return _Response(
                200,
                _envelope(RESPONSE_ACTIONS[action], message_id, registry_response(failure.errors)),
            )
        return _Response(200, _envelope(RESPONSE_ACTIONS[action], message_id, registry_response()))

    def _refused(self, refusal: Refusal) -> None:
        with self._lock:
            self.refusals.append(refusal)

    def _fail_mode(self) -> None:
        if self.mode == "fail":
            raise RegistryFailure.one(self.fail_code, self.fail_text)

    def _provide_and_register(
        self, envelope: etree._Element, attachments: Mapping[str, bytes], ctx: _Context
    ) -> None:
        request = envelope.find("soap:Body/xds:ProvideAndRegisterDocumentSetRequest", NSMAP)
        objects = None
        if request is not None:
            objects = request.find("lcm:SubmitObjectsRequest/rim:RegistryObjectList", NSMAP)
        if objects is None:
            raise SoapFault(
                "Sender",
                None,
                "body is not xds:ProvideAndRegisterDocumentSetRequest/lcm:SubmitObjectsRequest"
                "/rim:RegistryObjectList",
            )
        package = _submission_set(objects)
        errors = _Errors()
        if not package.unique_id:
            errors.add(XDS_REGISTRY_METADATA_ERROR, "XDSSubmissionSet.uniqueId missing", package.id)
        if not package.patient_id:
            errors.add(
                XDS_REGISTRY_METADATA_ERROR, "XDSSubmissionSet.patientId missing", package.id
            )
        documents: dict[str, bytes] = {}
        for document in request.iterfind("xds:Document", NSMAP):
            try:
                documents[document.get("id", "")] = _document_bytes(document, attachments)
            except RegistryFailure as failure:
                errors.extend(failure.errors)
        extrinsics = list(objects.iterfind("rim:ExtrinsicObject", NSMAP))
        extrinsic_ids = {e.get("id", "") for e in extrinsics}
        for doc_id in documents.keys() - extrinsic_ids:
            errors.add(
                XDS_MISSING_DOCUMENT_METADATA,
                f"xds:Document {doc_id} has no rim:ExtrinsicObject",
                doc_id,
            )
        associations = _associations(objects)
        members = {
            a.target for a in associations if a.type == ASSOC_HAS_MEMBER and a.source == package.id
        }
        with self._lock:
            new_entries: list[DocumentEntry] = []
            duplicates: list[str] = []
            seen: set[str] = set()
            for extrinsic in extrinsics:
                entry = self._check_entry(extrinsic, documents, package, members, seen, errors)
                if entry is None:
                    continue
                stored = self.entries.get(entry.unique_id)
                if stored is None:
                    new_entries.append(entry)
                elif stored.sha1 == entry.sha1:
                    duplicates.append(entry.unique_id)
                else:
                    errors.add(
                        XDS_NON_IDENTICAL_HASH,
                        f"uniqueId {entry.unique_id} already stored with other content",
                        extrinsic.get("id", ""),
                    )
            replaced = self._check_replacements(associations, extrinsics, new_entries, errors)
            if self.require_signature_document:
                self._check_signature_document(associations, extrinsics, package, errors)
                self._check_signature_content(extrinsics, documents, errors)
            if self.strict_metadata:
                _check_dmp_metadata(objects, extrinsics, package, errors)
            if errors:
                raise RegistryFailure(errors)
            self._fail_mode()
            for target, new in replaced:
                target.status = STATUS_DEPRECATED
                target.replaced_by = new.entry_uuid
                new.replaces = target.entry_uuid
            for entry in new_entries:
                self.entries[entry.unique_id] = entry
            self.duplicates += len(duplicates)
            submission = Submission(
                "ITI-41",
                ctx.message_id,
                package.unique_id,
                package.patient_id,
                package.source_id,
                tuple(e.unique_id for e in new_entries),
                tuple(duplicates),
                tuple(t.entry_uuid for t, _ in replaced),
                (),
                ctx.client_cn,
                ctx.vihf,
                _now(),
            )
            self.accepted.append(submission)
            self._store(submission, ctx.body, new_entries)

    def _check_entry(
        self,
        extrinsic: etree._Element,
        documents: Mapping[str, bytes],
        package: _Package,
        members: set[str],
        seen: set[str],
        errors: _Errors,
    ) -> DocumentEntry | None:
        """One ExtrinsicObject against its bytes; None (and ``errors`` extended) when wrong."""
        oid = extrinsic.get("id", "")
        before = len(errors)
        unique_id = _external_id(extrinsic, DE_UNIQUE_ID)
        patient_id = _external_id(extrinsic, DE_PATIENT_ID)
        slots = _slots(extrinsic)
        if extrinsic.get("objectType") != OBJECT_TYPE_STABLE_ENTRY:
            errors.add(
                XDS_REGISTRY_METADATA_ERROR, f"objectType is not {OBJECT_TYPE_STABLE_ENTRY}", oid
            )
        if not unique_id:
            errors.add(XDS_REPOSITORY_METADATA_ERROR, "XDSDocumentEntry.uniqueId missing", oid)
        elif unique_id in seen:
            errors.add(
                XDS_DUPLICATE_UNIQUE_ID_IN_MESSAGE,
                f"uniqueId {unique_id} twice in the request",
                oid,
            )
        seen.add(unique_id)
        if not patient_id or patient_id != package.patient_id:
            errors.add(
                XDS_PATIENT_ID_DOES_NOT_MATCH,
                f"XDSDocumentEntry.patientId {patient_id!r} ≠ the submission set's "
                f"{package.patient_id!r}",
                oid,
            )
        if oid not in members:
            errors.add(
                XDS_REGISTRY_METADATA_ERROR, "entry is not a HasMember of the submission set", oid
            )
        content = documents.get(oid)
        if content is None:
            errors.add(XDS_MISSING_DOCUMENT, f"no xds:Document for ExtrinsicObject {oid}", oid)
            return None
        sha1 = hashlib.sha1(content).hexdigest()  # XDS metadata's hash is SHA-1
        declared_hash = (slots.get("hash") or ("",))[0].lower()
        if declared_hash and not re.fullmatch(r"[0-9a-f]{40}", declared_hash):
            errors.add(
                XDS_REPOSITORY_METADATA_ERROR, "hash slot is not 40 hex digits of SHA-1", oid
            )
        elif declared_hash and declared_hash != sha1:
            errors.add(
                XDS_NON_IDENTICAL_HASH,
                f"hash slot {declared_hash} ≠ SHA-1 {sha1} of the bytes",
                oid,
            )
        declared_size = (slots.get("size") or ("",))[0]
        if declared_size and not declared_size.isdigit():
            errors.add(XDS_REPOSITORY_METADATA_ERROR, "size slot is not an integer", oid)
        elif declared_size and int(declared_size) != len(content):
            errors.add(
                XDS_NON_IDENTICAL_SIZE, f"size slot {declared_size} ≠ {len(content)} bytes", oid
            )
        if len(errors) > before:
            return None
        return DocumentEntry(
            entry_uuid=oid if oid.startswith("urn:uuid:") else f"urn:uuid:{uuid.uuid4()}",
            unique_id=unique_id,
            patient_id=patient_id,
            mime_type=extrinsic.get("mimeType", ""),
            class_code=_code(extrinsic, DE_CLASS_CODE),
            type_code=_code(extrinsic, DE_TYPE_CODE),
            format_code=_code(extrinsic, DE_FORMAT_CODE),
            confidentiality_codes=_codes(extrinsic, DE_CONFIDENTIALITY_CODE),
            healthcare_facility_type_code=_code(extrinsic, DE_HEALTHCARE_FACILITY_TYPE_CODE),
            practice_setting_code=_code(extrinsic, DE_PRACTICE_SETTING_CODE),
            sha1=sha1,
            size=len(content),
            submission_set=package.unique_id,
            slots=slots,
            content=content,
        )

    def _check_replacements(
        self,
        associations: Sequence[_Association],
        extrinsics: Sequence[etree._Element],
        new_entries: Sequence[DocumentEntry],
        errors: _Errors,
    ) -> list[tuple[DocumentEntry, DocumentEntry]]:
        """RPLC associations: (stored target, new entry) pairs, targets found by entryUUID."""
        unique_by_id = {e.get("id", ""): _external_id(e, DE_UNIQUE_ID) for e in extrinsics}
        new_by_unique = {e.unique_id: e for e in new_entries}
        by_symbolic_id = {
            oid: new_by_unique[uid] for oid, uid in unique_by_id.items() if uid in new_by_unique
        }
        pairs = []
        for assoc in associations:
            if assoc.type != ASSOC_RPLC:
                continue
            new = by_symbolic_id.get(assoc.source)
            target = self.entry_by_uuid(assoc.target)
            if assoc.source in unique_by_id and new is None:
                continue  # the replacing entry is a duplicate or already refused
            if new is None:
                errors.add(
                    XDS_REGISTRY_METADATA_ERROR,
                    f"RPLC source {assoc.source} is not an entry of this submission",
                    assoc.source,
                )
            elif target is None:
                errors.add(
                    UNRESOLVED_REFERENCE,
                    f"RPLC target {assoc.target} is not a stored entry (entryUUID expected)",
                    assoc.target,
                )
            elif target.status != STATUS_APPROVED:
                errors.add(
                    XDS_REGISTRY_METADATA_ERROR,
                    f"RPLC target {assoc.target} is {target.status}",
                    assoc.target,
                )
            elif target.patient_id != new.patient_id:
                errors.add(
                    XDS_PATIENT_ID_DOES_NOT_MATCH,
                    "RPLC target belongs to another patient",
                    assoc.target,
                )
            else:
                pairs.append((target, new))
        return pairs

    def _check_signature_document(
        self,
        associations: Sequence[_Association],
        extrinsics: Sequence[etree._Element],
        package: _Package,
        errors: _Errors,
    ) -> None:
        signatures = {
            e.get("id", "")
            for e in extrinsics
            if any(c.code == SIGNATURE_CLASS_CODE for c in _codes(e, DE_CLASS_CODE))
        }
        signs = any(
            a.type == ASSOC_SIGNS and a.source in signatures and a.target == package.id
            for a in associations
        )
        if not signatures or not signs:
            errors.add(
                XDS_REGISTRY_METADATA_ERROR,
                f"no signature document (classCode {SIGNATURE_CLASS_CODE}) with a "
                f"{ASSOC_SIGNS} association to the submission set",
                package.id,
            )

    def _check_signature_content(
        self,
        extrinsics: Sequence[etree._Element],
        documents: Mapping[str, bytes],
        errors: _Errors,
    ) -> None:
        """The XAdES signature document: valid signature, manifest digests = the bytes sent."""
        signed: dict[str, bytes] = {}
        signatures: list[tuple[str, bytes]] = []
        for extrinsic in extrinsics:
            oid = extrinsic.get("id", "")
            content = documents.get(oid)
            if content is None:
                continue
            if any(c.code == SIGNATURE_CLASS_CODE for c in _codes(extrinsic, DE_CLASS_CODE)):
                signatures.append((oid, content))
            else:
                signed[_external_id(extrinsic, DE_UNIQUE_ID)] = content
        for oid, content in signatures:
            try:
                manifest = verify_signature_document(content, self.ca_bundle)
            except SoapFault as fault:
                errors.add(XDS_REGISTRY_METADATA_ERROR, fault.reason, oid)
                continue
            for unique_id, data in signed.items():
                listed = manifest.get(unique_id)
                if listed is None:
                    errors.add(
                        XDS_REGISTRY_METADATA_ERROR,
                        f"the signature manifest does not list {unique_id}",
                        oid,
                    )
                    continue
                algorithm, digest = listed
                if base64.b64encode(_DIGESTS[algorithm](data).digest()).decode() != digest:
                    errors.add(
                        XDS_REGISTRY_METADATA_ERROR,
                        f"the signature manifest digest of {unique_id} is not that of its bytes",
                        oid,
                    )

    def _update_document_set(self, envelope: etree._Element, ctx: _Context) -> None:
        objects = envelope.find("soap:Body/lcm:SubmitObjectsRequest/rim:RegistryObjectList", NSMAP)
        if objects is None:
            raise SoapFault(
                "Sender", None, "body is not lcm:SubmitObjectsRequest/rim:RegistryObjectList"
            )
        package = _submission_set(objects)
        errors = _Errors()
        updates = [a for a in _associations(objects) if a.type == ASSOC_UPDATE_STATUS]
        if not updates:
            errors.add(
                XDS_METADATA_UPDATE_ERROR,
                f"no {ASSOC_UPDATE_STATUS} association (other metadata updates not simulated)",
            )
        with self._lock:
            if package.unique_id and any(
                s.transaction == "ITI-57" and s.submission_set_unique_id == package.unique_id
                for s in self.accepted
            ):
                # A registry package's uniqueId is registered once: an update sent again (its
                # answer was lost) is refused as a duplicate before its statuses are compared.
                raise RegistryFailure.one(
                    XDS_DUPLICATE_UNIQUE_ID_IN_REGISTRY,
                    "submission set already registered",
                    package.id,
                )
            planned: list[tuple[DocumentEntry, str, str]] = []
            for assoc in updates:
                original = (assoc.slots.get("OriginalStatus") or ("",))[0]
                new = (assoc.slots.get("NewStatus") or ("",))[0]
                target = self.entry_by_uuid(assoc.target)
                if assoc.source != package.id:
                    errors.add(
                        XDS_METADATA_UPDATE_ERROR,
                        "association source is not the submission set",
                        assoc.source,
                    )
                elif target is None:
                    errors.add(
                        UNRESOLVED_REFERENCE,
                        f"{assoc.target} is not a stored entry (entryUUID expected)",
                        assoc.target,
                    )
                elif original != target.status:
                    errors.add(
                        XDS_METADATA_UPDATE_ERROR,
                        f"OriginalStatus {original!r} ≠ current status {target.status}",
                        assoc.target,
                    )
                elif new not in ITI57_NEW_STATUSES:
                    errors.add(
                        XDS_METADATA_UPDATE_ERROR, f"NewStatus {new!r} not supported", assoc.target
                    )
                elif package.patient_id and package.patient_id != target.patient_id:
                    errors.add(
                        XDS_PATIENT_ID_DOES_NOT_MATCH,
                        "target belongs to another patient",
                        assoc.target,
                    )
                else:
                    planned.append((target, original, new))
            if errors:
                raise RegistryFailure(errors)
            self._fail_mode()
            for target, _, new in planned:
                target.status = new
            submission = Submission(
                "ITI-57",
                ctx.message_id,
                package.unique_id,
                package.patient_id,
                package.source_id,
                (),
                (),
                (),
                tuple((t.entry_uuid, o, n) for t, o, n in planned),
                ctx.client_cn,
                ctx.vihf,
                _now(),
            )
            self.accepted.append(submission)
            self._store(submission, ctx.body, [])

    def _store(self, submission: Submission, body: bytes, entries: Sequence[DocumentEntry]) -> None:
        if not self.store_dir:
            return
        name = re.sub(r"[^A-Za-z0-9._-]", "_", submission.submission_set_unique_id or "no-ss")
        folder = self.store_dir / f"{next(self._seq):05d}-{submission.transaction}-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "request.bin").write_bytes(body)
        for entry in entries:
            safe = re.sub(r"[^A-Za-z0-9._-]", "_", entry.unique_id)
            (folder / f"{safe}.document").write_bytes(entry.content)
        metadata = {
            "submission": asdict(submission),
            "entries": [e.summary() for e in entries],
        }
        (folder / "metadata.json").write_text(
            json.dumps(metadata, indent=2, ensure_ascii=False, default=list)
        )

    # -- TLS and the listener ---------------------------------------------------------------------

    def _server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # the DMP's floor
        ctx.load_cert_chain(self.server_cert.cert_path, self.server_cert.key_path)
        ctx.load_verify_locations(cafile=str(self.ca_bundle))
        if self.crl_bundle:
            ctx.load_verify_locations(cafile=str(self.crl_bundle))
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def _listen(self) -> None:
        with self._lock:
            if self._httpd is not None:
                return
            httpd = _HttpServer((self.host, self.port), self)
            self.port = httpd.server_address[1]
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="pfi-dmp-endpoint",
                daemon=True,
            )
            self._httpd, self._thread = httpd, thread
            thread.start()

    def _unlisten(self) -> None:
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(5)

    def _sever_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True)
class _Context:
    message_id: str
    client_cn: str | None
    vihf: Mapping[str, tuple[str, ...]]
    body: bytes


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _peer_cn(conn: ssl.SSLSocket) -> str | None:
    cert = conn.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


class _HttpServer(ThreadingHTTPServer):
    """One thread per connection; the TLS handshake happens in that thread, not in accept(),
    so a slow or refused client never blocks the listener."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], endpoint: DmpEndpoint) -> None:
        self.endpoint = endpoint
        super().__init__(address, _Handler)

    def finish_request(self, request, client_address) -> None:
        endpoint = self.endpoint
        request.settimeout(CONNECTION_TIMEOUT)
        # Headers and body go in separate writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (~40 ms per answer on Linux).
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = endpoint._ssl.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            with endpoint._lock:
                endpoint.tls_refusals += 1
            return
        with endpoint._lock:
            endpoint._connections.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with endpoint._lock:
                endpoint._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()


#: The control path closes its connection after answering (it may have been severed by "down"):
#: say so, or a keep-alive client reuses a socket about to close.
_CLOSE = (("Connection", "close"),)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PFI-devkit-DMP/1.0"
    timeout = CONNECTION_TIMEOUT
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.endpoint.verbose:
            super().log_message(format, *args)

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._send(_Response(411, b"Content-Length required\n", "text/plain"))
            return None
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(_Response(413, b"request too large\n", "text/plain"))
            self.close_connection = True
            return None
        return self.rfile.read(length)

    def _send(self, response: _Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path.rstrip("/") == CONTROL_PATH + "/state":
            body = json.dumps(self.server.endpoint.describe()).encode()
            self._send(_Response(200, body, "application/json"))
        else:
            self._send(_Response(405, b"POST SOAP requests here\n", "text/plain"))

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        endpoint = self.server.endpoint
        body = self._read_body()
        if body is None:
            return
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith(CONTROL_PATH + "/"):
            self._control(path, body)
            return
        with endpoint._lock:
            endpoint.requests += 1
        mode = endpoint.mode
        if mode in ("drop", "down"):
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == "transient":
            endpoint._refused(Refusal("http", ("503",), "transient mode"))
            fault = SoapFault("Receiver", None, "service temporarily unavailable (devkit)", 503)
            self._send(
                _Response(
                    503, fault_envelope(fault), headers=(("Retry-After", str(RETRY_AFTER_SECONDS)),)
                )
            )
            return
        if mode == "slow":
            endpoint._stopping.wait(endpoint.delay)
        if path not in ACTIONS_BY_PATH:
            endpoint._refused(Refusal("http", ("404",), f"no service at {path}"))
            self._send(_Response(404, f"no service at {path}\n".encode(), "text/plain"))
            return
        cn = _peer_cn(self.connection)
        self._send(endpoint.handle(path, self.headers.get("Content-Type", ""), body, cn))

    def _control(self, path: str, body: bytes) -> None:
        """``POST /_devkit/mode`` (JSON: mode, error_code, error_text, delay, duration) and
        ``POST /_devkit/reset``; answers ``describe()`` once the change is applied."""
        endpoint = self.server.endpoint
        if path not in (CONTROL_PATH + "/mode", CONTROL_PATH + "/reset"):
            self._send(_Response(404, b"unknown control\n", "text/plain", _CLOSE))
            return
        # Spared from "down" severing open connections: this one carries the answer.
        with endpoint._lock:
            endpoint._connections.discard(self.connection)
        self.close_connection = True
        try:
            if path.endswith("/reset"):
                endpoint.reset()
            else:
                order = json.loads(body or b"{}")
                known = ("error_code", "error_text", "delay", "duration")
                endpoint.set_mode(order["mode"], **{k: order[k] for k in known if k in order})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._send(
                _Response(400, f"bad control request: {exc!r}\n".encode(), "text/plain", _CLOSE)
            )
            return
        self._send(
            _Response(200, json.dumps(endpoint.describe()).encode(), "application/json", _CLOSE)
        )


def main(argv: list[str] | None = None) -> None:
    """``python -m pfi_devkit.dmp_endpoint``: run the endpoint in the foreground (the demo).

    Prints ``describe()`` as one JSON line once listening; stops on SIGTERM or Ctrl-C.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", type=Path, required=True, help="server cert chain (PEM)")
    parser.add_argument("--key", type=Path, required=True, help="server key (PEM)")
    parser.add_argument("--ca", type=Path, required=True, help="CA bundle for client certs")
    parser.add_argument("--crl", type=Path, help="CRL bundle (every CA of the chain)")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--store-dir", type=Path)
    parser.add_argument("--verify-vihf", action="store_true")
    parser.add_argument("--require-signature-document", action="store_true")
    parser.add_argument("--strict-metadata", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    @dataclass(frozen=True)
    class _Cred:
        cert_path: Path
        key_path: Path

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    endpoint = DmpEndpoint(
        _Cred(args.cert, args.key),
        args.ca,
        crl_bundle=args.crl,
        host=args.host,
        port=args.port,
        store_dir=args.store_dir,
        verify_vihf=args.verify_vihf,
        require_signature_document=args.require_signature_document,
        strict_metadata=args.strict_metadata,
        verbose=args.verbose,
    )
    with endpoint:
        print(json.dumps(endpoint.describe()), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()


__all__ = [
    "DEFAULT_FAIL_CODE",
    "MODES",
    "Code",
    "DmpEndpoint",
    "DocumentEntry",
    "Refusal",
    "RegistryError",
    "RegistryFailure",
    "SoapFault",
    "Submission",
    "fault_envelope",
    "parse_envelope",
    "registry_response",
    "split_mtom",
    "verify_signature_document",
    "verify_vihf",
    "vihf_attributes",
]
