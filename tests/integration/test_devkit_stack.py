"""``python -m pfi_devkit up|status|down``: the demo's partner servers in one detached process."""

import json
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from pfi_devkit import stack
from pfi_devkit.__main__ import main

pytestmark = pytest.mark.integration


@pytest.fixture
def state():
    # Not under pytest's 0700 temp root: Dovecot's unprivileged users must enter the folder.
    folder = Path(tempfile.mkdtemp(prefix="pfi-devkit-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_up_is_idempotent_and_down_stops_everything(state, capsys):
    first = stack.up(state)
    try:
        assert stack.up(state)["pid"] == first["pid"]  # already running: left alone
        assert main(["status", "--state", str(state)]) == 0
        connections = json.loads((state / stack.CONNECTIONS_FILE).read_text())
        assert set(connections) == {"pfi_mss_pfi", "pfi_dpi_mllp", "pfi_dmp"}
        dpi = json.loads(connections["pfi_dpi_mllp"])
        with socket.create_connection((dpi["host"], dpi["port"]), timeout=5):
            pass
        dmp = json.loads(connections["pfi_dmp"])
        assert dmp["extra"]["repository_url"].startswith("https://127.0.0.1:")
        # the demo samples' recipients have mailboxes, so their mails are delivered, not bounced
        humans = first["human_mailboxes"]
        assert "adam.hoda@test-ci-sis.mssante.fr" in humans
        assert any(address.endswith("@patient.mssante.fr") for address in humans)
        # status also says what arrived so far (nothing yet): stored submissions, mails, messages
        arrived = stack.status(state)["arrived"]
        assert arrived["dmp_accepted"] == [] and arrived["dpi_received"] == 0
        assert set(arrived["mails"]) == {"pfi@ch-demo.mssante.test", *humans}
        assert set(arrived["mails"].values()) == {0}
    finally:
        stack.down(state)
    assert stack.status(state) is None
    with pytest.raises(OSError):
        socket.create_connection((dpi["host"], dpi["port"]), timeout=2).close()
    capsys.readouterr()
    assert main(["status", "--state", str(state)]) == 1


def test_up_after_a_kill_stops_the_orphaned_dovecot(state):
    import os
    import signal
    import time

    first = stack.up(state)
    dovecot = first["mail"]["dovecot_pid"]
    os.kill(first["pid"], signal.SIGKILL)  # Dovecot survives its parent
    for _ in range(50):
        if stack.status(state) is None:
            break
        time.sleep(0.1)
    second = stack.up(state)
    try:
        assert second["pid"] != first["pid"]
        for _ in range(50):
            if not stack._alive(dovecot):
                break
            time.sleep(0.1)
        assert not stack._alive(dovecot)
    finally:
        stack.down(state)
