"""The devkit DMP endpoint over real HTTPS with mutual TLS: ITI-41 (MTOM), RPLC, ITI-57, modes.

Requests are built by hand here (``iti41`` / ``iti57`` below), with the XDS UUIDs written out
rather than imported from the endpoint, so that a wrong constant on either side shows up. Shapes
follow IHE ITI TF-3 and the DMP's public examples (spec-facts §5): SOAP 1.2, WS-Addressing,
``wsse:Security`` with the VIHF, documents as MTOM parts referenced by ``xop:Include``.
Patient: the official test identity PAT-TROIS DOMINIQUE (test INS 279035121518989).
"""

import base64
import datetime as dt
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import pytest
import requests
from lxml import etree

from pfi_devkit.dmp import DmpEndpoint

pytestmark = pytest.mark.integration

PATIENT = "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
OTHER_PATIENT = "277076322082910^^^&1.2.250.1.213.1.4.10&ISO^NH"
ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"
NS = {
    "soap": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "rs": "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0",
}
TIMEOUT = 10
# What a refused TLS client certificate looks like from requests (TLS 1.3: the server's alert
# may arrive after the client believes the handshake is done).
TLS_REFUSED = (requests.exceptions.SSLError, requests.exceptions.ConnectionError)


# -- request builders -----------------------------------------------------------------------------


@dataclass
class Doc:
    unique_id: str | None
    content: bytes
    entry_id: str = field(default_factory=lambda: f"urn:uuid:{uuid.uuid4()}")
    hash: str | None = None  # None: the right SHA-1
    size: str | None = None  # None: the right size
    patient: str = PATIENT
    class_code: tuple[str, str] = ("10", "1.2.250.1.213.1.1.4.1")
    type_code: tuple[str, str] = ("11490-0", "2.16.840.1.113883.6.1")
    confidentiality: tuple[tuple[str, str], ...] = (("N", "2.16.840.1.113883.5.25"),)
    cid: str = field(default_factory=lambda: f"{uuid.uuid4()}@pfi.test")


def _slot(name: str, *values: str) -> str:
    inner = "".join(f"<rim:Value>{v}</rim:Value>" for v in values)
    return f'<rim:Slot name="{name}"><rim:ValueList>{inner}</rim:ValueList></rim:Slot>'


def _classification(scheme: str, obj: str, code: tuple[str, str]) -> str:
    return (
        f'<rim:Classification id="cl-{uuid.uuid4()}" classificationScheme="{scheme}" '
        f'classifiedObject="{obj}" nodeRepresentation="{code[0]}">{_slot("codingScheme", code[1])}'
        f"</rim:Classification>"
    )


def _external_id(scheme: str, obj: str, value: str) -> str:
    return (
        f'<rim:ExternalIdentifier id="ei-{uuid.uuid4()}" identificationScheme="{scheme}" '
        f'registryObject="{obj}" value="{escape(value)}"/>'
    )


def _extrinsic(doc: Doc) -> str:
    parts = [
        _slot("hash", doc.hash or hashlib.sha1(doc.content).hexdigest()),
        _slot("size", doc.size or str(len(doc.content))),
        _slot("languageCode", "fr-FR"),
        _slot("creationTime", "20240102030405"),
        _classification(
            "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a", doc.entry_id, doc.class_code
        ),
        _classification(
            "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983", doc.entry_id, doc.type_code
        ),
        *(
            _classification("urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f", doc.entry_id, c)
            for c in doc.confidentiality
        ),
        _classification(
            "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
            doc.entry_id,
            ("urn:ihe:iti:xds-sd:text:2008", "1.3.6.1.4.1.19376.1.2.3"),
        ),
        _external_id("urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427", doc.entry_id, doc.patient),
    ]
    if doc.unique_id:
        parts.append(
            _external_id(
                "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab", doc.entry_id, doc.unique_id
            )
        )
    return (
        f'<rim:ExtrinsicObject id="{doc.entry_id}" mimeType="text/xml" '
        f'objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">{"".join(parts)}'
        f"</rim:ExtrinsicObject>"
    )


