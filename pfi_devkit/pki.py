"""A throw-away PKI shaped like IGC Santé, for the local partner servers and the tests.

Why a PKI of our own: MSSanté mailboxes and the DMP authenticate the establishment with X.509
certificates issued by the ANS "IGC Santé" (a root, then intermediate CAs such as "AC IGC-SANTE
ELEMENTAIRE ORGANISATIONS"). The code under test must build real ``SSLContext``s (client
certificate + private CA + CRLs), so the devkit issues certificates with the same shape:

    TEST AC RACINE IGC-SANTE                       (root, self-signed)
    └── TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS  (intermediate "organisations" CA)
        ├── server                 serverAuth, SAN DNS:localhost IP:127.0.0.1
        ├── one per application mailbox   clientAuth, CN = the mailbox address
        ├── establishment          clientAuth (TLS client of the DMP)
        ├── signing                digitalSignature + nonRepudiation (VIHF / XAdES, RSA-SHA256)
        └── revoked client         clientAuth, listed in the intermediate's CRL
    TEST AC ROGUE NON IGC-SANTE   (a CA nobody trusts)
        └── rogue client           clientAuth, CN = a mailbox address

Every name starts with ``TEST`` and every domain is under ``.test``: nothing here can be mistaken
for a real IGC Santé certificate. All keys are RSA 2048 (XML-DSig RSA-SHA256 for the VIHF needs
RSA; using it everywhere keeps one code path and matches the real IGC Santé).

Files are PEM. Each leaf file holds leaf + intermediate (what a TLS peer must send). Keys are
unencrypted PKCS#8, mode 0600 (the servers read them as root); certificates are 0644.

``build_test_pki`` is idempotent: ``make run`` calls it at every start and it reuses a complete
PKI built for the same parameters (a ``pki.json`` manifest, written last, marks completeness).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT_CA_NAME = "TEST AC RACINE IGC-SANTE"
ORGANISATIONS_CA_NAME = "TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS"
ROGUE_CA_NAME = "TEST AC ROGUE NON IGC-SANTE"
CA_ORGANIZATION = "TEST AGENCE DU NUMERIQUE EN SANTE (DEVKIT PFI)"
CA_UNIT = "TEST IGC-SANTE"
MANIFEST = "pki.json"
MANIFEST_VERSION = 1

_KEY_SIZE = 2048
_VALIDITY = dt.timedelta(days=3650)
_RENEW_BEFORE = dt.timedelta(days=30)
_REVOKED_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Credential:
    """A certificate chain and its key, as files a TLS library loads (``load_cert_chain``)."""

    cert_path: Path  # PEM: leaf + issuing intermediate (chain), in that order
    key_path: Path  # PEM PKCS#8 unencrypted private key
    common_name: str


@dataclass(frozen=True)
class TestPki:
    """Paths of a built test PKI (see the module docstring for its shape)."""

    __test__ = False  # not a pytest test class, despite its name

    directory: Path
    ca_bundle: Path  # root CA + "organisations" intermediate CA: what servers and clients trust
    root_cert: Path
    crl_bundle: Path  # CRLs of every CA of the chain (root and intermediate)
    server: Credential
    clients: Mapping[str, Credential]
    establishment: Credential
    signing: Credential
    rogue_client: Credential
    revoked_client: Credential

    def describe(self) -> dict[str, object]:
        """JSON-able description (for the demo's state file and the CLI)."""

        def cred(c: Credential) -> dict[str, str]:
            return {"cert": str(c.cert_path), "key": str(c.key_path), "cn": c.common_name}

        return {
            "directory": str(self.directory),
            "ca_bundle": str(self.ca_bundle),
            "root_cert": str(self.root_cert),
            "crl_bundle": str(self.crl_bundle),
            "server": cred(self.server),
            "clients": {addr: cred(c) for addr, c in self.clients.items()},
            "establishment": cred(self.establishment),
            "signing": cred(self.signing),
            "rogue_client": cred(self.rogue_client),
            "revoked_client": cred(self.revoked_client),
        }


def build_test_pki(
    directory: Path,
    mailboxes: Sequence[str],
    *,
    establishment_cn: str = "CH DEMO PFI",
    hostnames: Sequence[str] = ("localhost", "127.0.0.1"),
) -> TestPki:
    """Build (or reuse) the test PKI in ``directory``; return its paths.

    ``mailboxes`` are the application mailbox addresses (one client certificate each, CN = the
    address). The rogue and revoked client certificates carry the first address, so that a test
    refusing them proves the CA/CRL check, not an unknown user. An existing PKI is reused when its
    manifest matches these parameters, all files exist and no certificate expires within 30 days.
    """
    if not mailboxes:
        raise ValueError("at least one mailbox address is needed")
    directory = Path(directory).resolve()
    params = {
        "version": MANIFEST_VERSION,
        "mailboxes": list(mailboxes),
        "establishment_cn": establishment_cn,
        "hostnames": list(hostnames),
    }
    pki = _layout(directory, mailboxes, establishment_cn)
    if _reusable(pki, params):
        return pki
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)  # Dovecot's unprivileged processes must be able to enter
    (directory / "clients").mkdir(exist_ok=True)
    (directory / "clients").chmod(0o755)
    (directory / MANIFEST).unlink(missing_ok=True)
    _issue_all(pki, establishment_cn, hostnames)
    expires = min(_not_after(c.cert_path) for c in _credentials(pki))
    manifest = {**params, "not_after": expires.isoformat()}
    _write(directory / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n", 0o644)
    return pki


def _file_stem(address: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._-]", "_", address)


def _layout(directory: Path, mailboxes: Sequence[str], establishment_cn: str) -> TestPki:
    def cred(stem: str, cn: str) -> Credential:
        return Credential(directory / f"{stem}.pem", directory / f"{stem}.key", cn)

    first = mailboxes[0]
    return TestPki(
        directory=directory,
        ca_bundle=directory / "ca-bundle.pem",
        root_cert=directory / "root-ca.pem",
        crl_bundle=directory / "crl-bundle.pem",
        server=cred("server", "localhost"),
        clients=MappingProxyType(
            {addr: cred(f"clients/{_file_stem(addr)}", addr) for addr in mailboxes}
        ),
        establishment=cred("establishment", establishment_cn),
        signing=cred("signing", f"{establishment_cn} SIGNATURE"),
        rogue_client=cred("rogue-client", first),
        revoked_client=cred("revoked-client", first),
    )


def _credentials(pki: TestPki) -> list[Credential]:
    return [
        pki.server,
        *pki.clients.values(),
        pki.establishment,
        pki.signing,
        pki.rogue_client,
        pki.revoked_client,
    ]


def _reusable(pki: TestPki, params: dict[str, object]) -> bool:
    try:
        manifest = json.loads((pki.directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if {k: manifest.get(k) for k in params} != params:
        return False
    files = [pki.ca_bundle, pki.root_cert, pki.crl_bundle]
    for c in _credentials(pki):
        files += [c.cert_path, c.key_path]
    if not all(f.is_file() for f in files):
        return False
    try:
        expires = dt.datetime.fromisoformat(manifest["not_after"])
    except (KeyError, TypeError, ValueError):
        return False
    return expires - _RENEW_BEFORE > dt.datetime.now(dt.UTC)


def _not_after(cert_path: Path) -> dt.datetime:
    return x509.load_pem_x509_certificate(cert_path.read_bytes()).not_valid_after_utc


@dataclass(frozen=True)
class _Ca:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)


def _name(cn: str, organization: str, unit: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=signing,
        key_encipherment=not signing,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _make_ca(cn: str, issuer: _Ca | None, now: dt.datetime) -> _Ca:
    key = _new_key()
    subject = _name(cn, CA_ORGANIZATION, CA_UNIT)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + _VALIDITY + dt.timedelta(days=365))
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=0 if issuer else None), critical=True
        )
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    signer = issuer.key if issuer else key
    aki_source = issuer.cert.public_key() if issuer else key.public_key()
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(aki_source), critical=False
    )
    return _Ca(builder.sign(signer, hashes.SHA256()), key)


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if "@" in name:
                entries.append(x509.RFC822Name(name))
            else:
                entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _issue_leaf(
    ca: _Ca,
    cred: Credential,
    *,
    organization: str,
    unit: str,
    now: dt.datetime,
    eku: Sequence[x509.ObjectIdentifier] = (),
    san: Sequence[str] = (),
    signing: bool = False,
    serial: int | None = None,
) -> x509.Certificate:
    key = _new_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cred.common_name, organization, unit))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(signing=signing), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key()),
            critical=False,
        )
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if san:
        builder = builder.add_extension(_san(san), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    _write(cred.key_path, _key_pem(key), 0o600)
    _write(cred.cert_path, _cert_pem(cert) + _cert_pem(ca.cert), 0o644)
    return cert


def _make_crl(
    ca: _Ca, revoked_serials: Sequence[int], now: dt.datetime
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - dt.timedelta(days=1))
        .next_update(now + _VALIDITY)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key()),
            critical=False,
        )
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(_REVOKED_DATE)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256())


