"""The ledger's schema module, its migrations and its rows agree — checked without a database."""

from __future__ import annotations

import ast
import uuid
from dataclasses import fields
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import CheckConstraint

from pfi.ledger import Delivery, Document, Event, InboundItem, delivery_key, head_revision
from pfi.ledger.migrate import MIGRATIONS, normalize_url
from pfi.ledger.schema import (
    CHANNELS,
    DELIVERY_STATUSES,
    INBOUND_STATUSES,
    delivery,
    document,
    event,
    inbound_item,
    metadata,
)
from pfi.ledger.stats import _first_of_month

VERSIONS = MIGRATIONS / "versions"


def _strings_of(path: Path) -> set[str]:
    """Every string literal of a file, adjacent literals joined as Python joins them."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def test_there_is_one_chain_of_revisions_ending_at_the_head():
    files = sorted(p.name for p in VERSIONS.glob("*.py"))
    assert files[0].startswith("0001_")
    assert head_revision() == files[-1].split("_", 1)[0]


def test_every_check_constraint_and_computed_column_is_written_in_a_migration():
    written = set().union(*(_strings_of(p) for p in VERSIONS.glob("*.py")))
    for table in metadata.sorted_tables:
        for constraint in table.constraints:
            if isinstance(constraint, CheckConstraint):
                assert str(constraint.sqltext) in written, (table.name, constraint.name)
    assert str(delivery.c.stat_month.computed.sqltext) in written


def test_status_lists_are_the_check_constraints():
    checks = {
        c.name: str(c.sqltext)
        for t in metadata.sorted_tables
        for c in t.constraints
        if isinstance(c, CheckConstraint)
    }
    assert all(f"'{s}'" in checks["ck_inbound_item_status"] for s in INBOUND_STATUSES)
    assert all(f"'{s}'" in checks["ck_delivery_status"] for s in DELIVERY_STATUSES)
    assert all(f"'{c}'" in checks["ck_delivery_channel"] for c in CHANNELS)


@pytest.mark.parametrize(
    ("record", "table", "not_exposed"),
    [
        (InboundItem, inbound_item, set()),
        (Document, document, set()),
        (Delivery, delivery, {"stat_month"}),
        (Event, event, set()),
    ],
)
def test_rows_expose_their_tables_columns(record, table, not_exposed):
    assert {f.name for f in fields(record)} == set(table.c.keys()) - not_exposed


def test_a_document_row_never_shows_the_ins_when_printed():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    row = Document(
        id=1,
        unique_id="1.2^3",
        set_id=None,
        version=1,
        type_code="11502-2",
        type_display=None,
        finess_geo=None,
        effective_time=None,
        ins_matricule="279035121518989",
        ins_oid="1.2.250.1.213.1.4.10",
        ins_qualified=True,
        content_sha256=None,
        inbound_item_id=None,
        replaces_unique_id=None,
        replaces_document_id=None,
        created_at=now,
    )
    assert "279035121518989" not in repr(row)
    with pytest.raises(AttributeError):
        row.ins_qualified = False  # type: ignore[misc]  # frozen


def test_delivery_keys_are_checked_and_normalised():
    assert delivery_key("mss_professional", " Dr.X@Hop.MSSante.fr ", "new") == (
        "mss_professional",
        "dr.x@hop.mssante.fr",
        "new",
    )
    assert delivery_key("dmp", None, "delete") == ("dmp", None, "delete")
    assert delivery_key("dpi", None, "replace") == ("dpi", None, "replace")
    for bad in [
        ("mss_professional", None, "new"),
        ("mss_patient", "279035121518989@patient.mssante.fr", "new"),
        ("dmp", "someone@x.fr", "new"),
        ("fax", None, "new"),
        ("dmp", None, "resend"),
    ]:
        with pytest.raises(ValueError):
            delivery_key(*bad)


def test_month_bounds():
    assert _first_of_month(date(2026, 2, 15)) == date(2026, 2, 1)
    assert _first_of_month(date(2026, 2, 1), up=True) == date(2026, 2, 1)
    assert _first_of_month(date(2026, 12, 15), up=True) == date(2027, 1, 1)


def test_airflow_style_urls_are_accepted():
    assert normalize_url("postgres://u@h:5432/pfi_ledger") == "postgresql://u@h:5432/pfi_ledger"
    assert normalize_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"


def test_request_ids_are_uuids():
    assert delivery.c.request_id.type.python_type is uuid.UUID
