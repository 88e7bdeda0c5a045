"""HL7 v2 drop directories: claim complete files, archive originals, quarantine rejected ones.

A producer (DPI, SGL, RIS) writes files into its drop directory. A file is **claimed** by an atomic
rename into the source's work directory — after which no other poller can take it and the producer
cannot still be writing it. A file is only claimed once it is *settled*: not modified for
``settle_seconds`` and not hidden (``.name`` or ``~`` temporary files, which producers use while
writing). Files left in the work directory by a run that crashed are claimed again by the next run,
so a crash never loses a file (product principle 1).

After processing, the original is moved to ``archive/YYYY/MM/DD/`` or, when rejected, to
``quarantine/YYYY/MM/DD/`` with a ``.reason.txt`` beside it. Nothing is ever deleted.

The work, archive and quarantine folders must be on the same file system as the drop directory
for the renames to be atomic; :func:`claim_ready_files` refuses otherwise.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pfi.base.errors import ConfigurationError
from pfi.base.settings import Hl7Source

CLAIM_SEPARATOR = "__"

#: Bytes of a producer's file name kept in the names the PFI gives it (work, archive, quarantine):
#: with an id before it and ``.NNN.hl7.reason.txt`` after it, a name stays under the 255 bytes of
#: usual file systems.
NAME_BYTES = 200

log = logging.getLogger(__name__)


def short_name(name: str, limit: int = NAME_BYTES) -> str:
    """``name`` as far as it goes into a PFI file name: its last ``limit`` bytes (the extension
    is kept), cut on a character boundary."""
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= limit:
        return name
    return encoded[-limit:].decode("utf-8", "ignore")


@dataclass(frozen=True)
class ClaimedFile:
    """A file taken out of a drop directory; ``path`` is its place in the work directory."""

    source: str
    path: Path
    original_name: str
    size: int
    sha256: str

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


def _is_candidate(entry: os.DirEntry[str], patterns: Sequence[str]) -> bool:
    name = entry.name
    if name.startswith(".") or name.endswith(("~", ".tmp", ".part")):
        return False
    if not entry.is_file(follow_symlinks=False):
        return False
    return any(fnmatch.fnmatch(name.lower(), pattern.lower()) for pattern in patterns)


def _digest(path: Path) -> tuple[int, str]:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def prepare_folders(source: Hl7Source) -> None:
    """Create the source's folders and check that claiming can be atomic."""
    for folder in (
        source.drop_dir,
        source.work_dir,
        source.archive_dir,
        source.quarantine_dir,
        source.outbound_dir,
    ):
        folder.mkdir(parents=True, exist_ok=True)
    drop_dev = source.drop_dir.stat().st_dev
    for folder in (source.work_dir, source.archive_dir, source.quarantine_dir):
        if folder.stat().st_dev != drop_dev:
            raise ConfigurationError(
                f"hl7_source {source.name}: {folder} is not on the same file system as the drop "
                "directory, so files cannot be claimed atomically"
            )


def _pending_in_work_dir(source: Hl7Source) -> Iterator[Path]:
    for entry in sorted(os.scandir(source.work_dir), key=lambda e: e.name):
        if entry.is_file(follow_symlinks=False) and CLAIM_SEPARATOR in entry.name:
            yield Path(entry.path)


def settled_files(source: Hl7Source, *, now: float | None = None) -> list[tuple[float, str]]:
    """``(mtime, name)`` of the files of ``source``'s drop directory ready to be claimed
    (settled, not hidden, matching its patterns), oldest first; none when it does not exist.
    Reads the directory only: what a watcher polls to wake intake."""
    now = time.time() if now is None else now
    candidates = []
    try:
        entries = os.scandir(source.drop_dir)
    except FileNotFoundError:
        return []
    with entries:
        for entry in entries:
            if not _is_candidate(entry, source.file_patterns):
                continue
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:  # claimed meanwhile
                continue
            if now - mtime < source.settle_seconds:
                continue
            candidates.append((mtime, entry.name))
    candidates.sort()
    return candidates


