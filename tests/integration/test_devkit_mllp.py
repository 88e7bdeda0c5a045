"""The devkit MLLP peer (the DPI) answers ACKs the volet's way, over real loopback sockets.

Client side is python-hl7's ``open_hl7_connection`` (an independent client: the PFI's own,
:mod:`pfi.protocols.mllp`, is tested against the peer in ``test_mllp_ack.py``): with a ``limit`` (the
64 KiB default breaks on a document-sized message), an ``encoding`` matching MSH-18 and every
read under ``asyncio.wait_for``. Patient data is the official test identity
"PAT-TROIS DOMINIQUE" (test INS 279035121518989, OID 1.2.250.1.213.1.4.10).
"""

import asyncio
import base64
import ssl

import hl7
import pytest
from hl7.mllp import open_hl7_connection

from pfi_devkit.mail import client_ssl_context
from pfi_devkit.mllp_peer import AckError, MllpPeer, build_ack, charset_of

pytestmark = pytest.mark.integration

LIMIT = 4 * 1024 * 1024
ACK_WAIT = 5.0


def fake_mdm(control_id: str, *, charset: str = "UNICODE UTF-8", payload: bytes = b"") -> str:
    """A small MDM^T02 of the volet "Transmission au LPS" (fake document, test identity)."""
    document = base64.b64encode(payload or "<ClinicalDocument>éà</ClinicalDocument>".encode())
    segments = [
        f"MSH|^~\\&|PFI|CH DEMO|DPI|CH DEMO|20240102030405||MDM^T02^MDM_T02|{control_id}|P|2.6"
        f"|||||FRA|{charset}|||1.1^CISIS_CDA_HL7_LPS",
        "EVN||20240102030405",
        "PID|||279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS"
        "||PAT-TROIS^DOMINIQUE^DOMINIQUE^^^^L||19790328|F",
        "PV1|1|N",
        "TXA|1|11490-0|TEXT|20240102030405||||||||1.2.250.1.999.1.42^CH DEMO|||||AU",
        f"OBX|1|ED|11490-0^Lettre de liaison^LN||^text^XML^Base64^{document.decode()}||||||F",
        "OBX|2|CWE|MASQUE_PS^Masqué aux professionnels de Santé^MetaDMPMSS"
        "||N^^expandedYes-NoIndicator||||||F",
    ]
    return "\r".join(segments) + "\r"


async def _exchange(
    peer: MllpPeer,
    messages: list[str],
    encoding: str = "utf-8",
    ssl_context: ssl.SSLContext | None = None,
) -> list[hl7.Message]:
    reader, writer = await open_hl7_connection(
        peer.host, peer.port, limit=LIMIT, encoding=encoding, ssl=ssl_context
    )
    try:
        acks = []
        for message in messages:
            writer.writemessage(message)
            await writer.drain()
            acks.append(await asyncio.wait_for(reader.readmessage(), ACK_WAIT))
        return acks
    finally:
        writer.close()
        await writer.wait_closed()


def exchange(peer: MllpPeer, *messages: str, **kwargs) -> list[hl7.Message]:
    return asyncio.run(_exchange(peer, list(messages), **kwargs))


def test_aa_ack_carries_the_received_control_id(mllp_peer):
    (ack,) = exchange(mllp_peer, fake_mdm("MSG0001"))

    assert str(ack.segment("MSA")(1)) == "AA"
    assert str(ack.segment("MSA")(2)) == "MSG0001"
    msh = ack.segment("MSH")
    assert str(msh(9)) == "ACK^T02^ACK"
    assert (str(msh(3)), str(msh(5))) == ("DPI", "PFI")  # sender and receiver swapped
    assert str(msh(12)) == "2.6"
    assert str(msh(18)) == "UNICODE UTF-8"
    assert str(msh(10)) != "MSG0001"
    assert mllp_peer.received[0] == fake_mdm("MSG0001")  # decoded with MSH-18, accents intact
    assert mllp_peer.exchanges[0].encoding == "utf-8"


def test_ack_code_and_err_are_set_at_runtime(mllp_peer):
    mllp_peer.ack_code = "AE"
    mllp_peer.ack_error = AckError.application("902", location="PID^1^3")
    ae, ae_again = exchange(mllp_peer, fake_mdm("MSG0002"), fake_mdm("MSG0003"))
    mllp_peer.ack_code = "AR"
    mllp_peer.ack_error = AckError("203", location="MSH^1^12")
    (ar,) = exchange(mllp_peer, fake_mdm("MSG0004"))

    assert str(ae.segment("MSA")) == "MSA|AE|MSG0002"
    assert str(ae_again.segment("MSA")) == "MSA|AE|MSG0003"
    err = ae.segment("ERR")
    assert str(err(2)) == "PID^1^3"
    assert str(err(3)) == "207^Application error^messageErrorCondition"
    assert str(err(4)) == "E"
    assert str(err(5)) == "902^Identifiant patient inconnu^applicationErrorCode"
    assert str(ar.segment("MSA")) == "MSA|AR|MSG0004"
    assert str(ar.segment("ERR")(3)) == "203^Unsupported version id^messageErrorCondition"
    assert len(ar.segment("ERR")) == 5  # no ERR-5 for a technical refusal


