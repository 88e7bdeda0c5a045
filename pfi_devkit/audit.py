"""``python -m pfi_devkit audit [--root CLONE_ROOT]``: no patient datum in what operators see of
a whole running stack — after ``make run`` (and ``make chaos``) on a clone.

1. **What to search for**: the patient data of everything that went through the stack, read from
   what the stack itself received and kept — the HL7 files of the drop folders (waiting,
   archived, quarantined: ``var/demo/hl7/*/in``, ``var/demo/data/sources/``), the messages the
   DPI peer received (``var/devkit/dpi-received``: the MDM^T02 built from inbound mails), the
   documents the DMP endpoint accepted (``var/devkit/dmp-accepted``), the mails the application
   mailbox took in (``var/demo/data/mailboxes``, ``var/demo/mssante-sent``: their XDM's CDA) —
   plus the project's canonical samples (:mod:`pfi_devkit.samples`). Collected as the
   integration audit does (``tests/integration/test_patient_data.py``, which uses the collector
   of this module): INS/NIR matricule with and without key, IPP and other PID identifiers, birth
   and used names, given names, birth date (``YYYYMMDD`` and ISO), the patient's MSSanté
   address, the CDA's recordTarget, slices of the documents' base64.
2. **Where**: every file under ``var/log/`` and ``var/airflow/logs/`` (Airflow task logs, JSON
   lines decoded), and — when ``var/airflow/airflow.env`` is there — Airflow's metadata database
   (XCom values, rendered template fields, run confs, map index labels, the audit log's extras)
   and the ledger (reason texts, original names, partner refs, event details), both read in
   read-only transactions. Outputs meant to carry patient data are not searched: ACK/ZAM files,
   mails, DMP submissions, the archive of originals, the ledger's identity columns.
3. **Report**: what was scanned, how many distinct tokens were searched, each hit as
   ``source : kind of datum`` — never the datum. Exit 1 when anything was found.

Identifiers and names are matched as whole tokens of ≥ 4 characters (case-insensitive), so that a
number inside a longer one, or a name inside a word, is not a hit.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import email
import email.policy
import gzip
import io
import json
import re
import sys
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pfi_devkit.demo import read_env_file

_WORD = "0-9A-Za-z\u00c0-\u024f"
_WORD_RUN = re.compile(f"[{_WORD}]+")
_ONLY_WORD = re.compile(f"[{_WORD}]+")
#: A content slice is 50 characters of a document's base64: searched inside base64-like runs.
SLICE = 50
_B64_RUN = re.compile(rf"[A-Za-z0-9+/]{{{SLICE},}}")


# --- patient data --------------------------------------------------------------------------------


@dataclass
class PatientData:
    """What must not leak: tokens (whole-word, ≥ 4 chars) and content slices (substrings)."""

    tokens: dict[str, str] = field(default_factory=dict)  # lower-cased token → what it is
    slices: dict[str, str] = field(default_factory=dict)  # content slice → what it is
    _compiled: tuple[int, re.Pattern[str] | None] = field(default=(-1, None), repr=False)

    def token(self, what: str, value: object) -> None:
        text = str(value or "").strip()
        if len(text) >= 4:
            self.tokens.setdefault(text.lower(), what)

    def date(self, what: str, value: object) -> None:
        """A birth date in its exact forms: as given (YYYYMMDD…) and ISO."""
        text = re.sub(r"[^0-9]", "", str(value or ""))[:8]
        if len(text) == 8:
            self.token(what, text)
            self.token(what, f"{text[:4]}-{text[4:6]}-{text[6:]}")
        elif isinstance(value, date):
            self.token(what, value.strftime("%Y%m%d"))
            self.token(what, value.strftime("%Y-%m-%d"))

    def nir(self, what: str, value: object) -> None:
        text = str(value or "").strip()
        self.token(what, text)
        if len(text) == 15 and text.isdigit():
            self.token(f"{what} without key", text[:13])

    def content(self, what: str, payload: str) -> None:
        if len(payload) >= 200:
            self.slices.setdefault(payload[120 : 120 + SLICE], what)

    def _pattern(self) -> re.Pattern[str] | None:
        """The tokens that are not one run of word characters (``pat-trois``, ISO dates, mail
        addresses), as one whole-token pattern; the others are looked up word by word."""
        count, pattern = self._compiled
        if count != len(self.tokens):
            others = [t for t in self.tokens if not _ONLY_WORD.fullmatch(t)]
            alternatives = "|".join(re.escape(t) for t in sorted(others, key=len, reverse=True))
            pattern = (
                re.compile(f"(?<![{_WORD}])(?:{alternatives})(?![{_WORD}])", re.IGNORECASE)
                if others
                else None
            )
            self._compiled = (len(self.tokens), pattern)
        return pattern

    def matches(self, text: str) -> list[tuple[str, str]]:
        """``(kind, datum)`` of every patient datum in ``text``; the kind of a content slice is
        ``"<what> (content slice)"``."""
        if not text:
            return []
        hits = []
        tokens = self.tokens
        for word in _WORD_RUN.findall(text):
            if len(word) >= 4:
                what = tokens.get(word.lower())
                if what is not None:
                    hits.append((what, word))
        pattern = self._pattern()
        if pattern is not None:
            hits += [(tokens[m.group(0).lower()], m.group(0)) for m in pattern.finditer(text)]
        if self.slices:
            for run in _B64_RUN.findall(text):
                for start in range(len(run) - SLICE + 1):
                    what = self.slices.get(run[start : start + SLICE])
                    if what is not None:
                        hits.append((f"{what} (content slice)", run[start : start + SLICE]))
        return hits

    def found_in(self, text: str) -> list[str]:
        """The hits of ``text`` as ``kind 'datum'`` (for tests, whose data are test identities)."""
        return [f"{what} {datum!r}" for what, datum in self.matches(text)]

    def kinds_in(self, text: str) -> list[str]:
        """The kinds of datum found in ``text``, without the datum (what an audit may print)."""
        return list(dict.fromkeys(what for what, _ in self.matches(text)))


def _segments(raw: bytes) -> list[list[str]]:
    text = raw.decode("utf-8", "replace")
    return [s.split("|") for s in re.split(r"\r\n|\r|\n", text) if s[:3].isalpha()]


def _component(field_: str, index: int, sep: str = "^") -> str:
    parts = field_.split(sep)
    return parts[index] if index < len(parts) else ""


def collect_cda(content: bytes, data: PatientData) -> bool:
    """The recordTarget of a CDA document (ids, names, birth time); False when it is not one."""
    from pfi.protocols.cda import read_cda

    try:
        cda = read_cda(content)
    except Exception:
        return False
    if cda.patient is None:
        return True
    for ident in cda.patient.ids:
        data.nir("CDA patient id", ident.extension)
    for part in cda.patient.name.family + cda.patient.name.given:
        data.token("CDA patient name", part.value)
    data.date("CDA birth time", cda.patient.birth_time)
    return True


def collect_patient_data(raw: bytes, data: PatientData, *, parse: bool = True) -> None:
    """Patient data of one input message: parsed request, raw PID/PRT segments, CDA headers
    (``parse=False``: the raw segments and content slices only, without parsing the message and
    its documents — for the thousandth copy of the same patient)."""
    from pfi.protocols.hl7v2 import parse_message

    payloads: list[str] = []
    for seg in _segments(raw):
        if seg[0] == "PID":
            fields = seg + [""] * 40
            for repetition in fields[3].split("~"):
                ident, kind = _component(repetition, 0), _component(repetition, 4)
                (data.nir if kind == "INS" else data.token)(f"PID-3 {kind or 'id'}", ident)
            for repetition in fields[5].split("~"):
                data.token("PID-5 name", _component(repetition, 0))
                data.token("PID-5 given name", _component(repetition, 1))
                for given in _component(repetition, 2).split(" "):
                    data.token("PID-5 given name", given)
            data.date("PID-7 birth date", fields[7])
        elif seg[0] == "PRT" and len(seg) > 5 and "INS" in seg[5]:
            # The patient as a mail recipient: INS, names, its own MSSanté address.
            data.nir("PRT patient id", _component(seg[5], 0))
            data.token("PRT patient name", _component(seg[5], 1))
            data.token("PRT patient given name", _component(seg[5], 2))
            for address in seg[15:17]:  # PRT-15, its telecommunication address (or 16)
                if "@" in _component(address, 3):
                    data.token("PRT patient address", _component(address, 3))
        elif seg[0] == "OBX" and len(seg) > 5 and "^Base64^" in seg[5]:
            payloads.append(seg[5].split("^Base64^", 1)[1].split("^")[0])
    if not parse:
        for payload in payloads:
            data.content("document base64", payload)
        return
    try:
        request = parse_message(raw)
    except Exception:  # the defective inputs: the raw segments above are what we know
        request = None
    cdas: list[bytes] = []
    if not hasattr(request, "patient"):  # unparsable, or an acknowledgement
        request = None
    if request is not None:
        patient = request.patient
        data.nir("INS", patient.ins)
        data.token("IPP", patient.ipp)
        for ident in patient.identifiers:
            data.token("PID identifier", ident.id)
        data.token("birth name", patient.birth_name)
        data.token("first given name", patient.first_given_name)
        for given in patient.given_names:
            data.token("given name", given)
        data.date("birth date", patient.birth_date)
        cdas = [d.content for d in request.documents]
    for payload in payloads:
        data.content("document base64", payload)
        if request is None:
            try:
                cdas.append(base64.b64decode(payload + "=" * (-len(payload) % 4)))
            except (binascii.Error, ValueError):
                pass
    for content in cdas:
        collect_cda(content, data)


# --- what went through the stack ----------------------------------------------------------------

#: Folders (under the clone's root) holding what the stack received and kept: inputs to collect
#: the patient data from. Never scanned for leaks (they carry patient data by design).
INPUT_DIRS = (
    "var/demo/hl7",  # the drop folders (waiting files) and the ACK/ZAM answers
    "var/demo/data/sources",  # archive, quarantine and work of each HL7 source
    "var/demo/data/mailboxes",  # the mails the application mailboxes took in
    "var/demo/mssante-sent",  # the demo's mails to the application mailbox
    "var/devkit/dpi-received",  # what the DPI peer received (MDM^T02 of inbound mails)
    "var/devkit/dmp-accepted",  # the documents the DMP endpoint accepted
)
#: Files of one patient (same PID/PRT segments) fully parsed, beyond which only their raw
#: segments and content slices are read (a campaign drops thousands of the same patient).
FULL_PARSES_PER_PATIENT = 20


@dataclass
class Collected:
    data: PatientData
    files: int = 0  # files read
    messages: int = 0  # HL7 messages among them
    documents: int = 0  # CDA documents (files, mail attachments)
    mails: int = 0


def _mail_parts(raw: bytes) -> Iterator[bytes]:
    """The attachments of a mail, zip members (an XDM) unpacked."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for part in message.walk():
        if part.is_multipart():
            continue
        try:
            payload = part.get_payload(decode=True) or b""
        except Exception:
            continue
        yield from _unpacked(payload)


