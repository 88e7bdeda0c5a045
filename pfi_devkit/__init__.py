"""Local partner servers for the demo and the tests — never used in production.

Real servers on loopback, started by the project: PostgreSQL (``postgres``), a test PKI shaped
like IGC Santé (``pki``), Dovecot IMAP with TLS client certificates and an SMTP relay delivering
into it (``mail``), an MLLP peer playing the DPI (``mllp_peer``), an HTTPS SOAP endpoint playing
the DMP (``dmp_endpoint``). ``stack`` starts and stops them all for ``pfi devkit up|down``.
"""
