"""The devkit's IGC Santé-shaped test PKI: chains verify, the CRL revokes, rebuilds are reused."""

import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from pfi_devkit.pki import (
    ORGANISATIONS_CA_NAME,
    ROOT_CA_NAME,
    Credential,
    TestPki,
    build_test_pki,
)

MAILBOXES = ("pfi@ch-demo.mssante.test", "labo@ch-demo.mssante.test")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return build_test_pki(tmp_path_factory.mktemp("pki"), MAILBOXES)


def _chain(cred: Credential) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(cred.cert_path.read_bytes())


def _store(pki: TestPki) -> Store:
    # Only the root is a trust anchor: the intermediate must come from the leaf file.
    return Store([x509.load_pem_x509_certificate(pki.root_cert.read_bytes())])


def _client_verify(pki: TestPki, cred: Credential) -> None:
    leaf, *intermediates = _chain(cred)
    verifier = PolicyBuilder().store(_store(pki)).build_client_verifier()
    verifier.verify(leaf, intermediates)


def _cn(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


def test_bundle_holds_root_then_organisations_ca(pki: TestPki) -> None:
    certs = x509.load_pem_x509_certificates(pki.ca_bundle.read_bytes())
    assert [_cn(c) for c in certs] == [ROOT_CA_NAME, ORGANISATIONS_CA_NAME]
    assert x509.load_pem_x509_certificate(pki.root_cert.read_bytes()) == certs[0]


def test_server_chain_verifies_for_localhost_and_loopback_ip(pki: TestPki) -> None:
    leaf, *intermediates = _chain(pki.server)
    assert _cn(intermediates[0]) == ORGANISATIONS_CA_NAME
    for name in (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))):
        verifier = PolicyBuilder().store(_store(pki)).build_server_verifier(name)
        chain = verifier.verify(leaf, intermediates)
        assert _cn(chain[-1]) == ROOT_CA_NAME


def test_every_client_cert_verifies_with_its_address_as_cn(pki: TestPki) -> None:
    assert set(pki.clients) == set(MAILBOXES)
    for address, cred in pki.clients.items():
        _client_verify(pki, cred)
        leaf = _chain(cred)[0]
        assert _cn(leaf) == address == cred.common_name
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    _client_verify(pki, pki.establishment)


def test_rogue_client_does_not_chain_to_the_bundle(pki: TestPki) -> None:
    assert pki.rogue_client.common_name == MAILBOXES[0]
    with pytest.raises(VerificationError):
        _client_verify(pki, pki.rogue_client)


def test_crl_bundle_covers_every_ca_and_revokes_only_the_revoked_client(pki: TestPki) -> None:
    crls = [
        x509.load_pem_x509_crl(b"-----BEGIN X509 CRL-----" + block)
        for block in pki.crl_bundle.read_bytes().split(b"-----BEGIN X509 CRL-----")[1:]
    ]
    ca_certs = {c.subject: c for c in x509.load_pem_x509_certificates(pki.ca_bundle.read_bytes())}
    assert {crl.issuer for crl in crls} == set(ca_certs)
    for crl in crls:
        assert crl.is_signature_valid(ca_certs[crl.issuer].public_key())
    revoked_serial = _chain(pki.revoked_client)[0].serial_number
    revoked = {r.serial_number for crl in crls for r in crl}
    assert revoked == {revoked_serial}
    # The revoked certificate is otherwise valid: only the CRL refuses it.
    _client_verify(pki, pki.revoked_client)


def test_ssl_with_crl_check_loads_the_bundles_and_every_key_pair(pki: TestPki) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_verify_locations(cafile=pki.ca_bundle)
    ctx.load_verify_locations(cafile=pki.crl_bundle)
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
    stats = ctx.cert_store_stats()
    assert stats["x509_ca"] == 2 and stats["crl"] == 2
    creds = [pki.server, *pki.clients.values(), pki.establishment, pki.signing]
    for cred in [*creds, pki.rogue_client, pki.revoked_client]:
        ctx.load_cert_chain(cred.cert_path, cred.key_path)  # raises on a key/cert mismatch
    for cred in creds:
        assert cred.key_path.stat().st_mode & 0o077 == 0


def test_signing_cert_is_rsa_2048_for_non_repudiation(pki: TestPki) -> None:
    leaf = _chain(pki.signing)[0]
    key = leaf.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment


def test_rebuild_with_same_parameters_reuses_the_files(pki: TestPki) -> None:
    before = {p: p.read_bytes() for p in pki.directory.rglob("*") if p.is_file()}
    again = build_test_pki(pki.directory, MAILBOXES)
    assert again == pki
    after = {p: p.read_bytes() for p in pki.directory.rglob("*") if p.is_file()}
    assert after == before


def test_rebuild_with_other_mailboxes_issues_a_new_pki(tmp_path: Path) -> None:
    first = build_test_pki(tmp_path, MAILBOXES[:1])
    root_before = first.root_cert.read_bytes()
    second = build_test_pki(tmp_path, MAILBOXES)
    assert set(second.clients) == set(MAILBOXES)
    assert second.root_cert.read_bytes() != root_before
    _client_verify(second, second.clients[MAILBOXES[1]])
