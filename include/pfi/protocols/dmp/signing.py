"""The organisation's signing certificate ("certificat de cachet") and the two DMP signatures.

In indirect authentication the DMP wants two signatures besides the TLS client certificate
(spec-facts §5.2-5.4), both made with the structure's IGC-Santé signing certificate, which is a
different certificate from the TLS one (DRIMbox keeps ``auth.p12`` and ``signature.p12``):

- the **VIHF** assertion, an enveloped XML-DSig (exc-c14n, RSA-SHA256 as in the IG-CDA example),
  placed after ``saml2:Issuer`` as the SAML schema requires — made with ``signxml``;
- the **signature document** of the lot (IHE DSG, XAdES): an enveloping ``ds:Signature`` whose
  ``IHEManifest`` lists the digest of every document of the submission and whose XAdES
  ``SignedProperties`` name the signing certificate — built here element by element, because it
  signs two same-document references (the manifest and the signed properties), which
  ``signxml``'s signer does not compose; ``signxml``'s verifier checks it in the tests.

The private key never leaves this module's objects; nothing here logs, and ``signxml``'s DEBUG
record of the canonicalised content it signs (the VIHF names the patient) is filtered out.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from lxml import etree

from pfi.base.errors import ConfigurationError
from pfi.protocols.dmp import constants as k

C14N_EXC = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
MANIFEST_TYPE = "http://www.w3.org/2000/09/xmldsig#Manifest"
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
MANIFEST_ID = "IHEManifest"
SIGNED_PROPERTIES_ID = "S0-SignedProperties"
_DS = f"{{{k.NS_DS}}}"
_XADES = f"{{{k.NS_XADES}}}"


class _NoCanonicalizedContent(logging.Filter):
    """Drops ``signxml``'s DEBUG record of every canonicalised string it signs or verifies: the
    VIHF names the patient (``resource-id`` = INS), so at DEBUG level the INS reached the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Canonicalized string")


logging.getLogger("signxml.processor").addFilter(_NoCanonicalizedContent())


@dataclass(frozen=True)
class Signer:
    """A private key and its certificate chain (leaf first), as PEM."""

    key_pem: bytes = field(repr=False)
    chain_pem: tuple[str, ...]

    @classmethod
    def from_files(cls, cert_path: str | Path, key_path: str | Path) -> Signer:
        try:
            chain = Path(cert_path).read_text(encoding="ascii")
            key = Path(key_path).read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"DMP signing certificate or key unreadable ({type(exc).__name__})",
                code="DMP_SIGNING_CERT",
            ) from None
        end = "-----END CERTIFICATE-----"
        certs = tuple(f"{part.strip()}\n{end}\n" for part in chain.split(end) if part.strip())
        if not certs:
            raise ConfigurationError("no certificate in the signing file", code="DMP_SIGNING_CERT")
        return cls(key, certs)

    @cached_property
    def certificate(self):  # -> cryptography.x509.Certificate
        from cryptography import x509

        return x509.load_pem_x509_certificate(self.chain_pem[0].encode("ascii"))

    @property
    def subject_dn(self) -> str:
        """RFC 4514 subject of the signing certificate: the VIHF ``Issuer``."""
        return self.certificate.subject.rfc4514_string()

    def der_chain(self) -> list[bytes]:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        return [
            x509.load_pem_x509_certificate(pem.encode("ascii")).public_bytes(
                serialization.Encoding.DER
            )
            for pem in self.chain_pem
        ]

    @cached_property
    def private_key(self):  # -> cryptography RSAPrivateKey
        """The key, loaded once: loading checks the RSA key, which costs tens of milliseconds."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigurationError("the DMP signing key must be RSA", code="DMP_SIGNING_CERT")
        return key

    def sign_bytes(self, data: bytes) -> bytes:
        """RSA PKCS#1 v1.5 with SHA-256 (``rsa-sha256``)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def sign_enveloped(self, element: etree._Element, id_value: str) -> etree._Element:
        """Enveloped XML-DSig of ``element`` (referenced by its ``ID``) with ``signxml``.

        A ``ds:Signature Id="placeholder"`` child, if present, says where the signature goes.
        """
        from signxml import SignatureConstructionMethod, XMLSigner

        signer = XMLSigner(
            method=SignatureConstructionMethod.enveloped,
            signature_algorithm="rsa-sha256",
            digest_algorithm="sha256",
            c14n_algorithm=C14N_EXC,
        )
        return signer.sign(
            element,
            key=self.private_key,
            cert=list(self.chain_pem),
            reference_uri=f"#{id_value}",
            id_attribute="ID",
        )


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _reference(
    parent: etree._Element, uri: str, digest: bytes, *, type_: str | None, transform: bool
) -> None:
    ref = etree.SubElement(parent, _DS + "Reference", URI=uri)
    if type_:
        ref.set("Type", type_)
    if transform:
        transforms = etree.SubElement(ref, _DS + "Transforms")
        etree.SubElement(transforms, _DS + "Transform", Algorithm=C14N_EXC)
    etree.SubElement(ref, _DS + "DigestMethod", Algorithm=SHA256)
    etree.SubElement(ref, _DS + "DigestValue").text = _b64(digest)


