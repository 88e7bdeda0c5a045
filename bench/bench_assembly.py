"""Document assembly: N1 CDA generated, XDS metadata mapped, IHE_XDM.ZIP packed and read back.

Input: a PDF of the size of the one in the official ANS sample ``DOC_NON_STRUCTURE_CDA-R2-N1.xml``
(about 330 KB; :func:`bench.inputs.report_pdf`, the project's own), so each document has a
realistic size. Each stage runs for about one second; rates are per second.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, date, datetime

from bench.inputs import report_pdf
from pfi.protocols import xds
from pfi.protocols.cda import read_cda
from pfi.protocols.cda.generator import (
    SEGUR_DOCUMENT_TYPES,
    N1Document,
    PatientIdentity,
    Professional,
    Structure,
    build_n1,
)
from pfi.protocols.cda.model import Identifier
from pfi.protocols.hl7v2.model import MetaFlags
from pfi.protocols.xdm import pack_xdm, read_xdm

BUDGET_S = 1.0


def _rate(step) -> tuple[int, float]:
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < BUDGET_S:
        step(count)
        count += 1
    return count, count / elapsed


def run() -> dict:
    pdf = report_pdf()
    doctor = Professional("801234567897", "DUPONT", "Jean")
    base = N1Document(
        pdf=pdf,
        document_type=SEGUR_DOCUMENT_TYPES["cr-consultation"],
        title="CR de consultation",
        patient=PatientIdentity(
            "279035121518989",
            "1.2.250.1.213.1.4.10",
            "PAT-TROIS",
            "DOMINIQUE",
            "DOMINIQUE",
            date(1979, 3, 28),
            "F",
            "51215",
        ),
        organization=Structure("1010000032", "CH de Démonstration"),
        effective_time=datetime(2024, 1, 5, 10, 0, tzinfo=UTC),
        service_start=datetime(2024, 1, 5, 9, 0, tzinfo=UTC),
        author=doctor,
        legal_authenticator=doctor,
    )
    cda = build_n1(base)
    flags = MetaFlags(invisible_patient=True)
    author = xds.institution_author("CH de Démonstration", "1010000032", software_name="PFI")
    now = datetime.now(UTC)

    def generate(n: int) -> None:
        build_n1(replace(base, document_id=Identifier(f"1.2.250.1.71.4.2.2.99.{n}")))

    def metadata(n: int) -> None:
        xds.document_entry(read_cda(cda), flags=flags, entry_id="Document01")

    def package(n: int) -> bytes:
        entry = xds.document_entry(read_cda(cda), flags=flags, entry_id="Document01")
        ss = xds.submission_set(
            unique_id=f"1.2.250.1.71.4.2.2.99.1.{n}",
            source_id="1.2.250.1.71.4.2.2.99",
            patient_id=entry.patient_id,
            submission_time=now,
            authors=[author],
            patient_class="O",
        )
        return pack_xdm([(entry, cda)], ss)

    def end_to_end(n: int) -> None:
        generate(n)
        package(n)

    archive = package(0)
    generated, generate_rate = _rate(generate)
    _, metadata_rate = _rate(metadata)
    _, package_rate = _rate(package)
    _, read_rate = _rate(lambda n: read_xdm(archive))
    _, end_to_end_rate = _rate(end_to_end)
    return {
        "pdf_kib": round(len(pdf) / 1024),
        "cda_kib": round(len(cda) / 1024),
        "zip_kib": round(len(archive) / 1024),
        "n1_generated_per_s": round(generate_rate, 1),
        "cda_to_xds_metadata_per_s": round(metadata_rate, 1),
        "xdm_packed_per_s": round(package_rate, 1),
        "xdm_read_per_s": round(read_rate, 1),
        "cda_plus_xdm_per_s": round(end_to_end_rate, 1),
        "samples": generated,
    }
