"""``pfi cda`` and ``pfi xdm`` commands, run in-process through :func:`pfi.cli.main`.

Samples: ../shared/fixtures/ans-cda-examples and the HL7 v1.0 LPS CDA (MANIFEST.md); settings:
``config/pfi.example.toml``. Patient data must only be printed with ``--show-identity``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pfi.cli import main
from pfi.protocols import xds
from pfi.protocols.cda import check_header, pdf_of, read_cda
from pfi.protocols.hl7v2.model import MetaFlags
from pfi.protocols.xdm import read_xdm

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "config/pfi.example.toml"
INS = "279035121518989"
N1 = "ans-cda-examples/IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml"
DEFECTIVE = "ans-hl7v2-exemples/Volets/Trans_LPS_CDA_MSSanté/V1.0/Transmission initiale MDM/CR_Radio_CDAN1_v1.XML"


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().out


def test_inspect_hides_identity_unless_asked(capsys, fixtures_dir):
    code, out = run(capsys, "cda", "inspect", fixtures_dir / N1)
    assert code == 0
    assert "classCode': '31'" in out and "header OK" in out and "pdf_bytes" in out
    assert INS not in out and "PAT-TROIS" not in out
    code, out = run(capsys, "cda", "inspect", fixtures_dir / N1, "--show-identity", "--json")
    info = json.loads(out)
    assert info["patient"]["ins"] == f"1.2.250.1.213.1.4.10^{INS}"
    assert info["replaces"] == "90E1C8EC-F951-4B26-A305-A34848818DD6"


def test_inspect_reports_defects_with_exit_1(capsys, fixtures_dir):
    code, out = run(capsys, "cda", "inspect", fixtures_dir / DEFECTIVE)
    assert code == 1
    assert "CDA_NO_SETID" in out
    assert INS not in out


def test_inspect_refuses_non_cda(capsys, tmp_path):
    path = tmp_path / "x.xml"
    path.write_bytes(b"<not-cda/>")
    assert main(["cda", "inspect", str(path)]) == 1
    assert "CDA_NOT_CDA" in capsys.readouterr().err


PATIENT = [
    "--ins", INS, "--birth-name", "PAT-TROIS", "--first-given", "DOMINIQUE",
    "--given-names", "DOMINIQUE MARIE-LOUISE", "--birth-date", "1979-03-28", "--sex", "F",
    "--birthplace", "51215",
]  # fmt: skip
AUTHOR = ["--author-id", "801234567897", "--author-family", "DUPONT", "--author-given", "Jean"]


def test_from_pdf_with_settings_then_pack_and_inspect(capsys, fixtures_dir, tmp_path, strucmin):
    pdf = tmp_path / "cr.pdf"
    pdf.write_bytes(pdf_of((fixtures_dir / N1).read_bytes()))
    out_cda = tmp_path / "cr.xml"
    code, out = run(
        capsys, "--settings", SETTINGS, "cda", "from-pdf", pdf, "-o", out_cda,
        "--type", "cr-operatoire", *PATIENT, *AUTHOR, "--date", "2024-01-05T11:30:00+01:00",
        "--finess-geo", "010000040",
    )  # fmt: skip
    assert code == 0, out
    cda = read_cda(out_cda.read_bytes())
    assert check_header(cda) == []
    assert strucmin.failed(out_cda.read_bytes()) == []
    assert cda.code.code == "34874-8"
    assert cda.patient.ins.root == "1.2.250.1.213.1.4.10"  # ins_environment = test
    assert cda.custodian.ids[0].extension == "1010000040"
    assert pdf_of(cda) == pdf.read_bytes()

    archive = tmp_path / "IHE_XDM.ZIP"
    code, out = run(
        capsys, "--settings", SETTINGS, "xdm", "pack", out_cda, "-o", archive,
        "--flags", "MASQUE_PS,INVISIBLE_PATIENT", "--recipient", "dr.x@hopital.mssante.fr",
        "--patient-class", "O",
    )  # fmt: skip
    assert code == 0, out
    package = read_xdm(archive.read_bytes())
    (doc,) = package.documents
    assert doc.content == out_cda.read_bytes()
    assert [c.code for c in doc.entry.confidentiality_codes] == [
        "N",
        "MASQUE_PS",
        "INVISIBLE_PATIENT",
    ]
    flags = MetaFlags(masque_ps=True, invisible_patient=True)
    expected = xds.document_entry(cda, entry_id="Document01", flags=flags)
    assert replace(doc.entry, hash=None, size=None, uri=None) == expected
    ss = package.submission_set
    assert ss.source_id == "1.2.250.1.71.4.2.2"
    assert ss.content_type_code.code == "07"
    assert ss.authors[0].institutions[0].endswith("^IDNST^^^1010000032")

    code, out = run(capsys, "xdm", "inspect", archive)
    assert code == 0 and "package OK (1 document(s))" in out
    assert INS not in out and "dr.x@" not in out
    code, out = run(capsys, "xdm", "inspect", archive, "--show-identity", "--json")
    info = json.loads(out)
    assert info["patient_id"].startswith(INS)
    assert info["submission_set"]["recipients"] == ["||^^Internet^dr.x@hopital.mssante.fr"]


def test_pack_replacement_without_settings(capsys, fixtures_dir, tmp_path):
    archive = tmp_path / "x.zip"
    code, _ = run(
        capsys, "xdm", "pack", fixtures_dir / N1, "-o", archive, "--source-id", "1.2.3.4",
        "--structure-id", "1010000032", "--structure-name", "CH",
    )  # fmt: skip
    assert code == 0
    package = read_xdm(archive.read_bytes())
    assert package.replacements() == [("Document01", "90E1C8EC-F951-4B26-A305-A34848818DD6")]


def test_bad_inputs(capsys, fixtures_dir, tmp_path):
    archive = tmp_path / "x.zip"
    assert main(["xdm", "pack", str(fixtures_dir / N1), "-o", str(archive), "--flags", "NOPE",
                 "--source-id", "1.2", "--structure-id", "1", "--structure-name", "x"]) == 1  # fmt: skip
    assert "XDM_BAD_INPUT" in capsys.readouterr().err
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["xdm", "inspect", str(bad)]) == 1
    assert "XDM_NOT_ZIP" in capsys.readouterr().err
    pdf = tmp_path / "x.pdf"
    pdf.write_bytes(b"%PDF-1.4 tiny")
    with pytest.raises(SystemExit):
        main(["cda", "from-pdf", str(pdf), "-o", str(tmp_path / "o.xml")])  # missing options
    capsys.readouterr()
    code = main(["cda", "from-pdf", str(pdf), "-o", str(tmp_path / "o.xml"), "--type", "nope",
                 *PATIENT, *AUTHOR, "--structure-id", "1", "--structure-name", "x",
                 "--ins-oid", "1.2.250.1.213.1.4.10"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "CDA_BAD_INPUT" in err
    assert "unknown document type 'nope'" in err and "pfi cda types" in err
    with pytest.raises(SystemExit):
        main(["cda", "from-pdf", "--help"])
    # There is no --list-types option: the help names the command that lists them.
    assert "--list-types" not in capsys.readouterr().out


def test_inspect_an_hl7_file_shows_each_cda(capsys, fixtures_dir):
    rel = (
        "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM/"
        "Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7"
    )
    code, out = run(capsys, "cda", "inspect", fixtures_dir / rel)
    assert code == 1  # MANIFEST.md: this payload lacks setId and uses the SP qualifier
    assert "== message 1 OBX" in out
    assert "CDA_NO_SETID" in out and "CDA_NAME_QUALIFIER" in out
    assert INS not in out and "PAT-TROIS" not in out


def test_xdm_inspect_extract(capsys, fixtures_dir, tmp_path):
    archive = tmp_path / "x.zip"
    run(
        capsys, "xdm", "pack", fixtures_dir / N1, fixtures_dir / "ans-cda-examples/LDL-SES_2022.01.xml",
        "-o", archive, "--source-id", "1.2.3.4", "--structure-id", "1010000032",
        "--structure-name", "CH",
    )  # fmt: skip
    out_dir = tmp_path / "out"
    code, out = run(capsys, "xdm", "inspect", archive, "--extract", out_dir)
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["DOC01.pdf", "DOC01.xml", "DOC02.xml"]
    assert (out_dir / "DOC01.xml").read_bytes() == (fixtures_dir / N1).read_bytes()
    assert (out_dir / "DOC01.pdf").read_bytes() == pdf_of((fixtures_dir / N1).read_bytes())