def _submission_set(patient: str = PATIENT) -> str:
    ss = "SubmissionSet01"
    unique_id = f"1.2.250.1.999.1.{uuid.uuid4().int}"
    return (
        f'<rim:RegistryPackage id="{ss}">'
        f"{_slot('submissionTime', '20240102030405')}"
        f"{_external_id('urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8', ss, unique_id)}"
        f"{_external_id('urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446', ss, patient)}"
        f"{_external_id('urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832', ss, '1.2.250.1.999.1')}"
        f"</rim:RegistryPackage>"
        f'<rim:Classification id="cl-ss" classifiedObject="{ss}" '
        f'classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"/>'
    )


def _association(kind: str, source: str, target: str, *slots: str) -> str:
    return (
        f'<rim:Association id="as-{uuid.uuid4()}" associationType="{kind}" '
        f'sourceObject="{source}" targetObject="{target}">{"".join(slots)}</rim:Association>'
    )


def vihf(assertion_id: str = "_vihf-1") -> str:
    """An unsigned VIHF (SAML 2 assertion) with the DMP's attributes (spec-facts §5.3)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    attrs = {
        "VIHF_Version": "3.0",
        "Authentification_Mode": "INDIRECTE",
        "Identifiant_Structure": "3010000024",
        "Secteur_Activite": "SA01^1.2.250.1.71.4.2.4",
        "urn:oasis:names:tc:xspa:1.0:subject:subject-id": "PFI devkit, test, DSI",
        "urn:oasis:names:tc:xacml:2.0:resource:resource-id": PATIENT,
        "Ressource_URN": "urn:dmp",
        "LPS_Nom": "PFI-AIRFLOW",
    }
    values = "".join(
        f'<saml2:Attribute Name="{k}"><saml2:AttributeValue>{escape(v)}</saml2:AttributeValue>'
        f"</saml2:Attribute>"
        for k, v in attrs.items()
    )
    role = (
        '<saml2:Attribute Name="urn:oasis:names:tc:xacml:2.0:subject:role"><saml2:AttributeValue>'
        '<Role xmlns="urn:hl7-org:v3" code="AUTOMATE" codeSystem="1.2.250.1.213.1.1.4.6" '
        'displayName="Automate"/></saml2:AttributeValue></saml2:Attribute>'
    )
    return (
        f'<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="{assertion_id}" IssueInstant="{now}" Version="2.0">'
        f'<saml2:Issuer Format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName">'
        f"CN=CH DEMO PFI SIGNATURE</saml2:Issuer>"
        f"<saml2:Subject><saml2:NameID>PFI-DEVKIT</saml2:NameID></saml2:Subject>"
        f'<saml2:AuthnStatement AuthnInstant="{now}"><saml2:AuthnContext>'
        f"<saml2:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
        f"</saml2:AuthnContextClassRef></saml2:AuthnContext></saml2:AuthnStatement>"
        f"<saml2:AttributeStatement>{values}{role}</saml2:AttributeStatement>"
        f"</saml2:Assertion>"
    )


def envelope(
    body: str,
    *,
    action: str | None,
    assertion: str | None,
    message_id: str,
    soap_ns: str = NS["soap"],
) -> str:
    action_el = f'<wsa:Action soap:mustUnderstand="true">{action}</wsa:Action>' if action else ""
    security = (
        '<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/'
        f'oasis-200401-wss-wssecurity-secext-1.0.xsd">{assertion}</wsse:Security>'
        if assertion is not None
        else ""
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{soap_ns}" xmlns:wsa="{NS["wsa"]}">'
        f"<soap:Header>{action_el}<wsa:MessageID>{message_id}</wsa:MessageID>"
        f"<wsa:To>https://dmp.test/si-dmp-server/v2/services/repository</wsa:To>{security}"
        f"</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    )


@dataclass
class Request:
    body: bytes
    content_type: str
    message_id: str


def iti41(
    docs: list[Doc],
    *,
    mtom: bool = True,
    replaces: dict[str, str] | None = None,
    action: str | None = ITI41,
    assertion: str | None = None,
    soap_ns: str = NS["soap"],
    extra_documents: str = "",
    drop_parts: bool = False,
) -> Request:
    """A minimal ITI-41: submission set, one ExtrinsicObject + HasMember per document,
    ``replaces`` {new entry id: previous entryUUID} as RPLC associations."""
    assertion = vihf() if assertion is None else assertion
    associations = [
        _association(
            "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember",
            "SubmissionSet01",
            d.entry_id,
            _slot("SubmissionSetStatus", "Original"),
        )
        for d in docs
    ]
    associations += [
        _association("urn:ihe:iti:2007:AssociationType:RPLC", new, old)
        for new, old in (replaces or {}).items()
    ]

    def document(d: Doc) -> str:
        if mtom:
            inner = (
                '<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" '
                f'href="cid:{d.cid.replace("@", "%40")}"/>'
            )
        else:
            inner = base64.b64encode(d.content).decode()
        return f'<xds:Document id="{d.entry_id}">{inner}</xds:Document>'

    body = (
        '<xds:ProvideAndRegisterDocumentSetRequest xmlns:xds="urn:ihe:iti:xds-b:2007" '
        'xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" '
        'xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">'
        f"<lcm:SubmitObjectsRequest><rim:RegistryObjectList>"
        f"{''.join(_extrinsic(d) for d in docs)}{_submission_set()}{''.join(associations)}"
        f"</rim:RegistryObjectList></lcm:SubmitObjectsRequest>"
        f"{''.join(document(d) for d in docs)}{extra_documents}"
        "</xds:ProvideAndRegisterDocumentSetRequest>"
    )
    message_id = f"urn:uuid:{uuid.uuid4()}"
    xml = envelope(
        body, action=action, assertion=assertion, message_id=message_id, soap_ns=soap_ns
    ).encode()
    if not mtom:
        return Request(xml, "application/soap+xml; charset=UTF-8", message_id)
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    root_cid = "root.message@pfi.test"
    parts = [
        (
            f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; "
            f'type="application/soap+xml"\r\nContent-Transfer-Encoding: 8bit\r\n'
            f"Content-ID: <{root_cid}>\r\n\r\n"
        ).encode()
        + xml
        + b"\r\n"
    ]
    if not drop_parts:
        for d in docs:
            parts.append(
                (
                    f"--{boundary}\r\nContent-Type: text/xml\r\n"
                    f"Content-Transfer-Encoding: binary\r\nContent-ID: <{d.cid}>\r\n\r\n"
                ).encode()
                + d.content
                + b"\r\n"
            )
    body_bytes = b"".join(parts) + f"--{boundary}--\r\n".encode()
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
        f'start="<{root_cid}>"; start-info="application/soap+xml"; action="{ITI41}"'
    )
    return Request(body_bytes, content_type, message_id)


def iti57(entry_uuid: str, *, original: str = APPROVED, new: str = DELETED) -> Request:
    """ITI-57 availability-status update, as DRIMBOX's DeleteRequest sends it."""
    update = _association(
        "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus",
        "SubmissionSet01",
        entry_uuid,
        _slot("OriginalStatus", original),
        _slot("NewStatus", new),
    )
    body = (
        '<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" '
        'xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><rim:RegistryObjectList>'
        f"{_submission_set()}{update}</rim:RegistryObjectList></lcm:SubmitObjectsRequest>"
    )
    message_id = f"urn:uuid:{uuid.uuid4()}"
    xml = envelope(body, action=ITI57, assertion=vihf(), message_id=message_id)
    return Request(xml.encode(), "application/soap+xml; charset=UTF-8", message_id)


