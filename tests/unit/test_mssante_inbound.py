"""Reading a received mail (``read_mail``): charsets, encoded words, nested multiparts, the
``IHE_XDM.ZIP`` attachments, RFC 2231 names, and what is not a mail."""

from datetime import UTC, datetime

import pytest

from pfi.base.errors import InvalidInput
from pfi.protocols.mssante.inbound import ReceivedMail, decode_text, read_mail

SENDER = "sgl@labo-x.mssante.fr"
APP = "pfi@ch-demo.mssante.test"


def mail(*headers: str, body: bytes = b"Bonjour\r\n", content_type: str = "") -> bytes:
    head = [f"From: Laboratoire X <{SENDER}>", f"To: {APP}", "Message-ID: <m1@labo-x>", *headers]
    if content_type:
        head += ["MIME-Version: 1.0", f"Content-Type: {content_type}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def multipart(boundary: str, *parts: bytes) -> bytes:
    out = b""
    for part in parts:
        out += f"--{boundary}\r\n".encode() + part + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def part(content_type: str, payload: bytes, *headers: str) -> bytes:
    return (
        "\r\n".join([f"Content-Type: {content_type}", *headers]) + "\r\n\r\n"
    ).encode() + payload


def attachment(filename: str, payload: bytes = b"PK\x03\x04zip") -> bytes:
    import base64

    return part(
        "application/zip",
        base64.b64encode(payload),
        f'Content-Disposition: attachment; filename="{filename}"',
        "Content-Transfer-Encoding: base64",
    )


def test_a_plain_utf8_mail_and_its_headers():
    raw = mail(
        "Cc: Dr Test <dr.test@ch-demo.mssante.test>, " + APP,
        "Subject: =?utf-8?q?XDM/1.0/DDM+CR_d=E2=80=99examens?= =?utf-8?b?IFBBVC1UUk9JUyDDiWxvZGll?=",
        "Date: Wed, 20 Feb 2024 00:19:00 -0400",
        content_type="text/plain; charset=utf-8",
        body="Corps du courriel, été.\r\n".encode(),
    )
    received = read_mail(raw)
    assert received.sender == SENDER
    assert received.recipients == (APP, "dr.test@ch-demo.mssante.test")
    assert received.subject == "XDM/1.0/DDM+CR d’examens PAT-TROIS Élodie"
    assert received.body == "Corps du courriel, été.\r\n".replace("\r\n", "\n")
    assert received.message_id == "<m1@labo-x>"
    assert received.date == datetime(2024, 2, 20, 4, 19, tzinfo=UTC)
    assert received.disposition_notification_to is None and not received.mdn_requested
    assert received.attachments == () and received.xdm_archives == ()
    assert received.raw == raw
    assert not received.auto_submitted


@pytest.mark.parametrize(
    ("charset", "payload", "text"),
    [
        ("iso-8859-1", b"caf\xe9 cr\xe8me", "café crème"),
        # What iso-8859-1 senders mean by 0x80-0x9F: windows-1252 (WHATWG).
        ("iso-8859-1", b"\x80 \x93cit\xe9\x94", "€ “cité”"),
        ("windows-1252", b"\x93cit\xe9\x94 \x80 \x81", "“cité” € \x81"),
        ("utf-8", "été à Noël".encode(), "été à Noël"),
        (None, "undeclared UTF-8 é".encode(), "undeclared UTF-8 é"),
        ("us-ascii", b"ascii but latin \xe9", "ascii but latin é"),
        ("x-unknown-charset", b"caf\xe9", "café"),
    ],
)
def test_text_bodies_in_any_charset(charset, payload, text):
    content_type = "text/plain" + (f"; charset={charset}" if charset else "")
    raw = mail(
        "Subject: x",
        "Content-Transfer-Encoding: 8bit",
        content_type=content_type,
        body=payload + b"\r\n",
    )
    assert read_mail(raw).body.rstrip("\n") == text
    assert decode_text(payload, charset) == text


def test_quoted_printable_windows_1252_body():
    raw = mail(
        "Subject: x",
        "Content-Transfer-Encoding: quoted-printable",
        content_type="text/plain; charset=windows-1252",
        body=b"R=E9sultat =80 10=\r\n0\r\n",
    )
    assert read_mail(raw).body.strip() == "Résultat € 100"


@pytest.mark.parametrize(
    ("header", "subject"),
    [
        (b"Subject: =?iso-8859-1?q?Compte_rendu_d=27=E9chographie?=", "Compte rendu d'échographie"),
        (b"Subject: =?windows-1252?q?=93Bilan=94?= =?utf-8?b?w6l0w6k=?=", "“Bilan”été"),
        # Raw 8-bit bytes (not allowed, but sent): UTF-8, else windows-1252.
        (b"Subject: XDM/1.0/DDM+\xc3\x89chographie", "XDM/1.0/DDM+Échographie"),
        (b"Subject: caf\xe9 =?utf-8?q?=C3=A9t=C3=A9?=", "café été"),
        (b"Subject: =?utf-8?q?une?=\r\n =?utf-8?q?_ligne_pli=C3=A9e?=", "une ligne pliée"),
    ],
)
def test_subjects_are_decoded(header, subject):
    raw = b"From: " + SENDER.encode() + b"\r\n" + header + b"\r\n\r\nx\r\n"
    assert read_mail(raw).subject == subject


NESTED = multipart(
    "OUTER",
    part(
        'multipart/alternative; boundary="ALT"',
        multipart(
            "ALT",
            part("text/plain; charset=utf-8", b"Le texte."),
            part("text/html; charset=utf-8", b"<p>Le <b>HTML</b></p>"),
        ),
    ),
    attachment("IHE_XDM.ZIP", b"first archive"),
    part(
        'multipart/mixed; boundary="INNER"',
        multipart(
            "INNER",
            attachment("ihe_xdm.zip", b"second archive"),
            part(
                "application/pdf",
                b"%PDF-1.4",
                "Content-Disposition: attachment; filename=20240220_CR.pdf",
            ),
        ),
    ),
)


def test_nested_multiparts_give_the_text_body_and_every_attachment():
    received = read_mail(
        mail("Subject: x", content_type='multipart/mixed; boundary="OUTER"', body=NESTED)
    )
    assert received.body == "Le texte."
    assert [a.filename for a in received.attachments] == [
        "IHE_XDM.ZIP",
        "ihe_xdm.zip",
        "20240220_CR.pdf",
    ]
    assert [a.data for a in received.xdm_archives] == [b"first archive", b"second archive"]
    assert received.attachments[2].content_type == "application/pdf"
    assert received.attachments[2].data == b"%PDF-1.4"


def test_an_html_only_mail_gives_its_text():
    html = (
        "<html><head><title>t</title><style>p{}</style></head><body><p>Bonjour&nbsp;Docteur,</p>"
        "<script>alert(1)</script><div>R&eacute;sultat&nbsp;: <b>normal</b></div></body></html>"
    )
    raw = mail(
        "Subject: x",
        content_type="text/html; charset=iso-8859-1",
        body=html.encode("latin-1") + b"\r\n",
    )
    assert read_mail(raw).body == "Bonjour Docteur,\n\nRésultat : normal"


def test_rfc2231_and_encoded_word_file_names_are_decoded():
    body = multipart(
        "B",
        part("text/plain", b"x"),
        part(
            "application/pdf",
            b"a",
            "Content-Disposition: attachment; filename*=iso-8859-1''r%E9sultat%20n%B01.pdf",
        ),
        part(
            "application/pdf",
            b"b",
            "Content-Disposition: attachment;\r\n filename*0*=utf-8''%C3%A9chographie_;\r\n"
            " filename*1*=%C3%A9t%C3%A9.pdf",
        ),
        part(
            "application/zip",
            b"c",
            'Content-Disposition: attachment; filename="=?utf-8?q?IHE=5FXDM.ZIP?="',
        ),
        part('application/zip; name="IHE_XDM.zip"', b"d"),
    )
    received = read_mail(mail("Subject: x", content_type="multipart/mixed; boundary=B", body=body))
    assert [a.filename for a in received.attachments] == [
        "résultat n°1.pdf",
        "échographie_été.pdf",
        "IHE_XDM.ZIP",
        "IHE_XDM.zip",
    ]
    assert [a.data for a in received.xdm_archives] == [b"c", b"d"]


def test_a_mail_attached_to_a_mail_is_one_attachment_not_opened():
    inner = mail(
        "Subject: inner",
        content_type="multipart/mixed; boundary=I",
        body=multipart("I", attachment("IHE_XDM.ZIP")),
    )
    body = multipart(
        "B",
        part("text/plain", b"Transfert."),
        part("message/rfc822", inner, "Content-Disposition: attachment; filename=fwd.eml"),
    )
    received = read_mail(mail("Subject: Tr", content_type="multipart/mixed; boundary=B", body=body))
    (forwarded,) = received.attachments
    assert forwarded.content_type == "message/rfc822" and forwarded.filename == "fwd.eml"
    assert b"Subject: inner" in forwarded.data
    assert received.xdm_archives == ()


def test_notification_headers_read():
    raw = mail(
        "Subject: x",
        "Disposition-Notification-To: Laboratoire X <sgl@labo-x.mssante.fr>",
        "Return-Path: <bounces@labo-x.mssante.fr>",
        "Original-Recipient: rfc822;service@ch-demo.mssante.test",
    )
    received = read_mail(raw)
    assert received.disposition_notification_to == SENDER and received.mdn_requested
    assert received.return_path == "bounces@labo-x.mssante.fr"
    assert received.original_recipient == "service@ch-demo.mssante.test"
    assert read_mail(mail("Auto-Submitted: auto-replied")).auto_submitted
    assert not read_mail(mail("Auto-Submitted: no")).auto_submitted


def test_missing_or_broken_optional_headers():
    raw = f"From: {SENDER}\r\nDate: not a date\r\n\r\n".encode()
    received = read_mail(raw)
    assert received.message_id is None and received.date is None
    assert received.subject == "" and received.body == "" and received.recipients == ()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "MSS_MAIL_UNREADABLE"),
        (b"  \r\n", "MSS_MAIL_UNREADABLE"),
        (bytes(range(256)) * 8, "MSS_MAIL_UNREADABLE"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "MSS_MAIL_UNREADABLE"),
        (b"just some text, DUPONT Jean\r\n", "MSS_MAIL_UNREADABLE"),
        (b"Subject: DUPONT Jean\r\nTo: dupont@x.fr\r\n\r\nbody\r\n", "MSS_MAIL_NO_SENDER"),
        (b"From: DUPONT Jean\r\nSubject: x\r\n\r\nbody\r\n", "MSS_MAIL_NO_SENDER"),
    ],
)
def test_what_is_not_a_readable_mail(raw, code):
    with pytest.raises(InvalidInput) as refused:
        read_mail(raw)
    assert refused.value.code == code
    assert "DUPONT" not in str(refused.value) and "dupont" not in str(refused.value)


