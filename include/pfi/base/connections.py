"""Airflow Connections as plain values: one reader for the DAGs, the hooks and the ``pfi`` command.

Secrets and endpoints are Airflow Connections (README, "Settings and connections"). This module
holds what a Connection *is* for the PFI — :class:`Connection`, a frozen value with Airflow's
fields and its ``extra`` as a read-only mapping — and the two ways to get one:

- :func:`from_environment`: ``AIRFLOW_CONN_<ID>``, in either of the forms Airflow reads there
  (:meth:`Connection.parse`): a URI (``mllp://dpi.local:2575?timeout=30``, extras in the query
  string, or JSON under ``__extra__``) or JSON (``{"conn_type", "host", "port", "login",
  "password", "schema", "extra"}``, ``extra`` an object or a JSON string). What ``pfi`` uses
  without Airflow;
- the hooks' ``pfi_airflow.hooks.airflow_connection``, which turns the Connection Airflow gives
  (metadata database, secrets backend or environment) into the same value.

Code that needs a Connection takes a :data:`Lookup` (``conn_id`` → :class:`Connection`),
``from_environment`` by default, so the same flow runs under Airflow and from the command line.
Each partner maps a Connection to its client's configuration in its own protocol module
(:meth:`pfi.protocols.mllp.MllpEndpoint.from_connection`, :mod:`pfi.protocols.dmp.connection`,
:mod:`pfi.protocols.mssante.connection`); the ledger's URL is :func:`postgres_url`.

Errors are :class:`~pfi.base.errors.ConfigurationError` naming the connection id and the field or
``extra`` key at fault — never a value (a password, a URI carrying one). An unknown connection is
:class:`MissingConnection`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pfi.base.errors import ConfigurationError

#: The query-string key of a URI whose extra is given as one JSON document (Airflow's own).
EXTRA_KEY = "__extra__"


class MissingConnection(ConfigurationError):
    """No Connection of that id (not in the environment, unknown to Airflow)."""

    code = "CONNECTION_MISSING"


def environment_key(conn_id: str) -> str:
    """``AIRFLOW_CONN_<ID>``: the environment variable Airflow reads a Connection from."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def _conn_type(value: str) -> str:
    """Airflow's normalisation: ``postgresql`` is ``postgres``, ``-`` becomes ``_``."""
    return "postgres" if value == "postgresql" else value.replace("-", "_")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Connection:
    """One Airflow Connection: its fields (empty strings, never None) and its ``extra``."""

    conn_id: str
    conn_type: str = ""
    host: str = ""
    port: int | None = None
    login: str = ""
    password: str = field(default="", repr=False)
    schema: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False, hash=False)

    def __post_init__(self) -> None:  # a read-only copy: the value stays frozen
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    # -- building ---------------------------------------------------------------------------------

    @classmethod
    def from_fields(
        cls,
        conn_id: str,
        *,
        conn_type: str | None = None,
        host: str | None = None,
        port: int | str | None = None,
        login: str | None = None,
        password: str | None = None,
        schema: str | None = None,
        extra: Mapping[str, Any] | str | None = None,
    ) -> Connection:
        """A Connection from Airflow's fields as they come (``None`` for unset, ``port`` maybe a
        string, ``extra`` a mapping or a JSON string)."""
        return cls(
            conn_id=conn_id,
            conn_type=_conn_type(_text(conn_type)),
            host=_text(host),
            port=_port(conn_id, port),
            login=_text(login),
            password=_text(password),
            schema=_text(schema),
            extra=_extra(conn_id, extra),
        )

    @classmethod
    def from_mapping(cls, conn_id: str, data: Mapping[str, Any]) -> Connection:
        """The JSON form, already decoded (unknown keys such as ``description`` are ignored)."""
        fields = ("conn_type", "host", "port", "login", "password", "schema", "extra")
        return cls.from_fields(conn_id, **{k: data.get(k) for k in fields})

    @classmethod
    def from_json(cls, conn_id: str, text: str) -> Connection:
        """Airflow's JSON form: ``{"conn_type": …, "host": …, "extra": {…} or "{…}"}``."""
        try:
            data = json.loads(text)
        except ValueError:
            raise ConfigurationError(
                f"Connection {conn_id}: not valid JSON", code="CONNECTION_INVALID"
            ) from None
        if not isinstance(data, dict):
            raise ConfigurationError(
                f"Connection {conn_id}: the JSON form must be an object", code="CONNECTION_INVALID"
            )
        return cls.from_mapping(conn_id, data)

    @classmethod
    def from_uri(cls, conn_id: str, uri: str) -> Connection:
        """Airflow's URI form: ``type://login:password@host:port/schema?key=value&…``, the query
        string being the extra (or one JSON document under ``__extra__``); a host given with
        its own protocol (``http://https://host``) keeps it, as in Airflow."""
        invalid = ConfigurationError(
            f"Connection {conn_id}: not a valid connection URI", code="CONNECTION_INVALID"
        )
        schemes = uri.count("://")
        try:
            conn_type = urlsplit(uri).scheme if schemes in (1, 2) else ""
        except ValueError:
            conn_type = ""
        if not conn_type:
            raise invalid
        rest = uri.replace(f"{conn_type}://", "" if schemes == 2 else "//", 1)
        if schemes == 2 and any(c in rest.split("://", 1)[0] for c in "@:"):
            raise invalid
        try:
            parts = urlsplit(rest)
            port = parts.port
        except ValueError:  # port not a number, or out of range: its text is never quoted
            raise ConfigurationError(
                f"Connection {conn_id}: the port is not a number from 1 to 65535",
                code="CONNECTION_INVALID",
            ) from None
        host = unquote(parts.hostname or "")
        if "/" in host:  # an unusual host (a socket path…): as Airflow reads it
            host = unquote(parts.netloc.rsplit("@", 1)[-1].split(":", 1)[0])
        if host and schemes == 2:
            host = f"{parts.scheme}://{host}"
        extra: Mapping[str, Any] | str | None = None
        if parts.query:
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            extra = query[EXTRA_KEY] if EXTRA_KEY in query else query
        return cls.from_fields(
            conn_id,
            conn_type=conn_type,
            host=host,
            port=port,
            login=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            schema=unquote(parts.path[1:]) if parts.path else None,
            extra=extra,
        )

    @classmethod
    def parse(cls, conn_id: str, text: str) -> Connection:
        """Either form of ``AIRFLOW_CONN_<ID>``: JSON when it starts with ``{``, else a URI."""
        text = text.strip()
        if text.startswith("{"):
            return cls.from_json(conn_id, text)
        return cls.from_uri(conn_id, text)

    # -- reading ----------------------------------------------------------------------------------

    def required(self, key: str, *, code: str = "CONNECTION_INCOMPLETE", hint: str = "") -> str:
        """``extra[key]`` as text; a ConfigurationError naming the connection and the key (never
        a value) when it is missing or empty."""
        value = self.extra.get(key)
        if value is None or value == "":
            more = f" ({hint})" if hint else ""
            raise ConfigurationError(
                f"Connection {self.conn_id}: extra.{key} is missing{more}", code=code
            )
        return str(value)

    def optional(self, key: str) -> str | None:
        """``extra[key]`` as text, None when missing or empty."""
        value = self.extra.get(key)
        return None if value is None or value == "" else str(value)

    def number(self, key: str, default: float) -> float:
        """``extra[key]`` as a positive number of seconds (or the like), ``default`` when unset."""
        value = self.extra.get(key)
        if value is None or value == "":
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = -1.0
        if not number > 0:
            raise ConfigurationError(
                f"Connection {self.conn_id}: extra.{key} must be a positive number",
                code="CONNECTION_INVALID",
            )
        return number


