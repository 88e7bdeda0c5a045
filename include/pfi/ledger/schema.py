"""The ledger's tables, as SQLAlchemy Core metadata: what the repository queries.

The database itself is built by the Alembic migrations beside this module (``migrations/``);
a test compares the two, so a column added here without a migration fails the suite.

Four tables, one per question the ledger answers:

``inbound_item``
    *What did we receive?* Every HL7 file, HL7 message (inside a file: ``parent_id``) and mail,
    recorded **before** it is processed. Identical bytes from the same source are one row:
    ``UNIQUE (source, kind, checksum)``. A re-drop is therefore detected by the insert itself
    (``record_inbound`` answers ``created=False``) and the caller, which knows whether it is a
    producer's re-drop or its own crashed run being finished, writes the ``duplicate`` event.
    We chose this over "one row per sighting pointing to the first" because the item id is what
    every later step keys on (ACK control id, documents, deliveries): one set of bytes, one id,
    one outcome. Status ``duplicate`` is for duplicates only found later with *different* bytes
    (same MSH-10 or same Message-ID from the same source).
``document``
    *Which document versions went through?* One row per CDA document version, unique on its
    unique id (CDA ``id`` root^extension = TXA-12).
``delivery``
    *Where did each document go, and did it arrive?* One row per (document, channel, recipient,
    action); the unique constraint is what makes "nothing sent twice" hold across replays.
``event``
    *What happened, in order, and why?* Append-only: a trigger refuses UPDATE, DELETE and
    TRUNCATE, whatever the role. The one way round it is deliberately privileged: a superuser
    session with ``session_replication_role = replica`` (a retention purge, the test suite).

Statuses and codes are ``text`` columns with CHECK constraints, not PostgreSQL enums: a CHECK is
dropped and recreated inside one transactional migration, while ``ALTER TYPE … ADD VALUE`` cannot
be used in the transaction that adds it and enum values can never be removed.

Reasons (``reason_code``/``reason_text``) and event details are written by the code, never copied
from a message: they hold coded reasons (``HL7_NO_MSH``, ``DMP_REFUSED``…) and short technical
texts, never patient data. The only patient data in the ledger is the INS on ``document`` (see
there).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

#: Name of Alembic's version table: not ``alembic_version``, so that the ledger can never be
#: mistaken for (or mixed with) Airflow's metadata database, which uses that name.
VERSION_TABLE = "pfi_alembic_version"

#: Statistics are per calendar month in France (SC.STAT/ES.02): months are cut at Paris midnight.
STATS_TIME_ZONE = "Europe/Paris"

#: ``cda_file``: a CDA file of a historical DMP backfill (:mod:`pfi.flows.backfill`, migration 0003).
INBOUND_KINDS = ("hl7_file", "hl7_message", "mail", "cda_file")
INBOUND_STATUSES = ("received", "processing", "done", "rejected", "failed", "duplicate")
#: Statuses after which intake has nothing left to do for an item.
INBOUND_FINAL = ("done", "rejected", "duplicate")

#: ``dpi``: a document received by mail (application mailbox) and transmitted to the DPI.
CHANNELS = ("dmp", "mss_professional", "mss_patient", "dpi")
ACTIONS = ("new", "replace", "delete")
#: ``pending``: due at ``next_attempt_at`` (first attempt, or retry after a transient error: this
#: is the deferred-send queue of SC.DMP/ALI/PROG.06-07); ``held``: parked on purpose, never claimed
#: until released to ``pending``; ``sent``: accepted by the partner; ``failed``: given up after a
#: technical error; ``refused``: definitively refused by the partner.
DELIVERY_STATUSES = ("pending", "held", "sent", "failed", "refused")
#: Statuses that are the outcome of an attempt (they increment ``attempts`` by default).
DELIVERY_OUTCOMES = ("sent", "failed", "refused")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _created() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated() -> Column:
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now())


inbound_item = Table(
    "inbound_item",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("kind", String(20), nullable=False),
    # HL7 source name or mailbox name, as in the settings.
    Column("source", String(40), nullable=False),
    Column("finess_geo", String(9)),
    # File name, "UIDVALIDITY:UID" of an IMAP message, or index of a message inside its file.
    Column("original_ref", Text),
    Column("checksum", String(64), nullable=False),
    Column("size", BigInteger),
    # MSH-10 for HL7, Message-ID for mails: what partners quote back.
    Column("control_id", Text),
    # MSH-9 (e.g. MDM^T02^MDM_T02) for HL7; for mails, the request the XDM carries.
    Column("message_type", String(40)),
    Column("parent_id", BigInteger, ForeignKey("inbound_item.id")),
    Column("status", String(20), nullable=False, server_default=text("'received'")),
    Column("reason_code", String(60)),
    Column("reason_text", Text),
    # Where the original is now: work folder, archive or quarantine.
    Column("storage_path", Text),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    _updated(),
    UniqueConstraint("source", "kind", "checksum"),
    CheckConstraint(_one_of("kind", INBOUND_KINDS), name="kind"),
    CheckConstraint(_one_of("status", INBOUND_STATUSES), name="status"),
    CheckConstraint("checksum ~ '^[0-9a-f]{64}$'", name="checksum_sha256"),
    CheckConstraint("size IS NULL OR size >= 0", name="size"),
    CheckConstraint("parent_id IS NULL OR kind = 'hl7_message'", name="parent_only_for_messages"),
)
Index("ix_inbound_item_source_control_id", inbound_item.c.source, inbound_item.c.control_id)
Index("ix_inbound_item_parent_id", inbound_item.c.parent_id)
Index("ix_inbound_item_status_received_at", inbound_item.c.status, inbound_item.c.received_at)
Index("ix_inbound_item_control_id", inbound_item.c.control_id)
Index("ix_inbound_item_received_at", inbound_item.c.received_at)
Index("ix_inbound_item_source_id", inbound_item.c.source, inbound_item.c.id)


document = Table(
    "document",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    # CDA ClinicalDocument/id as root^extension (= TXA-12): what the DMP and recipients key on.
    Column("unique_id", Text, nullable=False),
    Column("set_id", Text),
    Column("version", Integer),
    # LOINC document type (Ségur list) and its display name, for statistics.
    Column("type_code", String(20)),
    Column("type_display", Text),
    Column("finess_geo", String(9)),
    Column("effective_time", DateTime(timezone=True)),
    # The INS is the only patient data the ledger keeps, because later steps need it without
    # the original message: the DMP requires the qualified INS (and refuses historical
    # documents without one), and the patient's MSSanté address is <matricule>@patient.mssante.fr.
    # Names, birth date and the IPP stay in the archived original and are never copied here.
    Column("ins_matricule", String(15)),
    Column("ins_oid", String(64)),
    Column("ins_qualified", Boolean, nullable=False, server_default=text("false")),
    # SHA-256 of the CDA: the same unique id arriving with other content is an error to report.
    Column("content_sha256", String(64)),
    Column("inbound_item_id", BigInteger, ForeignKey("inbound_item.id")),
    # relatedDocument/parentDocument id (TXA-13) as received, and the row it names when known.
    Column("replaces_unique_id", Text),
    Column("replaces_document_id", BigInteger, ForeignKey("document.id")),
    _created(),
    UniqueConstraint("unique_id"),
    CheckConstraint("(ins_matricule IS NULL) = (ins_oid IS NULL)", name="ins_with_oid"),
    CheckConstraint("ins_matricule IS NULL OR ins_matricule ~ '^[0-9AB]{15}$'", name="ins_shape"),
    CheckConstraint("NOT ins_qualified OR ins_matricule IS NOT NULL", name="qualified_has_ins"),
    CheckConstraint(
        "content_sha256 IS NULL OR content_sha256 ~ '^[0-9a-f]{64}$'", name="content_sha256"
    ),
)
Index("ix_document_set_id", document.c.set_id)
Index("ix_document_inbound_item_id", document.c.inbound_item_id)
Index("ix_document_ins_matricule", document.c.ins_matricule)


delivery = Table(
    "delivery",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("document_id", BigInteger, ForeignKey("document.id"), nullable=False),
    Column("channel", String(20), nullable=False),
    # A professional's MSSanté address; NULL for the DMP and for the patient's mailbox (whose
    # address is derived from document.ins_matricule, so the INS is not stored twice).
    Column("recipient", String(320)),
    Column("action", String(10), nullable=False),
    Column("status", String(10), nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
    # Fixed at creation and sent with every attempt (DMP request id, SMTP Message-ID, MSH-10),
    # so that after a lost response the partner can be asked what became of it.
    Column("request_id", Uuid, nullable=False),
    # The partner's reference for the accepted request (DMP id, SMTP Message-ID, ACK MSA-2).
    Column("partner_ref", Text),
    Column("reason_code", String(60)),
    Column("reason_text", Text),
    # A backfill of a document up to 5 years old (DMP only): counted apart in the statistics.
    Column("historical", Boolean, nullable=False, server_default=text("false")),
    # The document carried a qualified INS when sent (MSSanté statistics, X-MSS-INS header).
    Column("qualified_ins", Boolean, nullable=False, server_default=text("false")),
    # Copied from the document so that statistics read one table with one index.
    Column("finess_geo", String(9)),
    Column("type_code", String(20)),
    # The message that asked for this delivery (migration 0002): a deletion or a masking change
    # comes in a later message than its document's, and the business acknowledgement answers it.
    Column("inbound_item_id", BigInteger, ForeignKey("inbound_item.id")),
    # Who holds the current claim (actor) and since when: a claim is a lease on next_attempt_at.
    Column("claimed_by", Text),
    Column("claimed_at", DateTime(timezone=True)),
    _created(),
    _updated(),
    # The month a delivery counts in: the month of its outcome (or of its creation while none),
    # in Paris time. Stored, so that the statistics index can use it.
    Column(
        "stat_month",
        Date,
        Computed(
            f"(date_trunc('month', timezone('{STATS_TIME_ZONE}', "
            "COALESCE(sent_at, last_attempt_at, created_at))))::date",
            persisted=True,
        ),
        nullable=False,
    ),
    # A forced replay by an operator (migration 0004): a new delivery repeating ``replay_of``,
    # numbered 1, 2…; 0 for every delivery intake creates, so the key below still refuses a
    # second one of those.
    Column("replay_of", BigInteger, ForeignKey("delivery.id")),
    Column("replay_seq", Integer, nullable=False, server_default=text("0")),
    UniqueConstraint(
        "document_id",
        "channel",
        "recipient",
        "action",
        "replay_seq",
        postgresql_nulls_not_distinct=True,
    ),
    UniqueConstraint("request_id"),
    CheckConstraint(_one_of("channel", CHANNELS), name="channel"),
    CheckConstraint(_one_of("action", ACTIONS), name="action"),
    CheckConstraint(_one_of("status", DELIVERY_STATUSES), name="status"),
    CheckConstraint("attempts >= 0", name="attempts"),
    CheckConstraint("status <> 'pending' OR next_attempt_at IS NOT NULL", name="pending_is_due"),
    CheckConstraint("status <> 'sent' OR sent_at IS NOT NULL", name="sent_has_time"),
    CheckConstraint(
        "(channel = 'mss_professional' AND recipient IS NOT NULL)"
        " OR (channel IN ('dmp', 'mss_patient') AND recipient IS NULL)"
        " OR channel = 'dpi'",
        name="recipient",
    ),
    CheckConstraint("NOT historical OR channel = 'dmp'", name="historical_dmp_only"),
    CheckConstraint("(replay_seq = 0) = (replay_of IS NULL)", name="replay"),
)
Index(
    "ix_delivery_due",
    delivery.c.channel,
    delivery.c.next_attempt_at,
    postgresql_where=delivery.c.status == "pending",
)
Index(
    "ix_delivery_stats",
    delivery.c.finess_geo,
    delivery.c.stat_month,
    delivery.c.channel,
    delivery.c.type_code,
)
Index("ix_delivery_partner_ref", delivery.c.partner_ref)
Index("ix_delivery_inbound_item_id", delivery.c.inbound_item_id)
Index("ix_delivery_status_updated_at", delivery.c.status, delivery.c.updated_at)
# The operator console's search (migration 0004): pages newest first under each filter.
Index("ix_delivery_created_at", delivery.c.created_at)
Index("ix_delivery_status_channel_id", delivery.c.status, delivery.c.channel, delivery.c.id)
Index("ix_delivery_channel_id", delivery.c.channel, delivery.c.id)
Index("ix_delivery_finess_geo_id", delivery.c.finess_geo, delivery.c.id)
Index("ix_delivery_replay_of", delivery.c.replay_of)


event = Table(
    "event",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Dotted, e.g. inbound.recorded, inbound.status, delivery.claimed, delivery.status.
    Column("kind", String(60), nullable=False),
    Column("inbound_item_id", BigInteger, ForeignKey("inbound_item.id")),
    Column("document_id", BigInteger, ForeignKey("document.id")),
    Column("delivery_id", BigInteger, ForeignKey("delivery.id")),
    # dag_id/task_id/run_id[map_index] of the task, or "cli".
    Column("actor", Text, nullable=False),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
)
Index("ix_event_inbound_item_id", event.c.inbound_item_id)
Index("ix_event_document_id", event.c.document_id)
Index("ix_event_delivery_id", event.c.delivery_id)
Index("ix_event_at", event.c.at)
# The operator's trail (migration 0004): replays, holds, releases, views of identity/content.
Index("ix_event_operator", event.c.id, postgresql_where=event.c.kind.like("operator.%"))


__all__ = [
    "ACTIONS",
    "CHANNELS",
    "DELIVERY_OUTCOMES",
    "DELIVERY_STATUSES",
    "INBOUND_FINAL",
    "INBOUND_KINDS",
    "INBOUND_STATUSES",
    "STATS_TIME_ZONE",
    "VERSION_TABLE",
    "delivery",
    "document",
    "event",
    "inbound_item",
    "metadata",
]
