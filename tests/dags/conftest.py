"""DAG tier: Airflow is configured here, before anything imports it.

Airflow reads its configuration when first imported, so ``AIRFLOW_HOME``, the metadata database
URL (a fresh PostgreSQL database for this test session — SQLite dies under Airflow 3's
concurrency) and the DAG folder are set at collection time, in this file's top level. The database
is migrated lazily, only by the tests that run DAGs (fixture ``airflow_db``).
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_home = Path(tempfile.mkdtemp(prefix="pfi-airflow-home-"))
_state = Path(tempfile.mkdtemp(prefix="pfi-pg-state-"))


def _metadata_database() -> tuple[object, str]:
    from pfi_devkit.postgres import find_or_start

    server = find_or_start(_state)
    url = server.create_database()
    return server, url


_server, _url = _metadata_database()
_db_name = _url.rsplit("/", 1)[1]
atexit.register(lambda: _server.drop_database(_db_name))  # type: ignore[attr-defined]

AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(_home),
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _url.replace("postgresql://", "postgresql+psycopg2://"),
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(_home / "logs"),
    "AIRFLOW__CORE__FERNET_KEY": "",
}
os.environ.update(AIRFLOW_ENV)
# The suite must see no Connection at all: DAGs are checked to import without any.
for key in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
    del os.environ[key]


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Migrate the session's Airflow metadata database (about 4 s), once."""
    env = {**os.environ, **AIRFLOW_ENV}
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return AIRFLOW_ENV["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
