"""Intake of HL7 v2 files: claim, record, check every message, acknowledge, record what to send.

The two steps of the ``ingest_hl7_drop`` DAG (and of ``pfi intake run``), one module each
(:mod:`.claim`, :mod:`.acknowledge`; the pure evaluation of a message in :mod:`.evaluate`):

1. :func:`claim_and_record` — for each source, claim settled files (:mod:`pfi.flows.drop`) and record
   each one in the ledger with its checksum **before anything else**; return bounded batches of
   ledger ids (what XCom carries: no file name, no patient data).
2. :func:`acknowledge_items` — for each file of a batch, every message it holds (one message, or
   an FHS/BHS batch) is parsed (:mod:`pfi.protocols.hl7v2`), its identity checked (:mod:`pfi.protocols.ins`, and
   PID against the CDA header of each document, :mod:`pfi.protocols.cda`) and its routing decided
   (:func:`pfi.protocols.hl7v2.decide_request`); then, per message:

   - an ``hl7_message`` ledger item (``parent_id`` = the file, ``original_ref`` = its 1-based
     index in the file, ``control_id`` = MSH-10), ``done`` or ``rejected`` with a coded reason;
   - for an accepted request, one ``document`` row per document and the ``delivery`` rows of
     its routing: ``dmp`` (action new/replace/delete), ``mss_professional`` per PRT recipient
     address, ``mss_patient`` (address derived from the INS when sending) — ``pending`` and due
     now, or ``held`` for the channels listed in ``[intake] hold_channels``;
   - one technical ACK file in the source's outbound folder (:mod:`pfi.protocols.hl7v2.ack`): ``AA``
     (non-blocking defects as ERR of severity ``W``), ``AE`` with one ERR per reason, or ``AR``
     when the PFI cannot take the message as it is now (over the configured size).

   The original is then kept under a path fixed by its ledger id (:func:`pfi.flows.drop.kept_path`):
   in the archive when at least one message was accepted (the refused ones of a batch file are
   also copied to quarantine, each with its reason), in quarantine with ``NAME.reason.txt``
   when every message was refused.

Reasons: each refusal carries a stable code (``HL7_*`` parser, ``INS_*`` identity, ``RULE_*``
rule table, ``CDA_*`` document, ``INTAKE_*`` this module), written to the ledger, into the ACK
(ERR-3 HL7 table 0357 condition; for application errors ERR-3 ``207`` and ERR-5 the volet's
``applicationErrorCode`` 903/904/905/906 with our code as the CWE alternate code; ERR-7 a short
diagnostic) and to the task log — never patient data.

Idempotence and crashes: nothing here depends on the time a step runs. Every ledger write is an
insert-or-get (message items by checksum, documents by unique id, deliveries by their key), ACK
file names and control ids derive from ledger ids, and the original's final path is fixed in
advance. A run killed at any point is finished by the next one: a file still in the work folder
is claimed again (:mod:`pfi.flows.drop`) and processed again; a file already moved to its final place
is processed from there when Airflow retries its batch. An unexpected error (ledger down, disk
full) leaves the file where it is, marks the item ``failed`` when it can, and is raised after the
batch so that Airflow retries the task.

Site options (``[intake]`` in the settings file, all optional)::

    max_message_bytes = 33554432   # larger messages are refused (ACK AR, INTAKE_TOO_LARGE)
    max_file_bytes = 536870912     # larger files are refused unread (ACK AR)
    hold_channels = []             # deliveries created "held" on these channels, e.g. ["dmp"]

The volet has no "hold" request of its own (spec-facts §1.14, "Retenir l'envoi" [U]): holding
is a site decision per channel, released by the operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

from pfi.flows import drop
from pfi.flows.intake.acknowledge import ack_path, acknowledge_items, answer_again
from pfi.flows.intake.claim import claim, record_claimed, unfinished_kept
from pfi.flows.intake.evaluate import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Answer,
    Evaluation,
    IntakeOptions,
    PlannedDocument,
    cda_identity,
    evaluate,
    message_checksum,
    refusal,
    volet_code,
)

if TYPE_CHECKING:
    from pfi.base.settings import Settings
    from pfi.ledger import Ledger


def claim_and_record(
    ledger: Ledger,
    settings: Settings,
    *,
    batch_size: int,
    limit: int,
    actor: str,
    sources: Sequence[str] | None = None,
) -> list[dict]:
    """Claim and record each source's files; return batches ``{"source", "item_ids"}``."""
    batches: list[dict] = []
    for source in settings.sources:
        if sources is not None and source.name not in sources:
            continue
        ids = record_claimed(
            ledger,
            source,
            claim(source, limit=limit),
            actor=actor,
            answer_again=partial(answer_again, ledger, source, settings=settings, actor=actor),
        )
        ids += [i for i in unfinished_kept(ledger, source, limit=limit) if i not in ids]
        for chunk in drop.batches([str(i) for i in ids], batch_size):
            batches.append({"source": source.name, "item_ids": [int(i) for i in chunk]})
    return batches


__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "Answer",
    "Evaluation",
    "IntakeOptions",
    "PlannedDocument",
    "ack_path",
    "acknowledge_items",
    "cda_identity",
    "claim",
    "claim_and_record",
    "evaluate",
    "message_checksum",
    "record_claimed",
    "refusal",
    "unfinished_kept",
    "volet_code",
]
