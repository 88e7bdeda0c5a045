"""Base layer: what every other layer stands on, and nothing of the PFI's protocols or flows.

- :mod:`pfi.base.errors`: the one exception tree;
- :mod:`pfi.base.settings`: the site settings file, one loader, each section with its parser;
- :mod:`pfi.base.files`: atomic file writing;
- :mod:`pfi.base.connections`: one reader of Airflow-style Connections (URI or JSON, extras).

Imports point downwards only (``tests/unit/test_layers.py``): base imports no other layer.
"""
