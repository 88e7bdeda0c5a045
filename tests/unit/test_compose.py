"""docker-compose.yaml cannot run on our machines: keep it consistent with `make run` by reading it.

Checked: the Airflow 3 components and a Celery worker with Redis, PostgreSQL with a separate ledger
database, the partner servers; dags/plugins/include mounted; the same Airflow settings that
`pfi_devkit.demo.airflow_env` gives the local demo (no examples, one JWT secret for every
component, include/ and plugins/ on PYTHONPATH, the ledger connection, the settings file).
The devkit belongs to the "demo" profile only, in the Dockerfile's "demo" target: the product
image (the default target) installs neither Dovecot nor the devkit.
"""

from pathlib import Path

import pytest
import yaml

from pfi_devkit.demo import airflow_env, celery_redis_db, database_names

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_services(compose):
    services = compose["services"]
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == command
        assert services[name]["depends_on"]["airflow-init"]["condition"] == (
            "service_completed_successfully"
        )
    assert {"postgres", "redis", "airflow-init", "pfi-devkit"} <= set(services)
    assert "pfi ledger upgrade" in " ".join(services["airflow-init"]["command"])
    # the MLLP inlet, as `make run` starts it (scripts/run.sh)
    inlet = services["pfi-mllp-inlet"]["entrypoint"]
    assert inlet[:6] == ["python", "-m", "pfi", "hl7", "listen", "dpi"]
    assert "pfi hl7 listen dpi" in (ROOT / "scripts/run.sh").read_text()
    # every long-running component is started again when it exits (a PostgreSQL restart makes
    # the scheduler exit); the one-shot init is not
    for name in [*AIRFLOW_SERVICES, "pfi-mllp-inlet", "postgres", "redis"]:
        assert services[name].get("restart") in ("always", "unless-stopped"), name
    assert services["airflow-init"]["restart"] == "no"


def test_mounts_and_image_are_shared(compose):
    for name in [*AIRFLOW_SERVICES, "airflow-init", "pfi-devkit", "pfi-mllp-inlet"]:
        volumes = compose["services"][name]["volumes"]
        for folder in ("dags", "plugins", "include"):
            assert f"./{folder}:/opt/airflow/{folder}" in volumes
        image = "pfi-airflow-demo:0.1.0" if name == "pfi-devkit" else "pfi-airflow:0.1.0"
        assert compose["services"][name]["image"] == image, name
        target = "demo" if name == "pfi-devkit" else "product"
        assert compose["services"][name]["build"]["target"] == target, name


def test_the_devkit_is_only_in_the_demo_profile(compose):
    from pfi_devkit.__main__ import build_parser

    for name, service in compose["services"].items():
        assert service.get("profiles") == (["demo"] if name == "pfi-devkit" else None), name
    entrypoint = compose["services"]["pfi-devkit"]["entrypoint"]
    assert entrypoint[:4] == ["python", "-m", "pfi_devkit", "serve"]
    args = build_parser().parse_args(entrypoint[3:])  # the options the devkit's entry point has
    assert (args.host, args.fixed_ports) == ("0.0.0.0", True)
    # the same servers as `make run` / `make stop` start and stop
    assert "-m pfi_devkit up --state var/devkit" in (ROOT / "scripts/run.sh").read_text()
    assert "-m pfi_devkit down --state var/devkit" in (ROOT / "scripts/stop.sh").read_text()


