"""The devkit: local partner servers for the demo and the tests — never used in production.

It sits beside the product (``pfi_devkit/`` at the clone's root, not under ``include/``): nothing
in ``include/``, ``plugins/`` or ``dags/`` imports it, and neither the venv's editable install nor
the product image carries it. Run it from the clone's root (``python -m pfi_devkit``).

Real servers on loopback, started by the project: PostgreSQL (``postgres``), a test PKI shaped
like IGC Santé (``pki``), Dovecot IMAP with TLS client certificates and an SMTP relay delivering
into it (``mail``), an MLLP peer playing the DPI (``mllp_peer``), an HTTPS SOAP endpoint playing
the DMP (``dmp``). ``stack`` starts and stops them all for ``python -m pfi_devkit up|down``;
``demo`` prepares ``make run`` and drops the project's own sample messages (``samples``).
"""
