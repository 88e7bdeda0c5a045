"""Safe XML parsing: the one lxml parser every PFI module uses for XML from outside.

Everything the PFI parses (CDA documents from producers and from mails, XDM ``METADATA.XML``,
partner SOAP answers) is untrusted. libxml2's defaults are not safe enough for that, so this
module fixes one configuration and one entry point:

- **no entity expansion** (``resolve_entities=False``) and **no DOCTYPE at all**: a document that
  declares a DTD is refused (found by a byte scan of the prolog, and by libxml2 itself stopped at
  the DOCTYPE or the root, for encodings and prologs the scan cannot read). CDA R2 (CI-SIS),
  ebRIM 3.0 and SOAP never need one, and refusing it closes XXE (external entities reading local
  files), "billion laughs" expansion and external DTD fetching at once;
- **no network** (``no_network=True``) and no DTD loading or validation;
- **huge_tree off**: libxml2 keeps its limits (text nodes ≤ 10 MB, depth ≤ 256). A CDA N1 whose
  base64 PDF exceeds 10 MB (a PDF of about 7.5 MB) is therefore refused as too large;
- a **byte size bound** checked before parsing.

Errors are :class:`~pfi.base.errors.InvalidInput` with a code built from the caller's prefix
(``CDA_NOT_XML``, ``XDM_METADATA_NOT_XML``…) and a message that never quotes the document.
"""

from __future__ import annotations

from lxml import etree

from pfi.base.errors import InvalidInput

#: Default bound on the size of an XML document, before parsing (bytes).
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


def make_parser() -> etree.XMLParser:
    """A new lxml parser with the safe settings (parsers are not thread-safe: one per call)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        collect_ids=False,
        recover=False,
    )


def parse(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    code_prefix: str = "XML",
    what: str = "document",
) -> etree._Element:
    """Parse ``data`` safely and return the root element.

    Codes raised (``<prefix>`` is ``code_prefix``): ``<prefix>_TOO_LARGE`` (over ``max_bytes`` or
    over a libxml2 limit), ``<prefix>_NOT_XML`` (empty, not bytes or not well-formed),
    ``<prefix>_DTD_FORBIDDEN`` (a DOCTYPE is present). ``what`` names the document in messages.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInput(f"the {what} must be given as bytes", code=f"{code_prefix}_NOT_XML")
    size = len(data)
    if size > max_bytes:
        raise InvalidInput(
            f"the {what} is {size} bytes, over the limit of {max_bytes}",
            code=f"{code_prefix}_TOO_LARGE",
        )
    data = bytes(data)  # one copy at most (a bytearray or memoryview), not one per pass
    if not data[:4096].strip():
        raise InvalidInput(f"the {what} is empty", code=f"{code_prefix}_NOT_XML")
    if _prolog_has_doctype(data[:_PROLOG_SCAN]) or _libxml2_sees_doctype(data):
        raise InvalidInput(
            f"the {what} declares a DTD (DOCTYPE), which is not allowed",
            code=f"{code_prefix}_DTD_FORBIDDEN",
        )
    try:
        root = etree.fromstring(data, make_parser())
    except etree.XMLSyntaxError as exc:
        # libxml2's message may quote the document (an entity, tag or attribute name, an
        # encoding: "Entity 'DUPONT' not defined"): only its error type and position are kept.
        reason = str(exc.msg if getattr(exc, "msg", None) else exc)
        code = "TOO_LARGE" if "Resource limit" in reason or "huge" in reason.lower() else "NOT_XML"
        raise InvalidInput(
            f"the {what} is not well-formed XML: {_syntax_error(exc)}",
            code=f"{code_prefix}_{code}",
        ) from None
    if root is None:
        raise InvalidInput(f"the {what} has no root element", code=f"{code_prefix}_NOT_XML")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise InvalidInput(
            f"the {what} declares a DTD (DOCTYPE), which is not allowed",
            code=f"{code_prefix}_DTD_FORBIDDEN",
        )
    return root


_PROLOG_SCAN = 256 * 1024
_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)


def _prolog_has_doctype(head: bytes) -> bool:
    """Whether the XML prolog (before the root element) holds a ``<!DOCTYPE``.

    Checked before libxml2 sees the document, so that a DTD is refused by rule, before any
    entity or DTD processing (XML 1.0 §2.8: ``prolog ::= XMLDecl? Misc* (doctypedecl Misc*)?``).
    """
    encoding = next((enc for bom, enc in _BOMS if head.startswith(bom)), "latin-1")
    text = head.decode(encoding, errors="ignore").lstrip("\ufeff")
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if text.startswith("<?", pos):
            closing = "?>"
        elif text.startswith("<!--", pos):
            closing = "-->"
        else:
            return text.startswith("<!DOCTYPE", pos) or text.startswith("<!doctype", pos)
        end = text.find(closing, pos)
        if end < 0:
            return False
        pos = end + len(closing)


class _Doctype(Exception):
    pass


class _RootReached(Exception):
    pass


class _PrologProbe:
    """Parser target that stops libxml2 at the DOCTYPE or at the root's start tag."""

    def doctype(self, *_args) -> None:
        raise _Doctype

    def start(self, *_args) -> None:
        raise _RootReached

    def close(self) -> None:
        return None


def _libxml2_sees_doctype(data: bytes) -> bool:
    """Whether libxml2 itself meets a DOCTYPE before the root element.

    The byte scan above reads only a BOM-guessed or Latin-1 prolog in a bounded window; libxml2
    decodes the declared encoding (UTF-7, UTF-32 without BOM…) and any prolog length, so it is
    asked too, stopping at the DOCTYPE line (before its internal subset is used) or at the root.
    Other parse errors are left to the real parse, which reports them.
    """
    parser = etree.XMLParser(
        target=_PrologProbe(),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    try:
        for start in range(0, len(data), _PROBE_CHUNK):
            parser.feed(data[start : start + _PROBE_CHUNK])
        parser.close()
    except _Doctype:
        return True
    except (_RootReached, etree.XMLSyntaxError, ValueError):
        return False
    return False


_PROBE_CHUNK = 64 * 1024


def _syntax_error(exc: etree.XMLSyntaxError) -> str:
    """``undeclared entity (line 1, column 33)``: libxml2's error type and position, no text."""
    last = exc.error_log.last_error if exc.error_log else None
    kind = last.type_name if last is not None else f"ERR_{exc.code}"
    label = kind.removeprefix("ERR_").replace("_", " ").lower() or "syntax error"
    line, column = exc.position if exc.position else (0, 0)
    return f"{label} (line {line}, column {column})" if line else label


__all__ = ["DEFAULT_MAX_BYTES", "make_parser", "parse"]
