"""Historical DMP backfill: send a site's past documents (up to 5 years old) to the DMP, once.

A hospital does it once per software migration and per FINESS géographique, over up to millions
of documents (DSR: "historical" documents may feed the DMP up to 5 years back, only with a
**qualified INS**; SC.STAT/ES.02 counts them apart). The ``backfill_dmp_history`` DAG (form in
the Airflow UI) and ``pfi dmp backfill`` call the two steps here:

1. :func:`plan` — checks what was asked (:class:`BackfillRequest`: source, FINESS géographique,
   date range no more than :data:`HISTORY_YEARS` years before the run's logical date, document
   types, dry run, maximum rate) and splits the source into a deterministic list of
   :class:`Batch` (XCom-safe: counts, offsets, ledger ids — never a file name or patient data).
   Sources (:data:`SOURCE_KINDS`):

   - ``hl7``: a folder of HL7 v2 files (MDM/ORU, as producers send them), each message read by
     intake's own evaluation (:func:`pfi.flows.intake.evaluate`: parsing, INS checks, PID ↔ CDA
     traits, routing rules);
   - ``cda``: a folder of CDA R2 files (``*.xml``), read by the CDA reader; the INS of the
     header counts as qualified when it is a valid INS of this site with its traits (the CI-SIS
     puts the INS in a CDA only for a qualified identity);
   - ``ledger``: documents the ledger holds, produced here, that no DMP delivery ever sent.

   Folders are listed recursively in path order; a batch holds a slice of that listing and the
   listing's fingerprint (a folder changed since the plan is refused: plan again).
2. :func:`run_batch` — classifies each document of one batch (sent, or skipped with a reason:
   :data:`REASONS`), records what is to be sent exactly as intake records it
   (:meth:`~pfi.ledger.Ledger.record_message`, deliveries marked ``historical``) and sends them
   through the live flow's DMP sender over the claim queue (:class:`pfi.flows.dmp.DmpSender`,
   :func:`pfi.flows.queue.run_due` limited to the batch's deliveries), at most ``max_rate``
   documents per second. A transient failure leaves a delivery in the deferred queue, which
   ``deliver_dmp`` retries after its live deliveries (claims take historical ones last).

**Stop and resume.** Every step is an insert-or-get keyed on the document's unique id: a
document already sent (by the flow or an earlier backfill) is skipped ``ALREADY_SENT``, one
whose historical delivery is still pending is sent by the next run of its batch, and the claim
queue never hands a delivery to two workers. Stopping a run (or killing a worker) and starting
the same backfill again sends nothing twice; the DMP also recognises a resent lot (submission
set uniqueId fixed per delivery).

Logs: one progress line per batch (done / total, rate, time left), counts and reason codes only
— never a file name, an INS or a name.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pfi.base.errors import ConfigurationError, InvalidInput
from pfi.flows.dmp import CHANNEL, INS_NOT_QUALIFIED, DmpSender
from pfi.flows.intake.evaluate import IntakeOptions, cda_identity, evaluate
from pfi.flows.queue import Outcome, run_due
from pfi.protocols.hl7v2 import Action, split_file
from pfi.protocols.hl7v2.rules import RULE_DMP_INS
from pfi.protocols.ins import InsPolicy

if TYPE_CHECKING:
    from pfi.base.settings import Hl7Source, Settings
    from pfi.ledger import Delivery, Ledger
    from pfi.ledger.backfill import DmpState
    from pfi.protocols.dmp.client import DmpClient
    from pfi.protocols.dmp.config import DmpConfig
    from pfi.protocols.dmp.signing import Signer

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


def _listing(folder: Path, patterns: Sequence[str]) -> list[Path]:
    if not folder.is_dir():
        raise InvalidInput("folder : dossier introuvable ou illisible", code=BAD_REQUEST)
    found = {p for pattern in patterns for p in folder.rglob(pattern) if p.is_file()}
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _fingerprint(folder: Path, files: Sequence[Path]) -> str:
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
        files = _listing(folder, HL7_PATTERNS if request.source_kind == "hl7" else CDA_PATTERNS)
        fingerprint = _fingerprint(folder, files)
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


# --- classifying ----------------------------------------------------------------------------------


@dataclass
class _Candidate:
    """A document of the batch that passed every filter (to record, then send)."""

    unique_id: str
    type_code: str | None
    action: str
    record: Callable[[], None] | None = None  # writes it into the ledger (folder sources)
    document_id: int | None = None  # ledger source


@dataclass(frozen=True)
class Seen:
    """What a backfill decided about one document, for ``pfi dmp backfill --show-identity``
    only (holds the INS: never logged, never in XCom)."""

    unique_id: str
    type_code: str | None
    effective_time: datetime | None
    ins: str | None = field(repr=False)
    decision: str  # "send" or "skip"
    reason: str


@dataclass
class _Tally:
    documents: int = 0
    skipped: Counter = field(default_factory=Counter)
    by_type: Counter = field(default_factory=Counter)  # to send, per document type
    candidates: list[_Candidate] = field(default_factory=list)
    listed: list[Seen] = field(default_factory=list)

    def skip(
        self,
        reason: str | None,
        unique_id: str = "",
        type_code: str | None = None,
        *,
        when: datetime | None = None,
        ins: str | None = None,
    ) -> None:
        self.documents += 1
        self.skipped[reason or "UNKNOWN"] += 1
        self.listed.append(Seen(unique_id, type_code, when, ins, "skip", reason or "UNKNOWN"))

    def take(
        self, candidate: _Candidate, *, when: datetime | None = None, ins: str | None = None
    ) -> None:
        self.documents += 1
        self.by_type[candidate.type_code or "?"] += 1
        self.candidates.append(candidate)
        self.listed.append(Seen(candidate.unique_id, candidate.type_code, when, ins, "send", ""))


class _Filters:
    """The request's filters, in the order their reasons are given."""

    def __init__(self, request: BackfillRequest, reference: date) -> None:
        self.request = request
        self.limit = history_limit(reference)

    def reason(
        self, type_code: str | None, effective: datetime | None, qualified: bool
    ) -> str | None:
        types = self.request.type_codes
        if types and (type_code or "") not in types:
            return OTHER_TYPE
        if effective is None:
            return NO_DATE
        day = (effective.astimezone(PARIS) if effective.tzinfo else effective).date()
        if day < self.limit:
            return TOO_OLD
        if not self.request.start <= day <= self.request.end:
            return OUT_OF_RANGE
        if not qualified:
            return INS_NOT_QUALIFIED
        return None


