"""inbound_item.kind ``cda_file``: a CDA file of a historical DMP backfill.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

A historical backfill (``backfill_dmp_history``, :mod:`pfi.flows.backfill`) may read a folder
of CDA files exported by a former software, with no HL7 message around them. Each file is
recorded before it is sent, like everything the PFI takes in, as an item of its own kind: the
DMP sender reads it back from there (:func:`pfi.flows.archive.load_submission`).
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_inbound_item_kind"), "inbound_item", type_="check")
    op.create_check_constraint(
        op.f("ck_inbound_item_kind"),
        "inbound_item",
        "kind IN ('hl7_file', 'hl7_message', 'mail', 'cda_file')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_inbound_item_kind"), "inbound_item", type_="check")
    op.create_check_constraint(
        op.f("ck_inbound_item_kind"),
        "inbound_item",
        "kind IN ('hl7_file', 'hl7_message', 'mail')",
    )
