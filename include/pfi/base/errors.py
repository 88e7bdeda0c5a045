"""The PFI exception tree.

::

    PfiError
     ├── InvalidInput         the input is wrong: quarantine it, answer (ACK AE/AR, error mail),
     │                        record it, never retry
     ├── RefusedByPartner     the partner (DMP, MSSanté operator, DPI) refused it: record, answer,
     │                        never retry
     ├── TransientError       the partner is unreachable or busy: defer and retry later
     └── ConfigurationError   the site's settings or connections are incomplete

Every error carries a short **code** (from the CI-SIS volets' tables where one exists, else one of
ours) and a message. Messages never contain patient data (NIR/INS, names, document content): the
task layer logs them, shows them in the UI and puts them into acknowledgements.
"""

from __future__ import annotations

import traceback
from pathlib import Path


class PfiError(Exception):
    """Base of every error the PFI raises on purpose."""

    code: str = "PFI"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def reason(self) -> str:
        """The message, as written into the ledger and the acknowledgements."""
        return str(self.args[0]) if self.args else ""


class InvalidInput(PfiError):
    """The received file, message, mail or document is malformed or breaks a rule."""

    code = "INVALID"


class RefusedByPartner(PfiError):
    """A partner answered with a definitive refusal."""

    code = "REFUSED"


class TransientError(PfiError):
    """A partner could not be reached or asked to retry later."""

    code = "TRANSIENT"


class ConfigurationError(PfiError):
    """The site's settings or Airflow Connections are missing or inconsistent."""

    code = "CONFIG"


def unexpected_summary(exc: BaseException) -> str:
    """``KeyError at pfi/intake.py:712``: what an unexpected exception was and where it was
    raised, without its message — a bug's or a library's message may quote the data it choked
    on (``invalid literal for int(): 'DUPONT'``), so it is neither chained nor logged."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    parts = Path(last.filename).parts
    where = "/".join(parts[parts.index("pfi") :] if "pfi" in parts else parts[-1:])
    return f"{type(exc).__name__} at {where}:{last.lineno}"


__all__ = [
    "ConfigurationError",
    "InvalidInput",
    "PfiError",
    "RefusedByPartner",
    "TransientError",
    "unexpected_summary",
]