def _ledger_reason(state: DmpState | None, content_sha256: str | None) -> tuple[str | None, bool]:
    """(reason to skip, whether a historical delivery of this document is already queued)."""
    if state is None:
        return None, False
    if content_sha256 and state.content_sha256 and state.content_sha256 != content_sha256:
        return DOC_ID_REUSED, False
    if state.sent:
        return ALREADY_SENT, False
    queued = [p for p in state.publications if p.status in ("pending", "held")]
    if queued:
        if all(p.historical for p in queued):
            return None, True  # this backfill's, from a run stopped before sending: resume
        return ALREADY_QUEUED, False
    if state.publications:
        return REFUSED_BEFORE, False
    return None, False


def _folder_slice(batch: Batch, patterns: Sequence[str]) -> tuple[Path, list[Path]]:
    folder = Path(batch.request.get("folder") or "")
    files = _listing(folder, patterns)
    if _fingerprint(folder, files) != batch.fingerprint:
        raise InvalidInput(
            "le dossier a changé depuis le plan de la reprise : relancer la reprise (les "
            "documents déjà envoyés ne le seront pas deux fois)",
            code=FOLDER_CHANGED,
        )
    return folder, files[batch.offset : batch.offset + batch.count]


def _backfill_source(settings: Settings, request: BackfillRequest, folder: Path) -> Hl7Source:
    """The pseudo HL7 source a historical folder is read as (intake's evaluation needs one)."""
    from pfi.base.settings import Hl7Source

    return Hl7Source(
        name=SOURCE_NAME,
        kind="OTHER",
        finess_geo=request.finess_geo,
        drop_dir=folder,
        outbound_dir=folder,
        archive_dir=folder,
        quarantine_dir=folder,
        work_dir=folder,
    )


