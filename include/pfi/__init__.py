"""PFI — Plateforme d'Intermédiation for French hospitals: the domain package.

Plain Python, no Airflow import (a lint rule enforces it). The Airflow adapters live in
``plugins/pfi_airflow`` and the wiring in ``dags/``. Every step here also runs from the command
line: ``python -m pfi --help``.

Modules are nouns of the domain: ``settings`` (site configuration), ``ledger`` (what was received,
what was sent), ``drop`` (HL7 drop directories), ``hl7ack`` (HL7 acknowledgements), ``errors``.
"""

__version__ = "0.1.0"