def dockerfile_stages() -> dict[str, list[str]]:
    """Each stage of the Dockerfile (by name, in order) and its instructions, with the ones of
    the stages it is built ``FROM``."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            words = line.split()
            parent, name = words[1], words[3] if len(words) > 3 else f"stage{len(stages)}"
            current = [*stages.get(parent, []), line]
            stages[name] = current
        else:
            current.append(line)
    return stages


def test_the_product_image_has_no_devkit():
    stages = dockerfile_stages()
    assert list(stages)[-1] == "product"  # `docker build .` builds the product image
    product, demo = " ".join(stages["product"]), " ".join(stages["demo"])
    for devkit_only in ("dovecot", "pfi_devkit", "requirements-dev"):
        assert devkit_only not in product.lower(), devkit_only
        assert devkit_only in demo.lower(), devkit_only
    assert "requirements.txt" in product
    # the devkit's SMTP relay is a test and demo requirement, not a runtime one
    runtime = (ROOT / "requirements.txt").read_text().lower()
    assert "aiosmtpd" not in runtime
    assert "aiosmtpd==" in (ROOT / "requirements-dev.txt").read_text().lower()


def test_environment_matches_the_local_demo(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    demo = airflow_env(
        root=Path("/opt/airflow"),
        home=Path("/opt/airflow"),
        database_url="postgresql://x@y/airflow",
        ledger_url="postgresql://x@y/pfi_ledger",
        port=8080,
        jwt_secret="s",
        fernet_key="k",
        settings_file=Path("/opt/airflow/config/pfi.toml"),
    )
    same_value = [
        "AIRFLOW__CORE__LOAD_EXAMPLES",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__PLUGINS_FOLDER",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
        "PFI_SETTINGS",
    ]
    for key in same_value:
        assert str(env[key]) == demo[key], key
    present = [
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW_CONN_PFI_LEDGER",
    ]
    for key in present:
        assert key in env and key in demo, key
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis")
    assert set(env["PYTHONPATH"].split(":")) == {"/opt/airflow/include", "/opt/airflow/plugins"}
    assert env["AIRFLOW_CONN_PFI_LEDGER"].endswith("/pfi_ledger")


def test_the_ledger_database_is_not_airflows(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].rsplit("/", 1)[1] == "airflow"
    init_sql = (ROOT / "scripts/docker/create-ledger-db.sql").read_text()
    assert "CREATE DATABASE pfi_ledger" in init_sql


def test_two_clones_never_share_the_demo_databases(tmp_path):
    """``make run`` in a second clone (a chaos campaign beside a demo) takes databases of its
    own on the shared PostgreSQL server; the same clone always finds its own again."""
    first, second = tmp_path / "a" / "main", tmp_path / "b" / "main"
    airflow_db, ledger_db = database_names(first)
    assert database_names(first) == (airflow_db, ledger_db)
    assert set(database_names(second)).isdisjoint({airflow_db, ledger_db})
    assert airflow_db != ledger_db
    assert all(name.isidentifier() and name.islower() for name in (airflow_db, ledger_db))


def test_the_celery_demo_has_composes_celery_settings(compose):
    """``PFI_EXECUTOR=celery make run`` runs the CeleryExecutor like docker-compose.yaml: the same
    celery settings, the machine's Redis as broker (a database of the clone's own, never 0) and
    Airflow's metadata database as result backend."""
    env = compose["services"]["airflow-scheduler"]["environment"]
    root = Path("/work/a-clone")
    kwargs = dict(
        root=root,
        home=root / "var/airflow",
        database_url="postgresql://x@127.0.0.1:5432/pfi_airflow_0123abcd",
        ledger_url="postgresql://x@127.0.0.1:5432/pfi_ledger_0123abcd",
        port=8080,
        jwt_secret="s",
        fernet_key="k",
        settings_file=root / "var/demo/pfi.toml",
    )
    local, celery = airflow_env(**kwargs), airflow_env(**kwargs, executor="celery")
    assert local["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert not any(key.startswith("AIRFLOW__CELERY__") for key in local)
    assert celery["AIRFLOW__CORE__EXECUTOR"] == env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    db = celery_redis_db(root)
    assert 1 <= db <= 15
    assert celery["AIRFLOW__CELERY__BROKER_URL"] == f"redis://127.0.0.1:6379/{db}"
    assert celery["AIRFLOW__CELERY__RESULT_BACKEND"] == (
        "db+postgresql://x@127.0.0.1:5432/pfi_airflow_0123abcd"
    )
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert airflow_env(**kwargs, executor="celery", redis_db=7)["AIRFLOW__CELERY__BROKER_URL"] == (
        "redis://127.0.0.1:6379/7"
    )
    # compose's celery settings, no fewer (the demo adds the workers' concurrency)
    compose_keys = {key for key in env if key.startswith("AIRFLOW__CELERY__")}
    demo_keys = {key for key in celery if key.startswith("AIRFLOW__CELERY__")}
    assert compose_keys == demo_keys - {"AIRFLOW__CELERY__WORKER_CONCURRENCY"}
    # the rest as the LocalExecutor's
    executor = "AIRFLOW__CORE__EXECUTOR"
    assert {k: v for k, v in celery.items() if k in local and k != executor} == {
        k: v for k, v in local.items() if k != executor
    }
    with pytest.raises(ValueError):
        airflow_env(**kwargs, executor="kubernetes")
    # two clones: a queue each (most of the time by the hash; else claim_redis_db moves on)
    assert len({celery_redis_db(Path(f"/work/clone-{n}")) for n in range(40)}) > 5


def test_a_kept_port_another_stack_took_meanwhile_is_given_up(tmp_path, monkeypatch):
    """``make run`` keeps its ports across restarts, unless its own server is gone and another
    clone's took the port: two clones started together both kept 8080 once, and one's tasks
    talked to the other's api-server."""
    import os
    import socket

    from pfi_devkit import demo
    from pfi_devkit.demo import _port_of

    monkeypatch.setattr(demo, "PORT_CLAIMS", tmp_path / "claims")
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        candidates = range(taken, taken + 50)
        port_file, owner = tmp_path / "port", tmp_path / "api-server.pid"
        port_file.write_text(str(taken))

        owner.write_text(str(os.getpid()))  # our server runs: it is the one listening there
        assert _port_of(port_file, candidates, owner) == taken

        owner.write_text("999999999")  # ours is gone, someone else listens there now
        moved = _port_of(port_file, candidates, owner)
        assert moved != taken and port_file.read_text() == str(moved)


def test_two_clones_started_together_claim_different_ports(tmp_path, monkeypatch):
    """Neither listens yet when the other chooses: the machine-wide claim keeps them apart
    (both took 8080 once). A claim outlives its grace only while its clone keeps the port."""
    import os
    import socket

    from pfi_devkit import demo
    from pfi_devkit.demo import _port_of

    monkeypatch.setattr(demo, "PORT_CLAIMS", tmp_path / "claims")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        first = probe.getsockname()[1]
    candidates = range(first, first + 50)
    one, two = tmp_path / "one", tmp_path / "two"
    for clone in (one, two):
        clone.mkdir()
    gone = str(tmp_path / "no-such.pid")
    port_one = _port_of(one / "port", candidates, Path(gone))
    port_two = _port_of(two / "port", candidates, Path(gone))
    assert port_one != port_two
    assert _port_of(one / "port", candidates, Path(gone)) == port_one  # kept across runs

    claim = tmp_path / "claims" / str(port_one)
    old = claim.stat().st_mtime - 2 * demo.CLAIM_GRACE_SECONDS
    os.utime(claim, (old, old))
    three = tmp_path / "three"
    three.mkdir()
    only_that_one = range(port_one, port_one + 1)
    with pytest.raises(RuntimeError, match="no free port"):  # clone one still keeps it
        _port_of(three / "port", only_that_one, Path(gone))
    (one / "port").write_text(str(port_two + 1))  # clone one moved: its old claim is stale
    assert _port_of(three / "port", only_that_one, Path(gone)) == port_one
