"""What several command groups share (not a group itself: modules starting with ``_`` are skipped).

- :func:`settings_of`: the site settings of ``--settings`` or ``$PFI_SETTINGS``;
- :func:`open_ledger`: the ledger of ``--url`` / ``PFI_LEDGER_URL`` / ``AIRFLOW_CONN_PFI_LEDGER``,
  disposed at the end of the ``with``;
- :func:`env_connection`: an Airflow Connection given in JSON form as ``AIRFLOW_CONN_<ID>``;
- :func:`read_request`: the one producer request of an HL7 file a dry run is about;
- :func:`input_file`: the ``type=`` of a file argument that must exist (a usage error, exit 2,
  instead of a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


@contextmanager
def open_ledger(args: argparse.Namespace) -> Iterator[Ledger]:
    """The ledger named by ``--url`` (or the environment), disposed on leaving."""
    from pfi.cli import ledger_url
    from pfi.ledger import Ledger

    ledger = Ledger.from_url(ledger_url(args))
    try:
        yield ledger
    finally:
        ledger.dispose()


def env_connection(conn_id: str) -> dict[str, Any] | None:
    """``AIRFLOW_CONN_<ID>`` in JSON form, its ``extra`` as a dict; None when unset or a URI."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}", "")
    if not raw.lstrip().startswith("{"):
        return None
    data = json.loads(raw)
    extra = data.get("extra") or {}
    data["extra"] = json.loads(extra) if isinstance(extra, str) else extra
    return data


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
