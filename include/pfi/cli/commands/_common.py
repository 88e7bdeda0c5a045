"""What several command groups share (not a group itself: modules starting with ``_`` are skipped).

- :func:`settings_of`: the site settings of ``--settings`` or ``$PFI_SETTINGS``;
- :func:`ledger_url`: ``--url``, else ``PFI_LEDGER_URL``, else the ledger Connection the settings
  name (``[connections] ledger``, default ``pfi_ledger``) as ``AIRFLOW_CONN_<ID>``;
- :func:`open_ledger`: the ledger of :func:`ledger_url`, disposed at the end of the ``with``;
- :func:`read_request`: the one producer request of an HL7 file a dry run is about;
- :func:`input_file`: the ``type=`` of a file argument that must exist (a usage error, exit 2,
  instead of a traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pfi.base.connections import (
    Lookup,
    MissingConnection,
    environment_key,
    from_environment,
    postgres_url,
)
from pfi.base.errors import ConfigurationError

if TYPE_CHECKING:
    from pfi.base.settings import Settings
    from pfi.ledger import Ledger
    from pfi.protocols.hl7v2 import Hl7Request


def settings_of(args: argparse.Namespace, *, required: bool) -> Settings | None:
    """``--settings`` or ``$PFI_SETTINGS``; None when neither is given and none is required."""
    from pfi.base.settings import load_settings

    path = getattr(args, "settings", None) or os.environ.get("PFI_SETTINGS")
    if not path and not required:
        return None
    return load_settings(path)


def ledger_connection_id(args: argparse.Namespace) -> str:
    """``[connections] ledger`` of the settings (``--settings`` or ``$PFI_SETTINGS``) when they
    can be read, as the DAGs use it; ``pfi_ledger`` otherwise."""
    try:
        settings = settings_of(args, required=False)
    except ConfigurationError:
        return "pfi_ledger"
    return settings.ledger_connection_id if settings is not None else "pfi_ledger"


def ledger_url(args: argparse.Namespace, connections: Lookup = from_environment) -> str:
    """``--url``, else ``$PFI_LEDGER_URL``, else the URL of the ledger Connection
    (``AIRFLOW_CONN_<ID>``, URI or JSON form: :func:`pfi.base.connections.postgres_url`)."""
    url = getattr(args, "url", None) or os.environ.get("PFI_LEDGER_URL")
    if url:
        return url
    conn_id = ledger_connection_id(args)
    try:
        connection = connections(conn_id)
    except MissingConnection:
        raise ConfigurationError(
            f"no ledger URL: pass --url, or set PFI_LEDGER_URL or {environment_key(conn_id)}"
        ) from None
    return postgres_url(connection)


@contextmanager
def open_ledger(args: argparse.Namespace) -> Iterator[Ledger]:
    """The ledger of :func:`ledger_url`, disposed on leaving."""
    from pfi.ledger import Ledger

    ledger = Ledger.from_url(ledger_url(args))
    try:
        yield ledger
    finally:
        ledger.dispose()


def input_file(text: str) -> Path:
    """An existing, readable file, else a usage error naming it (argparse ``type=``)."""
    path = Path(text)
    if not path.is_file():
        reason = "is a folder" if path.is_dir() else "does not exist"
        raise argparse.ArgumentTypeError(f"{text} {reason}")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text} is not readable")
    return path


input_file.__name__ = "file"


def read_request(path: Path, number: int) -> Hl7Request | int:
    """Message ``number`` (1-based) of the file, parsed; an exit code (said on stderr) when the
    file has no such message (2) or it is not a document request (1)."""
    from pfi.protocols.hl7v2 import Hl7Request, parse_message, split_file

    messages = split_file(path.read_bytes())
    if not 1 <= number <= len(messages):
        print(f"the file holds {len(messages)} message(s)", file=sys.stderr)
        return 2
    request = parse_message(messages[number - 1])
    if not isinstance(request, Hl7Request):
        print("not a document request (MDM/ORU)", file=sys.stderr)
        return 1
    return request