def _classify_hl7(
    ledger: Ledger,
    settings: Settings,
    request: BackfillRequest,
    filters: _Filters,
    batch: Batch,
    tally: _Tally,
    actor: str,
) -> None:
    folder, files = _folder_slice(batch, HL7_PATTERNS)
    source = _backfill_source(settings, request, folder)
    policy = InsPolicy.for_site(settings.site)
    options = IntakeOptions.from_settings(settings)
    for path in files:
        raw = path.read_bytes()[: options.max_file_bytes + 1]
        evaluations = [
            evaluate(
                index,
                chunk,
                source=source,
                policy=policy,
                options=options,
                structure_oid=settings.site.structure_oid,
            )
            for index, chunk in enumerate(split_file(raw), 1)
        ]
        chosen = []  # (evaluation, planned document)
        for evaluation in evaluations:
            request_ = evaluation.request
            if not evaluation.answer.accepted or request_ is None:
                code = evaluation.answer.reason_code
                tally.skip(INS_NOT_QUALIFIED if code == RULE_DMP_INS else code)
                continue
            sender = request_.sender
            for planned in evaluation.documents:
                if request_.action is Action.DELETE:
                    reason: str | None = DELETION
                elif (CHANNEL, None) not in evaluation.channels and not (
                    request.include_not_requested
                ):
                    reason = NOT_FOR_DMP
                elif (
                    sender is not None
                    and sender.organization_id_type == "FINEG"
                    and sender.organization_id
                    and sender.organization_id != request.finess_geo
                ):
                    reason = OTHER_FINESS
                else:
                    reason = filters.reason(
                        planned.type_code, planned.effective_time, evaluation.ins_qualified
                    )
                if reason:
                    tally.skip(
                        reason,
                        planned.unique_id,
                        planned.type_code,
                        when=planned.effective_time,
                        ins=evaluation.ins_matricule,
                    )
                else:
                    chosen.append((evaluation, planned))
        states = ledger.dmp_states([p.unique_id for _, p in chosen])
        file_item: list[int] = []  # recorded once per file, on its first document to send

        for evaluation, planned in chosen:
            reason, _ = _ledger_reason(states.get(planned.unique_id), planned.content_sha256)
            seen = {"when": planned.effective_time, "ins": evaluation.ins_matricule}
            if reason:
                tally.skip(reason, planned.unique_id, planned.type_code, **seen)
                continue

            def record(evaluation=evaluation, path=path, raw=raw, file_item=file_item) -> None:
                if not file_item:
                    item_id, _ = ledger.record_inbound(
                        kind="hl7_file",
                        source=SOURCE_NAME,
                        finess_geo=request.finess_geo,
                        original_ref=path.relative_to(folder).as_posix(),
                        checksum=hashlib.sha256(raw).hexdigest(),
                        size=len(raw),
                        storage_path=str(path.resolve()),
                        status="done",
                        actor=actor,
                    )
                    file_item.append(item_id)
                _record_evaluation(ledger, request, evaluation, path, file_item[0], actor)

            action = evaluation.request.action.value if evaluation.request else "new"
            tally.take(_Candidate(planned.unique_id, planned.type_code, action, record), **seen)


