"""Sub-command groups of the ``pfi`` command, one module per group (``pfi hl7 …``, ``pfi dmp …``).

Each module here defines ``register(groups)``, which adds its group to the ``argparse``
sub-parsers given by :func:`pfi.cli.build_parser`, and handlers ``(args) -> exit code``. Modules
are discovered, so adding a group never touches :mod:`pfi.cli`. Heavy imports (lxml, signxml…)
belong inside the handlers, not at module level: ``pfi --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def register_all(groups: argparse._SubParsersAction) -> None:
    """Let every module of this package add its group, in name order (stable ``--help``)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{info.name}").register(groups)
