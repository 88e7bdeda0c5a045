"""DMP request building and answer reading, without a server (the endpoint tests are in
``tests/integration/test_dmp_client.py``).

Golden samples: the official v2.1 MDM radiology messages (initial, replacement, deletion) of
``ans-hl7v2-exemples`` — patient PAT-TROIS DOMINIQUE, test INS 279035121518989.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from lxml import etree

from pfi.base.errors import ConfigurationError, InvalidInput, RefusedByPartner, TransientError
from pfi.protocols.dmp import constants as k
from pfi.protocols.dmp.client import DmpClient, DmpEndpoints
from pfi.protocols.dmp.config import DmpConfig
from pfi.protocols.dmp.response import parse_response
from pfi.protocols.dmp.signing import Signer, manifest_digests, signature_document
from pfi.protocols.dmp.soap import Attachment, mtom_package
from pfi.protocols.dmp.submission import (
    DmpSubmission,
    build_request,
    entry_uuid,
    submission_set_unique_id,
)
from pfi.protocols.dmp.vihf import VihfClaims, build_assertion, signed_vihf
from pfi_fixtures.site import write_settings

MDM = "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM"
INITIAL = f"{MDM}/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7"
REPLACEMENT = f"{MDM}/Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7"
DELETION = f"{MDM}/Suppression MDM/message_MDM_CR_Radio_DEL_N1.er7"
INS = "279035121518989"
PATIENT = f"{INS}^^^&1.2.250.1.213.1.4.10&ISO^NH"
ENDPOINTS = DmpEndpoints("https://dmp.test/repository", "https://dmp.test/registry")
CONFIG = DmpConfig(source_id="1.2.250.1.71.4.2.2", structure_name="CH TEST")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def signer(test_pki) -> Signer:
    return Signer.from_files(test_pki.signing.cert_path, test_pki.signing.key_path)


def submission(fixtures_dir, path: str) -> DmpSubmission:
    from pfi.protocols.hl7v2 import parse_message

    return DmpSubmission.from_request(parse_message((fixtures_dir / path).read_bytes()))


def claims(**changes) -> VihfClaims:
    values = {
        "structure_id": "1010000032",
        "sector": "SA01^1.2.250.1.71.4.2.4",
        "subject_id": "PFI",
        "subject_name": "PFI-Airflow, PFI, DSI",
        "patient_id": PATIENT,
    }
    return VihfClaims(**(values | changes))


def parts(body: bytes, content_type: str) -> tuple[etree._Element, dict[str, bytes]]:
    from pfi_devkit.dmp import parse_envelope

    return parse_envelope(body, content_type)


# -- VIHF -------------------------------------------------------------------------------------------


def test_vihf_carries_every_attribute_the_dmp_requires_and_verifies(signer, test_pki):
    from pfi_devkit.dmp import VIHF_ATTRIBUTES_DMP, verify_vihf, vihf_attributes

    assertion = signed_vihf(claims(), signer, now=NOW)
    assert verify_vihf(assertion, test_pki.ca_bundle) == signer.subject_dn
    values = vihf_attributes(assertion)
    assert [name for name in VIHF_ATTRIBUTES_DMP if not any(values.get(name, ()))] == []
    assert values["Authentification_Mode"] == ("INDIRECTE",)
    assert values[k.ATTR_RESOURCE_ID] == (PATIENT,)
    assert values[k.ATTR_ROLE] == ("AUTOMATE^1.2.250.1.213.1.1.4.6",)
    assert values["Issuer"] == (signer.subject_dn,)
    assert k.ATTR_CONFIDENTIALITY not in values
    # SAML schema order: Issuer, then the signature, then Subject.
    children = [etree.QName(c).localname for c in assertion]
    assert children[:3] == ["Issuer", "Signature", "Subject"]


def test_vihf_secret_connection_attribute_only_when_asked(signer):
    secret = ("INVISIBLE_REPRESENTANTS_LEGAUX", "1.2.250.1.213.1.1.4.13", "x")
    from pfi_devkit.dmp import vihf_attributes

    values = vihf_attributes(build_assertion(claims(secret_connection=secret), "CN=x"))
    assert values[k.ATTR_CONFIDENTIALITY] == (
        "INVISIBLE_REPRESENTANTS_LEGAUX^1.2.250.1.213.1.1.4.13",
    )


def test_a_tampered_vihf_fails_verification(signer, test_pki):
    from pfi_devkit.dmp import SoapFault, verify_vihf

    assertion = signed_vihf(claims(), signer)
    text = etree.tostring(assertion).replace(b"INDIRECTE", b"DIRECTE")
    with pytest.raises(SoapFault):
        verify_vihf(etree.fromstring(text), test_pki.ca_bundle)


# -- XAdES signature document -----------------------------------------------------------------------


def test_signature_document_verifies_and_lists_the_document_digest(signer, test_pki):
    import base64
    import hashlib

    from signxml import XMLVerifier

    cda = b"<ClinicalDocument/>\r\n"
    signature = signature_document(signer, [("1.2.3.4", cda)], signature_id="2.25.42")
    verified = XMLVerifier().verify(
        etree.fromstring(signature), ca_pem_file=str(test_pki.ca_bundle), expect_references=2
    )
    assert len(verified) == 2
    assert manifest_digests(signature) == {
        "1.2.3.4": base64.b64encode(hashlib.sha256(cda).digest()).decode()
    }
    tampered = signature.replace(b"urn:oid:1.2.3.4", b"urn:oid:1.2.3.5")
    with pytest.raises(Exception, match="(?i)digest"):
        XMLVerifier().verify(
            etree.fromstring(tampered), ca_pem_file=str(test_pki.ca_bundle), expect_references=2
        )


# -- MTOM -------------------------------------------------------------------------------------------


def test_mtom_parts_come_back_byte_for_byte():
    from pfi_devkit.dmp import split_mtom

    tricky = b"<doc>\r\n--not-a-boundary\r\n\r\n</doc>\r\n"
    binary = bytes(range(256))
    root = b'<?xml version="1.0"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"/>'
    body, content_type = mtom_package(
        root,
        [
            Attachment("a", tricky, content_id="a@pfi"),
            Attachment("b", binary, "application/octet-stream", "b@pfi"),
        ],
        k.ACTION_ITI41,
    )
    xml, attachments = split_mtom(body, content_type)
    assert xml == root
    assert attachments == {"a@pfi": tricky, "b@pfi": binary}
    assert (
        'type="application/xop+xml"' in content_type
        and 'start-info="application/soap+xml"' in content_type
    )


# -- requests from the official examples ------------------------------------------------------------


def _objects(soap) -> tuple[etree._Element, dict[str, bytes]]:
    envelope, attachments = parts(soap.body, soap.content_type)
    return envelope, attachments


def test_initial_submission_is_iti41_with_signature_document_and_visibility(fixtures_dir, signer):
    sub = submission(fixtures_dir, INITIAL)
    request_id = uuid.uuid4()
    soap = build_request(
        sub, config=CONFIG, signer=signer, endpoints=ENDPOINTS, request_id=request_id, now=NOW
    )
    assert soap.transaction == "ITI-41"
    envelope, attachments = _objects(soap)
    assert envelope.findtext("soap:Header/wsa:Action", namespaces=k.NSMAP) == k.ACTION_ITI41
    assert envelope.findtext("soap:Header/wsa:To", namespaces=k.NSMAP) == ENDPOINTS.repository_url
    objects = envelope.find(
        "soap:Body/xds:ProvideAndRegisterDocumentSetRequest/lcm:SubmitObjectsRequest/rim:RegistryObjectList",
        k.NSMAP,
    )
    entries = objects.findall("rim:ExtrinsicObject", k.NSMAP)
    assert len(entries) == 2 and len(attachments) == 2
    cda_entry = next(e for e in entries if e.get("id") == entry_uuid(sub.unique_id))
    confidentiality = {
        c.get("nodeRepresentation")
        for c in cda_entry.iterfind("rim:Classification", k.NSMAP)
        if c.get("classificationScheme") == "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
    }
    # INIT example: INVISIBLE_PATIENT=Y, INVISIBLE_REP_LEGAUX=Y, MASQUE_PS=N.
    assert {"INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"} <= confidentiality
    assert "MASQUE_PS" not in confidentiality
    kinds = sorted(
        a.get("associationType").rsplit(":", 1)[1]
        for a in objects.iterfind("rim:Association", k.NSMAP)
    )
    assert kinds == ["HasMember", "HasMember", "signs"]
    ss_uid = [
        e.get("value")
        for e in objects.iter(f"{{{k.NS_RIM}}}ExternalIdentifier")
        if e.get("identificationScheme") == k.SS_UNIQUE_ID
    ]
    assert ss_uid == [submission_set_unique_id(request_id)]
    assert sub.cda in attachments.values()
    signature = next(v for v in attachments.values() if v != sub.cda)
    assert set(manifest_digests(signature)) == {sub.unique_id}
    # Secret connection in the example: the VIHF says so.
    from pfi_devkit.dmp import vihf_attributes

    vihf = vihf_attributes(envelope.find("soap:Header/wsse:Security/saml2:Assertion", k.NSMAP))
    assert vihf[k.ATTR_CONFIDENTIALITY]
    assert vihf[k.ATTR_RESOURCE_ID] == (PATIENT,)


def test_replacement_carries_rplc_to_the_previous_entry_uuid(fixtures_dir, signer):
    sub = submission(fixtures_dir, REPLACEMENT)
    assert sub.action == "replace" and sub.replaces_unique_id
    soap = build_request(
        sub, config=CONFIG, signer=signer, endpoints=ENDPOINTS, request_id=uuid.uuid4()
    )
    envelope, _ = _objects(soap)
    rplc = [
        (a.get("sourceObject"), a.get("targetObject"))
        for a in envelope.iter(f"{{{k.NS_RIM}}}Association")
        if a.get("associationType") == k.ASSOC_RPLC
    ]
    assert rplc == [(entry_uuid(sub.unique_id), entry_uuid(sub.replaces_unique_id))]


def test_deletion_is_iti57_to_the_deleted_status(fixtures_dir, signer):
    sub = submission(fixtures_dir, DELETION)
    soap = build_request(
        sub, config=CONFIG, signer=signer, endpoints=ENDPOINTS, request_id=uuid.uuid4()
    )
    assert soap.transaction == "ITI-57"
    assert soap.content_type.startswith("application/soap+xml")
    envelope, attachments = parts(soap.body, soap.content_type)
    assert attachments == {}
    assert envelope.findtext("soap:Header/wsa:To", namespaces=k.NSMAP) == ENDPOINTS.registry_url
    update = envelope.find(".//rim:Association", k.NSMAP)
    assert update.get("associationType") == k.ASSOC_UPDATE_STATUS
    assert update.get("targetObject") == entry_uuid(sub.unique_id)
    slots = {
        s.get("name"): s.findtext(".//rim:Value", namespaces=k.NSMAP)
        for s in update.iterfind("rim:Slot", k.NSMAP)
    }
    assert slots == {"OriginalStatus": k.STATUS_APPROVED, "NewStatus": k.STATUS_DELETED}


def test_identifiers_are_stable_for_a_retry():
    rid = uuid.uuid4()
    assert submission_set_unique_id(rid) == submission_set_unique_id(str(rid))
    assert submission_set_unique_id(rid).startswith("2.25.")
    assert entry_uuid("1.2.3^4") == entry_uuid("1.2.3^4") != entry_uuid("1.2.3^5")


def test_the_request_repr_holds_no_patient_data(fixtures_dir, signer):
    sub = submission(fixtures_dir, INITIAL)
    soap = build_request(
        sub, config=CONFIG, signer=signer, endpoints=ENDPOINTS, request_id=uuid.uuid4()
    )
    assert INS not in repr(sub) and INS not in repr(soap)
    assert INS.encode() in soap.body  # … the body does carry it, to the DMP only


# -- answers ----------------------------------------------------------------------------------------


def registry_answer(status: str, *codes: str) -> bytes:
    from pfi_devkit.dmp import RegistryError, registry_response
    from pfi_devkit.dmp.soap import soap_envelope

    errors = [RegistryError(code, f"context quoting {PATIENT}") for code in codes]
    response = registry_response(errors)
    response.set("status", status)
    return soap_envelope(
        "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse", "urn:uuid:1", response
    )


def test_success_failure_partial_and_already_registered():
    ok = parse_response(200, "application/soap+xml", registry_answer(k.RESPONSE_SUCCESS))
    assert ok.status == "success" and ok.accepted and ok.relates_to == "urn:uuid:1"
    again = parse_response(
        200,
        "application/soap+xml",
        registry_answer(k.RESPONSE_FAILURE, "XDSDuplicateUniqueIdInRegistry"),
    )
    assert again.already_registered and again.raise_for_outcome() is again
    refused = parse_response(
        200,
        "application/soap+xml",
        registry_answer(k.RESPONSE_FAILURE, "DMPClosed", "XDSPatientIdDoesNotMatch"),
    )
    assert refused.status == "failure" and refused.codes == (
        "DMPClosed",
        "XDSPatientIdDoesNotMatch",
    )
    with pytest.raises(RefusedByPartner) as caught:
        refused.raise_for_outcome()
    assert caught.value.code == "DMPClosed" and INS not in str(caught.value)
    partial = parse_response(
        200, "application/soap+xml", registry_answer(k.RESPONSE_PARTIAL, "XDSMissingDocument")
    )
    with pytest.raises(RefusedByPartner, match="part of the lot"):
        partial.raise_for_outcome()
    busy = parse_response(
        200, "application/soap+xml", registry_answer(k.RESPONSE_FAILURE, "XDSRegistryBusy")
    )
    with pytest.raises(TransientError):
        busy.raise_for_outcome()


def test_an_mtom_answer_is_read_from_its_root_part():
    xml = registry_answer(k.RESPONSE_SUCCESS)
    body, content_type = mtom_package(xml, [], k.ACTION_ITI41)
    assert parse_response(200, content_type, body).status == "success"


@pytest.mark.parametrize(
    ("status", "fault", "error", "code"),
    [
        (503, ("Receiver", None), TransientError, "DMP_UNAVAILABLE"),
        (400, ("Sender", "wsse:FailedCheck"), RefusedByPartner, "DMP_SOAP_FAULT"),
        (500, ("VersionMismatch", None), RefusedByPartner, "DMP_SOAP_FAULT"),
        (502, None, TransientError, "DMP_HTTP_502"),
        (429, None, TransientError, "DMP_HTTP_429"),
        (404, None, TransientError, "DMP_HTTP_404"),  # nothing at that URL: the operator's fix
        (403, None, TransientError, "DMP_HTTP_403"),
        (400, None, RefusedByPartner, "DMP_HTTP_400"),
        (200, None, TransientError, "DMP_BAD_RESPONSE"),
    ],
)
def test_faults_and_http_errors_are_classified(status, fault, error, code):
    from pfi_devkit.dmp import SoapFault, fault_envelope

    body = (
        fault_envelope(SoapFault(fault[0], fault[1], f"reason quoting {INS}"))
        if fault
        else b"<html/>"
    )
    with pytest.raises(error) as caught:
        parse_response(status, "application/soap+xml", body)
    assert caught.value.code == code and INS not in str(caught.value)


# -- the client's error mapping (transport seam) ----------------------------------------------------


class _Session:
    def __init__(self, exc: Exception) -> None:
        self.exc, self.calls = exc, []

    def post(self, url, **kwargs):
        self.calls.append((url, kwargs))
        raise self.exc

    def close(self):
        pass


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        ("ConnectionError", "DMP_UNREACHABLE"),
        ("ReadTimeout", "DMP_TIMEOUT"),
        ("ConnectTimeout", "DMP_TIMEOUT"),
        ("SSLError", "DMP_TLS"),
    ],
)
def test_network_errors_are_transient_and_timeouts_explicit(exc, code, fixtures_dir, signer):
    import requests

    session = _Session(getattr(requests.exceptions, exc)("boom"))
    client = DmpClient(ENDPOINTS, None, connect_timeout=2, read_timeout=7, session=session)
    soap = build_request(
        submission(fixtures_dir, INITIAL),
        config=CONFIG,
        signer=signer,
        endpoints=ENDPOINTS,
        request_id=uuid.uuid4(),
    )
    with pytest.raises(TransientError) as caught:
        client.send(soap)
    assert caught.value.code == code
    url, kwargs = session.calls[0]
    assert url == ENDPOINTS.repository_url and kwargs["timeout"] == (2.0, 7.0)


def test_client_refuses_missing_tls_files_and_bad_timeouts(tmp_path):
    from pfi.protocols.dmp.client import TlsFiles

    with pytest.raises(ConfigurationError):
        DmpClient(ENDPOINTS, TlsFiles(tmp_path / "c", tmp_path / "k", tmp_path / "ca"))
    with pytest.raises(ConfigurationError):
        DmpClient(ENDPOINTS, None, read_timeout=0, session=_Session(Exception()))


# -- settings ---------------------------------------------------------------------------------------


def test_dmp_settings_section(tmp_path):
    from pfi.base.settings import load_settings

    dmp = """