def _unpacked(payload: bytes) -> Iterator[bytes]:
    if payload[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                for info in archive.infolist()[:200]:
                    if not info.is_dir() and info.file_size < 50_000_000:
                        yield archive.read(info)
        except (zipfile.BadZipFile, OSError, ValueError):
            return
    else:
        yield payload


def _is_hl7(raw: bytes) -> bool:
    return b"MSH|" in raw[:4096] or b"FHS|" in raw[:16] or b"BHS|" in raw[:16]


def _is_cda(raw: bytes) -> bool:
    return b"ClinicalDocument" in raw[:4096]


def collect_from_stack(root: Path) -> Collected:
    """The patient data of everything the stack at ``root`` received (:data:`INPUT_DIRS`) and of
    the project's canonical samples."""
    from pfi_devkit import samples

    found = Collected(PatientData())
    parses: Counter[str] = Counter()

    def message(raw: bytes) -> None:
        found.messages += 1
        key = "\n".join("|".join(seg) for seg in _segments(raw[:65536]) if seg[0] in ("PID", "PRT"))
        parses[key] += 1
        collect_patient_data(raw, found.data, parse=parses[key] <= FULL_PARSES_PER_PATIENT)

    def document(raw: bytes) -> None:
        if collect_cda(raw, found.data):
            found.documents += 1

    for sample in samples.build_samples().values():
        message(sample.data)
    for folder in INPUT_DIRS:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if not path.is_file() or path.name == "request.bin":  # its documents are beside it
                continue
            try:
                raw = path.read_bytes()
            except OSError:
                continue
            found.files += 1
            if raw[:2] == b"\x1f\x8b":
                try:
                    raw = gzip.decompress(raw)
                except (OSError, EOFError):
                    continue
            if _is_hl7(raw):
                message(raw)
            elif _is_cda(raw):
                document(raw)
            elif path.suffix == ".eml" or "mailboxes" in path.parts or "mssante-sent" in folder:
                found.mails += 1
                for part in _mail_parts(raw):
                    if _is_hl7(part):
                        message(part)
                    elif _is_cda(part):
                        document(part)
    return found


# --- what operators see -------------------------------------------------------------------------

#: Folders (under the clone's root) of log files: every file in them is scanned.
LOG_DIRS = ("var/log", "var/airflow/logs")


@dataclass
class Hit:
    source: str  # file:line, or database/table.column row
    kind: str  # what the datum is ("INS", "PID-5 name"…), never the datum


@dataclass
class Scan:
    hits: list[Hit] = field(default_factory=list)
    files: int = 0
    lines: int = 0
    rows: Counter[str] = field(default_factory=Counter)  # table.column → rows scanned
    skipped: list[str] = field(default_factory=list)  # what could not be scanned, and why

    def check(self, data: PatientData, source: str, text: str) -> None:
        for kind in data.kinds_in(text):
            self.hits.append(Hit(source, kind))


def _strings(value: Any) -> Iterator[str]:
    """Every key and scalar of a decoded JSON value, as text."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif value is not None:
        yield str(value)


def _decoded(text: str) -> str:
    """A JSON text's strings unescaped (``\\n``, ``\\u00e9`` would hide a name from the
    whole-token match); any other text as it is."""
    stripped = text.strip()
    if "\\" in stripped and stripped[:1] in '{["':
        try:
            return "\n".join(_strings(json.loads(stripped)))
        except ValueError:
            pass
    return text


def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        yield from handle


def scan_files(root: Path, data: PatientData, scan: Scan | None = None) -> Scan:
    """Scan every file under :data:`LOG_DIRS` of ``root``, line by line."""
    scan = scan or Scan()
    for folder in LOG_DIRS:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if not path.is_file():
                continue
            shown = path.relative_to(root).as_posix()
            try:
                for number, line in enumerate(_lines(path), 1):
                    scan.lines += 1
                    scan.check(data, f"{shown}:{number}", _decoded(line))
            except OSError as exc:
                scan.skipped.append(f"{shown}: {type(exc).__name__}")
                continue
            scan.files += 1
    return scan


def _sqlalchemy_url(value: str) -> str:
    """A database URL or an Airflow Connection (URI or JSON) as a psycopg2 SQLAlchemy URL."""
    from pfi.base.connections import Connection, postgres_url

    if value.startswith("postgresql+"):  # already SQLAlchemy's
        return value
    conn = (
        Connection.from_json("pfi_ledger", value)
        if value.lstrip().startswith("{")
        else Connection.from_uri("pfi_ledger", value)
    )
    return postgres_url(conn)


#: Airflow metadata: what the UI and the API show of each task (table, row label SQL, column).
AIRFLOW_QUERIES = (
    (
        "xcom.value",
        "SELECT dag_id || '/' || run_id || '/' || task_id || '[' || map_index || ']/' || key,"
        " value::text FROM xcom",
    ),
    (
        "rendered_task_instance_fields.rendered_fields",
        "SELECT dag_id || '/' || run_id || '/' || task_id || '[' || map_index || ']',"
        " rendered_fields::text FROM rendered_task_instance_fields",
    ),
    ("dag_run.conf", "SELECT dag_id || '/' || run_id, conf::text FROM dag_run"),
    (
        "task_instance.rendered_map_index",
        "SELECT dag_id || '/' || run_id || '/' || task_id || '[' || map_index || ']',"
        " rendered_map_index FROM task_instance WHERE rendered_map_index IS NOT NULL",
    ),
    ("log.extra", "SELECT id::text, extra FROM log WHERE extra IS NOT NULL"),
)
#: The ledger: what the console, the CLI and the alerts show (identity columns excepted).
LEDGER_QUERIES = (
    (
        "inbound_item.reason_text",
        "SELECT id::text, reason_text FROM inbound_item WHERE reason_text IS NOT NULL",
    ),
    (
        "inbound_item.original_ref",
        "SELECT id::text, original_ref FROM inbound_item WHERE original_ref IS NOT NULL",
    ),
    (
        "delivery.reason_text",
        "SELECT id::text, reason_text FROM delivery WHERE reason_text IS NOT NULL",
    ),
    (
        "delivery.partner_ref",
        "SELECT id::text, concat_ws(' ', partner_ref, claimed_by) FROM delivery",
    ),
    ("event.detail", "SELECT id::text || ' ' || kind, detail::text FROM event"),
)


def scan_database(
    name: str, url: str, queries: Sequence[tuple[str, str]], data: PatientData, scan: Scan
) -> None:
    """Run ``queries`` in read-only transactions and check each value; a query that fails (a
    table of another Airflow version) is noted in ``scan.skipped``."""
    from sqlalchemy import create_engine, text

    engine = create_engine(
        url, connect_args={"options": "-c default_transaction_read_only=on", "connect_timeout": 5}
    )
    try:
        for column, sql in queries:
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    scan.rows[f"{name} {column}"] += 0
                    result = conn.execution_options(stream_results=True).execute(text(sql))
                    for label, value in result:
                        scan.rows[f"{name} {column}"] += 1
                        if value:
                            scan.check(data, f"{name} {column} {label}", _decoded(str(value)))
            except Exception as exc:  # noqa: BLE001 — reported, the others still run
                scan.skipped.append(f"{name} {column}: {type(exc).__name__}")
    finally:
        engine.dispose()


def scan_databases(root: Path, data: PatientData, scan: Scan) -> bool:
    """Airflow's metadata database and the ledger of the clone at ``root``, read from its env
    file; False (nothing scanned) when there is none."""
    env_file = root / "var" / "airflow" / "airflow.env"
    if not env_file.is_file():
        return False
    env = read_env_file(env_file)
    for name, key, queries in (
        ("airflow", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", AIRFLOW_QUERIES),
        ("ledger", "AIRFLOW_CONN_PFI_LEDGER", LEDGER_QUERIES),
    ):
        if not env.get(key):
            scan.skipped.append(f"{name}: no {key} in {env_file}")
            continue
        scan_database(name, _sqlalchemy_url(env[key]), queries, data, scan)
    return True


# --- the command ------------------------------------------------------------------------------


def report(
    collected: Collected, scan: Scan, *, databases: bool, out=None, max_hits: int = 200
) -> int:
    """Print the summary (never a datum); 1 when anything was found."""
    out = out or sys.stdout
    data = collected.data
    print(
        f"patient data searched: {len(data.tokens)} distinct tokens and "
        f"{len(data.slices)} content slices, from {collected.messages} HL7 messages, "
        f"{collected.documents} CDA documents and {collected.mails} mails "
        f"({collected.files} files kept by the stack, plus the project's samples)",
        file=out,
    )
    kinds = sorted(
        set(data.tokens.values()) | {f"{w} (content slice)" for w in data.slices.values()}
    )
    print(f"kinds searched: {', '.join(kinds)}", file=out)
    print(f"scanned: {scan.files} log files ({scan.lines} lines)", file=out)
    if databases:
        for column, count in sorted(scan.rows.items()):
            print(f"scanned: {count} rows of {column}", file=out)
    else:
        print("databases not scanned: no var/airflow/airflow.env", file=out)
    for skipped in scan.skipped:
        print(f"not scanned: {skipped}", file=out)
    if not scan.hits:
        print("no patient datum found", file=out)
        return 0
    distinct = list(dict.fromkeys((hit.source, hit.kind) for hit in scan.hits))
    print(f"{len(distinct)} hits (source : kind of datum):", file=out)
    for source, kind in distinct[:max_hits]:
        print(f"  {source} : {kind}", file=out)
    if len(distinct) > max_hits:
        print(f"  … and {len(distinct) - max_hits} more", file=out)
    by_kind = Counter(kind for _, kind in distinct)
    print("by kind: " + ", ".join(f"{k} {n}" for k, n in by_kind.most_common()), file=out)
    return 1


def audit(root: Path, *, databases: bool = True, out=None, max_hits: int = 200) -> int:
    root = root.resolve()
    collected = collect_from_stack(root)
    scan = scan_files(root, collected.data)
    scanned_db = databases and scan_databases(root, collected.data, scan)
    return report(collected, scan, databases=scanned_db, out=out, max_hits=max_hits)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pfi_devkit audit",
        description="no patient datum in the logs, XComs and ledger texts of a clone's stack",
    )
    parser.add_argument("--root", default=".", help="the clone's root (default: here)")
    parser.add_argument("--no-db", action="store_true", help="the log files only")
    parser.add_argument("--max-hits", type=int, default=200, help="hits printed (default 200)")
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    args = build_parser().parse_args(None if argv is None else list(argv))
    root = Path(args.root)
    if not (root / "var").is_dir():
        print(f"{root}: no var/ (has make run been run there?)", file=sys.stderr)
        return 2
    return audit(root, databases=not args.no_db, max_hits=args.max_hits)


if __name__ == "__main__":
    sys.exit(main())
