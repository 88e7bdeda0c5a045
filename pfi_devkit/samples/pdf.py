"""A minimal PDF writer for the sample documents: one A4 page of text, byte-for-byte reproducible.

The samples must not depend on files the project does not own, and must be the same bytes on
every run (the ledger recognises a file dropped again by its SHA-256). So the PDF is written by
hand: PDF 1.4, Helvetica in WinAnsiEncoding (French accents), no date, no random id.

``pad_to`` adds an unreferenced stream (viewers ignore it) so that a document has a realistic
size, for the benchmarks: a scanned report of a few hundred kilobytes, not a 1 KB page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

PAGE_WIDTH, PAGE_HEIGHT = 595, 842  # A4 in points
MARGIN = 56
FONT_SIZE = 11
LEADING = 15


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding (cp1252), with ``\\ ( )`` escaped."""
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _content(title: str, lines: Sequence[str]) -> bytes:
    y = PAGE_HEIGHT - MARGIN
    ops = [b"BT", f"/F2 16 Tf {MARGIN} {y} Td".encode(), _pdf_string(title) + b" Tj", b"ET"]
    y -= 2 * LEADING
    for line in lines:
        ops += [b"BT", f"/F1 {FONT_SIZE} Tf {MARGIN} {y} Td".encode(), _pdf_string(line) + b" Tj"]
        ops.append(b"ET")
        y -= LEADING
    return b"\n".join(ops) + b"\n"


def _padding(size: int) -> bytes:
    """``size`` bytes that look like image data (do not compress), always the same."""
    out = bytearray()
    block = b"pfi-devkit sample padding"
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def text_pdf(title: str, lines: Sequence[str], *, pad_to: int = 0) -> bytes:
    """A one-page PDF showing ``title`` and ``lines``; at least ``pad_to`` bytes long."""
    content = _content(title, lines)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] "
            "/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream",
    ]

    def assemble(extra: bytes | None) -> bytes:
        body = [*objects, extra] if extra is not None else objects
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, obj in enumerate(body, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(body) + 1)
        out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
        out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
            len(body) + 1,
            xref,
        )
        return bytes(out)

    pdf = assemble(None)
    if len(pdf) < pad_to:
        filler = _padding(pad_to - len(pdf))
        pdf = assemble(b"<< /Length %d >>\nstream\n" % len(filler) + filler + b"\nendstream")
    return pdf
