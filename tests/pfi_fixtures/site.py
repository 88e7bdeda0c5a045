"""A site of its own per test: its settings file, its migrated ledger, files dropped in its sources.

Plain helpers (import them from ``pfi_fixtures.site``):

- ``write_settings(folder, sources=[hl7_source(folder)], mailboxes=[...], extra="...")`` writes
  ``folder/pfi.toml``: the test site (FINESS 010000024 / 010000032, INS environment ``test``),
  ``[paths] data_dir = folder/data``, then the ``[[hl7_source]]`` and ``[[mailbox]]`` tables
  given, then ``extra`` (TOML text, for the sections a test is about);
- ``hl7_source(folder, name, kind)`` / ``lab_source(folder)`` / ``mailbox(address)``: one such
  table, drop and outbound folders under ``folder``, files settled at once (``settle_seconds = 0``);
- ``use_site(monkeypatch, settings, ledger_url, pfi_dmp={...})``: what Airflow and the ``pfi``
  command read — ``PFI_SETTINGS``, ``AIRFLOW_CONN_PFI_LEDGER`` and each Connection given as
  ``AIRFLOW_CONN_<ID>`` in JSON form;
- ``source_in(folder, name, kind, **options)``: an :class:`~pfi.base.settings.Hl7Source` itself (no
  settings file), its in/out/archive/quarantine/work folders under ``folder``;
- ``drop_sample(folder, sample)``: a file copied into a drop folder, already settled;
- ``ingest(ledger, settings)``: claim, record and acknowledge what was dropped, as
  ``ingest_hl7_drop`` does;
- ``load_dag(dag_id)`` (DAG tier only): a DAG of ``dags/`` as the scheduler parses it.

A migrated ledger of its own: fixture ``fresh_ledger_url`` (``pfi_fixtures.postgres``).
Official samples: the paths below are relative to the ``fixtures_dir`` fixture.
Nothing here needs pytest at run time: ``bench/`` uses it too (``tests.pfi_fixtures.site``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from pfi.base.settings import Hl7Source

V21 = "ans-hl7v2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1"
MDM_INIT = f"{V21}/MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7"
MDM_RPLC = f"{V21}/MDM/Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7"
MDM_DEL = f"{V21}/MDM/Suppression MDM/message_MDM_CR_Radio_DEL_N1.er7"
ORU_INIT = f"{V21}/ORU/Transmission initiale ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7"

SITE = """\
[site]
name = "{name}"
finess_juridique = "010000024"
structure_oid = "1.2.250.1.71.4.2.2"
ins_environment = "test"
[[site.finess_geo]]
finess = "010000032"
name = "{geo_name}"
[paths]
data_dir = "{data_dir}"
"""


def hl7_source(
    folder: Path,
    name: str = "dpi",
    kind: str = "DPI",
    *,
    drop: str = "in",
    out: str = "out",
    finess_geo: str | None = None,
    encoding: str | None = None,
) -> str:
    """A ``[[hl7_source]]`` table whose drop and outbound folders are ``folder/drop``, ``/out``."""
    lines = ["[[hl7_source]]", f'name = "{name}"', f'kind = "{kind}"']
    if finess_geo:
        lines.append(f'finess_geo = "{finess_geo}"')
    lines += [f'drop_dir = "{folder / drop}"', f'outbound_dir = "{folder / out}"']
    if encoding:
        lines.append(f'default_encoding = "{encoding}"')
    lines.append("settle_seconds = 0")
    return "\n".join(lines) + "\n"


def lab_source(folder: Path) -> str:
    """The laboratory's source ``lab`` (SGL, FINESS 010000032, UTF-8 by default) under
    ``folder/data``."""
    return hl7_source(
        folder,
        "lab",
        "SGL",
        drop="data/in",
        out="data/out",
        finess_geo="010000032",
        encoding="utf-8",
    )


def mailbox(address: str, name: str = "pfi", finess_geo: str = "010000032") -> str:
    """A ``[[mailbox]]`` table (Connection ``pfi_mss_<name>``)."""
    return (
        f'[[mailbox]]\nname = "{name}"\naddress = "{address}"\n'
        f'connection_id = "pfi_mss_{name}"\nfiness_geo = "{finess_geo}"\n'
    )


def settings_text(
    folder: Path,
    *,
    sources: Sequence[str] | None = None,
    mailboxes: Sequence[str] = (),
    extra: str = "",
    name: str = "CH",
    geo_name: str = "A",
    data_dir: Path | None = None,
) -> str:
    """The site's TOML; one ``dpi`` (DPI) source under ``folder`` when no source is given."""
    sources = [hl7_source(folder)] if sources is None else sources
    site = SITE.format(name=name, geo_name=geo_name, data_dir=data_dir or folder / "data")
    return "".join([site, *sources, *mailboxes, extra.strip() + "\n" if extra else ""])


def write_settings(folder: Path, **options) -> Path:
    """``folder/pfi.toml`` with :func:`settings_text` (same options)."""
    path = folder / "pfi.toml"
    path.write_text(settings_text(folder, **options), encoding="utf-8")
    return path


def use_site(monkeypatch: pytest.MonkeyPatch, settings: Path, ledger_url: str, **connections):
    """Settings and Connections the way production gives them (``pfi_dmp={...}`` → JSON)."""
    monkeypatch.setenv("PFI_SETTINGS", str(settings))
    monkeypatch.setenv("AIRFLOW_CONN_PFI_LEDGER", ledger_url)
    for conn_id, connection in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))


def drop_sample(folder: Path, sample: Path, name: str | None = None, *, age: float = 5) -> Path:
    """Copy ``sample`` into the drop folder ``folder`` (created), modified ``age`` seconds ago."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or sample.name)
    shutil.copyfile(sample, target)
    past = time.time() - age
    os.utime(target, (past, past))
    return target


def ingest(ledger, settings, *, batch_size: int = 10, limit: int = 10) -> tuple[list, list]:
    """Claim, record and acknowledge the settled files (``ingest_hl7_drop``, without Airflow)."""
    from pfi.flows.intake import acknowledge_items, claim_and_record

    batches = claim_and_record(ledger, settings, batch_size=batch_size, limit=limit, actor="test")
    return batches, [acknowledge_items(ledger, settings, b, actor="test") for b in batches]


def load_dag(dag_id: str):
    """A DAG of ``dags/`` as the scheduler parses it (DAG tier: Airflow configured)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag(dag_id)


def source_in(folder: Path, name: str = "dpi", kind: str = "DPI", **options) -> Hl7Source:
    """An HL7 source whose folders are ``folder/in``, ``/out``, ``/archive``, ``/quarantine``
    and ``/work`` (FINESS géographique 010000032 unless given; other fields as ``options``)."""
    from pfi.base.settings import Hl7Source

    return Hl7Source(
        name=name,
        kind=kind,
        finess_geo=options.pop("finess_geo", "010000032"),
        drop_dir=folder / "in",
        outbound_dir=folder / "out",
        archive_dir=folder / "archive",
        quarantine_dir=folder / "quarantine",
        work_dir=folder / "work",
        **options,
    )
