"""The CI-SIS "Structuration minimale" schematron, compiled once per test session (saxonche).

The kit (``../shared/validation/ans-cda``, TestContenuCDA @ 7cd489b39368) ships the ISO
schematron ``schematrons/profils/structurationMinimale/ASIP-STRUCT-MIN-StrucMin.sch``
(``queryBinding="xslt2"``) but not the ISO skeleton stylesheets of its official pipeline
(``compilverif.bat``: include → abstract expansion → ``iso_svrl_for_xslt2``). This module does
the same three steps itself, for the subset of ISO schematron the file uses:

1. **include**: ``<include href>`` replaced by the referenced element (recursively);
2. **abstract rules**: ``<rule abstract="true" id>`` are not run on their own; a rule's
   ``<extends rule>`` runs the abstract rule's ``let``/``assert``/``report`` (and its own
   ``extends``) on the same context node — written once as a named template and called;
3. **to XSLT 3**: one mode per pattern; in a pattern each node is handled by the first rule
   whose ``context`` matches it (template priority in document order); ``let`` → variables
   (evaluated before the tests, as ISO requires), ``assert`` failing → ``failed-assert``,
   ``report`` true → ``successful-report``, messages with ``value-of``/``name``.

The result is an SVRL-shaped report (``svrl:failed-assert`` with ``@role``, ``@location``,
``@test``, ``svrl:text``). It is compiled with **saxonche** (Saxon-HE, XSLT 3.0) in a temporary
folder holding the kit's value sets (``include/voc-*.xml``, read with ``doc()``) plus the one the
kit snapshot lacks, JDV_J07 (``voc-1.2.250.1.213.1.1.5.471-DYNAMIC.xml``), derived from
``jeuxDeValeurs/JDV_J07_XdsTypeCode_CISIS.xml`` (validation README).

Use the session fixture ``strucmin`` (a :class:`Schematron`): ``strucmin.failed(cda_bytes)``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from lxml import etree

SCH = "http://purl.oclc.org/dsdl/schematron"
XSL = "http://www.w3.org/1999/XSL/Transform"
SVRL = "http://purl.oclc.org/dsdl/svrl"
_S = "{" + SCH + "}"
STRUCMIN = (
    "validation/ans-cda/schematrons/profils/structurationMinimale/ASIP-STRUCT-MIN-StrucMin.sch"
)
JDV_J07 = "validation/ans-cda/jeuxDeValeurs/JDV_J07_XdsTypeCode_CISIS.xml"


# --- step 1 and 2: include, abstract rules --------------------------------------------------------


def _resolve_includes(el: etree._Element, base: Path) -> None:
    for inc in list(el.iter(_S + "include")):
        target = (base / inc.get("href")).resolve()
        included = etree.parse(str(target)).getroot()
        _resolve_includes(included, target.parent)
        parent = inc.getparent()
        parent.replace(inc, included)


def _abstract_name(rule_id: str) -> str:
    return "abstract-" + "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in rule_id)


def _rule_body(rule: etree._Element, abstract: dict[str, etree._Element]) -> str:
    """A rule's lets (first, as ISO evaluates them before the tests), then in document order its
    assertions, reports and ``extends`` (a call of the abstract rule's named template, which
    runs with the same context node)."""
    lets, tests = [], []
    for child in rule:
        if not isinstance(child.tag, str):
            continue
        if child.tag == _S + "let":
            lets.append(_variable(child))
        elif child.tag == _S + "extends":
            name = child.get("rule")
            if name not in abstract:
                raise ValueError(f"schematron: extends an unknown abstract rule {name}")
            tests.append(f'<xsl:call-template name="{_abstract_name(name)}"/>')
        elif child.tag == _S + "assert":
            tests.append(
                f'<xsl:if test="not(boolean({_attr_expr(child.get("test"))}))">'
                f"{_result('failed-assert', child)}</xsl:if>"
            )
        elif child.tag == _S + "report":
            tests.append(
                f"<xsl:if test={quoteattr(child.get('test'))}>"
                f"{_result('successful-report', child)}</xsl:if>"
            )
    return "".join(lets) + "".join(tests)


def _used_abstract_rules(schema: etree._Element, abstract: dict[str, etree._Element]) -> list:
    """Ids of the abstract rules reached through ``extends`` from a concrete rule (the kit's
    datatype library has unused ones that do not compile on their own)."""
    pending = [
        e.get("rule")
        for r in schema.iter(_S + "rule")
        if r.get("abstract") != "true"
        for e in r.findall(_S + "extends")
    ]
    used: list[str] = []
    while pending:
        name = pending.pop()
        if name in used:
            continue
        used.append(name)
        pending.extend(e.get("rule") for e in abstract[name].findall(_S + "extends"))
    return sorted(used)


def _variable(let: etree._Element) -> str:
    return f"<xsl:variable name={quoteattr(let.get('name'))} select={quoteattr(let.get('value'))}/>"


# --- step 3: to XSLT ------------------------------------------------------------------------------


def _message(el: etree._Element) -> str:
    parts = [_text(el.text)]
    for child in el:
        if child.tag == _S + "value-of":
            parts.append(f"<xsl:value-of select={quoteattr(child.get('select'))}/>")
        elif child.tag == _S + "name":
            path = child.get("path", ".")
            parts.append(f"<xsl:value-of select={quoteattr(f'name({path})')}/>")
        elif isinstance(child.tag, str):
            parts.append(_message(child))
        parts.append(_text(child.tail))
    return "".join(parts)


def _text(value: str | None) -> str:
    if not value:
        return ""
    escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<xsl:text>{escaped}</xsl:text>"


def _result(kind: str, el: etree._Element) -> str:
    attrs = (
        f" test={quoteattr(_avt(el.get('test')))} role={quoteattr(_avt(el.get('role') or 'error'))}"
        f" id={quoteattr(_avt(el.get('id') or ''))}"
    )
    return (
        f'<svrl:{kind}{attrs} location="{{path()}}">'
        f"<svrl:text>{_message(el)}</svrl:text></svrl:{kind}>"
    )


def to_xslt(schema: etree._Element) -> str:
    """Generate the XSLT 3 validator of an include-resolved schematron schema."""
    namespaces = {
        ns.get("prefix"): ns.get("uri")
        for ns in schema.iter(_S + "ns")
        if ns.get("prefix") not in ("xml",)
    }
    abstract = {r.get("id"): r for r in schema.iter(_S + "rule") if r.get("abstract") == "true"}
    ns_decl = " ".join(f"xmlns:{p}={quoteattr(u)}" for p, u in sorted(namespaces.items()))
    modes: list[str] = []
    globals_ = [_variable(let) for let in schema.findall(_S + "let")]
    # abstract rules: one named template each, called by the rules that extend them (an
    # abstract rule is written once instead of being copied into each of its ~700 users)
    body: list[str] = [
        f'<xsl:template name="{_abstract_name(rule_id)}">{_rule_body(abstract[rule_id], abstract)}'
        "</xsl:template>"
        for rule_id in _used_abstract_rules(schema, abstract)
    ]
    for index, pattern in enumerate(schema.iter(_S + "pattern")):
        mode = f"M{index}"
        rules = [r for r in pattern.iter(_S + "rule") if r.get("abstract") != "true"]
        if not rules:
            continue
        modes.append(mode)
        pattern_lets = "".join(_variable(let) for let in pattern.findall(_S + "let"))
        for position, rule in enumerate(rules):
            body.append(
                f'<xsl:template match={quoteattr(rule.get("context"))} priority="{10000 - position}"'
                f' mode="{mode}">{pattern_lets}{_rule_body(rule, abstract)}'
                f'<xsl:apply-templates select="@*|node()" mode="{mode}"/></xsl:template>'
            )
        body.append(
            f'<xsl:template match="@*|node()" priority="-10" mode="{mode}">'
            f'<xsl:apply-templates select="@*|node()" mode="{mode}"/></xsl:template>'
            f'<xsl:template match="text()" priority="-5" mode="{mode}"/>'
        )
    root = "".join(f'<xsl:apply-templates select="/" mode="{m}"/>' for m in modes)
    return (
        f'<xsl:stylesheet version="3.0" xmlns:xsl="{XSL}" xmlns:svrl="{SVRL}" {ns_decl}>'
        f"{''.join(globals_)}"
        f'<xsl:template match="/"><svrl:schematron-output>{root}</svrl:schematron-output>'
        f"</xsl:template>{''.join(body)}</xsl:stylesheet>"
    )


def _avt(value: str) -> str:
    """A literal text inside an attribute value template (braces doubled)."""
    return value.replace("{", "{{").replace("}", "}}")


def _attr_expr(test: str) -> str:
    return (
        test.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    )


# --- value sets -----------------------------------------------------------------------------------


def jdv_j07_voc(svs: Path) -> bytes:
    """The ART-DECOR ``voc-…471-DYNAMIC.xml`` the schematron reads, from the IHE SVS JDV_J07."""
    source = etree.parse(str(svs)).getroot()
    ns = {"svs": "urn:ihe:iti:svs:2008"}
    value_set = source.find("svs:ValueSet", ns)
    out = etree.Element("valueSets")
    vs = etree.SubElement(
        out,
        "valueSet",
        id=value_set.get("id"),
        name="JDV_J07_XdsTypeCode_CISIS",
        displayName=value_set.get("displayName", ""),
    )
    concepts = etree.SubElement(vs, "conceptList")
    for concept in value_set.iterfind("svs:ConceptList/svs:Concept", ns):
        etree.SubElement(
            concepts,
            "concept",
            code=concept.get("code"),
            codeSystem=concept.get("codeSystem"),
            displayName=concept.get("displayName", ""),
        )
    return etree.tostring(out, xml_declaration=True, encoding="UTF-8")


# --- the validator --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    kind: str  # failed-assert | successful-report
    role: str
    location: str
    text: str


class Schematron:
    """A compiled schematron: ``validate(xml) -> [Finding]``, ``failed(xml)`` (asserts only)."""

    def __init__(self, processor, executable) -> None:
        self._processor = processor
        self._executable = executable

    def validate(self, data: bytes) -> list[Finding]:
        text = etree.tostring(etree.fromstring(data), encoding="unicode")  # any encoding, BOM
        node = self._processor.parse_xml(xml_text=text)
        report = self._executable.transform_to_string(xdm_node=node)
        root = etree.fromstring(report.encode("utf-8"))
        return [
            Finding(
                kind=etree.QName(el).localname,
                role=el.get("role", ""),
                location=el.get("location", ""),
                text=" ".join("".join(el.itertext()).split()),
            )
            for el in root
        ]

    def failed(self, data: bytes) -> list[Finding]:
        return [f for f in self.validate(data) if f.kind == "failed-assert"]


def compile_schematron(sch: Path, work: Path, extra_voc: dict[str, bytes]) -> Schematron:
    """Expand ``sch``, write its XSLT beside a copy of its ``include/voc-*.xml``, compile it."""
    from saxonche import PySaxonProcessor

    tree = etree.parse(str(sch))
    schema = tree.getroot()
    _resolve_includes(schema, sch.parent)
    include = work / "include"
    include.mkdir(parents=True, exist_ok=True)
    for voc in (sch.parent / "include").glob("voc-*.xml"):
        shutil.copy(voc, include / voc.name)
    for name, data in extra_voc.items():
        (include / name).write_bytes(data)
    xsl = work / (sch.stem + ".xsl")
    xsl.write_text(to_xslt(schema), encoding="utf-8")
    processor = PySaxonProcessor(license=False)
    compiler = processor.new_xslt30_processor()
    executable = compiler.compile_stylesheet(stylesheet_file=str(xsl))
    return Schematron(processor, executable)


@pytest.fixture(scope="session")
def strucmin(shared_dir: Path, tmp_path_factory) -> Schematron:
    """The "Structuration minimale" schematron, compiled once for the whole session."""
    pytest.importorskip("saxonche", reason="saxonche (Saxon-HE) runs the XSLT 2 schematron")
    work = tmp_path_factory.mktemp("strucmin")
    voc = {"voc-1.2.250.1.213.1.1.5.471-DYNAMIC.xml": jdv_j07_voc(shared_dir / JDV_J07)}
    return compile_schematron(shared_dir / STRUCMIN, work, voc)
