"""The devkit's MLLP peer (playing the DPI) and DMP endpoint (HTTPS SOAP, mutual TLS).

Each server starts once per session on an ephemeral port; the function-scoped fixtures hand the
same server back reset to its defaults (nothing received or stored, ACK ``AA``, mode ``ack`` /
``normal``), so tests may change modes freely:

- ``mllp_peer``: ``pfi_devkit.mllp_peer.MllpPeer``; send to ``(mllp_peer.host, mllp_peer.port)``,
  read ``mllp_peer.received``; set ``ack_code`` / ``ack_error`` / ``policy`` / ``mode``.
  Received messages are also written under ``mllp_peer.store_dir``.
- ``dmp_endpoint``: ``pfi_devkit.dmp.DmpEndpoint`` (server cert from ``test_pki``,
  client cert required and checked against the PKI's CA and CRLs); POST ITI-41 to
  ``dmp_endpoint.repository_url`` and ITI-57 to ``dmp_endpoint.registry_url`` with
  ``test_pki.establishment`` as client certificate; read ``accepted`` / ``entries`` /
  ``requests``; ``set_mode("fail" | "transient" | "slow" | "down" | "drop", ...)``.
"""

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def mllp_peer_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from pfi_devkit.mllp_peer import MllpPeer

    with MllpPeer(store_dir=tmp_path_factory.mktemp("mllp-peer")) as peer:
        yield peer


@pytest.fixture
def mllp_peer(mllp_peer_server):
    mllp_peer_server.reset()
    yield mllp_peer_server
    mllp_peer_server.reset()


@pytest.fixture(scope="session")
def dmp_endpoint_server(test_pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from pfi_devkit.dmp import DmpEndpoint

    endpoint = DmpEndpoint(
        server_cert=test_pki.server,
        ca_bundle=test_pki.ca_bundle,
        crl_bundle=test_pki.crl_bundle,
        store_dir=tmp_path_factory.mktemp("dmp-endpoint"),
    )
    with endpoint:
        yield endpoint


@pytest.fixture
def dmp_endpoint(dmp_endpoint_server):
    dmp_endpoint_server.reset()
    yield dmp_endpoint_server
    dmp_endpoint_server.reset()


def dmp_tls_extra(test_pki) -> dict[str, str]:
    """The certificate fields of a ``pfi_dmp`` Connection's extra, from the test PKI."""
    return {
        "client_cert": str(test_pki.establishment.cert_path),
        "client_key": str(test_pki.establishment.key_path),
        "ca_bundle": str(test_pki.ca_bundle),
        "signing_cert": str(test_pki.signing.cert_path),
        "signing_key": str(test_pki.signing.key_path),
    }


def dmp_tls(test_pki, credential=None):
    """``pfi.protocols.dmp.client.TlsFiles`` of the establishment (or of ``credential``), test CA."""
    from pfi.protocols.dmp.client import TlsFiles

    credential = credential or test_pki.establishment
    return TlsFiles(credential.cert_path, credential.key_path, test_pki.ca_bundle)


def dmp_signer(test_pki):
    """The organisation's signing certificate (VIHF, XAdES) of the test PKI."""
    from pfi.protocols.dmp.signing import Signer

    return Signer.from_files(test_pki.signing.cert_path, test_pki.signing.key_path)
