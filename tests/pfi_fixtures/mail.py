"""The test PKI and the local mail partner (Dovecot IMAP + SMTP relay), once per session.

``test_pki`` builds an IGC Santé-shaped PKI with a client certificate per application mailbox.
``mail_servers`` starts Dovecot and the SMTP relay on ephemeral ports with the mailboxes below;
use ``mail_servers.host`` / ``imaps_port`` / ``imap_port`` / ``smtp_port`` / ``smtps_port``,
``mail_servers.password_for(address)`` and ``pfi_devkit.mail.client_ssl_context(test_pki, cred)``.
The servers are shared by the session: tag what you send (a unique Subject) and search for it.
"""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

APPLICATION_MAILBOXES = ("pfi@ch-demo.mssante.test", "labo@ch-demo.mssante.test")
HUMAN_MAILBOXES = {
    "dr.test@ch-demo.mssante.test": "dr-test-devkit-password",
    # Recipients of the official ANS examples (PRT RCT, and the test INS patient's mailbox).
    "adam.hoda@test-ci-sis.mssante.fr": "adam-hoda-devkit-password",
    "279035121518989@patient.mssante.fr": "patient-devkit-password",
}


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory):
    from pfi_devkit.pki import build_test_pki

    return build_test_pki(tmp_path_factory.mktemp("pki"), APPLICATION_MAILBOXES)


@pytest.fixture(scope="session")
def mail_servers(test_pki) -> Iterator:
    from pfi_devkit.mail import MailServers

    # Not tmp_path: Dovecot's mail user must traverse the folders above the Maildirs, and pytest
    # keeps its base folder 0700 (resetting it at each session start, even a concurrent one).
    state = Path(tempfile.mkdtemp(prefix="pfi-mail-", dir="/tmp"))
    state.chmod(0o755)
    servers = MailServers(state, test_pki, APPLICATION_MAILBOXES, HUMAN_MAILBOXES)
    try:
        with servers:
            yield servers
    finally:
        shutil.rmtree(state, ignore_errors=True)
