"""Alembic environment of the ledger, run by :func:`pfi.ledger.migrate.upgrade`.

There is no ``alembic.ini``: :mod:`pfi.ledger.migrate` builds the configuration and hands over a
connection in ``config.attributes["connection"]``, already inside the one transaction (and behind
the advisory lock) in which the whole upgrade runs.
"""

from __future__ import annotations

from alembic import context

from pfi.ledger.schema import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the ledger migrations through pfi.ledger.migrate.upgrade()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    transaction_per_migration=False,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
