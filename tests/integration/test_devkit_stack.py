"""``python -m pfi_devkit up|status|down``: the demo's partner servers in one detached process."""

import json
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

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
        # revocation is checked on the demo's channels as on a site's (the PKI's CRLs)
        mailbox = json.loads(connections["pfi_mss_pfi"])
        assert (
            dmp["extra"]["crl_file"] == mailbox["extra"]["crl_file"] == first["pki"]["crl_bundle"]
        )
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


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def _until_port(port: int, *, accepts: bool, timeout: float = 15.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while _accepts(port) != accepts:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _relay_answer(info: dict) -> int:
    """The SMTP code a human mailbox's mail to itself gets at the relay (250 when delivered)."""
    import smtplib
    import ssl

    address = "dr.test@ch-demo.mssante.test"
    mail = info["mail"]
    context = ssl.create_default_context(cafile=mail["ca_bundle"])
    with smtplib.SMTP_SSL(mail["host"], mail["smtps_port"], context=context, timeout=30) as smtp:
        smtp.login(address, info["human_mailboxes"][address])
        try:
            smtp.sendmail(address, [address], b"Subject: outage\r\n\r\ntest\r\n")
        except smtplib.SMTPDataError as error:
            return error.smtp_code
        except smtplib.SMTPRecipientsRefused as error:
            return error.recipients[address][0]
    return 250


def test_an_outage_takes_each_partner_down_then_back_on_the_same_port(state, capsys):
    """``python -m pfi_devkit outage PARTNER SECONDS`` (what ``make chaos`` does): the partner's
    port refuses connections for that long, then accepts again on the same port."""
    info = stack.up(state)
    try:
        connections = json.loads((state / stack.CONNECTIONS_FILE).read_text())
        ports = {
            "dmp": urlsplit(json.loads(connections["pfi_dmp"])["extra"]["repository_url"]).port,
            "smtp": info["mail"]["smtps_port"],
            "imap": info["mail"]["imaps_port"],
            "dpi": json.loads(connections["pfi_dpi_mllp"])["port"],
        }
        for partner, port in ports.items():
            assert _accepts(port), partner
            assert main(["outage", partner, "60", "--state", str(state)]) == 0
            assert _until_port(port, accepts=False), f"{partner} still up"
            if partner == "imap":  # the mail store is down: the relay defers, never refuses
                assert _relay_answer(info) == 451
            assert main(["outage", partner, "0", "--state", str(state)]) == 0
            assert _until_port(port, accepts=True), f"{partner} not back on {port}"
        with pytest.raises(ValueError):
            stack.outage(state, "ldap", 5)
    finally:
        stack.down(state)
    capsys.readouterr()
