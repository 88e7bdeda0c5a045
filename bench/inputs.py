"""The benchmarks' inputs: the project's own samples (:mod:`pfi_devkit.samples`), at the sizes of
the official ANS examples the benchmarks used to read from ``../shared``, so that any clone
measures the same workloads without that folder.

The samples mirror the official v2.1 examples (segments, flags, recipients, test identities)
with N1 documents; their PDFs are padded to give messages of the official examples' sizes.
"""

from __future__ import annotations

import time

from pfi_devkit import samples

#: The PDF of the official v2.1 MDM initial example (its message: 330 KB).
MDM_PDF_SIZE = 179_764
#: Gives an ORU message of the size of the official v2.1 ORU initial "SEGUR" example (293 KB).
ORU_PDF_SIZE = 160_000
#: The PDF of the official ``DOC_NON_STRUCTURE_CDA-R2-N1.xml`` (its CDA: 448 KB).
N1_PDF_SIZE = 326_650


def mdm_initial() -> bytes:
    """The MDM^T02 sample (N1 CR d'imagerie), at the size of the official MDM initial."""
    return samples.sample_bytes(samples.MDM_INIT, pdf_size=MDM_PDF_SIZE)


def oru_initial() -> bytes:
    """The ORU^R01 sample (N1 CR de biologie), at the size of the official ORU initial."""
    return samples.sample_bytes(samples.ORU_INIT, pdf_size=ORU_PDF_SIZE)


def messages() -> list[bytes]:
    """The four samples (initial, replacement, deletion, ORU) at realistic sizes."""
    big = samples.build_samples(pdf_size=MDM_PDF_SIZE)
    return [big[name].data for name in samples.NAMES]


def report_pdf() -> bytes:
    """A PDF report of the size of the official ``DOC_NON_STRUCTURE_CDA-R2-N1.xml``'s."""
    return samples.sample_pdf(
        "CR de consultation", "CR ou fiche de consultation ou de visite", pad_to=N1_PDF_SIZE
    )


# --- large ledgers (bench_console, bench_stats) -----------------------------------------------

#: SQL of a moment spread over the 24 months before November 2026 (Paris), minute precision, for
#: the row ``g`` of a ``generate_series``.
SPREAD_MOMENT = (
    "timestamptz '2024-11-01 00:00+01' + ((g::bigint * 7919) % (730 * 1440)) * interval '1 minute'"
)


def sql_array(values) -> str:
    """``ARRAY['a', 'b']``: constants picked by ``(ARRAY[...])[1 + g % n]`` in a fill."""
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


def median_seconds(step, times: int, *, warm_up: bool = False) -> float:
    """The median duration of ``times`` calls of ``step`` (after one unmeasured call when
    ``warm_up``)."""
    if warm_up:
        step()
    durations = []
    for _ in range(times):
        started = time.perf_counter()
        step()
        durations.append(time.perf_counter() - started)
    return sorted(durations)[len(durations) // 2]
