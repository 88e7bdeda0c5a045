"""The DMP's security checks: the VIHF (the signed SAML 2 assertion in ``wsse:Security``) and
the XAdES signature document of a lot (IHE DSG), both verified against the test PKI's CA bundle.

``check_signature_document`` and ``check_signature_content`` are what the endpoint runs on an
ITI-41 lot with ``require_signature_document``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path

from lxml import etree

from pfi_devkit.dmp.constants import (
    ASSOC_SIGNS,
    DE_CLASS_CODE,
    DE_UNIQUE_ID,
    MANIFEST_DIGESTS,
    NS_DS,
    NS_SAML2,
    NSMAP,
    SAFE_PARSER,
    SIGNATURE_CLASS_CODE,
    XDS_REGISTRY_METADATA_ERROR,
    qname,
)
from pfi_devkit.dmp.metadata import Association, Package, codes_of, external_id_of
from pfi_devkit.dmp.model import Errors, SoapFault


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

    standalone = etree.fromstring(etree.tostring(assertion), SAFE_PARSER)
    if standalone.find("ds:Signature", NSMAP) is None:
        raise SoapFault("Sender", "wsse:FailedCheck", "the VIHF is not signed")
    try:
        result = XMLVerifier().verify(standalone, ca_pem_file=str(ca_bundle))
    except (InvalidSignature, InvalidInput, ValueError) as exc:
        raise SoapFault("Sender", "wsse:FailedCheck", f"VIHF signature refused: {exc}") from exc
    signed = result.signed_xml
    if (
        signed is None
        or signed.tag != qname(NS_SAML2, "Assertion")
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
        root = etree.fromstring(content, SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise SoapFault("Sender", None, f"signature document is not XML: {exc}") from exc
    if root.tag != qname(NS_DS, "Signature"):
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
        if algorithm not in MANIFEST_DIGESTS:
            raise SoapFault("Sender", None, f"manifest digest algorithm {algorithm!r} not accepted")
        uri = ref.get("URI", "")
        listed[uri.removeprefix("urn:oid:")] = (
            algorithm,
            "".join((ref.findtext("ds:DigestValue", "", NSMAP) or "").split()),
        )
    return listed


def check_signature_document(
    associations: Sequence[Association],
    extrinsics: Sequence[etree._Element],
    package: Package,
    errors: Errors,
) -> None:
    """The lot carries a signature document (classCode :data:`SIGNATURE_CLASS_CODE`) with a
    ``signs`` association to the submission set."""
    signatures = {
        e.get("id", "")
        for e in extrinsics
        if any(c.code == SIGNATURE_CLASS_CODE for c in codes_of(e, DE_CLASS_CODE))
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


def check_signature_content(
    extrinsics: Sequence[etree._Element],
    documents: Mapping[str, bytes],
    errors: Errors,
    ca_bundle: Path,
) -> None:
    """The XAdES signature document: valid signature, manifest digests = the bytes sent."""
    signed: dict[str, bytes] = {}
    signatures: list[tuple[str, bytes]] = []
    for extrinsic in extrinsics:
        oid = extrinsic.get("id", "")
        content = documents.get(oid)
        if content is None:
            continue
        if any(c.code == SIGNATURE_CLASS_CODE for c in codes_of(extrinsic, DE_CLASS_CODE)):
            signatures.append((oid, content))
        else:
            signed[external_id_of(extrinsic, DE_UNIQUE_ID)] = content
    for oid, content in signatures:
        try:
            manifest = verify_signature_document(content, ca_bundle)
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
            if base64.b64encode(MANIFEST_DIGESTS[algorithm](data).digest()).decode() != digest:
                errors.add(
                    XDS_REGISTRY_METADATA_ERROR,
                    f"the signature manifest digest of {unique_id} is not that of its bytes",
                    oid,
                )
