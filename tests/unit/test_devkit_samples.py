"""The project's own sample messages (``pfi_devkit.samples``): what ``make run`` drops and what the
flow tests send on a clone without the official ANS examples.

Each is accepted as its official v2.1 twin is (same action, flags and deliveries), the same bytes
on every run, and carries an N1 CDA that passes the ANS schema and "Structuration minimale"
schematron (when the validation kit is there).
"""

import json
from pathlib import Path

import pytest
from lxml import etree

from pfi.cli import main
from pfi.protocols.cda import check_header, pdf_of, read_cda
from pfi.protocols.hl7v2 import parse_message
from pfi_devkit import demo, samples
from pfi_devkit.samples import MDM_DEL, MDM_INIT, MDM_RPLC, NAMES, ORU_INIT

EXPECTED = {  # action, deliveries (channel) — as the official v2.1 examples they mirror
    MDM_INIT: ("new", ["dmp", "mss_professional"]),
    MDM_RPLC: ("replace", ["dmp", "mss_professional"]),
    MDM_DEL: ("delete", ["dmp", "mss_professional"]),
    ORU_INIT: ("new", ["dmp", "mss_professional", "mss_patient"]),
}


def inspect(capsys, path: Path) -> dict:
    code = main(["hl7", "inspect", str(path)])
    (message,) = json.loads(capsys.readouterr().out)["messages"]
    assert code == 0
    return message


@pytest.mark.parametrize("name", NAMES)
def test_each_sample_is_accepted_like_its_official_twin(capsys, samples_dir, name):
    message = inspect(capsys, samples_dir / name)
    assert (message["ack"], message["accepted"]) == ("AA", True)
    assert message["errors"] == message["warnings"] == message["defects"] == []
    assert message["patient"]["ins_qualified"] is True
    action, channels = EXPECTED[name]
    assert message["action"] == action
    assert [d["channel"] for d in message["deliveries"]] == channels


def test_the_replacement_and_the_deletion_point_at_the_first_version(capsys, samples_dir):
    first, second, deleted = (
        inspect(capsys, samples_dir / name)["ledger_documents"][0]
        for name in (MDM_INIT, MDM_RPLC, MDM_DEL)
    )
    assert second["replaces"] == first["unique_id"] and second["version"] == 2
    assert second["set_id"] == first["set_id"]
    assert deleted["unique_id"] == second["unique_id"]


def test_same_bytes_every_time_and_another_serial_is_another_set():
    again = {n: samples.build_samples.__wrapped__(1)[n].data for n in NAMES}
    assert again == {n: samples.sample_bytes(n) for n in NAMES}
    other = samples.build_samples(7)
    for name in NAMES:
        ours, theirs = parse_message(samples.sample_bytes(name)), parse_message(other[name].data)
        assert ours.header.control_id != theirs.header.control_id
        assert ours.document_info is None or (
            ours.document_info.unique_id != theirs.document_info.unique_id
        )
    with pytest.raises(ValueError):
        samples.build_samples(0)


def test_the_cda_is_an_n1_around_the_projects_pdf():
    for name in NAMES:
        (document,) = parse_message(samples.sample_bytes(name)).documents
        payload = document.content
        cda = read_cda(payload)
        assert cda.level == 1 and check_header(cda) == []
        assert pdf_of(cda).startswith(b"%PDF-1.4")
        assert cda.patient.ins.extension == samples.INS  # the official ANS test identity
        assert cda.patient.ins.root == "1.2.250.1.213.1.4.10"


def test_the_pdf_can_be_padded_to_a_realistic_size():
    small = samples.sample_pdf("Titre", "type")
    big = samples.sample_pdf("Titre", "type", pad_to=300_000)
    assert small.startswith(b"%PDF-1.4") and small.endswith(b"%%EOF\n")
    assert len(big) >= 300_000 and big.endswith(b"%%EOF\n")
    assert big == samples.sample_pdf("Titre", "type", pad_to=300_000)


def test_the_cda_passes_the_ans_schema_and_schematron(shared_dir, strucmin):
    xsd = etree.XMLSchema(
        etree.parse(str(shared_dir / "validation/ans-cda/infrastructure/cda/CDA_extended.xsd"))
    )
    for name in NAMES:
        (document,) = parse_message(samples.sample_bytes(name)).documents
        payload = document.content
        xsd.assertValid(etree.fromstring(payload))
        assert strucmin.failed(payload) == []


def test_the_demo_drops_the_projects_samples_and_names_their_recipients(tmp_path, monkeypatch):
    monkeypatch.setenv("PFI_SHARED_DIR", str(tmp_path / "no-shared"))
    dropped = demo.drop_samples(tmp_path, official=True)  # no official examples here
    assert [p.relative_to(tmp_path / "var/demo/hl7").as_posix() for p in dropped] == [
        "dpi/in/mdm_init.hl7",
        "sgl/in/oru_init.hl7",
    ]
    assert dropped[0].read_bytes() == samples.sample_bytes(MDM_INIT)
    assert not list((tmp_path / "var/demo/hl7/dpi/in").glob(".*"))  # no partial file left
    assert demo.sample_recipients(tmp_path) == (
        "279035121518989@patient.mssante.fr",
        "adam.hoda@test-ci-sis.mssante.fr",
    )
    again = demo.drop_samples(tmp_path, serial=42)
    assert [p.name for p in again] == ["mdm_init-42.hl7", "oru_init-42.hl7"]
