"""Every ``pfi`` command reading a file names a missing one as a usage error (exit 2), no traceback."""

import pytest

from pfi.cli import main

COMMANDS = [
    ["hl7", "inspect", "{missing}"],
    ["cda", "inspect", "{missing}"],
    ["xdm", "inspect", "{missing}"],
    ["xdm", "pack", "{missing}", "-o", "{tmp}/out.zip"],
    ["dmp", "submit", "{missing}", "--dry-run"],
    ["mss", "compose", "{missing}", "--dry-run", "-o", "{tmp}"],
    ["ins", "check", "--ins", "279035121518989", "--cda", "{missing}"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_missing_input_file_is_a_usage_error(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PFI_SETTINGS", raising=False)
    missing = tmp_path / "nope.hl7"
    args = [a.format(missing=missing, tmp=tmp_path) for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{missing} does not exist" in err and "Traceback" not in err


def test_a_folder_is_not_a_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["cda", "inspect", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"{tmp_path} is a folder" in capsys.readouterr().err
