"""Initial ledger: inbound_item, document, delivery, event (append-only).

Revision ID: 0001
Revises: -
Create Date: 2026-11-23

The operations are written out (this file does not import ``pfi.ledger.schema``): a migration is
frozen history, and later changes to the schema module must come with their own revision.
Statuses are CHECK constraints rather than enums so that a later revision can change a list in
one transaction.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

APPEND_ONLY_FUNCTION = """
CREATE FUNCTION pfi_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger event trail is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_item",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("finess_geo", sa.String(length=9), nullable=True),
        sa.Column("original_ref", sa.Text(), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("control_id", sa.Text(), nullable=True),
        sa.Column("message_type", sa.String(length=40), nullable=True),
        sa.Column("parent_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "status", sa.String(length=20), server_default=sa.text("'received'"), nullable=False
        ),
        sa.Column("reason_code", sa.String(length=60), nullable=True),
        sa.Column("reason_text", sa.Text(), nullable=True),
        sa.Column("storage_path", sa.Text(), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "checksum ~ '^[0-9a-f]{64}$'", name=op.f("ck_inbound_item_checksum_sha256")
        ),
        sa.CheckConstraint(
            "kind IN ('hl7_file', 'hl7_message', 'mail')", name=op.f("ck_inbound_item_kind")
        ),
        sa.CheckConstraint(
            "parent_id IS NULL OR kind = 'hl7_message'",
            name=op.f("ck_inbound_item_parent_only_for_messages"),
        ),
        sa.CheckConstraint(
            "status IN ('received', 'processing', 'done', 'rejected', 'failed', 'duplicate')",
            name=op.f("ck_inbound_item_status"),
        ),
        sa.CheckConstraint("size IS NULL OR size >= 0", name=op.f("ck_inbound_item_size")),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["inbound_item.id"], name=op.f("fk_inbound_item_parent_id_inbound_item")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_item")),
        sa.UniqueConstraint(
            "source", "kind", "checksum", name=op.f("uq_inbound_item_source_kind_checksum")
        ),
    )
    op.create_index("ix_inbound_item_parent_id", "inbound_item", ["parent_id"], unique=False)
    op.create_index(
        "ix_inbound_item_source_control_id", "inbound_item", ["source", "control_id"], unique=False
    )
    op.create_index(
        "ix_inbound_item_status_received_at",
        "inbound_item",
        ["status", "received_at"],
        unique=False,
    )
    op.create_table(
        "document",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("unique_id", sa.Text(), nullable=False),
        sa.Column("set_id", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("type_code", sa.String(length=20), nullable=True),
        sa.Column("type_display", sa.Text(), nullable=True),
        sa.Column("finess_geo", sa.String(length=9), nullable=True),
        sa.Column("effective_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ins_matricule", sa.String(length=15), nullable=True),
        sa.Column("ins_oid", sa.String(length=64), nullable=True),
        sa.Column("ins_qualified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("inbound_item_id", sa.BigInteger(), nullable=True),
        sa.Column("replaces_unique_id", sa.Text(), nullable=True),
        sa.Column("replaces_document_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "content_sha256 IS NULL OR content_sha256 ~ '^[0-9a-f]{64}$'",
            name=op.f("ck_document_content_sha256"),
        ),
        sa.CheckConstraint(
            "ins_matricule IS NULL OR ins_matricule ~ '^[0-9AB]{15}$'",
            name=op.f("ck_document_ins_shape"),
        ),
        sa.CheckConstraint(
            "(ins_matricule IS NULL) = (ins_oid IS NULL)", name=op.f("ck_document_ins_with_oid")
        ),
        sa.CheckConstraint(
            "NOT ins_qualified OR ins_matricule IS NOT NULL",
            name=op.f("ck_document_qualified_has_ins"),
        ),
        sa.ForeignKeyConstraint(
            ["inbound_item_id"],
            ["inbound_item.id"],
            name=op.f("fk_document_inbound_item_id_inbound_item"),
        ),
        sa.ForeignKeyConstraint(
            ["replaces_document_id"],
            ["document.id"],
            name=op.f("fk_document_replaces_document_id_document"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document")),
        sa.UniqueConstraint("unique_id", name=op.f("uq_document_unique_id")),
    )
    op.create_index("ix_document_inbound_item_id", "document", ["inbound_item_id"], unique=False)
    op.create_index("ix_document_set_id", "document", ["set_id"], unique=False)
    op.create_table(
        "delivery",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("document_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column(
            "status", sa.String(length=10), server_default=sa.text("'pending'"), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("partner_ref", sa.Text(), nullable=True),
        sa.Column("reason_code", sa.String(length=60), nullable=True),
        sa.Column("reason_text", sa.Text(), nullable=True),
        sa.Column("historical", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("qualified_ins", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("finess_geo", sa.String(length=9), nullable=True),
        sa.Column("type_code", sa.String(length=20), nullable=True),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "stat_month",
            sa.Date(),
            sa.Computed(
                "(date_trunc('month', timezone('Europe/Paris', "
                "COALESCE(sent_at, last_attempt_at, created_at))))::date",
                persisted=True,
            ),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(channel = 'mss_professional' AND recipient IS NOT NULL)"
            " OR (channel IN ('dmp', 'mss_patient') AND recipient IS NULL)"
            " OR channel = 'dpi'",
            name=op.f("ck_delivery_recipient"),
        ),
        sa.CheckConstraint(
            "NOT historical OR channel = 'dmp'", name=op.f("ck_delivery_historical_dmp_only")
        ),
        sa.CheckConstraint(
            "action IN ('new', 'replace', 'delete')", name=op.f("ck_delivery_action")
        ),
        sa.CheckConstraint(
            "channel IN ('dmp', 'mss_professional', 'mss_patient', 'dpi')",
            name=op.f("ck_delivery_channel"),
        ),
        sa.CheckConstraint(
            "status <> 'pending' OR next_attempt_at IS NOT NULL",
            name=op.f("ck_delivery_pending_is_due"),
        ),
        sa.CheckConstraint(
            "status <> 'sent' OR sent_at IS NOT NULL", name=op.f("ck_delivery_sent_has_time")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'held', 'sent', 'failed', 'refused')",
            name=op.f("ck_delivery_status"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_delivery_attempts")),
        sa.ForeignKeyConstraint(
            ["document_id"], ["document.id"], name=op.f("fk_delivery_document_id_document")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery")),
        sa.UniqueConstraint(
            "document_id",
            "channel",
            "recipient",
            "action",
            name=op.f("uq_delivery_document_id_channel_recipient_action"),
            postgresql_nulls_not_distinct=True,
        ),
        sa.UniqueConstraint("request_id", name=op.f("uq_delivery_request_id")),
    )
    op.create_index(
        "ix_delivery_due",
        "delivery",
        ["channel", "next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_delivery_partner_ref", "delivery", ["partner_ref"], unique=False)
    op.create_index(
        "ix_delivery_stats",
        "delivery",
        ["finess_geo", "stat_month", "channel", "type_code"],
        unique=False,
    )
    op.create_index(
        "ix_delivery_status_updated_at", "delivery", ["status", "updated_at"], unique=False
    )
    op.create_table(
        "event",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("kind", sa.String(length=60), nullable=False),
        sa.Column("inbound_item_id", sa.BigInteger(), nullable=True),
        sa.Column("document_id", sa.BigInteger(), nullable=True),
        sa.Column("delivery_id", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["delivery.id"], name=op.f("fk_event_delivery_id_delivery")
        ),
        sa.ForeignKeyConstraint(
            ["document_id"], ["document.id"], name=op.f("fk_event_document_id_document")
        ),
        sa.ForeignKeyConstraint(
            ["inbound_item_id"],
            ["inbound_item.id"],
            name=op.f("fk_event_inbound_item_id_inbound_item"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
    )
    op.create_index("ix_event_at", "event", ["at"], unique=False)
    op.create_index("ix_event_delivery_id", "event", ["delivery_id"], unique=False)
    op.create_index("ix_event_document_id", "event", ["document_id"], unique=False)
    op.create_index("ix_event_inbound_item_id", "event", ["inbound_item_id"], unique=False)

    # The trail is append-only: refuse UPDATE, DELETE (row) and TRUNCATE (statement). A trigger
    # rather than REVOKE because it holds whatever role the connection uses, owner included.
    op.execute(APPEND_ONLY_FUNCTION)
    op.execute(
        "CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE ON event"
        " FOR EACH ROW EXECUTE FUNCTION pfi_event_append_only()"
    )
    op.execute(
        "CREATE TRIGGER event_no_truncate BEFORE TRUNCATE ON event"
        " FOR EACH STATEMENT EXECUTE FUNCTION pfi_event_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS event_no_truncate ON event")
    op.execute("DROP TRIGGER IF EXISTS event_append_only ON event")
    op.execute("DROP FUNCTION IF EXISTS pfi_event_append_only()")
    op.drop_index("ix_event_inbound_item_id", table_name="event")
    op.drop_index("ix_event_document_id", table_name="event")
    op.drop_index("ix_event_delivery_id", table_name="event")
    op.drop_index("ix_event_at", table_name="event")
    op.drop_table("event")
    op.drop_index("ix_delivery_status_updated_at", table_name="delivery")
    op.drop_index("ix_delivery_stats", table_name="delivery")
    op.drop_index("ix_delivery_partner_ref", table_name="delivery")
    op.drop_index(
        "ix_delivery_due", table_name="delivery", postgresql_where=sa.text("status = 'pending'")
    )
    op.drop_table("delivery")
    op.drop_index("ix_document_set_id", table_name="document")
    op.drop_index("ix_document_inbound_item_id", table_name="document")
    op.drop_table("document")
    op.drop_index("ix_inbound_item_status_received_at", table_name="inbound_item")
    op.drop_index("ix_inbound_item_source_control_id", table_name="inbound_item")
    op.drop_index("ix_inbound_item_parent_id", table_name="inbound_item")
    op.drop_table("inbound_item")
