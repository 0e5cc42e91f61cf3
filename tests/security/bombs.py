"""Hostile documents built on the fly: decompression bombs, oversized text layers, slow PDFs, lying ZIPs."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path


def pdf(contents: list[bytes], *, pages: int | None = None, compress: bool = True) -> bytes:
    """A PDF whose pages draw ``contents`` (one content stream per page; with ``pages``, that many pages all
    drawing the first stream: a tiny file with very many pages)."""
    streams = [zlib.compress(raw, 9) if compress else raw for raw in contents]
    count = pages if pages is not None else len(streams)
    first_stream = 4 + count
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(f"{4 + i} 0 R".encode() for i in range(count)) + b"] /Count "
        + str(count).encode() + b" >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]  # fmt: skip
    for index in range(count):
        content = first_stream + (index if pages is None else 0)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents " + str(content).encode()
            + b" 0 R /Resources << /Font << /F1 3 0 R >> >> >>"
        )  # fmt: skip
    for data in streams:
        flate = b"/Filter /FlateDecode " if compress else b""
        objects.append(
            b"<< " + flate + b"/Length " + str(len(data)).encode() + b" >>\nstream\n" + data + b"\nendstream"
        )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def text_lines(lines: int, width: int = 100) -> bytes:
    """A content stream showing ``lines`` distinct lines of ``width`` characters (real text, not overdrawn)."""
    line = b"(" + b"abcdefghij" * (width // 10) + b") Tj 0 -1 Td\n"
    return b"BT /F1 1 Tf 0 790 Td\n" + line * lines + b"ET\n"


def pdf_inflating_page(inflated_bytes: int) -> bytes:
    """One page whose content stream inflates to ``inflated_bytes`` of drawing operators (compressed ~1000:1)."""
    unit = b"BT /F1 12 Tf 72 720 Td (Hello bomb) Tj ET\n"
    return pdf([unit * (inflated_bytes // len(unit))])


def pdf_one_huge_page(chars: int) -> bytes:
    """One page with about ``chars`` characters of real text."""
    return pdf([text_lines(chars // 100)])


def pdf_many_pages(pages: int, chars_per_page: int = 1_000) -> bytes:
    """``pages`` pages sharing one content stream of ``chars_per_page`` characters: a small file, a long parse."""
    return pdf([text_lines(max(1, chars_per_page // 100))], pages=pages)


def zip_lying_about_sizes(member: str, payload: bytes, declared: int) -> bytes:
    """A ZIP (DOCX-shaped) whose headers say ``member`` unpacks to ``declared`` bytes, far fewer than it does."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org'
                         '/package/2006/content-types"/>')  # fmt: skip
        archive.writestr(member, payload)
    data = bytearray(buffer.getvalue())
    encoded = member.encode()
    true_size = struct.pack("<I", len(payload))
    # patch the uncompressed size in the member's local header (offset 22) and central directory entry (offset 24)
    local = data.find(encoded, 30) - 30  # its name follows its 30-byte local header
    assert data[local + 22 : local + 26] == true_size
    data[local + 22 : local + 26] = struct.pack("<I", declared)
    central = data.find(b"PK\x01\x02")
    while central >= 0 and data[central + 46 : central + 46 + len(encoded)] != encoded:
        central = data.find(b"PK\x01\x02", central + 4)
    assert data[central + 24 : central + 28] == true_size
    data[central + 24 : central + 28] = struct.pack("<I", declared)
    return bytes(data)


def write(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``folder / name`` and return the path."""
    path = folder / name
    path.write_bytes(data)
    return path
