"""pfi.base.connections: Airflow's two environment forms of a Connection, read once for every face;
and the producers' MLLP Connections taken from the lookup a flow is given, never from a hand-over
through ``os.environ``."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pfi.base.connections import (
    Connection,
    MissingConnection,
    from_environment,
    postgres_url,
)
from pfi.base.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr:t@/x"


# -- the two forms ---------------------------------------------------------------------------------


def test_the_uri_form_with_query_string_extras(monkeypatch):
    uri = "mllp://dpi%40user:s3cr%3At%40%2Fx@DPI.local:2575/some%20schema?timeout=12&flag="
    monkeypatch.setenv("AIRFLOW_CONN_PFI_DPI", uri)
    conn = from_environment("pfi_dpi")
    assert (conn.conn_id, conn.conn_type, conn.host, conn.port) == (
        "pfi_dpi",
        "mllp",
        "dpi.local",
        2575,
    )
    assert (conn.login, conn.password, conn.schema) == ("dpi@user", SECRET, "some schema")
    assert dict(conn.extra) == {"timeout": "12", "flag": ""}


def test_the_uri_form_with_a_json_extra_a_host_protocol_and_airflow_type_names():
    extra = json.dumps({"timeout": 7, "nested": {"a": 1}})
    conn = Connection.parse("x", f"postgresql://h/db?__extra__={extra}")
    assert conn.conn_type == "postgres" and dict(conn.extra) == {"timeout": 7, "nested": {"a": 1}}
    conn = Connection.parse("x", "http://https://dmp.example:8443")
    assert (conn.host, conn.port) == ("https://dmp.example", 8443)
    assert Connection.parse("x", "google-cloud-platform://").conn_type == "google_cloud_platform"


def test_the_json_form_with_extra_as_an_object_or_a_string(monkeypatch):
    data = {"conn_type": "http", "host": "h", "port": "8443", "login": "l", "password": SECRET}
    data |= {"schema": "https", "description": "ignored"}
    monkeypatch.setenv("AIRFLOW_CONN_A", json.dumps({**data, "extra": {"timeout": 5}}))
    monkeypatch.setenv("AIRFLOW_CONN_B", json.dumps({**data, "extra": '{"timeout": 5}'}))
    a, b = from_environment("a"), from_environment("b")
    assert (a.host, a.port, a.login, a.password, a.schema) == ("h", 8443, "l", SECRET, "https")
    assert dict(a.extra) == dict(b.extra) == {"timeout": 5}
    assert a.conn_id == "a" and b.conn_id == "b"
    assert Connection.parse("c", '{"host": "h"}') == Connection("c", host="h")


def test_a_connection_is_a_frozen_value_that_never_shows_its_secrets():
    conn = Connection.parse("x", f'{{"password": "{SECRET}", "extra": {{"key_pass": "p"}}}}')
    with pytest.raises(AttributeError):
        conn.host = "elsewhere"  # type: ignore[misc]
    with pytest.raises(TypeError):
        conn.extra["key_pass"] = "q"  # type: ignore[index]
    assert SECRET not in repr(conn) and "key_pass" not in repr(conn)


def test_a_missing_connection_names_its_variable(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_PFI_NOPE", raising=False)
    with pytest.raises(MissingConnection, match="AIRFLOW_CONN_PFI_NOPE") as caught:
        from_environment("pfi_nope")
    assert isinstance(caught.value, ConfigurationError)
    monkeypatch.setenv("AIRFLOW_CONN_PFI_NOPE", "  ")
    with pytest.raises(MissingConnection):
        from_environment("pfi_nope")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"mllp://u:{SECRET.replace('@', '%40')}@dpi:notaport", "port"),
        ("mllp://dpi:70000", "port"),
        (f'{{"host": "h", "port": "25x", "password": "{SECRET}"}}', "port"),
        ('{"host": "h", "port": 0}', "port"),
        (f'{{"host": "h", "extra": "{{not json", "password": "{SECRET}"}}', "extra"),
        ('{"host": "h", "extra": "[1, 2]"}', "extra"),
        ("mllp://h?__extra__=[1]", "extra"),
        (f'{{"host": "h", "password": "{SECRET}"', "JSON"),
        ('["h", 1]', "URI"),
        ("dpi.local:2575", "URI"),
    ],
)
def test_bad_connections_are_configuration_errors_naming_the_id_not_the_value(value, message):
    with pytest.raises(ConfigurationError, match=message) as caught:
        Connection.parse("pfi_bad", value)
    assert "pfi_bad" in str(caught.value)
    assert SECRET not in str(caught.value) and "s3cr" not in str(caught.value)
    assert caught.value.__cause__ is None  # no chained error quoting the value either


def test_required_extras_name_the_connection_and_the_key():
    conn = Connection("pfi_dmp", extra={"client_cert": "/pki/c.pem", "client_key": ""})
    assert conn.required("client_cert") == "/pki/c.pem"
    for key in ("client_key", "ca_bundle"):
        with pytest.raises(ConfigurationError) as caught:
            conn.required(key, code="DMP_CONNECTION")
        assert str(caught.value) == f"Connection pfi_dmp: extra.{key} is missing"
        assert caught.value.code == "DMP_CONNECTION"
    assert conn.optional("client_key") is None and conn.optional("client_cert") == "/pki/c.pem"


def test_numbers_of_the_extra():
    conn = Connection("c", extra={"timeout": "7.5", "zero": 0, "word": "soon"})
    assert conn.number("timeout", 30.0) == 7.5 and conn.number("unset", 30.0) == 30.0
    for key in ("zero", "word"):
        with pytest.raises(ConfigurationError, match=f"c: extra.{key}"):
            conn.number(key, 30.0)


def test_the_ledger_url_of_a_postgres_connection(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_PFI_LEDGER",
        "postgres://pfi:p%40ss%2Fw@db.local:5433/ledger?sslmode=verify-full&keepalives=1",
    )
    url = postgres_url(from_environment("pfi_ledger"))
    assert url == "postgresql+psycopg2://pfi:p%40ss%2Fw@db.local:5433/ledger?sslmode=verify-full"
    assert postgres_url(Connection("x", "postgres")) == (
        "postgresql+psycopg2://127.0.0.1:5432/pfi_ledger"
    )
    from sqlalchemy.engine import make_url

    assert make_url(url).password == "p@ss/w"


# -- the producers' MLLP Connections: a lookup, no hand-over through os.environ --------------------


class _Ledger:
    """The two ledger calls :func:`pfi.flows.producer_acks.emit` makes, in memory."""

    def __init__(self) -> None:
        self.added: list[tuple[str, dict]] = []

    def events(self, **_filters):
        return []

    def add_event(self, kind, *, actor, detail, **_ids):
        self.added.append((kind, detail))


@pytest.fixture
def zam_setup(tmp_path, monkeypatch):
    """A source naming ``pfi_dpi_zam``, its ZAM, and an MLLP client that records where it was
    sent: the environment holds a *wrong* endpoint for that Connection."""
    from pfi.base.settings import Hl7Source
    from pfi.flows import producer_acks
    from pfi.protocols import mllp
    from pfi.protocols.hl7v2 import zam
    from pfi.protocols.hl7v2.ack import MessageHeader

    source = Hl7Source(
        name="dpi",
        kind="DPI",
        finess_geo="010000032",
        drop_dir=tmp_path / "in",
        outbound_dir=tmp_path / "out",
        archive_dir=tmp_path / "archive",
        quarantine_dir=tmp_path / "quarantine",
        work_dir=tmp_path / "work",
        zam_mllp_connection="pfi_dpi_zam",
    )
    header = MessageHeader(
        sending_application="DPI",
        sending_facility="CH",
        message_code="MDM",
        trigger_event="T02",
        control_id="REQ-1",
    )
    ack = zam.dmp_receipt(
        header, accepted=True, control_id="PFIZ01D1", now=datetime(2026, 3, 2, tzinfo=UTC)
    )
    monkeypatch.setenv("AIRFLOW_CONN_PFI_DPI_ZAM", "mllp://from-environment:1111")
    sent_to: list[tuple[str, int]] = []

    class Client:
        def __init__(self, endpoint):
            self.endpoint = endpoint

        def send(self, data, *, control_id=""):
            sent_to.append((self.endpoint.host, self.endpoint.port))
            return mllp.MllpAnswer("AA", control_id)

    monkeypatch.setattr(mllp, "MllpClient", Client)
    monkeypatch.setattr(producer_acks, "_PEERS_DOWN", {})
    looked_up: list[str] = []

    def lookup(conn_id: str) -> Connection:
        looked_up.append(conn_id)
        return Connection(conn_id, "generic", "from-lookup", 2222)

    return source, ack, lookup, looked_up, sent_to


def test_a_zam_goes_to_the_endpoint_of_the_lookup_given_not_to_the_environment(zam_setup):
    from pfi.flows import producer_acks

    source, ack, lookup, looked_up, sent_to = zam_setup
    ledger = _Ledger()
    producer_acks.emit(source, ack, ledger=ledger, actor="test", connections=lookup)
    assert sent_to == [("from-lookup", 2222)] and looked_up == ["pfi_dpi_zam"]
    assert [kind for kind, _ in ledger.added] == [producer_acks.EVENT_SENT]


def test_a_queued_zam_is_sent_again_to_the_endpoint_of_the_lookup_given(zam_setup):
    from pfi.flows import producer_acks

    source, ack, lookup, looked_up, sent_to = zam_setup
    ledger = _Ledger()

    def unknown(conn_id: str) -> Connection:
        raise MissingConnection(f"Connection {conn_id} not found in Airflow")

    producer_acks.emit(source, ack, ledger=ledger, actor="test", connections=unknown)
    assert sent_to == []  # no Connection yet: queued (a configuration error, fixable)
    assert ledger.added[-1][1]["code"] == "CONNECTION_MISSING"

    counts = producer_acks.resend_pending(ledger, [source], actor="test", connections=lookup)
    assert counts["sent"] == 1 and sent_to == [("from-lookup", 2222)]
    assert looked_up == ["pfi_dpi_zam"]


def test_without_a_lookup_the_command_line_reads_the_environment(zam_setup):
    from pfi.flows import producer_acks

    source, ack, _lookup, _looked_up, sent_to = zam_setup
    producer_acks.emit(source, ack, ledger=_Ledger(), actor="cli")
    assert sent_to == [("from-environment", 1111)]


def _environment_writes(path: Path, root: Path = ROOT) -> list[str]:
    """``os.environ[...] = …``, ``del os.environ[...]``, ``os.environ.update/setdefault/pop…``
    and ``os.putenv`` in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def is_environ(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
        if any(isinstance(t, ast.Subscript) and is_environ(t.value) for t in targets):
            found.append(f"{path.relative_to(root)}:{node.lineno}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            writes = ("update", "setdefault", "pop", "popitem", "clear")
            if (is_environ(node.func.value) and node.func.attr in writes) or (
                node.func.attr in ("putenv", "unsetenv")
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_the_product_never_writes_into_its_environment():
    """Modules hand each other values (a Connection lookup), not environment variables."""
    files = [*(ROOT / "include").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]
    assert len(files) > 50
    assert [w for f in files for w in _environment_writes(f)] == []


def test_the_scan_sees_each_kind_of_write(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\nos.environ['A'] = '1'\ndel os.environ['A']\nos.environ.update(A='1')\n"
        "os.environ.setdefault('A', '1')\nos.putenv('A', '1')\nos.environ.get('A')\n"
    )
    assert _environment_writes(sample, tmp_path) == [f"sample.py:{n}" for n in (2, 3, 4, 5, 6)]