def _record_evaluation(
    ledger: Ledger, request: BackfillRequest, evaluation: Any, path: Path, file_id: int, actor: str
) -> None:
    """One message of a historical file, as intake records it; its DMP delivery historical."""
    action = evaluation.request.action
    header = evaluation.header
    outcome = ledger.record_message(
        source=SOURCE_NAME,
        finess_geo=request.finess_geo,
        original_ref=str(evaluation.index),
        checksum=evaluation.checksum,
        size=len(evaluation.chunk),
        control_id=header.control_id[:200] or None,
        message_type=header.message_type[:40] or None,
        parent_id=file_id,
        storage_path=str(path.resolve()),
        status="done",
        documents=[
            {
                "unique_id": p.unique_id,
                "set_id": p.set_id,
                "version": p.version,
                "type_code": (p.type_code or "")[:20] or None,
                "type_display": p.type_display,
                "finess_geo": request.finess_geo,
                "effective_time": p.effective_time,
                "ins_matricule": evaluation.ins_matricule,
                "ins_oid": evaluation.ins_oid,
                "ins_qualified": evaluation.ins_qualified,
                "content_sha256": p.content_sha256,
                "replaces_unique_id": p.replaces_unique_id if action is Action.REPLACE else None,
            }
            for p in evaluation.documents
        ],
        deliveries=[(CHANNEL, None, "pending")],
        action=action.value,
        historical=True,
        actor=actor,
    )
    if outcome.content_conflict:
        log.warning("message of ledger item %s: %s", outcome.item.id, DOC_ID_REUSED)


def _classify_cda(
    ledger: Ledger,
    settings: Settings,
    request: BackfillRequest,
    filters: _Filters,
    batch: Batch,
    tally: _Tally,
    actor: str,
) -> None:
    from pfi.protocols.cda import read_cda

    folder, files = _folder_slice(batch, CDA_PATTERNS)
    policy = InsPolicy.for_site(settings.site)
    chosen = []
    for path in files:
        raw = path.read_bytes()
        try:
            header = read_cda(raw)
        except InvalidInput as exc:
            tally.skip(exc.code)
            continue
        except Exception:  # a shape the reader did not foresee: skipped, never a crash
            tally.skip("CDA_UNREADABLE")
            continue
        unique_id = str(header.id)
        type_code = header.code.code if header.code else None
        identity = cda_identity(header)
        qualified = identity is not None and not (
            policy.check_ins(identity) or policy.check_traits(identity)
        )
        reason = filters.reason(type_code, header.effective_time, qualified)
        if reason:
            ins = identity.matricule if identity else None
            tally.skip(reason, unique_id, type_code, when=header.effective_time, ins=ins)
            continue
        chosen.append((path, raw, header, identity, unique_id, type_code))
    states = ledger.dmp_states([c[4] for c in chosen])
    for path, raw, header, identity, unique_id, type_code in chosen:
        sha = hashlib.sha256(raw).hexdigest()
        reason, _ = _ledger_reason(states.get(unique_id), sha)
        seen = {"when": header.effective_time, "ins": identity.matricule if identity else None}
        if reason:
            tally.skip(reason, unique_id, type_code, **seen)
            continue
        action = "replace" if header.replaced_id is not None else "new"

        def record(path=path, raw=raw, header=header, identity=identity, sha=sha) -> None:
            outcome = ledger.record_message(
                source=SOURCE_NAME,
                kind="cda_file",
                finess_geo=request.finess_geo,
                original_ref=path.relative_to(folder).as_posix(),
                checksum=sha,
                size=len(raw),
                message_type="CDA",
                storage_path=str(path.resolve()),
                status="done",
                documents=[
                    {
                        "unique_id": str(header.id),
                        "set_id": str(header.set_id) if header.set_id else None,
                        "version": header.version_number,
                        "type_code": ((header.code.code if header.code else "") or "")[:20] or None,
                        "type_display": header.code.display_name if header.code else None,
                        "finess_geo": request.finess_geo,
                        "effective_time": header.effective_time,
                        "ins_matricule": identity.matricule if identity else None,
                        "ins_oid": identity.oid if identity else None,
                        "ins_qualified": True,
                        "content_sha256": sha,
                        "replaces_unique_id": (
                            str(header.replaced_id) if header.replaced_id else None
                        ),
                    }
                ],
                deliveries=[(CHANNEL, None, "pending")],
                action="replace" if header.replaced_id is not None else "new",
                historical=True,
                actor=actor,
            )
            if outcome.content_conflict:
                log.warning("CDA file of ledger item %s: %s", outcome.item.id, DOC_ID_REUSED)

        tally.take(_Candidate(unique_id, type_code, action, record), **seen)