def test_policy_decides_per_message(mllp_peer):
    def refuse_unknown_ins(message: hl7.Message):
        if "279035121518989" in str(message.segment("PID")(3)):
            return "AA", None
        return "AE", AckError.application("904")

    mllp_peer.policy = refuse_unknown_ins
    known, unknown = exchange(
        mllp_peer, fake_mdm("K1"), fake_mdm("U1").replace("279035121518989", "123456789012345")
    )

    assert str(known.segment("MSA")(1)) == "AA"
    assert str(unknown.segment("MSA")(1)) == "AE"
    assert str(unknown.segment("ERR")(5)(1)(1)) == "904"


def test_latin1_message_is_decoded_with_msh18(mllp_peer):
    message = fake_mdm("LAT1", charset="8859/1")
    (ack,) = exchange(mllp_peer, message, encoding="iso-8859-1")

    assert str(ack.segment("MSA")(2)) == "LAT1"
    assert str(ack.segment("MSH")(18)) == "8859/1"
    assert mllp_peer.exchanges[0].raw == message.encode("iso-8859-1")
    assert "Masqué" in mllp_peer.received[0]


def test_a_200_kb_message_passes_and_is_stored(mllp_peer, tmp_path):
    payload = bytes(range(256)) * 800  # 200 KiB of "PDF"
    message = fake_mdm("BIG1", payload=payload)
    assert len(message) > 200_000

    (ack,) = exchange(mllp_peer, message)

    assert str(ack.segment("MSA")) == "MSA|AA|BIG1"
    assert mllp_peer.received == [message]
    stored = sorted(mllp_peer.store_dir.glob("*BIG1.hl7"))
    assert len(stored) == 1 and stored[0].read_bytes() == message.encode()


def test_silent_peer_makes_the_client_time_out(mllp_peer):
    mllp_peer.mode = "silent"

    async def send_and_wait() -> None:
        reader, writer = await open_hl7_connection(
            mllp_peer.host, mllp_peer.port, limit=LIMIT, encoding="utf-8"
        )
        try:
            writer.writemessage(fake_mdm("SILENT1"))
            await writer.drain()
            await asyncio.wait_for(reader.readmessage(), 0.3)
        finally:
            writer.close()

    with pytest.raises(TimeoutError):
        asyncio.run(send_and_wait())
    assert mllp_peer.wait_received(1)[0] == fake_mdm("SILENT1")
    assert mllp_peer.exchanges[0].ack is None


def test_close_mode_drops_the_connection(mllp_peer):
    mllp_peer.mode = "close"

    with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
        exchange(mllp_peer, fake_mdm("DROP1"))
    assert mllp_peer.received == [fake_mdm("DROP1")]


def test_mllp_over_tls_with_the_test_pki(test_pki):
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(test_pki.server.cert_path, test_pki.server.key_path)
    with MllpPeer(ssl_context=server_ctx) as peer:
        (ack,) = exchange(
            peer, fake_mdm("TLS1"), ssl_context=client_ssl_context(test_pki), encoding="utf-8"
        )
    assert str(ack.segment("MSA")) == "MSA|AA|TLS1"
    assert peer.describe()["tls"] is True


def test_stop_is_clean_with_an_idle_connection_open():
    peer = MllpPeer(mode="silent").start()

    async def leave_open() -> None:
        _, writer = await open_hl7_connection(peer.host, peer.port, limit=LIMIT, encoding="utf-8")
        writer.writemessage(fake_mdm("IDLE1"))
        await writer.drain()
        await asyncio.to_thread(peer.wait_received, 1)
        await asyncio.to_thread(peer.stop)
        writer.close()

    asyncio.run(leave_open())
    assert peer.describe()["port"] == 0  # stopped: back to "ephemeral"


def test_ack_builder_and_charset_helpers_are_pure():
    message = hl7.parse(fake_mdm("PURE1"))
    ack = build_ack(message, "AA", control_id="ACK1", now=None)
    assert ack.startswith("MSH|^~\\&|DPI|CH DEMO|PFI|CH DEMO|")
    assert "|ACK^T02^ACK|ACK1|P|2.6|||||FRA|UNICODE UTF-8\rMSA|AA|PURE1\r" in ack
    assert charset_of(fake_mdm("X", charset="").encode()) == "iso-8859-1"
    assert charset_of(fake_mdm("X", charset="8859/15").encode()) == "iso-8859-15"
    with pytest.raises(ValueError):
        build_ack(message, "OK", control_id="ACK2")
    with pytest.raises(ValueError):
        MllpPeer(mode="quiet")  # a typo must not silently mean "close"
