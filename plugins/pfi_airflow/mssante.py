"""Hook of an MSSanté application mailbox: SMTP and IMAP clients from ``pfi_mss_<mailbox>``.

The Airflow SMTP and IMAP providers cannot present a client certificate nor trust a private CA
(``ssl_context`` is "default" or "none"), which the MSSanté operators require (IGC Santé ORG
certificate, SC.MSS/CONF.12): this hook builds the project's own clients
(:mod:`pfi.protocols.mssante.smtp`, :mod:`pfi.protocols.mssante.imap`) with their own ``SSLContext``. The fields of
the Connection and their mapping, shared with ``pfi mss``, are :mod:`pfi.protocols.mssante.connection`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from pfi.protocols.mssante.imap import ImapClient, ImapEndpoint
    from pfi.protocols.mssante.smtp import SmtpClient, SmtpEndpoint


class MssanteHook(BaseHook):
    """One application mailbox (BAL applicative) of an MSSanté operator."""

    conn_name_attr = "mss_conn_id"
    default_conn_name = "pfi_mss_pfi"
    conn_type = "imap"
    hook_name = "PFI MSSanté mailbox"

    def __init__(
        self, mss_conn_id: str = default_conn_name, mailbox: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.mss_conn_id = mss_conn_id
        self.mailbox = mailbox
        self._endpoints: tuple[SmtpEndpoint, ImapEndpoint] | None = None

    def endpoints(self) -> tuple[SmtpEndpoint, ImapEndpoint]:
        if self._endpoints is None:
            from pfi.protocols.mssante.connection import endpoints
            from pfi_airflow.hooks import airflow_connection

            self._endpoints = endpoints(airflow_connection(self.mss_conn_id), self.mailbox)
        return self._endpoints

    def get_conn(self) -> SmtpClient:
        """The SMTP client (sessions open lazily, at the first mail)."""
        return self.smtp_client()

    def smtp_client(self) -> SmtpClient:
        from pfi.protocols.mssante.smtp import SmtpClient

        return SmtpClient(self.endpoints()[0])

    def imap_client(self) -> ImapClient:
        from pfi.protocols.mssante.imap import ImapClient

        return ImapClient(self.endpoints()[1])

    def test_connection(self) -> tuple[bool, str]:
        """Open an SMTP and an IMAP session with the mailbox's certificate (no mail sent)."""
        try:
            with self.smtp_client() as smtp:
                smtp.connect()
            with self.imap_client() as imap:
                imap.connect()
        except Exception as exc:  # reported to the UI's "Test connection" button
            return False, f"{type(exc).__name__}: {getattr(exc, 'code', '')} {exc}"
        return True, "SMTP and IMAP sessions opened with the mailbox's certificate"


def smtp_for(mailbox: Any) -> SmtpClient:
    """``pfi.flows.mssante`` factory: the SMTP client of a ``[[mailbox]]`` setting."""
    return MssanteHook(mailbox.connection_id, mailbox.address).smtp_client()


def imap_for(mailbox: Any) -> ImapClient:
    """``pfi.flows.mssante`` factory: the IMAP client of a ``[[mailbox]]`` setting."""
    return MssanteHook(mailbox.connection_id, mailbox.address).imap_client()