def _classify_ledger(
    ledger: Ledger,
    settings: Settings,
    request: BackfillRequest,
    filters: _Filters,
    batch: Batch,
    tally: _Tally,
    actor: str,
) -> None:
    for document, state in ledger.documents_with_dmp_state(batch.document_ids):
        if document.finess_geo != request.finess_geo:
            reason: str | None = OTHER_FINESS
        else:
            reason = filters.reason(
                document.type_code, document.effective_time, document.ins_qualified
            )
        if reason is None:
            reason, _ = _ledger_reason(state, None)
        if reason is None and not state.publications and not request.include_not_requested:
            # intake records a DMP delivery whenever the producer asks (DESTDMP=Y): none means
            # it said N, which only the operator may overrule (include_not_requested)
            reason = NOT_FOR_DMP
        seen = {"when": document.effective_time, "ins": document.ins_matricule}
        if reason:
            tally.skip(reason, document.unique_id, document.type_code, **seen)
            continue
        action = "replace" if document.replaces_unique_id else "new"
        tally.take(
            _Candidate(document.unique_id, document.type_code, action, document_id=document.id),
            **seen,
        )


_CLASSIFIERS = {"hl7": _classify_hl7, "cda": _classify_cda, "ledger": _classify_ledger}


# --- sending --------------------------------------------------------------------------------------


class _Throttle:
    """``send_one`` at most ``rate`` times per second (0: no limit)."""

    def __init__(self, send_one: Callable[[Delivery], Outcome], rate: float) -> None:
        self.send_one = send_one
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at = 0.0

    def __call__(self, delivery: Delivery) -> Outcome:
        if self.interval:
            wait = self.next_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.next_at = max(self.next_at, time.monotonic()) + self.interval
        return self.send_one(delivery)


def _historical_pending(ledger: Ledger, unique_ids: Sequence[str]) -> list[int]:
    """The pending historical DMP deliveries of these documents: what the batch sends."""
    ids = []
    for state in ledger.dmp_states(unique_ids).values():
        ids += [p.delivery_id for p in state.publications if p.historical and p.status == "pending"]
    return sorted(ids)


