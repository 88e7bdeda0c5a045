"""``DmpHook``: the ``pfi_dmp`` Connection turned into endpoints, TLS files, signer and client."""

import json

import pytest

pytestmark = pytest.mark.airflow


def _connection(monkeypatch, **extra):
    conn = {
        "conn_type": "http",
        "host": "dmp.test",
        "port": 8443,
        "schema": "https",
        "extra": extra,
    }
    monkeypatch.setenv("AIRFLOW_CONN_PFI_DMP", json.dumps(conn))


def test_endpoints_default_to_the_dmp_paths_and_extra_overrides(monkeypatch):
    from pfi_airflow.dmp import DmpHook

    _connection(monkeypatch)
    endpoints = DmpHook().endpoints()
    assert endpoints.repository_url == "https://dmp.test:8443/si-dmp-server/v2/services/repository"
    assert endpoints.registry_url == "https://dmp.test:8443/si-dmp-server/v2/services/registry"
    _connection(monkeypatch, repository_url="https://x.test/r", registry_url="https://x.test/g")
    assert DmpHook().endpoints().registry_url == "https://x.test/g"


def test_missing_certificates_are_a_configuration_error(monkeypatch):
    from pfi.base.errors import ConfigurationError
    from pfi_airflow.dmp import DmpHook

    _connection(monkeypatch)
    with pytest.raises(ConfigurationError, match="client_cert"):
        DmpHook().get_conn()
    ok, message = DmpHook().test_connection()
    assert not ok and "DMP_CONNECTION" in message


def test_test_connection_reaches_the_devkit_endpoint(monkeypatch, dmp_endpoint, test_pki):
    from pfi_airflow.dmp import DmpHook

    _connection(
        monkeypatch,
        repository_url=dmp_endpoint.repository_url,
        registry_url=dmp_endpoint.registry_url,
        client_cert=str(test_pki.establishment.cert_path),
        client_key=str(test_pki.establishment.key_path),
        ca_bundle=str(test_pki.ca_bundle),
        signing_cert=str(test_pki.signing.cert_path),
        signing_key=str(test_pki.signing.key_path),
        read_timeout=7,
    )
    hook = DmpHook()
    ok, message = hook.test_connection()
    assert ok, message
    with hook.get_conn() as client:
        assert client.timeout == (5.0, 7.0)
    assert hook.signer().subject_dn.startswith("CN=")


def test_the_hook_and_the_command_line_build_the_same_client_setup(monkeypatch):
    """``DmpHook`` (Airflow's Connection) and ``pfi dmp`` (``AIRFLOW_CONN_<ID>``) map the same
    Connection with the same functions (:mod:`pfi.protocols.dmp.connection`), in both forms."""
    from pfi.base.connections import from_environment
    from pfi.protocols.dmp import connection as dmp_connection
    from pfi_airflow.dmp import DmpHook
    from pfi_airflow.hooks import airflow_connection

    files = {"client_cert": "/pki/c.pem", "client_key": "/pki/c.key", "ca_bundle": "/pki/ca"}
    _connection(monkeypatch, read_timeout=7, **files)
    uri = "http://dmp.test:8443/https?read_timeout=7&" + "&".join(
        f"{k}={v}" for k, v in files.items()
    )
    for form in ("json", "uri"):
        if form == "uri":
            monkeypatch.setenv("AIRFLOW_CONN_PFI_DMP", uri)
        from_cli = from_environment("pfi_dmp")
        assert airflow_connection("pfi_dmp") == from_cli
        hook = DmpHook(connect_timeout=3.0, read_timeout=9.0)
        assert hook.endpoints() == dmp_connection.endpoints(from_cli)
        assert hook.endpoints().repository_url.startswith("https://dmp.test:8443/si-dmp-server/")
        assert hook.tls_files() == dmp_connection.tls_files(from_cli)
        assert dmp_connection.timeouts(from_cli, connect_timeout=3.0, read_timeout=9.0) == (3, 7)


def test_a_connection_airflow_does_not_know_is_a_configuration_error(monkeypatch):
    from pfi.base.connections import MissingConnection
    from pfi_airflow.hooks import airflow_connection

    monkeypatch.delenv("AIRFLOW_CONN_PFI_NOWHERE", raising=False)
    with pytest.raises(MissingConnection, match="pfi_nowhere"):
        airflow_connection("pfi_nowhere")
