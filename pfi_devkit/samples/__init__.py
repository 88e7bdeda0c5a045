"""The project's own sample messages: what ``make run`` drops, what the tests and benchmarks send.

A clone runs on its own: these samples need nothing outside the repository. Each is an HL7 v2
message as a producer sends it (volet "Transmission de document(s) CDA en HL7v2" v2.1), carrying
an N1 CDA built by the project's generator (:func:`pfi.protocols.cda.generator.build_n1`) around
a PDF written here (:mod:`pfi_devkit.samples.pdf`). They mirror the official ANS v2.1 examples
(same segments, same MetaDMPMSS flags, same recipients) with the official **test** identities of
those examples — never a real person:

- the patient: INS 279035121518989 under the test NIR OID ``1.2.250.1.213.1.4.10``,
  PAT-TROIS DOMINIQUE, born 1979-03-28, F, birthplace 63220, identity ``VALI`` (qualified);
- the author: 801234564895 (Eric THOMAS), the recipient: 801234567897 (Adam HODA,
  ``adam.hoda@test-ci-sis.mssante.fr``), the patient's mailbox
  ``279035121518989@patient.mssante.fr``;
- the establishment: the demo site of ``make run`` and of the tests (FINESS géographique
  010000032, IdNatStruct ``1010000032``).

=============== ====== =============================================================== =========
name            event  what it asks                                                    as
=============== ====== =============================================================== =========
``mdm_init``    T02    new CR d'imagerie: DMP (hidden from the patient, secret         official
                       connection) and mail to the professional                        MDM init
``mdm_rplc``    T10    its version 2 (RPLC): DMP, professional, confidentiality change MDM rplc
``mdm_del``     T04    deletion of version 2: DMP (ITI-57) and professional            MDM del
``oru_init``    R01    new CR de biologie from the laboratory: DMP, professional and   ORU init
                       patient mail, reception and read receipts (ZAM Z02/Z03)
=============== ====== =============================================================== =========

The bytes are the same on every run (fixed ids and times), so that the ledger recognises a sample
dropped again. ``serial`` gives another set — new document ids, set ids and control ids — that
goes through the whole flow again (``python -m pfi_devkit.demo samples --new``).

``python -m pfi_devkit.samples DIR`` writes them into ``DIR`` (to read them, or drop them by
hand).
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from pfi_devkit.samples.pdf import text_pdf

MDM_INIT = "mdm_init.hl7"
MDM_RPLC = "mdm_rplc.hl7"
MDM_DEL = "mdm_del.hl7"
ORU_INIT = "oru_init.hl7"
NAMES = (MDM_INIT, MDM_RPLC, MDM_DEL, ORU_INIT)

#: The samples ``make run`` drops, per demo source (``var/demo/hl7/<source>/in``).
DEMO = {"dpi": (MDM_INIT,), "sgl": (ORU_INIT,)}

# -- the official ANS test identities (those of the v2.1 examples) -------------------------------
INS = "279035121518989"
INS_OID = "1.2.250.1.213.1.4.10"  # NIR, test environment
BIRTH_NAME, FIRST_GIVEN_NAME = "PAT-TROIS", "DOMINIQUE"
BIRTH_DATE, SEX, BIRTHPLACE = date(1979, 3, 28), "F", "63220"
AUTHOR_ID, AUTHOR_FAMILY, AUTHOR_GIVEN = "801234564895", "THOMAS", "Eric"
RECIPIENT_ID, RECIPIENT_FAMILY, RECIPIENT_GIVEN = "801234567897", "HODA", "Adam"
PROFESSIONAL = "adam.hoda@test-ci-sis.mssante.fr"
PATIENT_MAILBOX = f"{INS}@patient.mssante.fr"
# -- the demo establishment ------------------------------------------------------------------------
FINESS_GEO = "010000032"
STRUCTURE_ID = f"1{FINESS_GEO}"
STRUCTURE_NAME = "CH de Démonstration - Site principal"
#: Root of the samples' document ids: the establishment's IdNatStruct branch, then ``.7``.
DOCUMENT_ROOT = f"1.2.250.1.71.4.2.2.{STRUCTURE_ID}.7"
PARIS = ZoneInfo("Europe/Paris")
WHEN = datetime(2024, 5, 14, 10, 30, tzinfo=PARIS)

OID_IDNAT_PS = "1.2.250.1.71.4.2.1"
OID_IDNAT_STRUCT = "1.2.250.1.71.4.2.2"
PROFILE = "2.1^CISIS_CDA_HL7_V2"
IMAGING = ("18748-4", "CR d'imagerie médicale")
BIOLOGY = ("11502-2", "CR d'examens biologiques")

#: MetaDMPMSS flags in the volet's order, then each sample's values (those of its official twin).
FLAGS = (
    ("MASQUE_PS", "Masqué aux professionnels de Santé"),
    ("INVISIBLE_PATIENT", "Document Non Visible par le patient"),
    ("INVISIBLE_REP_LEGAUX", "Non visible par les représentants Légaux du patient"),
    ("CONNEXION_SECRETE", "Connexion Secrete"),
    ("MODIF_CONF_CODE", "Modification Confidentiality Code"),
    ("DESTDMP", "Destinataire DMP"),
    ("DESTMSSANTEPS", "Destinataire (Professionnel de Santé, organisation ou BAL applicative)"),
    ("DESTMSSANTEPAT", "Destinataire Patient"),
    ("ACK_RECEPTION", "Accusé de réception"),
    ("ACK_LECTURE_MSS", "Accusé de lecture"),
)
FLAG_VALUES = {
    MDM_INIT: "NYYYNYYNNN",
    MDM_RPLC: "NNNYYYYNNN",
    MDM_DEL: "NNNYNYYNNN",
    ORU_INIT: "NNNNNYYYYY",
}
MAIL_BODY_PS = (
    "Cher confrère, vous trouverez ci-joint le compte rendu de votre patiente "
    "(document de démonstration, données fictives)."
)
MAIL_BODY_PATIENT = (
    "Madame, vous trouverez ci-joint le compte rendu de vos examens "
    "(document de démonstration, données fictives)."
)


@dataclass(frozen=True)
class Sample:
    """One sample message: its file name, the demo source it suits, what it is, its bytes."""

    name: str
    source: str
    description: str
    data: bytes


def sample_pdf(title: str, kind: str, *, pad_to: int = 0) -> bytes:
    """The PDF of a sample report (French text, fictitious data), ``pad_to`` bytes at least."""
    return text_pdf(
        title,
        [
            "CH de Démonstration - Site principal (FINESS 010000032)",
            "",
            f"Type de document : {kind}",
            "Patiente : PAT-TROIS Dominique, née le 28/03/1979 (identité de test ANS)",
            "",
            "Document de démonstration de la Plateforme d'Intermédiation (PFI).",
            "Toutes les données sont fictives : aucun patient réel n'est concerné.",
        ],
        pad_to=pad_to,
    )


def n1_document(
    kind: tuple[str, str],
    *,
    document_id: str,
    set_id: str,
    version: int = 1,
    replaces: str | None = None,
    pdf: bytes | None = None,
    when: datetime = WHEN,
):
    """The :class:`~pfi.protocols.cda.generator.N1Document` of a sample (test identity)."""
    from pfi.protocols.cda.generator import (
        N1Document,
        PatientIdentity,
        Professional,
        Structure,
        document_type_of,
    )
    from pfi.protocols.cda.model import Identifier

    doc_type = document_type_of(*kind)
    author = Professional(AUTHOR_ID, AUTHOR_FAMILY, AUTHOR_GIVEN)
    return N1Document(
        pdf=pdf or sample_pdf(doc_type.display_name, doc_type.display_name),
        document_type=doc_type,
        title=doc_type.display_name,
        patient=PatientIdentity(
            ins=INS,
            ins_oid=INS_OID,
            birth_family_name=BIRTH_NAME,
            first_given_name=FIRST_GIVEN_NAME,
            birth_given_names=FIRST_GIVEN_NAME,
            birth_date=BIRTH_DATE,
            sex=SEX,
            birthplace_code=BIRTHPLACE,
        ),
        organization=Structure(STRUCTURE_ID, STRUCTURE_NAME),
        effective_time=when,
        service_start=when.replace(hour=when.hour - 1),
        author=author,
        legal_authenticator=author,
        document_id=Identifier(document_id),
        set_id=Identifier(set_id),
        version=version,
        replaces=Identifier(replaces) if replaces else None,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _flags(values: str, status: str = "F") -> list[str]:
    return [
        f"OBX|{index}|CWE|{code}^{label}^MetaDMPMSS||{value}^^expandedYes-NoIndicator||||||{status}|"
        for index, ((code, label), value) in enumerate(zip(FLAGS, values, strict=True), start=2)
    ]


def _pid() -> str:
    return (
        f"PID|||{INS}^^^ASIP-SANTE-INS-NIR&{INS_OID}&ISO^INS||"
        f"{BIRTH_NAME}^{FIRST_GIVEN_NAME}^{FIRST_GIVEN_NAME}^^^^L||{BIRTH_DATE:%Y%m%d}|{SEX}|||"
        f"^^^^^^BDL^^{BIRTHPLACE}|||||||DEMO405660^^^CH-DEMO&{OID_IDNAT_STRUCT}.{STRUCTURE_ID}.1"
        "&ISO^AN|||||||||||||N|VALI"
    )


def _sender() -> str:
    return (
        f"PRT||UC||SB^^participation|{AUTHOR_ID}^{AUTHOR_FAMILY}^{AUTHOR_GIVEN}^^^^^^"
        f"ASIP-SANTE-PS&{OID_IDNAT_PS}&ISO^D^^^IDNPS|||CH de Démonstration^^^^^"
        f"ASIP-SANTE-ST&{OID_IDNAT_STRUCT}&ISO^FINEG^^^{FINESS_GEO}"
    )


def _professional() -> str:
    return (
        f"PRT||UC||RCT^^participation|{RECIPIENT_ID}^{RECIPIENT_FAMILY}^{RECIPIENT_GIVEN}^^^^^^"
        f"ASIP-SANTE-PS&{OID_IDNAT_PS}&ISO^D^^^IDNPS||||||||||^NET^X.400^{PROFESSIONAL}"
    )


def _mdm(
    name: str,
    event: str,
    *,
    control_id: str,
    cda: bytes,
    document_id: str,
    parent_id: str | None,
) -> bytes:
    order, status = {"T02": ("NW", "F"), "T10": ("RO", "C"), "T04": ("CA", "D")}[event]
    code, label = IMAGING
    segments = [
        "MSH|^~\\&|DPI-DEMO|CH-DEMO|PFI|CH-DEMO|20240514103000||"
        f"MDM^{event}^MDM_T02|{control_id}|P|2.6|||||FRA|UNICODE UTF-8|||{PROFILE}",
        "EVN||20240514103000",
        _pid(),
        "PV1|1|O|RADIO",
        f"ORC|{order}|",
        f"OBR|1|||{code}^{label}^LN|",
        f"TXA|1|{code}|TEXT|202405141030||||||||{document_id}^CH-DEMO|"
        f"{f'{parent_id}^CH-DEMO' if parent_id else ''}||||AU|||||{AUTHOR_ID}",
        f"OBX|1|ED|{code}^{label}^LN||^text^XML^Base64^{_b64(cda)}||||||{status}|",
        _sender(),
        _professional(),
        *_flags(FLAG_VALUES[name]),
        "OBX|12|ED|CORPSMAIL_PS^Corps du mail pour un PS^MetaDMPMSS||"
        f"^text^^Base64^{_b64(MAIL_BODY_PS.encode())}||||||F|",
    ]
    return ("\r".join(segments) + "\r").encode("utf-8")


def _oru(*, control_id: str, cda: bytes) -> bytes:
    code, label = BIOLOGY
    segments = [
        "MSH|^~\\&|SGL-DEMO|LABO-DEMO|PFI|CH-DEMO|20240514103000||"
        f"ORU^R01^ORU_R01|{control_id}|P|2.5|||||FRA|UNICODE UTF-8|||{PROFILE}",
        _pid(),
        "PV1|1|O|LABO",
        "ORC|NW|DEMO-1^DPI-DEMO|DEMO-1^LABO-DEMO||||||20240514080000",
        f"OBR|1|DEMO-1^DPI-DEMO|DEMO-1^LABO-DEMO|{code}^{label}^LN|||20240514080000|||||||||||||"
        "||||F",
        f"OBX|1|ED|{code}^{label}^LN||^text^XML^Base64^{_b64(cda)}||||||F|",
        _sender(),
        _professional(),
        f"PRT||UC||RCT^^participation|{INS}^{BIRTH_NAME}^{FIRST_GIVEN_NAME}^^^^^^{INS_OID}^L^^^INS"
        f"||||||||||^^X.400^{PATIENT_MAILBOX}",
        f"PRT||UC||REPLY^^participation|||||||||||^^X.400^{PROFESSIONAL}",
        *_flags(FLAG_VALUES[ORU_INIT]),
        "OBX|12|ED|CORPSMAIL_PS^Corps du mail pour un PS^MetaDMPMSS||"
        f"^text^^Base64^{_b64(MAIL_BODY_PS.encode())}||||||F|",
        "OBX|13|ED|CORPSMAIL_PATIENT^Corps du mail pour le patient^MetaDMPMSS||"
        f"^text^^Base64^{_b64(MAIL_BODY_PATIENT.encode())}||||||F|",
    ]
    return ("\r".join(segments) + "\r").encode("utf-8")


def document_ids(serial: int = 1) -> tuple[str, str, str]:
    """The CDA ids (TXA-12) of the set ``serial``: imaging version 1 (``mdm_init``), its
    version 2 (``mdm_rplc``, deleted by ``mdm_del``), the laboratory report (``oru_init``)."""
    root = f"{DOCUMENT_ROOT}.{serial}"
    return f"{root}.1", f"{root}.2", f"{root}.3"


def control_id(name: str, serial: int = 1) -> str:
    """MSH-10 of a sample (echoed in MSA-2 of its ACK): ``DEMOMDM1``… for the set 1."""
    tag = "" if serial == 1 else f"S{serial}"
    return f"DEMO{tag}{_CONTROL[name]}"


_CONTROL = {MDM_INIT: "MDM1", MDM_RPLC: "MDM2", MDM_DEL: "MDM3", ORU_INIT: "ORU1"}
#: The ids of the canonical set, for the tests.
MDM_V1_ID, MDM_V2_ID, ORU_ID = document_ids()


@cache
def build_samples(serial: int = 1, *, pdf_size: int = 0) -> Mapping[str, Sample]:
    """The four samples by file name (:data:`NAMES`); ``serial`` > 1 gives another set (new
    document, set and control ids), ``serial`` 1 the canonical one. ``pdf_size`` pads each PDF
    to that many bytes (the benchmarks: documents of a realistic size)."""
    from pfi.protocols.cda.generator import build_n1

    if serial < 1:
        raise ValueError("serial must be 1 or more")
    root = f"{DOCUMENT_ROOT}.{serial}"
    v1, v2, bio = document_ids(serial)

    def pdf(kind: tuple[str, str]) -> bytes:
        return sample_pdf(kind[1], kind[1], pad_to=pdf_size)

    first = build_n1(n1_document(IMAGING, document_id=v1, set_id=f"{root}.101", pdf=pdf(IMAGING)))
    second = build_n1(
        n1_document(
            IMAGING,
            document_id=v2,
            set_id=f"{root}.101",
            version=2,
            replaces=v1,
            pdf=pdf(IMAGING),
        )
    )
    lab = build_n1(n1_document(BIOLOGY, document_id=bio, set_id=f"{root}.103", pdf=pdf(BIOLOGY)))
    messages = {
        MDM_INIT: (
            "dpi",
            "MDM^T02: a new imaging report for the DMP and a professional",
            _mdm(
                MDM_INIT,
                "T02",
                control_id=control_id(MDM_INIT, serial),
                cda=first,
                document_id=v1,
                parent_id=None,
            ),
        ),
        MDM_RPLC: (
            "dpi",
            "MDM^T10: its version 2, replacing the first",
            _mdm(
                MDM_RPLC,
                "T10",
                control_id=control_id(MDM_RPLC, serial),
                cda=second,
                document_id=v2,
                parent_id=v1,
            ),
        ),
        MDM_DEL: (
            "dpi",
            "MDM^T04: deletion of version 2",
            _mdm(
                MDM_DEL,
                "T04",
                control_id=control_id(MDM_DEL, serial),
                cda=second,
                document_id=v2,
                parent_id=v1,
            ),
        ),
        ORU_INIT: (
            "sgl",
            "ORU^R01: a laboratory report for the DMP, a professional and the patient",
            _oru(control_id=control_id(ORU_INIT, serial), cda=lab),
        ),
    }
    return {name: Sample(name, *fields) for name, fields in messages.items()}


def historical_cda(serial: int, when: datetime, *, pdf_size: int = 0) -> bytes:
    """A past imaging report (N1, test identity) of ``when``, id ``DOCUMENT_ROOT.<serial>.9``:
    what a historical DMP backfill reads from a folder of CDA files."""
    from pfi.protocols.cda.generator import build_n1

    root = f"{DOCUMENT_ROOT}.{serial}"
    pdf = sample_pdf(IMAGING[1], IMAGING[1], pad_to=pdf_size)
    return build_n1(
        n1_document(IMAGING, document_id=f"{root}.9", set_id=f"{root}.109", pdf=pdf, when=when)
    )


def historical_message(
    serial: int, when: datetime, *, qualified: bool = True, pdf_size: int = 0
) -> bytes:
    """An MDM^T02 carrying :func:`historical_cda` (DMP and professional asked, as ``mdm_init``),
    MSH-10 ``HIST<serial>``; ``qualified=False`` gives the identity status ``PROV`` (PID-32)
    instead of ``VALI``: the INS is then not qualified."""
    cda = historical_cda(serial, when, pdf_size=pdf_size)
    message = _mdm(
        MDM_INIT,
        "T02",
        control_id=f"HIST{serial}",
        cda=cda,
        document_id=f"{DOCUMENT_ROOT}.{serial}.9",
        parent_id=None,
    )
    return message if qualified else message.replace(b"|N|VALI\r", b"|N|PROV\r")


def sample_bytes(name: str, serial: int = 1, *, pdf_size: int = 0) -> bytes:
    """The bytes of one sample (``mdm_init.hl7``…)."""
    return build_samples(serial, pdf_size=pdf_size)[name].data


def write_samples(folder: Path, names: Iterable[str] = NAMES, serial: int = 1) -> list[Path]:
    """Write samples into ``folder`` (created); return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        path = folder / name
        path.write_bytes(sample_bytes(name, serial))
        written.append(path)
    return written


def recipients(messages: Iterable[bytes]) -> tuple[str, ...]:
    """The MSSanté addresses some messages mail to: their PRT recipients and, for a patient with
    an INS, ``<matricule>@patient.mssante.fr`` (the devkit gives each a mailbox)."""
    from pfi.protocols.hl7v2 import Hl7Request, parse_file

    addresses: set[str] = set()
    for raw in messages:
        for message in parse_file(raw):
            if not isinstance(message, Hl7Request):
                continue
            addresses.update(
                r.address.strip().lower() for r in message.professional_recipients if r.address
            )
            if message.patient.ins:
                addresses.add(f"{message.patient.ins}@patient.mssante.fr")
    return tuple(sorted(addresses))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pfi_devkit.samples DIR", file=sys.stderr)
        return 2
    for path in write_samples(Path(args[0])):
        print(path)
    return 0
