"""delivery.inbound_item_id: the message that asked for the delivery.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

A deletion (MDM^T04, ORU OBX-11 ``D``) or a masking change arrives in a later message than the
document it concerns: the ``document`` row keeps the first message (``document.inbound_item_id``),
so the DMP executor could not tell which message to answer with its ZAM^Z01 (OBX-4 = that
message's MSH-10, ACK_RECEPTION of that message) nor whose sender signs the VIHF. Nullable: rows
written before this revision, and callers that do not know it, fall back to the document's
message.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("delivery", sa.Column("inbound_item_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_delivery_inbound_item_id_inbound_item"),
        "delivery",
        "inbound_item",
        ["inbound_item_id"],
        ["id"],
    )
    op.create_index("ix_delivery_inbound_item_id", "delivery", ["inbound_item_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_delivery_inbound_item_id", table_name="delivery")
    op.drop_constraint(
        op.f("fk_delivery_inbound_item_id_inbound_item"), "delivery", type_="foreignkey"
    )
    op.drop_column("delivery", "inbound_item_id")
