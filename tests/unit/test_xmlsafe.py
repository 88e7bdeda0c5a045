"""pfi.protocols.xmlsafe: hostile XML is refused without expansion, file access or network access."""

import socket
import threading

import pytest
from lxml import etree

from pfi.base.errors import InvalidInput
from pfi.protocols import xmlsafe


@pytest.fixture
def listener():
    """A local TCP port that records whether anything connected to it (it must not)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    hits: list[tuple] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, addr = server.accept()
            except OSError:
                continue
            hits.append(addr)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], hits
    stop.set()
    thread.join(timeout=2)
    server.close()


def refused(data: bytes, **kwargs) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        xmlsafe.parse(data, **kwargs)
    return info.value


def test_plain_xml_parses():
    root = xmlsafe.parse(b"<?xml version='1.0'?><a xmlns='urn:x'><b>1</b></a>")
    assert root.tag == "{urn:x}a"


def test_external_entity_is_neither_read_nor_accepted(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>'
    ).encode()
    err = refused(xxe)
    assert err.code == "XML_DTD_FORBIDDEN"
    assert "TOP-SECRET" not in str(err)


def test_billion_laughs_is_refused_without_expansion():
    entities = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    bomb = f'<?xml version="1.0"?><!DOCTYPE r [{entities}]><r>&a9;</r>'.encode()
    assert refused(bomb, code_prefix="CDA").code == "CDA_DTD_FORBIDDEN"


def test_external_dtd_and_parameter_entities_make_no_network_call(listener):
    port, hits = listener
    url = f"http://127.0.0.1:{port}/evil.dtd"
    external_dtd = f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "{url}"><r/>'.encode()
    parameter = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "{url}"> %p;]><r/>'
    ).encode()
    xinclude = (
        f'<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="{url}"/></r>'
    ).encode()
    assert refused(external_dtd).code == "XML_DTD_FORBIDDEN"
    assert refused(parameter).code in {"XML_DTD_FORBIDDEN", "XML_NOT_XML"}
    root = xmlsafe.parse(xinclude)  # parsed, but XInclude is never processed
    assert len(root) == 1
    assert hits == []


def test_size_bound_is_checked_before_parsing():
    err = refused(b"<a>" + b"x" * 100 + b"</a>", max_bytes=50, code_prefix="XDM_METADATA")
    assert err.code == "XDM_METADATA_TOO_LARGE"


def test_libxml2_limits_stay_on():
    huge_text = b"<a>" + b"x" * 10_000_001 + b"</a>"
    assert refused(huge_text, max_bytes=20_000_000).code == "XML_TOO_LARGE"
    deep = b"<a>" * 300 + b"</a>" * 300
    assert refused(deep).code in {"XML_TOO_LARGE", "XML_NOT_XML"}


@pytest.mark.parametrize("data", [b"", b"   ", b"not xml", b"<a>", "<a/>"])
def test_not_xml(data):
    assert refused(data).code == "XML_NOT_XML"


def test_the_factory_parser_never_expands_entities_on_its_own():
    """Even used directly (without the DOCTYPE refusal of parse()), it leaves entities alone."""
    data = b'<!DOCTYPE r [<!ENTITY e "EXPANDED">]><r>&e;</r>'
    root = etree.fromstring(data, xmlsafe.make_parser())
    assert "EXPANDED" not in etree.tostring(root).decode().split("]>")[-1]
    assert xmlsafe.make_parser() is not xmlsafe.make_parser()


@pytest.mark.parametrize(
    "prolog",
    [
        "",
        "<?xml version='1.0'?>\n<!-- a comment -->\n<?xml-stylesheet href='x.xsl'?>\n",
        "<!-- c1 --><!-- c2 -->",
    ],
)
def test_doctype_after_comments_and_pis_is_found(prolog):
    data = f'{prolog}<!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>'.encode()
    assert refused(data).code == "XML_DTD_FORBIDDEN"


def test_doctype_in_utf16_is_found():
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r><r/>'.encode("utf-16")
    assert refused(data).code == "XML_DTD_FORBIDDEN"


def test_doctype_text_inside_the_document_is_harmless():
    root = xmlsafe.parse(b"<r><![CDATA[<!DOCTYPE x>]]><!-- <!DOCTYPE y> --></r>")
    assert root.text == "<!DOCTYPE x>"


def test_messages_do_not_quote_document_bytes():
    err = refused("<r>PAT-TROIS Hélène</r>".encode("latin-1"))
    assert err.code == "XML_NOT_XML"
    assert "0x" not in str(err) and "PAT" not in str(err)


_EXTERNAL_DTD = '<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]><r a="&e;"/>'


@pytest.mark.parametrize(
    "data",
    [
        # encodings the byte scan cannot read: libxml2 still decodes them and meets the DTD
        b'<?xml version="1.0" encoding="UTF-7"?>'
        + _EXTERNAL_DTD.replace("<", "+ADw-").replace(">", "+AD4-").encode(),
        ('<?xml version="1.0" encoding="UTF-32BE"?>' + _EXTERNAL_DTD).encode("utf-32-be"),
        ('<?xml version="1.0" encoding="UTF-32LE"?>' + _EXTERNAL_DTD).encode("utf-32-le"),
        # a processing instruction longer than the byte scan's window
        b"<?pad " + b"x" * (300 * 1024) + b"?>" + _EXTERNAL_DTD.encode(),
    ],
    ids=["utf-7", "utf-32be", "utf-32le", "long-pi"],
)
def test_doctype_the_byte_scan_cannot_see_is_still_refused_as_a_dtd(data):
    assert refused(data).code == "XML_DTD_FORBIDDEN"