def test_a_tree_nested_too_deeply_is_refused():
    body = b"x"
    for level in range(60):
        body = multipart(f"L{level}", part(f'multipart/mixed; boundary="L{level - 1}"', body))
    raw = mail(content_type='multipart/mixed; boundary="L59"', body=body)
    with pytest.raises(InvalidInput) as refused:
        read_mail(raw)
    assert refused.value.code == "MSS_MAIL_UNREADABLE"


def test_reprs_name_no_patient_data():
    raw = mail(
        "Subject: XDM/1.0/DDM+CR DUPONT Jean 01/02/1960",
        "Disposition-Notification-To: " + SENDER,
        content_type="multipart/mixed; boundary=B",
        body=multipart("B", part("text/plain", b"DUPONT"), attachment("DUPONT_Jean.pdf")),
    )
    received = read_mail(raw)
    text = repr(received) + repr(received.attachments)
    assert isinstance(received, ReceivedMail)
    assert "DUPONT" not in text and "labo-x" not in text and "Jean" not in text
    assert "1 attachment" in repr(received)


def test_the_ig_standard_error_mail_example_is_read(fixtures_dir):
    path = fixtures_dir / "ans-ig-extracted/IG-trans-cda-mss_standard-error-mail-example.txt"
    if not path.exists():
        pytest.skip(f"{path} absent")
    received = read_mail(path.read_bytes())
    assert received.sender == "serviceY_auto@chb.mssante.fr"
    assert received.subject.endswith(
        "XDM/1.0/DDM+ECHOGRAPHIE ABDOMINOPELVIENNE CORSE FIGATELLIX 12/10/1988"
    )
    assert received.body.startswith("Bonjour,")
    assert {a.filename for a in received.attachments} >= {"IHE_XDM.zip", "message_original.eml"}
    assert len(received.xdm_archives) == 1
