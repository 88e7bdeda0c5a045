"""The settings sections: each owner registers its parser; ``pfi config check`` finds them all."""

import tomllib
from pathlib import Path

from pfi.base.settings import CORE_SECTIONS, load_settings, section_problems
from pfi.cli import register_all
from pfi_fixtures.site import write_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "pfi.example.toml"


def test_every_table_of_the_example_has_a_parser():
    sections = {s.key.split(".")[0] for s in register_all()}
    tables = set(tomllib.loads(EXAMPLE.read_text(encoding="utf-8")))
    assert tables - CORE_SECTIONS - sections == set()
    assert {"intake", "dmp", "mssante", "mllp_inlet"} <= sections


def test_each_section_is_owned_by_the_layer_that_reads_it():
    owners = {s.key: s.owner for s in register_all()}
    assert owners["dmp"].startswith("pfi.protocols.dmp.")
    assert owners["mssante"].startswith("pfi.protocols.mssante.")
    assert owners["intake"].startswith("pfi.flows.intake.")
    assert owners["mllp_inlet"].startswith("pfi.flows.inlet.")


def test_a_misspelt_section_is_a_problem(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8") + "\n[dmp_retry]\nfactor = 2\n"
    path = tmp_path / "pfi.toml"
    path.write_text(text, encoding="utf-8")
    problems = section_problems(load_settings(path), register_all())
    assert [p for p in problems if p.startswith("[dmp_retry]: unknown section")], problems


def test_a_parser_that_raises_a_plain_error_is_a_problem_not_a_crash(tmp_path):
    (tmp_path / "in").mkdir()
    extra = '[intake]\nmax_message_bytes = "big"\n[[mllp_inlet]]\nsource = "dpi"\n'
    path = write_settings(tmp_path, extra=extra)
    problems = section_problems(load_settings(path), register_all())
    assert any(p.startswith("[intake]") for p in problems), problems
    assert any(p.startswith("[[mllp_inlet]]") for p in problems), problems


def test_sections_unknown_to_the_caller_are_named(tmp_path):
    """The base layer checks what it is given: without the owners' parsers, their tables are
    not silently accepted."""
    problems = section_problems(load_settings(EXAMPLE), ())
    assert any(p.startswith("[dmp]: unknown section") for p in problems), problems
