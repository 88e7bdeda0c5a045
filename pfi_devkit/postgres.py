"""PostgreSQL for the demo and the tests: the server on 127.0.0.1:5432 when present, else ours.

``PFI_PG_ADMIN_URL`` names an admin connection explicitly (``postgresql://user@host:port/db``).
Otherwise the server on 127.0.0.1:5432 (trust authentication, user ``postgres``) is used when it
answers; otherwise a private cluster is created with the Debian PostgreSQL binaries
(``initdb``/``pg_ctl``) under the given state folder, on its own port, and started without systemd.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import sql

ENV_ADMIN_URL = "PFI_PG_ADMIN_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PRIVATE_PORT = 55432


@dataclass(frozen=True)
class PostgresServer:
    """An admin URL to a running server, and whether we started it (and so must stop it)."""

    admin_url: str
    data_dir: Path | None = None

    def url_for(self, database: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def create_database(self, name: str | None = None, *, exist_ok: bool = False) -> str:
        """Create a database (a fresh random name by default); return its URL."""
        name = name or f"pfi_test_{uuid.uuid4().hex[:10]}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"bad database name {name!r}")
        with _autocommit(self.admin_url) as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            elif not exist_ok:
                raise RuntimeError(f"database {name} already exists")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        with _autocommit(self.admin_url) as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


class _autocommit:
    def __init__(self, url: str) -> None:
        self.conn = psycopg2.connect(url, connect_timeout=5)
        self.conn.autocommit = True

    def __enter__(self):
        self.cur = self.conn.cursor()
        return self.cur

    def __exit__(self, *exc: object) -> None:
        self.cur.close()
        self.conn.close()


def answers(url: str) -> bool:
    try:
        psycopg2.connect(url, connect_timeout=3).close()
    except psycopg2.OperationalError:
        return False
    return True


def find_or_start(state_dir: Path) -> PostgresServer:
    """Return a running server: explicit URL, the machine's, or a private cluster we start."""
    explicit = os.environ.get(ENV_ADMIN_URL)
    if explicit:
        return PostgresServer(explicit)
    if answers(DEFAULT_ADMIN_URL):
        return PostgresServer(DEFAULT_ADMIN_URL)
    return start_private_cluster(state_dir / "postgres")


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(
            f"{name} not found: install PostgreSQL (apt-get install postgresql) or set {ENV_ADMIN_URL}"
        )
    return candidates[-1]


def _as_postgres_user(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def start_private_cluster(data_dir: Path, port: int = PRIVATE_PORT) -> PostgresServer:
    """Create (once) and start a private cluster; idempotent when it already runs."""
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    if answers(url):
        return PostgresServer(url, data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
        data_dir.chmod(0o700)
    if not (data_dir / "PG_VERSION").exists():
        subprocess.run(
            _as_postgres_user(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(data_dir),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )
    if _port_in_use(port):
        raise RuntimeError(f"port {port} is taken by something that is not our PostgreSQL")
    subprocess.run(
        _as_postgres_user(
            [
                _pg_bin("pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(data_dir / "server.log"),
                "-o",
                f"-p {port} -c listen_addresses=127.0.0.1 -k {data_dir}",
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    return PostgresServer(url, data_dir)


def stop_private_cluster(data_dir: Path) -> None:
    if (data_dir / "postmaster.pid").exists():
        subprocess.run(
            _as_postgres_user([_pg_bin("pg_ctl"), "-D", str(data_dir), "-m", "fast", "stop"]),
            check=False,
            capture_output=True,
        )


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


__all__ = [
    "PostgresServer",
    "answers",
    "find_or_start",
    "start_private_cluster",
    "stop_private_cluster",
]
