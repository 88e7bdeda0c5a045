"""Test session set-up shared by the three tiers.

- ``tests/unit``: plain Python, no Airflow, no server.
- ``tests/dags``: imports Airflow; every DAG parses with no Connection defined.
- ``tests/integration``: real local servers (PostgreSQL, Dovecot, SMTP relay, MLLP peer, DMP
  endpoint), each started by a fixture on ephemeral ports.

Fixture modules live in ``tests/pfi_fixtures`` (one per partner) and are registered here. Inputs
(``pfi_fixtures.paths``): the project's own samples (``samples_dir``), and the official ANS
examples and validation kits (``fixtures_dir``, ``shared_dir``; skipped when absent).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = [
    "pfi_fixtures.paths",
    "pfi_fixtures.postgres",
    "pfi_fixtures.mail",
    "pfi_fixtures.partners",
    "pfi_fixtures.schematron",
]
