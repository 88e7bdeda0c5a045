"""The ``pfi_mss_<mailbox>`` Connection → SMTP/IMAP endpoints (the demo's shape included)."""

import json

import pytest

from pfi.base.connections import Connection
from pfi.base.errors import ConfigurationError
from pfi.protocols.mssante.connection import endpoints, endpoints_of
from pfi.protocols.mssante.smtp import smtp_code_of

EXTRA = {
    "imap_port": 1143,
    "imaps_port": 1993,
    "smtp_port": 1587,
    "smtps_port": 1465,
    "client_cert": "/pki/pfi.pem",
    "client_key": "/pki/pfi.key",
    "ca_bundle": "/pki/ca.pem",
}


def _conn(**fields) -> Connection:
    return Connection.from_fields("pfi_mss_pfi", conn_type="imap", **fields)


def test_demo_connection_gives_starttls_plain_with_the_mailbox_address():
    smtp, imap = endpoints(
        _conn(host="127.0.0.1", port=1143, login="pfi@ch.test", password="s", extra=EXTRA)
    )
    assert (smtp.port, smtp.security, smtp.sasl, smtp.mailbox) == (
        1587,
        "starttls",
        "plain",
        "pfi@ch.test",
    )
    assert (imap.port, imap.security, imap.sasl) == (1143, "starttls", "plain")
    assert str(smtp.tls.client_cert) == "/pki/pfi.pem" and smtp.tls.crl_file is None
    assert smtp.tls.conf03_ciphers and smtp.password == "s"


def test_the_json_and_uri_forms_of_a_connection_give_the_same_endpoints(monkeypatch):
    from urllib.parse import urlencode

    from pfi.base.connections import from_environment

    conn = {"conn_type": "imap", "host": "127.0.0.1", "port": 1143, "login": "pfi@ch.test"}
    conn |= {"password": "s", "extra": EXTRA}
    expected = endpoints(
        _conn(host="127.0.0.1", port=1143, login="pfi@ch.test", password="s", extra=EXTRA)
    )

    assert endpoints_of(conn, "pfi@ch.test") == expected
    monkeypatch.setenv("AIRFLOW_CONN_PFI_MSS_PFI", json.dumps(conn))
    assert endpoints(from_environment("pfi_mss_pfi"), "pfi@ch.test") == expected
    uri = f"imap://pfi%40ch.test:s@127.0.0.1:1143?{urlencode(EXTRA)}"  # extras as strings
    monkeypatch.setenv("AIRFLOW_CONN_PFI_MSS_PFI", uri)
    assert endpoints(from_environment("pfi_mss_pfi"), "pfi@ch.test") == expected
    with pytest.raises(ConfigurationError):  # the login must be the mailbox's address
        endpoints_of(conn, "labo@ch.test")


def test_implicit_tls_external_and_options_from_extra_json():
    extra = {**EXTRA, "smtp_security": "tls", "imap_security": "tls", "imap_sasl": "external"}
    extra |= {"smtp_sasl": "none", "crl_file": "/pki/crl.pem", "conf03_ciphers": "false"}

    smtp, imap = endpoints(_conn(host="mss.example", extra=json.dumps(extra)), "pfi@ch.test")
    assert (smtp.port, smtp.security, smtp.sasl) == (1465, "tls", "none")
    assert (imap.port, imap.security, imap.sasl) == (1993, "tls", "external")
    assert str(imap.tls.crl_file) == "/pki/crl.pem" and not imap.tls.conf03_ciphers


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": {k: v for k, v in EXTRA.items() if k != "ca_bundle"}}, "ca_bundle"),
        ({"extra": {k: v for k, v in EXTRA.items() if k != "client_cert"}}, "client_cert"),
        ({"login": "other@ch.test"}, "login is not the mailbox"),
        ({"extra": {**EXTRA, "smtp_security": "ssl"}}, "starttls or tls"),
        ({"extra": {**EXTRA, "smtp_port": "smtp"}}, "ports must be numbers"),
        ({"extra": {**EXTRA, "timeout": "soon"}}, "extra.timeout"),
    ],
)
def test_incomplete_or_inconsistent_connections_are_configuration_errors(change, message):
    fields = {"host": "h", "port": 1, "login": "pfi@ch.test", "password": "", "extra": EXTRA}
    with pytest.raises(ConfigurationError, match=message) as caught:
        endpoints(_conn(**{**fields, **change}), "pfi@ch.test")
    assert "pfi_mss_pfi" in str(caught.value) or "starttls" in str(caught.value)


def test_smtp_code_of_ledger_reason_codes():
    assert smtp_code_of("SMTP_550") == 550
    assert smtp_code_of("MSS_CONNECTION") is None and smtp_code_of(None) is None
