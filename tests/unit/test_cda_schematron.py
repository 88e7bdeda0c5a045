"""The schematron compiler of ``pfi_fixtures.schematron`` on a small schema of our own.

It must implement the ISO features the CI-SIS "Structuration minimale" schematron uses:
``include``, abstract rules and ``extends``, ``let``, first matching rule per pattern,
``assert``/``report`` with ``value-of`` and ``name``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("saxonche")

MAIN = """<schema xmlns="http://purl.oclc.org/dsdl/schematron" queryBinding="xslt2">
  <ns uri="urn:hl7-org:v3" prefix="hl7"/>
  <pattern>
    <include href="abstract.sch"/>
  </pattern>
  <pattern id="p1">
    <rule context="hl7:id[@root='1.2.3']">
      <extends rule="ID"/>
      <assert role="error" test="@extension">special id needs an extension</assert>
    </rule>
    <rule context="hl7:id">
      <extends rule="ID"/>
    </rule>
  </pattern>
  <pattern id="p2">
    <rule context="hl7:doc">
      <let name="n" value="count(hl7:id)"/>
      <report role="warning" test="$n &gt; 2">too many ids: <value-of select="$n"/> in <name/></report>
      <assert test="doc('vocab.xml')/codes/code/@value = hl7:code/@code">code {x} not in vocab</assert>
    </rule>
  </pattern>
</schema>"""

ABSTRACT = """<rule xmlns="http://purl.oclc.org/dsdl/schematron" abstract="true" id="ID">
  <let name="oid" value="'^[0-2](\\.(0|[1-9]\\d*))*$'"/>
  <assert role="error" test="matches(@root, $oid)">root <value-of select="@root"/> is no OID</assert>
</rule>"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from pfi_fixtures.schematron import compile_schematron  # the plugin module, imported late

    src = tmp_path_factory.mktemp("src")
    (src / "main.sch").write_text(MAIN)
    (src / "abstract.sch").write_text(ABSTRACT)
    work = tmp_path_factory.mktemp("work")
    (work / "vocab.xml").write_text('<codes><code value="A"/></codes>')
    return compile_schematron(src / "main.sch", work, {})


def doc(*ids: str, code: str = "A") -> bytes:
    body = "".join(ids)
    return f'<doc xmlns="urn:hl7-org:v3">{body}<code code="{code}"/></doc>'.encode()


def test_valid_document_has_no_finding(toy):
    assert toy.validate(doc('<id root="1.2.3" extension="x"/>', '<id root="1.2"/>')) == []


def test_first_matching_rule_and_extends(toy):
    failed = toy.failed(doc('<id root="1.2.3"/>', '<id root="abc"/>'))
    texts = sorted(f.text for f in failed)
    assert texts == ["root abc is no OID", "special id needs an extension"]
    assert all(f.role == "error" and f.location.startswith("/Q{urn:hl7-org:v3}doc") for f in failed)


def test_report_let_value_of_name_and_doc(toy):
    findings = toy.validate(doc('<id root="1"/>', '<id root="2"/>', '<id root="3"/>', code="B"))
    kinds = {(f.kind, f.role, f.text) for f in findings}
    assert ("successful-report", "warning", "too many ids: 3 in doc") in kinds
    assert ("failed-assert", "error", "code {x} not in vocab") in kinds
