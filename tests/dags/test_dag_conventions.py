"""Team conventions, written as tests over the DagBag.

Every DAG imports with no Connection and no settings file defined; has an owner, tags, retries
and documentation; does no I/O at parse time; names its tasks with verb phrases.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def dagbag(monkeypatch_module):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch_module.delenv("PFI_SETTINGS", raising=False)
    return DagBag(dag_folder=str(DAGS_DIR))


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_there_are_dags():
    assert DAG_FILES, "no DAG file found"


def test_every_dag_imports_without_connections_or_settings(dagbag):
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) >= len(DAG_FILES)


def test_every_dag_is_documented_owned_tagged_and_retried(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md.strip()) > 40, f"{dag_id}: doc_md missing"
        assert dag.tags and "pfi" in dag.tags, f"{dag_id}: needs the 'pfi' tag"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id}: owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id}: retries"


def test_dag_ids_and_task_ids_are_verb_phrases_in_snake_case(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag_id == dag_id.lower() and "_" in dag_id, dag_id
        for task in dag.tasks:
            assert task.task_id == task.task_id.lower(), task.task_id


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_do_no_work_at_parse_time(path: Path):
    """Top level of a DAG file: imports, constants, defs and the DAG call — no I/O, no hooks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    forbidden = {"open", "load_settings", "get_connection", "Variable", "get_conn"}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Import | ast.ImportFrom):
            continue
        for sub in ast.walk(node):
            name = getattr(sub, "id", None) or getattr(sub, "attr", None)
            assert name not in forbidden, f"{path.name}: {name} at module level"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_start_with_a_docstring(path: Path):
    assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))


def test_every_pool_a_task_uses_is_created_by_make_run_and_by_compose(dagbag):
    root = DAGS_DIR.parent
    pools = {
        task.pool
        for dag in dagbag.dags.values()
        for task in dag.tasks
        if task.pool and task.pool != "default_pool"
    }
    run_sh = (root / "scripts/run.sh").read_text(encoding="utf-8")
    compose = (root / "docker-compose.yaml").read_text(encoding="utf-8")
    assert pools, "the DMP calls are expected to be throttled by a pool"
    for pool in pools:
        assert f"airflow pools set {pool} " in run_sh, f"make run does not create pool {pool}"
        assert f"airflow pools set {pool} " in compose, f"airflow-init does not create pool {pool}"