def run_batch(
    ledger: Ledger,
    settings: Settings,
    batch: Mapping[str, Any],
    *,
    client: DmpClient | None = None,
    signer: Signer | None = None,
    config: DmpConfig | None = None,
    actor: str = "cli",
    show: Callable[[Seen], None] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Classify, record and send one batch of :func:`plan`; counts only (XCom-safe).

    A dry run records and sends nothing. ``show`` is told what was decided about each document
    (:class:`Seen`, with its INS: ``pfi dmp backfill --show-identity`` only). ``now``: the
    claim's time (tests walk past a dead worker's lease with it).
    """
    started = time.monotonic()
    lot = Batch.from_xcom(batch)
    reference = date.fromisoformat(lot.reference)
    request = BackfillRequest.from_params(lot.request, reference=reference, settings=settings)
    tally = _Tally()
    _CLASSIFIERS[request.source_kind](
        ledger, settings, request, _Filters(request, reference), lot, tally, actor
    )
    if show is not None:
        for entry in tally.listed:
            show(entry)
    counts: dict[str, Any] = {
        "batch": f"lot {lot.index}/{lot.of}",
        "entries": lot.count,
        "documents": tally.documents,
        "to_send": len(tally.candidates),
        "by_type": dict(sorted(tally.by_type.items())),
        "skipped": dict(sorted(tally.skipped.items())),
        "sent": 0,
        "deferred": 0,
        "refused": 0,
        "failed": 0,
        "dry_run": request.dry_run,
    }
    if not request.dry_run and tally.candidates:
        if client is None or signer is None or config is None:
            raise ConfigurationError("a backfill that sends needs the DMP client and signer")
        for candidate in tally.candidates:
            if candidate.record is not None:
                candidate.record()
            elif candidate.document_id is not None:
                ledger.add_historical_delivery(candidate.document_id, candidate.action, actor=actor)
        ids = _historical_pending(ledger, [c.unique_id for c in tally.candidates])
        if ids:
            sender = DmpSender(ledger, client, signer, config, settings=settings, actor=actor)
            sent = run_due(
                ledger,
                CHANNEL,
                _Throttle(sender, request.max_rate),
                policy=config.retry,
                actor=actor,
                limit=len(ids),
                after=sender.after,
                ids=ids,
                now=now,
            )
            for key in ("sent", "deferred", "refused", "failed"):
                counts[key] = sent[key]
    elapsed = max(time.monotonic() - started, 1e-6)
    counts["seconds"] = round(elapsed, 3)
    counts["rate_per_s"] = round(tally.documents / elapsed, 2)
    _progress(lot, counts, elapsed)
    return counts


def _progress(lot: Batch, counts: Mapping[str, Any], elapsed: float) -> None:
    """One line per batch: done / total, rate, time left (counts only)."""
    done = lot.offset + lot.count
    rate = lot.count / elapsed
    left = (lot.total - done) / rate if rate else 0.0
    skipped = sum(counts["skipped"].values())
    log.info(
        "reprise DMP %s : %s/%s %s traités (%.0f %%) · lot : %s envoyés, %s différés, %s refusés, "
        "%s écartés%s · %.1f %s/s · reste ≈ %s",
        f"lot {lot.index}/{lot.of}",
        done,
        lot.total,
        lot.unit,
        100.0 * done / lot.total if lot.total else 100.0,
        counts["sent"],
        counts["deferred"],
        counts["refused"],
        skipped,
        " (essai à blanc)" if counts["dry_run"] else "",
        rate,
        lot.unit,
        _duration(left),
    )


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def summarize(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The counts of every batch added up (the DAG's last task, the command's output)."""
    total: dict[str, Any] = {
        "batches": 0,
        "documents": 0,
        "to_send": 0,
        "sent": 0,
        "deferred": 0,
        "refused": 0,
        "failed": 0,
        "by_type": Counter(),
        "skipped": Counter(),
    }
    for result in results:
        if not result:
            continue
        total["batches"] += 1
        for key in ("documents", "to_send", "sent", "deferred", "refused", "failed"):
            total[key] += int(result.get(key, 0))
        total["by_type"].update(result.get("by_type", {}))
        total["skipped"].update(result.get("skipped", {}))
    total["by_type"] = dict(sorted(total["by_type"].items()))
    total["skipped"] = dict(sorted(total["skipped"].items()))
    log.info(
        "reprise DMP terminée : %s lot(s), %s documents, %s à envoyer, %s envoyés, %s différés, "
        "%s refusés, écartés %s",
        total["batches"],
        total["documents"],
        total["to_send"],
        total["sent"],
        total["deferred"],
        total["refused"],
        total["skipped"],
    )
    return total


__all__ = [
    "HISTORY_YEARS",
    "REASONS",
    "SOURCE_KINDS",
    "SOURCE_NAME",
    "BackfillRequest",
    "Batch",
    "Seen",
    "history_limit",
    "plan",
    "run_batch",
    "summarize",
]