def _issue_all(pki: TestPki, establishment_cn: str, hostnames: Sequence[str]) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    d = pki.directory
    root = _make_ca(ROOT_CA_NAME, None, now)
    orgs = _make_ca(ORGANISATIONS_CA_NAME, root, now)
    rogue = _make_ca(ROGUE_CA_NAME, None, now)
    for name, ca in (("root-ca", root), ("organisations-ca", orgs), ("rogue-ca", rogue)):
        _write(d / f"{name}.pem", _cert_pem(ca.cert), 0o644)
        _write(d / f"{name}.key", _key_pem(ca.key), 0o600)

    unit_mss = "TEST MSSANTE BAL APPLICATIVE"
    _issue_leaf(
        orgs,
        pki.server,
        organization=establishment_cn,
        unit="TEST SERVEUR PFI",
        now=now,
        eku=[ExtendedKeyUsageOID.SERVER_AUTH],
        san=list(hostnames),
    )
    for cred in pki.clients.values():
        _issue_leaf(
            orgs,
            cred,
            organization=establishment_cn,
            unit=unit_mss,
            now=now,
            eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
            san=[cred.common_name],
        )
    _issue_leaf(
        orgs,
        pki.establishment,
        organization=establishment_cn,
        unit="TEST AUTHENTIFICATION ETABLISSEMENT",
        now=now,
        eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
        san=[_establishment_host(establishment_cn)],
    )
    _issue_leaf(
        orgs,
        pki.signing,
        organization=establishment_cn,
        unit="TEST SIGNATURE ORGANISATION",
        now=now,
        signing=True,
    )
    _issue_leaf(
        rogue,
        pki.rogue_client,
        organization=establishment_cn,
        unit=unit_mss,
        now=now,
        eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
        san=[pki.rogue_client.common_name],
    )
    revoked = _issue_leaf(
        orgs,
        pki.revoked_client,
        organization=establishment_cn,
        unit=unit_mss,
        now=now,
        eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
        san=[pki.revoked_client.common_name],
    )

    root_crl = _make_crl(root, [], now)
    orgs_crl = _make_crl(orgs, [revoked.serial_number], now)
    _write(d / "root-ca.crl.pem", _crl_pem(root_crl), 0o644)
    _write(d / "organisations-ca.crl.pem", _crl_pem(orgs_crl), 0o644)
    _write(pki.crl_bundle, _crl_pem(root_crl) + _crl_pem(orgs_crl), 0o644)
    _write(pki.root_cert, _cert_pem(root.cert), 0o644)
    _write(pki.ca_bundle, _cert_pem(root.cert) + _cert_pem(orgs.cert), 0o644)


def _establishment_host(establishment_cn: str) -> str:
    """A fake DNS name for the establishment certificate's SAN (RFC 5280 verifiers want one)."""
    slug = re.sub(r"[^a-z0-9]+", "-", establishment_cn.lower()).strip("-") or "establishment"
    return f"{slug}.test"


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with the final mode from the start (a key is never world-readable)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pfi_devkit.pki DIR ADDRESS...``: build (or reuse) and print the paths as JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] in {"-h", "--help"}:
        print("usage: python -m pfi_devkit.pki DIR MAILBOX_ADDRESS...", file=sys.stderr)
        return 2
    pki = build_test_pki(Path(args[0]), args[1:])
    print(json.dumps(pki.describe(), indent=2))
    return 0


__all__ = [
    "CA_ORGANIZATION",
    "ORGANISATIONS_CA_NAME",
    "ROGUE_CA_NAME",
    "ROOT_CA_NAME",
    "Credential",
    "TestPki",
    "build_test_pki",
    "main",
]

if __name__ == "__main__":
    raise SystemExit(main())