def claim_ready_files(
    source: Hl7Source, *, limit: int = 1000, now: float | None = None
) -> list[ClaimedFile]:
    """Claim up to ``limit`` settled files of ``source`` (oldest first), plus leftovers of a crash.

    Leftovers (files already in the work directory) come first, so a crashed run's work is
    finished before new work starts.
    """
    prepare_folders(source)
    now = time.time() if now is None else now
    claimed = [_describe(source, path) for path in _pending_in_work_dir(source)][:limit]

    for _, name in settled_files(source, now=now):
        if len(claimed) >= limit:
            break
        target = source.work_dir / f"{uuid.uuid4().hex[:12]}{CLAIM_SEPARATOR}{short_name(name)}"
        try:
            os.rename(source.drop_dir / name, target)
        except FileNotFoundError:
            continue  # another poller took it first
        except OSError as exc:  # left in place, the others go on; its name may name a patient
            log.error(
                "hl7_source %s: a settled file cannot be claimed (%s); it stays in the drop "
                "directory",
                source.name,
                errno.errorcode.get(exc.errno or 0, type(exc).__name__),
            )
            continue
        claimed.append(_describe(source, target))
    return claimed


def _describe(source: Hl7Source, path: Path) -> ClaimedFile:
    size, sha = _digest(path)
    original = path.name.split(CLAIM_SEPARATOR, 1)[1]
    return ClaimedFile(source=source.name, path=path, original_name=original, size=size, sha256=sha)


def _dated_target(folder: Path, name: str, when: datetime) -> Path:
    day = folder / f"{when:%Y}" / f"{when:%m}" / f"{when:%d}"
    day.mkdir(parents=True, exist_ok=True)
    target = day / name
    if target.exists():
        target = day / f"{uuid.uuid4().hex[:8]}{CLAIM_SEPARATOR}{name}"
    return target


def archive(source: Hl7Source, claimed: ClaimedFile, *, when: datetime | None = None) -> Path:
    """Move a processed original to ``archive/YYYY/MM/DD/``; return its new path."""
    target = _dated_target(source.archive_dir, claimed.original_name, when or datetime.now(UTC))
    os.rename(claimed.path, target)
    return target


def quarantine(
    source: Hl7Source,
    claimed: ClaimedFile,
    reason_code: str,
    reason_text: str,
    *,
    when: datetime | None = None,
) -> Path:
    """Move a rejected original to ``quarantine/YYYY/MM/DD/`` with ``NAME.reason.txt`` beside it.

    The reason must not contain patient data: it is a coded reason, readable by the integration
    team next to the file.
    """
    when = when or datetime.now(UTC)
    target = _dated_target(source.quarantine_dir, claimed.original_name, when)
    os.rename(claimed.path, target)
    write_reason(target, reason_code, reason_text, claimed.sha256, when=when)
    return target


def kept_path(
    source: Hl7Source, item_id: int, original_name: str, day: datetime, *, rejected: bool
) -> Path:
    """Where the original of ledger item ``item_id`` is kept once processed: always the same path.

    ``archive/`` or ``quarantine/`` + ``YYYY/MM/DD`` of ``day`` (the day the item was recorded)
    + ``<item id>__<original name>``. Because it does not depend on when processing ends, a run
    that crashed right after moving the file finds it there again.
    """
    folder = source.quarantine_dir if rejected else source.archive_dir
    safe = original_name.replace("/", "_").replace("\\", "_") or "unnamed"
    return (
        folder / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}" / f"{item_id:08d}{CLAIM_SEPARATOR}{safe}"
    )


def keep(path: Path, target: Path) -> Path:
    """Move a claimed file to its :func:`kept_path` (no-op when it is already there)."""
    if path == target:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(path, target)
    return target


def write_reason(
    target: Path, reason_code: str, reason_text: str, sha256: str, *, when: datetime
) -> Path:
    """Write ``NAME.reason.txt`` beside a quarantined file (coded reason, no patient data)."""
    reason = target.with_name(target.name + ".reason.txt")
    reason.write_text(
        f"{reason_code}\n{reason_text}\nquarantined at {when.isoformat()}\nsha256 {sha256}\n",
        encoding="utf-8",
    )
    return reason


def quarantine_copy(
    target: Path, data: bytes, reason_code: str, reason_text: str, *, when: datetime
) -> Path:
    """Put a copy of refused bytes (one message of a batch file) in quarantine, with its reason.

    The file they came from is archived whole (its other messages were accepted); the copy lets
    the integration team see and resend the refused message alone.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    write_reason(target, reason_code, reason_text, hashlib.sha256(data).hexdigest(), when=when)
    return target


def batches(items: Sequence[str], size: int) -> list[list[str]]:
    """Split ``items`` into bounded batches (a mapped Airflow task per batch, never per item)."""
    if size < 1:
        raise ValueError("batch size must be positive")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


__all__ = [
    "ClaimedFile",
    "archive",
    "batches",
    "claim_ready_files",
    "keep",
    "kept_path",
    "prepare_folders",
    "quarantine",
    "quarantine_copy",
    "write_reason",
]
