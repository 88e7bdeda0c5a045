"""Where the test inputs are: the project's own samples, and the official ANS material.

- ``samples_dir``: the project's sample messages (:mod:`pfi_devkit.samples`: MDM initial,
  replacement, deletion, ORU; N1 CDA from the project's generator, official ANS *test*
  identities), written once per session. Tests that need *a* valid message to exercise a flow
  (intake, DMP, MSSanté, DAG runs) use them, so that they run on any clone.
- ``shared_dir`` / ``fixtures_dir``: the official ANS examples and validation kits
  (``fixtures/``, ``validation/``), in ``$PFI_SHARED_DIR``, else ``../shared`` beside the clone.
  CI has them; a clone may not: the tests whose point is the official material are then
  skipped, with one line saying which folder to provide.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PFI_SHARED_DIR") or ROOT.parent / "shared")
MISSING_SHARED = (
    f"official ANS samples not found at {SHARED}: "
    "set PFI_SHARED_DIR to the folder holding fixtures/ and validation/"
)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "fixtures").is_dir():
        pytest.skip(MISSING_SHARED)
    return SHARED


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir: Path) -> Path:
    return shared_dir / "fixtures"


@pytest.fixture(scope="session")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's sample messages (``samples_dir / MDM_INIT``… with the names of
    :mod:`pfi_devkit.samples`), written once per session."""
    from pfi_devkit.samples import write_samples

    folder = tmp_path_factory.mktemp("samples")
    write_samples(folder)
    return folder


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """One line per reason at the end of the run: how many tests each reason skipped (the
    missing official material says which folder to provide). ``-r`` leaves skips out
    (``pyproject.toml``), so a clone without ``../shared`` does not print hundreds of them."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{count} tests skipped: {reason}")
