"""The DMP client against the devkit endpoint over real HTTPS with mutual TLS.

The endpoint checks what the DMP is known to check: VIHF signature against the test PKI and
its attributes, the signature document and its ``signs`` association, hash and size of every
document, RPLC and ITI-57 targets. Requests are the PFI's own, built from the project's samples
(``pfi_devkit.samples``: MDM radiology N1, ORU biology N1) and, where the official v2.1 examples
are there, from them too (MDM radiology N1, ORU biology N3).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest

from pfi.base.errors import RefusedByPartner, TransientError
from pfi.protocols.dmp import constants as k
from pfi.protocols.dmp.client import DmpClient, DmpEndpoints
from pfi.protocols.dmp.config import DmpConfig
from pfi.protocols.dmp.signing import Signer
from pfi.protocols.dmp.submission import DmpSubmission, build_request, entry_uuid
from pfi_devkit.samples import MDM_DEL, MDM_INIT, MDM_RPLC, ORU_INIT
from pfi_fixtures import site as official
from pfi_fixtures.partners import dmp_signer, dmp_tls

pytestmark = pytest.mark.integration

PATIENT = "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
CONFIG = DmpConfig(source_id="1.2.250.1.71.4.2.2", structure_name="CH TEST")


@pytest.fixture
def dmp(dmp_endpoint):
    """The endpoint as strict as the DMP: signed VIHF and its attributes, a verified signature
    document covering every document, the metadata the DMP requires."""
    from pfi_devkit.dmp import VIHF_ATTRIBUTES_DMP

    dmp_endpoint.verify_vihf = True
    dmp_endpoint.required_vihf_attributes = VIHF_ATTRIBUTES_DMP
    dmp_endpoint.require_signature_document = True
    dmp_endpoint.strict_metadata = True
    return dmp_endpoint


@pytest.fixture
def endpoints(dmp) -> DmpEndpoints:
    return DmpEndpoints(dmp.repository_url, dmp.registry_url)


@pytest.fixture
def client(endpoints, test_pki):
    with DmpClient(endpoints, dmp_tls(test_pki), connect_timeout=5, read_timeout=10) as dmp_client:
        yield dmp_client


@pytest.fixture(scope="module")
def signer(test_pki) -> Signer:
    return dmp_signer(test_pki)


def load(inputs, path: str) -> DmpSubmission:
    from pfi.protocols.hl7v2 import parse_message

    return DmpSubmission.from_request(parse_message((inputs / path).read_bytes()))


def send(client, signer, endpoints, sub: DmpSubmission, request_id=None):
    soap = build_request(
        sub,
        config=CONFIG,
        signer=signer,
        endpoints=endpoints,
        request_id=request_id or uuid.uuid4(),
    )
    return client.send(soap)


@pytest.mark.parametrize(
    ("inputs", "path"),
    [
        ("samples_dir", MDM_INIT),
        ("samples_dir", ORU_INIT),
        ("fixtures_dir", official.MDM_INIT),
        ("fixtures_dir", official.ORU_INIT),
    ],
    ids=["sample-mdm-n1", "sample-oru-n1", "official-mdm-n1", "official-oru-n3"],
)
def test_requests_are_accepted_with_the_predicted_metadata(
    inputs, path, request, client, signer, endpoints, dmp, test_pki
):
    from pfi.protocols import xds

    sub = load(request.getfixturevalue(inputs), path)
    assert send(client, signer, endpoints, sub).status == "success"
    stored = dmp.entries[sub.unique_id]
    predicted = xds.document_entry(sub.header, flags=sub.flags)
    assert stored.content == sub.cda and stored.entry_uuid == entry_uuid(sub.unique_id)
    assert stored.patient_id == PATIENT == predicted.patient_id
    assert stored.type_code.code == predicted.type_code.code
    assert stored.class_code.code == predicted.class_code.code
    assert stored.format_code.code == predicted.format_code.code
    assert [c.code for c in stored.confidentiality_codes] == [
        c.code for c in predicted.confidentiality_codes
    ]
    submission = dmp.accepted[-1]
    assert submission.client_cn == test_pki.establishment.common_name
    assert submission.vihf["Authentification_Mode"] == ("INDIRECTE",)
    signatures = [e for e in dmp.entries.values() if e.is_signature]
    assert (
        len(signatures) == 1 and signatures[0].submission_set == submission.submission_set_unique_id
    )


def test_replacement_then_deletion(samples_dir, client, signer, endpoints, dmp):
    initial = load(samples_dir, MDM_INIT)
    replacement = load(samples_dir, MDM_RPLC)
    deletion = load(samples_dir, MDM_DEL)
    assert replacement.replaces_unique_id == initial.unique_id
    assert deletion.unique_id == replacement.unique_id

    send(client, signer, endpoints, initial)
    send(client, signer, endpoints, replacement)
    assert (
        dmp.entries[initial.unique_id].status
        == "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
    )
    assert dmp.entries[replacement.unique_id].replaces == entry_uuid(initial.unique_id)
    assert send(client, signer, endpoints, deletion).status == "success"
    assert dmp.entries[replacement.unique_id].status == k.STATUS_DELETED
    assert [s.transaction for s in dmp.accepted] == ["ITI-41", "ITI-41", "ITI-57"]


def test_deleting_what_the_dmp_does_not_hold_is_refused(samples_dir, client, signer, endpoints):
    with pytest.raises(RefusedByPartner) as caught:
        send(client, signer, endpoints, load(samples_dir, MDM_DEL))
    assert caught.value.code == "UnresolvedReferenceException"


@pytest.mark.parametrize(
    ("flags", "codes"),
    [
        (
            {"masque_ps": True, "invisible_patient": False, "invisible_rep_legaux": False},
            {"MASQUE_PS"},
        ),
        (
            {"masque_ps": False, "invisible_patient": True, "invisible_rep_legaux": False},
            {"INVISIBLE_PATIENT"},
        ),
        (
            {"masque_ps": False, "invisible_patient": False, "invisible_rep_legaux": True},
            {"INVISIBLE_REPRESENTANTS_LEGAUX"},
        ),
        ({"masque_ps": False, "invisible_patient": False, "invisible_rep_legaux": False}, set()),
    ],
    ids=["masked-to-ps", "invisible-to-patient", "invisible-to-legal-reps", "visible"],
)
def test_masking_flags_reach_the_dmp_as_confidentiality_codes(
    flags, codes, samples_dir, client, signer, endpoints, dmp
):
    sub = load(samples_dir, MDM_INIT)
    sub = replace(sub, flags=replace(sub.flags, **flags))
    send(client, signer, endpoints, sub)
    stored = {c.code for c in dmp.entries[sub.unique_id].confidentiality_codes}
    visibility = stored - {"N", "R", "V"}
    assert visibility == codes


def test_the_signature_document_is_as_hidden_as_the_document_it_signs(
    samples_dir, client, signer, endpoints, dmp
):
    # spec-facts §5.4: the signature entry carries the same confidentiality codes as the
    # document; a masked document's signature listed as "N" would show the lot to whom the
    # document is hidden from.
    sub = load(samples_dir, MDM_INIT)
    sub = replace(sub, flags=replace(sub.flags, masque_ps=True, invisible_patient=True))
    send(client, signer, endpoints, sub)
    document = [c.code for c in dmp.entries[sub.unique_id].confidentiality_codes]
    (signature,) = [e for e in dmp.entries.values() if e.is_signature]
    assert {"MASQUE_PS", "INVISIBLE_PATIENT"} <= set(document)
    assert [c.code for c in signature.confidentiality_codes] == document


def test_a_lost_answer_resent_is_accepted_and_stored_once(
    samples_dir, client, signer, endpoints, dmp
):
    sub = load(samples_dir, MDM_INIT)
    request_id = uuid.uuid4()
    send(client, signer, endpoints, sub, request_id)
    assert send(client, signer, endpoints, sub, request_id).accepted
    assert dmp.duplicates == 1
    assert sum(1 for e in dmp.entries.values() if not e.is_signature) == 1


def test_forced_failure_is_a_refusal_with_the_dmp_code(samples_dir, client, signer, endpoints, dmp):
    dmp.set_mode("fail", error_code="DMPClosed")
    with pytest.raises(RefusedByPartner) as caught:
        send(client, signer, endpoints, load(samples_dir, MDM_INIT))
    assert caught.value.code == "DMPClosed"
    assert "279035121518989" not in str(caught.value)
    assert dmp.entries == {}


@pytest.mark.parametrize(
    ("mode", "code"),
    [("transient", "DMP_UNAVAILABLE"), ("down", "DMP_UNREACHABLE"), ("drop", "DMP_UNREACHABLE")],
)
def test_unavailable_dmp_is_transient_then_accepts(
    mode, code, samples_dir, client, signer, endpoints, dmp
):
    sub = load(samples_dir, MDM_INIT)
    dmp.set_mode(mode)
    with pytest.raises(TransientError) as caught:
        send(client, signer, endpoints, sub)
    assert caught.value.code == code
    dmp.set_mode("normal")
    assert send(client, signer, endpoints, sub).status == "success"


def test_a_slow_dmp_hits_the_read_timeout(samples_dir, signer, endpoints, dmp, test_pki):
    dmp.set_mode("slow", delay=3)
    with DmpClient(endpoints, dmp_tls(test_pki), connect_timeout=2, read_timeout=0.3) as impatient:
        with pytest.raises(TransientError) as caught:
            send(impatient, signer, endpoints, load(samples_dir, MDM_INIT))
    assert caught.value.code == "DMP_TIMEOUT"


def test_a_request_held_by_slow_mode_is_not_served_after_a_reset(
    samples_dir, signer, endpoints, dmp, test_pki
):
    """The devkit: a request a test gave up on must not land in the next test's records."""
    dmp.set_mode("slow", delay=1)
    with DmpClient(endpoints, dmp_tls(test_pki), connect_timeout=2, read_timeout=0.2) as impatient:
        with pytest.raises(TransientError):
            send(impatient, signer, endpoints, load(samples_dir, MDM_INIT))
    dmp.reset()
    time.sleep(1.5)
    assert dmp.accepted == [] and dmp.entries == {}