def cda(label: str) -> bytes:
    # Ends with CRLF on purpose: MIME part boundaries must not eat document bytes.
    return f"<ClinicalDocument><title>{label} (fictif)</title></ClinicalDocument>\r\n".encode()


# -- client side ----------------------------------------------------------------------------------


def session(test_pki, credential="establishment") -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE is set on these machines and would win over verify
    s.verify = str(test_pki.ca_bundle)
    if credential:
        cred = getattr(test_pki, credential)
        s.cert = (str(cred.cert_path), str(cred.key_path))
    return s


def post(test_pki, url: str, request: Request, **kwargs) -> requests.Response:
    with session(test_pki) as s:
        return s.post(
            url,
            data=request.body,
            headers={"Content-Type": request.content_type},
            timeout=kwargs.pop("timeout", TIMEOUT),
            **kwargs,
        )


def registry_result(response: requests.Response, request: Request) -> tuple[str, list[str]]:
    """(status, error codes) of an ``rs:RegistryResponse``, after checking the SOAP answer."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/soap+xml")
    root = etree.fromstring(response.content)
    assert root.findtext("soap:Header/wsa:RelatesTo", namespaces=NS) == request.message_id
    reply = root.find("soap:Body/rs:RegistryResponse", NS)
    codes = [
        e.get("errorCode") for e in reply.iterfind("rs:RegistryErrorList/rs:RegistryError", NS)
    ]
    return reply.get("status"), codes


def fault_of(response: requests.Response) -> tuple[str, str | None]:
    root = etree.fromstring(response.content)
    code = root.find("soap:Body/soap:Fault/soap:Code", NS)
    return code.findtext("soap:Value", namespaces=NS), code.findtext(
        "soap:Subcode/soap:Value", namespaces=NS
    )


# -- ITI-41 ---------------------------------------------------------------------------------------


def test_mtom_iti41_is_accepted_and_stored(dmp_endpoint, test_pki):
    doc = Doc(
        "1.2.250.1.999.1.1001",
        cda("Lettre de liaison"),
        confidentiality=(
            ("N", "2.16.840.1.113883.5.25"),
            ("INVISIBLE_PATIENT", "1.2.250.1.213.1.1.4.13"),
        ),
    )
    request = iti41([doc])

    response = post(test_pki, dmp_endpoint.repository_url, request)

    assert registry_result(response, request) == (SUCCESS, [])
    root = etree.fromstring(response.content)
    assert root.findtext("soap:Header/wsa:Action", namespaces=NS) == f"{ITI41}Response"
    stored = dmp_endpoint.entries["1.2.250.1.999.1.1001"]
    assert stored.content == doc.content
    assert stored.entry_uuid == doc.entry_id
    assert stored.patient_id == PATIENT
    assert stored.status == APPROVED
    assert (stored.class_code.code, stored.type_code.code) == ("10", "11490-0")
    assert [c.code for c in stored.confidentiality_codes] == ["N", "INVISIBLE_PATIENT"]
    (submission,) = dmp_endpoint.accepted
    assert submission.client_cn == test_pki.establishment.common_name
    assert submission.vihf["Authentification_Mode"] == ("INDIRECTE",)
    assert submission.vihf["urn:oasis:names:tc:xacml:2.0:subject:role"] == (
        "AUTOMATE^1.2.250.1.213.1.1.4.6",
    )
    assert dmp_endpoint.requests == 1
    folders = [
        p for p in dmp_endpoint.store_dir.iterdir() if submission.submission_set_unique_id in p.name
    ]
    assert len(folders) == 1
    assert (folders[0] / "1.2.250.1.999.1.1001.document").read_bytes() == doc.content
    metadata = json.loads((folders[0] / "metadata.json").read_text())
    assert metadata["entries"][0]["unique_id"] == "1.2.250.1.999.1.1001"


def test_plain_soap_with_inline_base64_is_accepted(dmp_endpoint, test_pki):
    doc = Doc("1.2.250.1.999.1.1002", cda("inline"))
    request = iti41([doc], mtom=False)

    assert registry_result(post(test_pki, dmp_endpoint.repository_url, request), request)[0] == (
        SUCCESS
    )
    assert dmp_endpoint.entries["1.2.250.1.999.1.1002"].content == doc.content


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (
            lambda: iti41([Doc("1.2.250.1.999.1.2001", cda("x"), hash="0" * 40)]),
            "XDSNonIdenticalHash",
        ),
        (lambda: iti41([Doc("1.2.250.1.999.1.2002", cda("x"), size="3")]), "XDSNonIdenticalSize"),
        (lambda: iti41([Doc(None, cda("no uniqueId"))]), "XDSRepositoryMetadataError"),
        (
            lambda: iti41([Doc("1.2.250.1.999.1.2003", cda("x"), patient=OTHER_PATIENT)]),
            "XDSPatientIdDoesNotMatch",
        ),
        (
            lambda: iti41([Doc("1.2.250.1.999.1.2004", cda("x"))], drop_parts=True),
            "XDSMissingDocument",
        ),
        (
            lambda: iti41(
                [Doc("1.2.250.1.999.1.2005", cda("x"))],
                extra_documents='<xds:Document id="orphan">PGEvPg==</xds:Document>',
            ),
            "XDSMissingDocumentMetadata",
        ),
        (
            lambda: iti41([Doc("1.2.250.1.999.1.2006", cda("x"))], replaces={"nope": "urn:uuid:0"}),
            "XDSRegistryMetadataError",
        ),
    ],
    ids=["hash", "size", "no-unique-id", "patient", "missing-part", "orphan-document", "rplc-src"],
)
def test_wrong_metadata_is_a_registry_failure(dmp_endpoint, test_pki, make, code):
    request = make()

    status, codes = registry_result(post(test_pki, dmp_endpoint.repository_url, request), request)

    assert (status, codes[:1]) == (FAILURE, [code])
    assert dmp_endpoint.entries == {} and dmp_endpoint.accepted == []
    assert dmp_endpoint.refusals[-1].codes[0] == code


def test_same_document_again_is_idempotent_other_bytes_are_refused(dmp_endpoint, test_pki):
    doc = Doc("1.2.250.1.999.1.3001", cda("v1"))
    first, again = iti41([doc]), iti41([doc])
    changed = iti41([Doc("1.2.250.1.999.1.3001", cda("v1 modifiée"))])

    assert registry_result(post(test_pki, dmp_endpoint.repository_url, first), first)[0] == SUCCESS
    assert registry_result(post(test_pki, dmp_endpoint.repository_url, again), again)[0] == SUCCESS
    status, codes = registry_result(post(test_pki, dmp_endpoint.repository_url, changed), changed)

    assert dmp_endpoint.duplicates == 1
    assert dmp_endpoint.accepted[1].duplicates == ("1.2.250.1.999.1.3001",)
    assert (status, codes) == (FAILURE, ["XDSNonIdenticalHash"])
    assert dmp_endpoint.entries["1.2.250.1.999.1.3001"].content == doc.content


@pytest.mark.parametrize(
    ("make", "http", "code", "subcode"),
    [
        (
            lambda: iti41([Doc("1.2.250.1.999.1.4001", cda("x"))], action=None),
            400,
            "soap:Sender",
            "wsa:MessageAddressingHeaderRequired",
        ),
        (
            lambda: iti41([Doc("1.2.250.1.999.1.4002", cda("x"))], action=ITI57),
            400,
            "soap:Sender",
            "wsa:ActionNotSupported",
        ),
        (
            lambda: iti41([Doc("1.2.250.1.999.1.4003", cda("x"))], assertion=""),
            400,
            "soap:Sender",
            "wsse:InvalidSecurity",
        ),
        (
            lambda: iti41(
                [Doc("1.2.250.1.999.1.4004", cda("x"))],
                soap_ns="http://schemas.xmlsoap.org/soap/envelope/",
            ),
            500,
            "soap:VersionMismatch",
            None,
        ),
    ],
    ids=["no-action", "wrong-action", "no-vihf", "soap-1.1"],
)
def test_wrong_envelope_is_a_soap_fault(dmp_endpoint, test_pki, make, http, code, subcode):
    response = post(test_pki, dmp_endpoint.repository_url, make())

    assert response.status_code == http
    assert fault_of(response) == (code, subcode)
    assert dmp_endpoint.entries == {}


def test_entities_are_not_expanded(dmp_endpoint, test_pki):
    hostile = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>&e;'
        b"</soap:Body></soap:Envelope>"
    )
    request = Request(hostile, "application/soap+xml", "")
    response = post(test_pki, dmp_endpoint.repository_url, request)

    assert response.status_code == 400
    assert b"root:" not in response.content


def test_missing_signature_document_is_refused_when_required(dmp_endpoint, test_pki):
    dmp_endpoint.require_signature_document = True
    request = iti41([Doc("1.2.250.1.999.1.4101", cda("unsigned lot"))])

    status, codes = registry_result(post(test_pki, dmp_endpoint.repository_url, request), request)

    assert (status, codes) == (FAILURE, ["XDSRegistryMetadataError"])


# -- TLS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("credential", [None, "rogue_client", "revoked_client"])
def test_tls_refuses_clients_without_a_valid_certificate(dmp_endpoint, test_pki, credential):
    request = iti41([Doc("1.2.250.1.999.1.5001", cda("x"))])
    with session(test_pki, credential) as s, pytest.raises(TLS_REFUSED):
        s.post(
            dmp_endpoint.repository_url,
            data=request.body,
            headers={"Content-Type": request.content_type},
            timeout=TIMEOUT,
        )
    assert dmp_endpoint.requests == 0  # refused at the handshake, before any HTTP


# -- replacement and deletion ---------------------------------------------------------------------


def test_rplc_deprecates_the_previous_entry_and_iti57_deletes(dmp_endpoint, test_pki):
    v1 = Doc("1.2.250.1.999.1.6001", cda("v1"))
    v2 = Doc("1.2.250.1.999.1.6002", cda("v2"))
    first = iti41([v1])
    replacement = iti41([v2], replaces={v2.entry_id: v1.entry_id})
    deletion = iti57(v2.entry_id)

    for request, url in (
        (first, dmp_endpoint.repository_url),
        (replacement, dmp_endpoint.repository_url),
        (deletion, dmp_endpoint.registry_url),
    ):
        assert registry_result(post(test_pki, url, request), request) == (SUCCESS, [])

    old, new = dmp_endpoint.entries[v1.unique_id], dmp_endpoint.entries[v2.unique_id]
    assert old.status == DEPRECATED and old.replaced_by == v2.entry_id
    assert new.replaces == v1.entry_id
    assert new.status == DELETED
    assert dmp_endpoint.accepted[1].replaced == (v1.entry_id,)
    assert dmp_endpoint.accepted[2].transaction == "ITI-57"
    assert dmp_endpoint.accepted[2].updates == ((v2.entry_id, APPROVED, DELETED),)

    # The same update sent again (its answer was lost): its submission set is already registered.
    again = registry_result(post(test_pki, dmp_endpoint.registry_url, deletion), deletion)
    assert again == (FAILURE, ["XDSDuplicateUniqueIdInRegistry"])
    assert len(dmp_endpoint.accepted) == 3


def test_replacement_and_deletion_of_unknown_or_stale_entries_fail(dmp_endpoint, test_pki):
    v1 = Doc("1.2.250.1.999.1.6101", cda("v1"))
    unknown = f"urn:uuid:{uuid.uuid4()}"
    orphan = Doc("1.2.250.1.999.1.6102", cda("v2"))
    rplc = iti41([orphan], replaces={orphan.entry_id: unknown})
    first = iti41([v1])
    stale = iti57(v1.entry_id, original=DELETED)
    to_iti41_url = iti57(v1.entry_id)

    status, codes = registry_result(post(test_pki, dmp_endpoint.repository_url, rplc), rplc)
    assert (status, codes) == (FAILURE, ["UnresolvedReferenceException"])
    assert registry_result(post(test_pki, dmp_endpoint.repository_url, first), first)[0] == SUCCESS
    status, codes = registry_result(post(test_pki, dmp_endpoint.registry_url, stale), stale)
    assert (status, codes) == (FAILURE, ["XDSMetadataUpdateError"])
    response = post(test_pki, dmp_endpoint.repository_url, to_iti41_url)
    assert fault_of(response) == ("soap:Sender", "wsa:ActionNotSupported")
    assert dmp_endpoint.entries[v1.unique_id].status == APPROVED


# -- modes ----------------------------------------------------------------------------------------


def test_fail_mode_answers_a_registry_failure(dmp_endpoint, test_pki):
    dmp_endpoint.set_mode("fail", error_code="DMPPatientNotFound")
    request = iti41([Doc("1.2.250.1.999.1.7001", cda("x"))])

    status, codes = registry_result(post(test_pki, dmp_endpoint.repository_url, request), request)

    assert (status, codes) == (FAILURE, ["DMPPatientNotFound"])
    assert dmp_endpoint.entries == {}


def test_transient_mode_answers_503(dmp_endpoint, test_pki):
    dmp_endpoint.set_mode("transient")
    response = post(
        test_pki, dmp_endpoint.repository_url, iti41([Doc("1.2.250.1.999.1.7101", b"x")])
    )

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert fault_of(response)[0] == "soap:Receiver"
    assert dmp_endpoint.requests == 1


def test_slow_mode_makes_a_short_client_timeout_expire(dmp_endpoint, test_pki):
    dmp_endpoint.set_mode("slow", delay=3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(
            test_pki,
            dmp_endpoint.repository_url,
            iti41([Doc("1.2.250.1.999.1.7201", b"x")]),
            timeout=(TIMEOUT, 0.3),
        )


def test_drop_and_down_modes_then_back_up_on_the_same_port(dmp_endpoint, test_pki):
    port = dmp_endpoint.port
    request = iti41([Doc("1.2.250.1.999.1.7301", cda("x"))])
    dmp_endpoint.set_mode("drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        post(test_pki, dmp_endpoint.repository_url, request)
    dmp_endpoint.set_mode("down")
    with pytest.raises(requests.exceptions.ConnectionError):
        post(test_pki, dmp_endpoint.repository_url, request)
    assert dmp_endpoint.describe()["listening"] is False

    dmp_endpoint.set_mode("normal")

    assert dmp_endpoint.port == port
    assert registry_result(post(test_pki, dmp_endpoint.repository_url, request), request)[0] == (
        SUCCESS
    )


def test_control_path_drives_the_mode_from_another_process(dmp_endpoint, test_pki):
    control = dmp_endpoint.describe()["control_url"]
    request = iti41([Doc("1.2.250.1.999.1.7401", cda("x"))])
    with session(test_pki) as s:
        answer = s.post(f"{control}/mode", json={"mode": "fail", "error_code": "X"}, timeout=5)
        assert answer.json()["mode"] == "fail"
        assert registry_result(post(test_pki, dmp_endpoint.repository_url, request), request) == (
            FAILURE,
            ["X"],
        )
        assert s.post(f"{control}/mode", json={"mode": "bogus"}, timeout=5).status_code == 400
        assert (
            s.post(f"{control}/mode", json={"mode": "slow", "delay": "x"}, timeout=5).status_code
            == 400
        )
        # Long enough for the refused POST below to land while down, even on a busy machine.
        answer = s.post(f"{control}/mode", json={"mode": "down", "duration": 2}, timeout=5)
        assert answer.json()["mode"] == "down" and answer.json()["listening"] is False

    with pytest.raises(requests.exceptions.ConnectionError):
        post(test_pki, dmp_endpoint.repository_url, request)
    deadline = time.monotonic() + 10  # the revert timer brings it back: wait for it, not a sleep
    while not dmp_endpoint.describe()["listening"] and time.monotonic() < deadline:
        time.sleep(0.05)
    with session(test_pki) as s:
        state = s.get(f"{control}/state", timeout=5).json()
    assert state["mode"] == "normal" and state["listening"] is True
    assert registry_result(post(test_pki, dmp_endpoint.repository_url, request), request) == (
        SUCCESS,
        [],
    )


# -- VIHF signature -------------------------------------------------------------------------------


def signed_vihf(credential, assertion_id: str = "_vihf-signed") -> str:
    from signxml import XMLSigner

    assertion = etree.fromstring(vihf(assertion_id))
    chain = credential.cert_path.read_text()
    end = "-----END CERTIFICATE-----"
    certs = [f"{c.strip()}\n{end}\n" for c in chain.split(end) if c.strip()]
    signed = XMLSigner(
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    ).sign(
        assertion,
        key=credential.key_path.read_bytes(),
        cert=certs,
        reference_uri=f"#{assertion_id}",
        id_attribute="ID",
    )
    return etree.tostring(signed).decode()


def test_vihf_signature_is_checked_against_the_pki(dmp_endpoint, test_pki):
    dmp_endpoint.verify_vihf = True
    good = iti41([Doc("1.2.250.1.999.1.8001", cda("x"))], assertion=signed_vihf(test_pki.signing))
    tampered_vihf = signed_vihf(test_pki.signing).replace("INDIRECTE", "DIRECTE")
    tampered = iti41([Doc("1.2.250.1.999.1.8002", cda("x"))], assertion=tampered_vihf)
    rogue = iti41(
        [Doc("1.2.250.1.999.1.8003", cda("x"))], assertion=signed_vihf(test_pki.rogue_client)
    )
    unsigned = iti41([Doc("1.2.250.1.999.1.8004", cda("x"))])

    assert registry_result(post(test_pki, dmp_endpoint.repository_url, good), good)[0] == SUCCESS
    for request in (tampered, rogue, unsigned):
        response = post(test_pki, dmp_endpoint.repository_url, request)
        assert fault_of(response) == ("soap:Sender", "wsse:FailedCheck")
    assert list(dmp_endpoint.entries) == ["1.2.250.1.999.1.8001"]


def test_start_stop_and_describe(test_pki, tmp_path):
    endpoint = DmpEndpoint(test_pki.server, test_pki.ca_bundle, store_dir=tmp_path)
    with endpoint:
        state = endpoint.describe()
        assert state["port"] > 0 and state["listening"] is True
        assert state["repository_url"].endswith("/si-dmp-server/v2/services/repository")
        json.dumps(state)
    assert endpoint.describe()["listening"] is False
