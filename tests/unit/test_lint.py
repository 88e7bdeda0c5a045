"""The lint rules are part of the suite: the three-layer rule and heavy imports in DAG files."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUFF = [sys.executable, "-m", "ruff", "check", "--no-cache"]


def ruff_stdin(filename: str, code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*RUFF, "--stdin-filename", filename, "-"],
        input=code,
        text=True,
        capture_output=True,
        cwd=ROOT,
    )


def test_the_whole_tree_passes_ruff():
    result = subprocess.run([*RUFF, "."], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_whole_tree_is_formatted():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_domain_package_may_not_import_airflow():
    for code in ("import airflow\n", "from airflow.sdk import dag\n"):
        result = ruff_stdin("include/pfi/anything.py", code)
        assert result.returncode == 1
        assert "TID251" in result.stdout


def test_adapters_and_dags_may_import_airflow():
    assert (
        ruff_stdin("plugins/pfi_airflow/x.py", "import airflow\n\nprint(airflow)\n").returncode == 0
    )
    assert ruff_stdin("dags/x.py", "import airflow\n\nprint(airflow)\n").returncode == 0


def test_dag_files_may_not_import_heavy_modules_at_top_level():
    result = ruff_stdin("dags/x.py", "import pandas\n\nprint(pandas)\n")
    assert result.returncode == 1 and "TID253" in result.stdout
    inside = "def f():\n    import pandas\n\n    return pandas\n"
    assert ruff_stdin("dags/x.py", inside).returncode == 0