def _port(conn_id: str, value: int | str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise ConfigurationError(
            f"Connection {conn_id}: the port is not a number from 1 to 65535",
            code="CONNECTION_INVALID",
        )
    return port


def _extra(conn_id: str, value: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigurationError(
                f"Connection {conn_id}: its extra is not valid JSON", code="CONNECTION_INVALID"
            ) from None
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"Connection {conn_id}: its extra must be a JSON object", code="CONNECTION_INVALID"
        )
    return dict(value)


#: Where a flow or a command gets a Connection by id: :func:`from_environment` without Airflow,
#: ``pfi_airflow.hooks.airflow_connection`` in a task. Raises :class:`MissingConnection` (a
#: ConfigurationError) when there is none.
Lookup = Callable[[str], Connection]


def from_environment(conn_id: str) -> Connection:
    """The Connection given as ``AIRFLOW_CONN_<ID>`` (URI or JSON form), as Airflow's environment
    secrets backend reads it; :class:`MissingConnection` when the variable is unset or empty."""
    raw = os.environ.get(environment_key(conn_id), "").strip()
    if not raw:
        raise MissingConnection(
            f"Connection {conn_id} not found: {environment_key(conn_id)} is not set"
        )
    return Connection.parse(conn_id, raw)


#: libpq parameters a ``postgres`` Connection's extra may carry into the URL (TLS, timeouts).
POSTGRES_OPTIONS = (
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "sslcrl",
    "connect_timeout",
    "application_name",
    "target_session_attrs",
    "options",
)


def postgres_url(conn: Connection, *, database: str = "pfi_ledger") -> str:
    """The SQLAlchemy URL (psycopg2 driver) of a ``postgres`` Connection: host ``127.0.0.1``,
    port 5432 and ``database`` unless it says otherwise; the libpq options of
    :data:`POSTGRES_OPTIONS` found in its extra go into the query string."""
    from sqlalchemy.engine import URL

    return URL.create(
        "postgresql+psycopg2",
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or "127.0.0.1",
        port=conn.port or 5432,
        database=conn.schema or database,
        query={k: str(conn.extra[k]) for k in POSTGRES_OPTIONS if conn.optional(k) is not None},
    ).render_as_string(hide_password=False)


__all__ = [
    "Connection",
    "Lookup",
    "MissingConnection",
    "environment_key",
    "from_environment",
    "postgres_url",
]