[dmp]
sector = "SA41^1.2.250.1.71.4.2.4"
read_timeout_seconds = 12
batch_size = 5
[dmp.retry]
first_delay_seconds = 30
give_up_after_hours = 2
"""
    path = write_settings(tmp_path, sources=[], extra=dmp)
    config = DmpConfig.from_settings(load_settings(path))
    assert config.sector.startswith("SA41") and config.read_timeout == 12 and config.batch_size == 5
    assert config.source_id == "1.2.250.1.71.4.2.2" and config.structure_name == "CH"
    assert config.retry.first_delay.total_seconds() == 30
    assert config.retry.give_up_after.total_seconds() == 7200
    path.write_text(path.read_text().replace("batch_size = 5", "batch_size = 0"))
    with pytest.raises(ConfigurationError):
        DmpConfig.from_settings(load_settings(path))


def test_a_request_without_structure_identifier_is_refused(fixtures_dir, signer):
    from dataclasses import replace

    sub = replace(submission(fixtures_dir, INITIAL), author=None)
    with pytest.raises(InvalidInput) as caught:
        build_request(
            sub, config=CONFIG, signer=signer, endpoints=ENDPOINTS, request_id=uuid.uuid4()
        )
    assert caught.value.code == "DMP_NO_STRUCTURE_ID"


def test_a_document_id_with_an_extension_is_refused_for_the_dmp(fixtures_dir, signer):
    from dataclasses import replace

    from pfi.protocols.cda import Identifier

    sub = submission(fixtures_dir, INITIAL)
    sub = replace(sub, header=replace(sub.header, id=Identifier("1.2.250.1.999", "42")))
    with pytest.raises(InvalidInput) as caught:
        build_request(
            sub, config=CONFIG, signer=signer, endpoints=ENDPOINTS, request_id=uuid.uuid4()
        )
    assert caught.value.code == "DMP_UNIQUE_ID_FORMAT"
