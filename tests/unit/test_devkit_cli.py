"""``python -m pfi_devkit``: the devkit's own entry point, outside the product's ``pfi`` command."""

import subprocess
import sys
from pathlib import Path

import pytest

from pfi.cli import main as pfi_main
from pfi_devkit.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def test_status_of_a_stopped_devkit(tmp_path, capsys):
    assert main(["status", "--state", str(tmp_path)]) == 1
    assert capsys.readouterr().out == "devkit not running\n"


def test_runs_as_a_module_from_the_clone_root(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pfi_devkit", "status", "--state", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (1, "devkit not running\n")


def test_the_pfi_command_has_no_devkit_group(capsys):
    with pytest.raises(SystemExit) as exit_info:
        pfi_main(["devkit", "status"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'devkit'" in capsys.readouterr().err
