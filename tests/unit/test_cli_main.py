"""The ``pfi`` entry point itself: which ledger it opens, and output piped into ``head``."""

import argparse

import pytest

from pfi import cli
from pfi_fixtures.site import write_settings


def test_the_ledger_is_the_connection_the_settings_name(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    settings = write_settings(tmp_path, extra='[connections]\nledger = "site_ledger"\n')
    monkeypatch.delenv("PFI_LEDGER_URL", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_PFI_LEDGER", "postgresql://x@default/pfi_ledger")
    monkeypatch.setenv("AIRFLOW_CONN_SITE_LEDGER", "postgres://x@site/site_ledger")
    args = argparse.Namespace(url=None, settings=str(settings))

    assert cli.ledger_url(args) == "postgresql+psycopg2://x@site:5432/site_ledger"
    monkeypatch.setenv("AIRFLOW_CONN_SITE_LEDGER", '{"conn_type": "postgres", "host": "site"}')
    assert cli.ledger_url(args) == "postgresql+psycopg2://site:5432/pfi_ledger"  # JSON form too

    monkeypatch.delenv("AIRFLOW_CONN_SITE_LEDGER")
    with pytest.raises(cli.ConfigurationError, match="AIRFLOW_CONN_SITE_LEDGER"):
        cli.ledger_url(args)


def test_output_cut_short_by_a_closed_pipe_ends_quietly(monkeypatch, capsys):
    def closed_pipe(args):
        raise BrokenPipeError

    monkeypatch.setattr(cli, "cmd_config_check", closed_pipe)
    assert cli.main(["config", "check"]) == 0
    assert capsys.readouterr().err == ""
