"""The operator console: forced replays as deliveries of their own, and the search indexes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

**Replays.** A delivery is unique per (document, channel, recipient, action): that constraint is
what keeps "nothing sent twice" true across task replays. An operator who knows better (the
professional lost the mail, the DPI was restored from a backup) may still force a second send of
a delivery already ``sent``, from the console, with a reason: that send is a *new* delivery,
``replay_of`` the one it repeats and numbered ``replay_seq`` (1, 2…; 0 for every delivery intake
creates), so the uniqueness now reads (document, channel, recipient, action, replay_seq) and an
intake replay (``replay_seq`` 0) is still refused by the database.

**Indexes** for the console's search (one page of deliveries or received items among millions,
newest first, under a second): the control id (MSH-10, Message-ID) without its source, the
received and created times, the INS (for the roles that may search by identity), the status,
channel and FINESS géographique each with the id the pages are ordered by, replays by original,
and the operator's trail (``operator.*`` lines, a partial index).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OLD_UNIQUE = ["document_id", "channel", "recipient", "action"]
_INDEXES = [
    ("ix_inbound_item_control_id", "inbound_item", ["control_id"]),
    ("ix_inbound_item_received_at", "inbound_item", ["received_at"]),
    ("ix_inbound_item_source_id", "inbound_item", ["source", "id"]),
    ("ix_document_ins_matricule", "document", ["ins_matricule"]),
    ("ix_delivery_created_at", "delivery", ["created_at"]),
    ("ix_delivery_status_channel_id", "delivery", ["status", "channel", "id"]),
    ("ix_delivery_channel_id", "delivery", ["channel", "id"]),
    ("ix_delivery_finess_geo_id", "delivery", ["finess_geo", "id"]),
    ("ix_delivery_replay_of", "delivery", ["replay_of"]),
]


def upgrade() -> None:
    op.add_column("delivery", sa.Column("replay_of", sa.BigInteger(), nullable=True))
    op.add_column(
        "delivery",
        sa.Column("replay_seq", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.create_foreign_key(
        op.f("fk_delivery_replay_of_delivery"), "delivery", "delivery", ["replay_of"], ["id"]
    )
    op.create_check_constraint(
        op.f("ck_delivery_replay"), "delivery", "(replay_seq = 0) = (replay_of IS NULL)"
    )
    op.drop_constraint(
        op.f("uq_delivery_document_id_channel_recipient_action"), "delivery", type_="unique"
    )
    op.create_unique_constraint(
        op.f("uq_delivery_document_id_channel_recipient_action_replay_seq"),
        "delivery",
        [*_OLD_UNIQUE, "replay_seq"],
        postgresql_nulls_not_distinct=True,
    )
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns, unique=False)
    op.create_index(
        "ix_event_operator",
        "event",
        ["id"],
        unique=False,
        postgresql_where=sa.text("kind LIKE 'operator.%'"),
    )


def downgrade() -> None:
    op.drop_index("ix_event_operator", table_name="event")
    for name, table, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
    replays = op.get_bind().execute(sa.text("SELECT count(*) FROM delivery WHERE replay_seq > 0"))
    if replays.scalar():
        # their trail (append-only) names them: a downgrade cannot drop them
        raise RuntimeError("the ledger holds forced replays: it cannot go below revision 0004")
    op.drop_constraint(
        op.f("uq_delivery_document_id_channel_recipient_action_replay_seq"),
        "delivery",
        type_="unique",
    )
    op.create_unique_constraint(
        op.f("uq_delivery_document_id_channel_recipient_action"),
        "delivery",
        _OLD_UNIQUE,
        postgresql_nulls_not_distinct=True,
    )
    op.drop_constraint(op.f("ck_delivery_replay"), "delivery", type_="check")
    op.drop_constraint(op.f("fk_delivery_replay_of_delivery"), "delivery", type_="foreignkey")
    op.drop_column("delivery", "replay_seq")
    op.drop_column("delivery", "replay_of")
