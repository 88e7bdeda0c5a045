"""The request of a historical DMP backfill, checked, and its plan in deterministic lots
(:func:`plan`); the reason codes of what is not sent (:data:`REASONS`)."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pfi.base.errors import ConfigurationError, InvalidInput
from pfi.flows.dmp import INS_NOT_QUALIFIED

if TYPE_CHECKING:
    from pfi.base.settings import Settings
    from pfi.ledger import Ledger

log = logging.getLogger(__name__)

SOURCE_KINDS = ("hl7", "cda", "ledger")
#: How far back a historical document may go (DSR HOP-PFI: "historique" up to 5 years).
HISTORY_YEARS = 5
#: The ``source`` of what a backfill records in the ledger (inbound items).
SOURCE_NAME = "backfill"
DEFAULT_BATCH_SIZE = 250
#: Airflow maps at most 1024 tasks (``max_map_length``): a larger plan gets larger batches.
MAX_BATCHES = 1000
MAX_BATCH_SIZE = 5000
HL7_PATTERNS = ("*.hl7", "*.er7", "*.txt", "*.HL7", "*.ER7", "*.TXT")
CDA_PATTERNS = ("*.xml", "*.XML")
PARIS = ZoneInfo("Europe/Paris")

# Reasons a document is not sent (besides intake's and the CDA reader's own refusal codes).
NOT_FOR_DMP = "BACKFILL_NOT_FOR_DMP"
DELETION = "BACKFILL_DELETION"
OTHER_FINESS = "BACKFILL_OTHER_FINESS"
OTHER_TYPE = "BACKFILL_OTHER_TYPE"
NO_DATE = "BACKFILL_NO_DATE"
TOO_OLD = "BACKFILL_TOO_OLD"
OUT_OF_RANGE = "BACKFILL_OUT_OF_RANGE"
ALREADY_SENT = "BACKFILL_ALREADY_SENT"
ALREADY_QUEUED = "BACKFILL_ALREADY_QUEUED"
REFUSED_BEFORE = "BACKFILL_REFUSED_BEFORE"
DOC_ID_REUSED = "DOC_ID_REUSED"
#: Every reason code of this module, with the French label a dry run prints.
REASONS = {
    NOT_FOR_DMP: "le producteur n'a pas demandé le DMP (DESTDMP=N)",
    DELETION: "demande de suppression : pas une publication",
    OTHER_FINESS: "autre FINESS géographique",
    OTHER_TYPE: "type de document non demandé",
    NO_DATE: "document sans date (effectiveTime)",
    TOO_OLD: f"document de plus de {HISTORY_YEARS} ans",
    OUT_OF_RANGE: "hors de la période demandée",
    INS_NOT_QUALIFIED: "INS non qualifiée",
    ALREADY_SENT: "déjà envoyé au DMP",
    ALREADY_QUEUED: "déjà dans la file d'envoi du flux",
    REFUSED_BEFORE: "déjà refusé ou abandonné par le DMP (à voir par l'exploitant)",
    DOC_ID_REUSED: "identifiant de document déjà reçu avec un autre contenu",
}

# Refusal codes of the request (what the DAG's plan task fails with).
BAD_REQUEST = "BACKFILL_BAD_REQUEST"
START_TOO_OLD = "BACKFILL_START_TOO_OLD"
FOLDER_CHANGED = "BACKFILL_FOLDER_CHANGED"


def history_limit(reference: date) -> date:
    """The oldest day a backfill run on ``reference`` (its logical date) may reach: the same
    day :data:`HISTORY_YEARS` years before (28 February for a 29 February)."""
    try:
        return reference.replace(year=reference.year - HISTORY_YEARS)
    except ValueError:
        return reference.replace(year=reference.year - HISTORY_YEARS, day=28)


def _day(value: Any, name: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(
            f"{name} : date attendue au format AAAA-MM-JJ", code=BAD_REQUEST
        ) from None


@dataclass(frozen=True)
class BackfillRequest:
    """A backfill as asked (the DAG's form, the command's options), checked.

    ``start``/``end`` are inclusive days (Paris time) of the documents' ``effectiveTime``;
    ``type_codes`` empty means every type; ``max_rate`` 0 means no limit (documents/s).
    ``include_not_requested``: also send the documents whose producer did not ask for the DMP
    (DESTDMP=N) — for a site that fed only MSSanté before its DMP go-live, never to override a
    patient's opposition; off, they are skipped ``BACKFILL_NOT_FOR_DMP``.
    """

    source_kind: str
    finess_geo: str
    start: date
    end: date
    folder: str | None = None
    type_codes: tuple[str, ...] = ()
    dry_run: bool = False
    max_rate: float = 0.0
    batch_size: int = DEFAULT_BATCH_SIZE
    include_not_requested: bool = False

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, reference: date, settings: Settings | None = None
    ) -> BackfillRequest:
        """From the form's values (``source_kind``, ``folder``, ``finess_geo``, ``start_date``,
        ``end_date``, ``document_types``, ``dry_run``, ``max_rate``, ``batch_size``,
        ``include_not_requested``); refused
        (:class:`~pfi.base.errors.InvalidInput`, French text: the operator reads it) when a
        value is wrong or the start is more than :data:`HISTORY_YEARS` years before
        ``reference`` (the run's logical date)."""
        kind = str(params.get("source_kind") or "").strip()
        if kind not in SOURCE_KINDS:
            raise InvalidInput(
                f"source_kind : une valeur parmi {', '.join(SOURCE_KINDS)}", code=BAD_REQUEST
            )
        folder = str(params.get("folder") or "").strip() or None
        if kind != "ledger" and not folder:
            raise InvalidInput(
                "folder : le dossier des documents est obligatoire pour une source hl7 ou cda",
                code=BAD_REQUEST,
            )
        finess = str(params.get("finess_geo") or "").strip()
        if settings is not None:
            try:
                settings.site.geo(finess)
            except ConfigurationError:
                raise InvalidInput(
                    f"finess_geo : {finess or '(vide)'} n'est pas un FINESS géographique "
                    "déclaré dans les paramètres du site ([[site.finess_geo]])",
                    code=BAD_REQUEST,
                ) from None
        elif not finess:
            raise InvalidInput("finess_geo : obligatoire", code=BAD_REQUEST)
        start = _day(params.get("start_date"), "start_date")
        end = _day(params.get("end_date") or reference, "end_date")
        limit = history_limit(reference)
        if start < limit:
            raise InvalidInput(
                f"start_date : {start.isoformat()} est à plus de {HISTORY_YEARS} ans de la date "
                f"logique du run ({reference.isoformat()}) ; la reprise d'historique DMP est "
                f"limitée aux documents du {limit.isoformat()} ou plus récents",
                code=START_TOO_OLD,
            )
        if end < start or end > reference:
            raise InvalidInput(
                "end_date : doit être entre start_date et la date logique du run "
                f"({reference.isoformat()})",
                code=BAD_REQUEST,
            )
        types = params.get("document_types") or ()
        if isinstance(types, str):
            types = types.replace(";", ",").split(",")
        type_codes = tuple(sorted({str(t).strip() for t in types if str(t).strip()}))
        try:
            rate = float(params.get("max_rate") or 0)
            size = int(params.get("batch_size") or DEFAULT_BATCH_SIZE)
        except (TypeError, ValueError):
            raise InvalidInput(
                "max_rate, batch_size : nombres attendus", code=BAD_REQUEST
            ) from None
        if rate < 0 or not 1 <= size <= MAX_BATCH_SIZE:
            raise InvalidInput(
                f"max_rate ≥ 0 et batch_size entre 1 et {MAX_BATCH_SIZE}", code=BAD_REQUEST
            )
        return cls(
            kind,
            finess,
            start,
            end,
            folder,
            type_codes,
            bool(params.get("dry_run", False)),
            rate,
            size,
            bool(params.get("include_not_requested", False)),
        )

    def to_params(self) -> dict[str, Any]:
        """The form's values again (JSON: XCom, a batch's argument)."""
        return {
            "source_kind": self.source_kind,
            "folder": self.folder,
            "finess_geo": self.finess_geo,
            "start_date": self.start.isoformat(),
            "end_date": self.end.isoformat(),
            "document_types": list(self.type_codes),
            "dry_run": self.dry_run,
            "max_rate": self.max_rate,
            "batch_size": self.batch_size,
            "include_not_requested": self.include_not_requested,
        }


@dataclass(frozen=True)
class Batch:
    """One lot of a plan (XCom-safe): its place, what it holds, how to find it again."""

    index: int  # 1-based
    of: int
    offset: int  # position of its first entry in the plan
    count: int
    total: int
    unit: str  # "fichiers" (hl7) or "documents"
    fingerprint: str = ""  # folder sources: the listing's
    document_ids: tuple[int, ...] = ()  # ledger source
    request: Mapping[str, Any] = field(default_factory=dict)
    reference: str = ""  # the run's logical date (ISO day): the 5-year limit

    @property
    def label(self) -> str:
        """What the UI names the mapped task: ``lot 3/40 · 250 documents``."""
        return f"lot {self.index}/{self.of} · {self.count} {self.unit}"

    def to_xcom(self) -> dict[str, Any]:
        data = asdict(self)
        data["document_ids"] = list(self.document_ids)
        data["request"] = dict(self.request)
        data["label"] = self.label
        return data

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> Batch:
        fields_ = {k: v for k, v in data.items() if k != "label"}
        fields_["document_ids"] = tuple(fields_.get("document_ids") or ())
        return cls(**fields_)


# --- listing ------------------------------------------------------------------------------------


def list_folder(folder: Path, patterns: Sequence[str]) -> list[Path]:
    if not folder.is_dir():
        raise InvalidInput("folder : dossier introuvable ou illisible", code=BAD_REQUEST)
    found = {p for pattern in patterns for p in folder.rglob(pattern) if p.is_file()}
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def folder_fingerprint(folder: Path, files: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def plan(ledger: Ledger, request: BackfillRequest, *, reference: date) -> list[dict[str, Any]]:
    """The batches of ``request`` (as XCom dicts, :meth:`Batch.to_xcom`), in order; the same
    source gives the same plan. Empty when there is nothing to look at."""
    document_ids: list[int] = []
    fingerprint = ""
    if request.source_kind == "ledger":
        document_ids = ledger.documents_never_published(request.finess_geo)
        total = len(document_ids)
    else:
        folder = Path(request.folder or "")
        files = list_folder(folder, HL7_PATTERNS if request.source_kind == "hl7" else CDA_PATTERNS)
        fingerprint = folder_fingerprint(folder, files)
        total = len(files)
    size = max(request.batch_size, math.ceil(total / MAX_BATCHES)) if total else 1
    count = math.ceil(total / size)
    unit = "fichiers" if request.source_kind == "hl7" else "documents"
    batches = []
    for index, offset in enumerate(range(0, total, size), start=1):
        batches.append(
            Batch(
                index=index,
                of=count,
                offset=offset,
                count=min(size, total - offset),
                total=total,
                unit=unit,
                fingerprint=fingerprint,
                document_ids=tuple(document_ids[offset : offset + size]),
                request=request.to_params(),
                reference=reference.isoformat(),
            ).to_xcom()
        )
    log.info(
        "reprise DMP %s : %s %s à examiner, %s lot(s) de %s au plus%s",
        request.source_kind,
        total,
        unit,
        count,
        size,
        " (essai à blanc : rien ne sera envoyé)" if request.dry_run else "",
    )
    return batches
