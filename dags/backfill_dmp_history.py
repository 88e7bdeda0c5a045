"""Send a site's historical documents (up to 5 years old) to the DMP — started by hand, with a form.

**Trigger** this DAG from the Airflow UI: the form asks for the source (a folder of HL7 messages,
a folder of CDA files, or the documents the PFI's ledger holds and never sent to the DMP), the
FINESS géographique, the date range (no more than 5 years before the run's logical date, else
the run is refused at once), the document types, a dry run (**on by default**: counts only,
nothing recorded or sent) and the maximum rate. Then:

1. **plan_backfill** — checks the form and splits the source into deterministic lots;
2. **send_lot** — one mapped task per lot, named in the UI by what it holds
   (``lot 3/40 · 250 documents``), one at a time in the pool **``dmp_backfill``**
   (``airflow pools set dmp_backfill 1 "…"``, created by ``make run`` and compose) at a lower
   priority than the live flows: only documents with a **qualified INS**, in the date range,
   not already sent, are recorded (``historical``) and submitted through the live DMP sender
   and its deferred queue; every other document is counted with its reason. Each lot logs one
   progress line (done / total, rate, time left);
3. **summarize_backfill** — the totals of every lot (counts per type and reason).

**Stop and resume**: mark the run failed (or let a lot fail) and trigger the same form again —
documents already sent are skipped, those recorded but not yet sent are sent, none twice. A
lot's deliveries left in the queue by a DMP outage are retried by ``deliver_dmp``, after its
live deliveries. XCom carries counts and ledger ids, never a file name or patient data.
``pfi dmp backfill --dry-run …`` prints the same plan without Airflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

from pfi_airflow.runtime import failure_alerts

POOL = "dmp_backfill"
#: Below every live task (their weights are ≥ 1): the executor's slots go to the live flow first.
PRIORITY = -10

PARAMS = {
    "source_kind": Param(
        "hl7",
        type="string",
        enum=["hl7", "cda", "ledger"],
        values_display={
            "hl7": "Dossier de messages HL7 v2 (MDM/ORU)",
            "cda": "Dossier de fichiers CDA R2 (*.xml)",
            "ledger": "Documents du registre de la PFI jamais envoyés au DMP",
        },
        title="Source des documents",
        description="D'où viennent les documents historiques à envoyer au DMP.",
    ),
    "folder": Param(
        None,
        type=["null", "string"],
        title="Dossier",
        description="Chemin absolu du dossier (lu par les workers), sous-dossiers compris ; "
        "vide pour la source « registre ». Il doit rester en place jusqu'à la fin de la reprise.",
    ),
    "finess_geo": Param(
        type="string",
        pattern=r"^(\d{2}|2A|2B)\d{7}$",
        title="FINESS géographique",
        description="Le site dont on reprend l'historique (9 caractères), déclaré dans "
        "[[site.finess_geo]] des paramètres de la PFI.",
    ),
    "start_date": Param(
        type="string",
        format="date",
        title="Date de début",
        description="Premier jour des documents à reprendre (AAAA-MM-JJ). Au plus 5 ans avant la "
        "date logique du run : une date plus ancienne est refusée.",
    ),
    "end_date": Param(
        None,
        type=["null", "string"],
        format="date",
        title="Date de fin",
        description="Dernier jour (AAAA-MM-JJ) ; vide : la date logique du run.",
    ),
    "document_types": Param(
        [],
        type="array",
        items={"type": "string", "pattern": r"^\d{1,7}-\d$"},
        title="Types de document",
        description="Codes LOINC des types à reprendre (ex. 18748-4, 11502-2) ; vide : tous.",
    ),
    "dry_run": Param(
        True,
        type="boolean",
        title="Essai à blanc",
        description="Compter ce qui serait envoyé, par type et par motif, sans rien enregistrer "
        "ni envoyer. Décocher pour envoyer.",
    ),
    "max_rate": Param(
        5.0,
        type="number",
        minimum=0,
        maximum=200,
        title="Débit maximal",
        description="Documents par seconde au plus vers le DMP (0 : sans limite).",
    ),
    "batch_size": Param(
        250,
        type="integer",
        minimum=1,
        maximum=5000,
        title="Taille des lots",
        description="Documents (ou fichiers) par lot ; agrandie d'office au-delà de 1000 lots.",
    ),
    "include_not_requested": Param(
        False,
        type="boolean",
        title="Inclure les documents sans demande DMP",
        description="Envoyer aussi les documents pour lesquels le producteur n'avait pas demandé "
        "le DMP (DESTDMP=N) : seulement si c'était un choix du site (avant l'ouverture du DMP), "
        "jamais une opposition du patient.",
    ),
}


def _refused(exc: Exception) -> Exception:
    """A request or a folder the backfill refuses: fail now, no retry (the text is French)."""
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(f"[{getattr(exc, 'code', '')}] {getattr(exc, 'reason', exc)}")


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["pfi", "dmp", "backfill"],
    params=PARAMS,
    default_args={
        "owner": "pfi",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "on_failure_callback": failure_alerts(),
    },
    doc_md=__doc__,
)
def backfill_dmp_history():
    @task(priority_weight=PRIORITY, weight_rule="absolute")
    def plan_backfill() -> list[dict]:
        from pfi.base.errors import InvalidInput
        from pfi.flows.backfill import BackfillRequest, plan
        from pfi_airflow.runtime import reference_day, site_and_ledger

        context = get_current_context()
        settings, ledger = site_and_ledger()
        reference = reference_day(context)
        try:
            request = BackfillRequest.from_params(
                context["params"], reference=reference, settings=settings
            )
            return plan(ledger, request, reference=reference)
        except InvalidInput as exc:
            raise _refused(exc) from None

    @task(
        pool=POOL,
        priority_weight=PRIORITY,
        weight_rule="absolute",
        max_active_tis_per_dag=1,
        map_index_template="{{ backfill_lot }}",
    )
    def send_lot(lot: dict) -> dict:
        from pfi.base.errors import InvalidInput
        from pfi_airflow.dmp import send_backfill_lot

        get_current_context()["backfill_lot"] = lot["label"]  # type: ignore[literal-required]
        try:
            return send_backfill_lot(lot)
        except InvalidInput as exc:
            raise _refused(exc) from None

    @task(priority_weight=PRIORITY, weight_rule="absolute")
    def summarize_backfill(results: list[dict]) -> dict:
        from pfi.flows.backfill import summarize

        return summarize(list(results))

    summarize_backfill(send_lot.expand(lot=plan_backfill()))


backfill_dmp_history()
