"""The ledger's core: the engine every part of :class:`~pfi.ledger.Ledger` works on
(``from_url``, ``dispose``) and the helpers they share.

Every method opens its own transaction. Methods that record are written for replays: they
insert-or-get (``INSERT … ON CONFLICT DO NOTHING`` then read, race-safe between processes) and
answer whether they created the row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, Self

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from pfi.ledger.migrate import normalize_url


def _json_default(value: Any) -> str:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def to_json(value: Any) -> str:
    """JSON text as the ledger stores it (datetimes ISO, UUIDs as text, keys sorted)."""
    return json.dumps(value, default=_json_default, ensure_ascii=False, sort_keys=True)


def one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value``, when it is one of ``allowed``; else a ``ValueError`` naming ``name``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


class LedgerBase:
    """What every part of :class:`~pfi.ledger.Ledger` works on: its engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str, **engine_options: Any) -> Self:
        """A ledger on the database at ``url`` (``postgresql://…``; ``postgres://`` accepted)."""
        options: dict[str, Any] = {
            "pool_pre_ping": True,
            "json_serializer": to_json,
            "connect_args": {"application_name": "pfi-ledger"},
            # A statement's error text would list its parameters (a document's INS matricule).
            "hide_parameters": True,
        }
        options.update(engine_options)
        return cls(create_engine(normalize_url(url), **options))

    @contextmanager
    def exclusive(self, name: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold a lock named ``name`` across processes (a PostgreSQL session advisory lock) for
        the ``with`` block: two workers never do that block at once. ``wait=False``: give up at
        once when another holds it — the block then runs with ``False`` (do nothing). The lock
        goes with the session when a worker dies."""
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with self.engine.connect() as conn:
            if wait:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                held = True
            else:
                held = bool(
                    conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
                )
            conn.commit()
            try:
                yield held
            finally:
                if held:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    conn.commit()

    def dispose(self) -> None:
        """Close the pooled connections (end of a command, test teardown)."""
        self.engine.dispose()


__all__ = ["LedgerBase", "one_of", "to_json"]
