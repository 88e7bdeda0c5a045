"""PFI — Plateforme d'Intermédiation for French hospitals: the domain package.

Plain Python, no Airflow import (a lint rule enforces it). Five layers, imports pointing
downwards only (``tests/unit/test_layers.py`` enforces it), bottom to top:

- :mod:`pfi.base`: errors, settings, atomic files, connections;
- :mod:`pfi.protocols`: HL7 v2, MLLP, INS, safe XML, CDA, XDS, XDM, the DMP and MSSanté clients
  (pure: no ledger, no settings file);
- :mod:`pfi.ledger`: the PostgreSQL ledger, all its SQL;
- :mod:`pfi.flows`: the orchestration (intake, delivery queue, DMP, MSSanté, ZAMs, operations);
- :mod:`pfi.cli`: the ``pfi`` command, one face beside the Airflow hooks (``plugins/pfi_airflow``)
  and the DAGs (``dags/``). Every step also runs from the command line: ``python -m pfi --help``.
"""

__version__ = "0.1.0"
