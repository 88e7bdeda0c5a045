"""Atomic file writing: a file appears complete or not at all.

Producers poll their outbound folders and the intake claims dropped files by name: none of them
must ever read half a file. Every file the PFI writes for another program goes through here.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_atomically(target: Path, data: bytes, *, sync_directory: bool = False) -> None:
    """Write ``data`` to ``target`` through a hidden temporary file, fsync, rename.

    ``sync_directory`` also fsyncs the folder, so that the new name survives a power cut (the
    MLLP inlet needs it before answering its commit acknowledgement).
    """
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    if sync_directory:
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


__all__ = ["write_atomically"]