def signature_document(
    signer: Signer,
    documents: Sequence[tuple[str, bytes]],
    *,
    signature_id: str,
    signing_time: datetime | None = None,
) -> bytes:
    """The XAdES signature document of a lot (IHE DSG; DRIM-M_DATA ``publication.xml``).

    ``documents``: ``(uniqueId, bytes)`` of every document of the submission; each becomes a
    manifest reference ``urn:oid:<uniqueId>`` with the SHA-256 of the bytes. ``signature_id`` is
    the signature document's own uniqueId; ``ds:Signature/@Id`` (and the XAdES ``Target``) is
    ``id-<uniqueId>``, because an ``xs:ID`` cannot start with a digit (the DRIM-M_DATA example's
    bare OID fails the XML-DSig schema). Returns UTF-8 XML with its declaration.
    """
    xml_id = f"id-{signature_id}"
    when = (signing_time or datetime.now(UTC)).astimezone(UTC)
    cert = signer.certificate
    chain = signer.der_chain()
    sig = etree.Element(_DS + "Signature", nsmap={"ds": k.NS_DS}, Id=xml_id)
    signed_info = etree.SubElement(sig, _DS + "SignedInfo")
    etree.SubElement(signed_info, _DS + "CanonicalizationMethod", Algorithm=C14N_EXC)
    etree.SubElement(signed_info, _DS + "SignatureMethod", Algorithm=RSA_SHA256)
    value = etree.SubElement(sig, _DS + "SignatureValue")
    key_info = etree.SubElement(sig, _DS + "KeyInfo")
    x509_data = etree.SubElement(key_info, _DS + "X509Data")
    for der in chain:
        etree.SubElement(x509_data, _DS + "X509Certificate").text = _b64(der)

    purpose = etree.SubElement(sig, _DS + "Object")
    properties = etree.SubElement(purpose, _DS + "SignatureProperties")
    prop = etree.SubElement(
        properties, _DS + "SignatureProperty", Id="purposeOfSignature", Target=f"#{xml_id}"
    )
    # The purpose (ASTM E1762 "Source") as an element: the XML-DSig schema allows no bare text
    # in a SignatureProperty (the DRIM-M_DATA example's text-only form fails it).
    etree.SubElement(
        prop,
        f"{{{k.NS_HL7}}}code",
        nsmap={"hl7": k.NS_HL7},
        code=k.SIGNATURE_EVENT_CODE,
        codeSystem=k.SIGNATURE_EVENT_SCHEME,
    )

    manifest_object = etree.SubElement(sig, _DS + "Object")
    manifest = etree.SubElement(manifest_object, _DS + "Manifest", Id=MANIFEST_ID)
    for unique_id, content in documents:
        _reference(
            manifest,
            f"urn:oid:{unique_id}",
            hashlib.sha256(content).digest(),
            type_=None,
            transform=False,
        )

    xades_object = etree.SubElement(sig, _DS + "Object")
    qualifying = etree.SubElement(
        xades_object,
        _XADES + "QualifyingProperties",
        nsmap={"xades": k.NS_XADES},
        Target=f"#{xml_id}",
    )
    signed_props = etree.SubElement(
        qualifying, _XADES + "SignedProperties", Id=SIGNED_PROPERTIES_ID
    )
    ssp = etree.SubElement(signed_props, _XADES + "SignedSignatureProperties")
    etree.SubElement(ssp, _XADES + "SigningTime").text = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    cert_el = etree.SubElement(
        etree.SubElement(ssp, _XADES + "SigningCertificate"), _XADES + "Cert"
    )
    digest = etree.SubElement(cert_el, _XADES + "CertDigest")
    etree.SubElement(digest, _DS + "DigestMethod", Algorithm=SHA256)
    etree.SubElement(digest, _DS + "DigestValue").text = _b64(hashlib.sha256(chain[0]).digest())
    issuer_serial = etree.SubElement(cert_el, _XADES + "IssuerSerial")
    etree.SubElement(issuer_serial, _DS + "X509IssuerName").text = cert.issuer.rfc4514_string()
    etree.SubElement(issuer_serial, _DS + "X509SerialNumber").text = str(cert.serial_number)
    policy = etree.SubElement(ssp, _XADES + "SignaturePolicyIdentifier")
    etree.SubElement(policy, _XADES + "SignaturePolicyImplied")

    _reference(
        signed_info,
        f"#{MANIFEST_ID}",
        hashlib.sha256(_c14n(manifest)).digest(),
        type_=MANIFEST_TYPE,
        transform=True,
    )
    _reference(
        signed_info,
        f"#{SIGNED_PROPERTIES_ID}",
        hashlib.sha256(_c14n(signed_props)).digest(),
        type_=SIGNED_PROPERTIES_TYPE,
        transform=True,
    )
    value.text = _b64(signer.sign_bytes(_c14n(signed_info)))
    return etree.tostring(sig, xml_declaration=True, encoding="UTF-8")


def manifest_digests(signature: bytes) -> dict[str, str]:
    """``{uniqueId: base64 SHA-256}`` listed in a signature document's ``IHEManifest``."""
    root = etree.fromstring(signature, etree.XMLParser(resolve_entities=False, no_network=True))
    found = {}
    for ref in root.iterfind(f"ds:Object/ds:Manifest[@Id='{MANIFEST_ID}']/ds:Reference", k.NSMAP):
        uri = ref.get("URI", "")
        found[uri.removeprefix("urn:oid:")] = ref.findtext("ds:DigestValue", "", k.NSMAP)
    return found


__all__ = ["Signer", "manifest_digests", "signature_document"]