def test_an_untrusted_client_certificate_never_gets_through(
    samples_dir, signer, endpoints, dmp, test_pki
):
    with DmpClient(endpoints, dmp_tls(test_pki, test_pki.rogue_client)) as rogue:
        with pytest.raises(TransientError) as caught:
            send(rogue, signer, endpoints, load(samples_dir, MDM_INIT))
    assert caught.value.code in ("DMP_TLS", "DMP_UNREACHABLE")
    assert dmp.entries == {}


def test_a_signature_document_that_does_not_match_the_bytes_is_refused(
    samples_dir, client, signer, endpoints, dmp, monkeypatch
):
    from pfi.protocols.dmp import submission as builder

    original = builder.signature_document

    def stale(signer_, documents, **kwargs):  # signs other bytes than the ones sent
        return original(signer_, [(uid, data + b" ") for uid, data in documents], **kwargs)

    monkeypatch.setattr(builder, "signature_document", stale)
    with pytest.raises(RefusedByPartner) as caught:
        send(client, signer, endpoints, load(samples_dir, MDM_INIT))
    assert caught.value.code == "XDSRegistryMetadataError"
    assert "digest" in dmp.refusals[-1].text and dmp.entries == {}


def test_incomplete_metadata_is_refused_by_a_strict_dmp(
    samples_dir, client, signer, endpoints, dmp, monkeypatch
):
    from pfi.protocols.dmp import submission as builder

    original = builder.document_entry
    monkeypatch.setattr(
        builder, "document_entry", lambda s: replace(original(s), practice_setting_code=None)
    )
    with pytest.raises(RefusedByPartner) as caught:
        send(client, signer, endpoints, load(samples_dir, MDM_INIT))
    assert caught.value.code == "XDSRegistryMetadataError"
    assert "practiceSettingCode" in dmp.refusals[-1].text


def test_a_signature_document_from_an_untrusted_signer_is_refused(
    samples_dir, client, endpoints, dmp, test_pki
):
    dmp.verify_vihf = False  # isolate the signature document's own check
    rogue = Signer.from_files(test_pki.rogue_client.cert_path, test_pki.rogue_client.key_path)
    with pytest.raises(RefusedByPartner):
        send(client, rogue, endpoints, load(samples_dir, MDM_INIT))
    assert "signature document refused" in dmp.refusals[-1].text
    assert dmp.entries == {}
