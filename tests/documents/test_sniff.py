"""Type sniffing: content first, the extension only to refine text kinds."""

from __future__ import annotations

import codecs
import zipfile
from pathlib import Path

import pytest

from zhiku.documents.sniff import DOCX_MIME, DetectedType, decode_text, detect_type
from zhiku.errors import CorruptDocumentError, EmptyDocumentError, EncryptedDocumentError, UnsupportedTypeError

ZH = "电子排版系统的出现给印刷出版业带来了一场革命，利用电子计算机及各种辅助设备，可以完成从文稿、图表的录入。\n"
ZH_HANT = "統一中文文案、排版的相關用法，降低團隊成員之間的溝通成本，增強網站氣質。\n"
JA = "日本語の文章です。これはテストのためのテキストで、シフトJISでエンコードされています。\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00" + bytes(200)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- real fixtures ---------------------------------------------------------------------------------------------


def test_real_pdf_is_pdf(evaldata: Path) -> None:
    assert detect_type(evaldata / "pdf" / "ctex-kit" / "ctex-faq.pdf") == DetectedType("application/pdf", "pdf")


def test_real_pdf_is_pdf_whatever_its_name(evaldata: Path) -> None:
    detected = detect_type(evaldata / "pdf" / "ctex-kit" / "ctex-faq.pdf", filename="notes.txt")
    assert detected.kind == "pdf"


def test_real_docx_is_docx(evaldata: Path) -> None:
    detected = detect_type(evaldata / "docs" / "docx-python-docx" / "test.docx", filename="upload.bin")
    assert detected.kind == "docx"
    assert detected.mime_type == DOCX_MIME


def test_real_odt_is_a_zip_that_is_not_docx(evaldata: Path) -> None:
    path = evaldata / "pdf" / "py-pdf-sample-files" / "002-trivial-libre-office-writer" / "source.odt"
    with pytest.raises(UnsupportedTypeError, match=r"OpenDocument text file \(ODT\)"):
        detect_type(path)


def test_real_markdown_and_html(evaldata: Path) -> None:
    markdown = detect_type(evaldata / "docs" / "markdown" / "chinese-copywriting-guidelines.README.md")
    assert (markdown.kind, markdown.mime_type, markdown.encoding) == ("markdown", "text/markdown", "utf-8")
    html = detect_type(evaldata / "docs" / "html-readability" / "wikipedia" / "source.html")
    assert (html.kind, html.mime_type) == ("html", "text/html")


def test_html_recognised_from_content_without_extension(evaldata: Path, tmp_path: Path) -> None:
    source = (evaldata / "docs" / "html-readability" / "wikipedia-3" / "source.html").read_bytes()
    assert detect_type(_write(tmp_path, "page", source)).kind == "html"
    assert detect_type(_write(tmp_path, "page.txt", source)).kind == "html"


# --- generated inputs ------------------------------------------------------------------------------------------


def test_png_named_pdf_is_rejected_naming_png(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedTypeError, match=r"binary content \(Portable Network Graphics.*image/png\)") as info:
        detect_type(_write(tmp_path, "scan.pdf", PNG))
    assert "scan.pdf" in info.value.message
    assert info.value.status_code == 415


def test_elf_executable_is_rejected(tmp_path: Path) -> None:
    elf = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00" + bytes(300)
    with pytest.raises(UnsupportedTypeError, match="ELF"):
        detect_type(_write(tmp_path, "tool.txt", elf))


def test_binary_bytes_named_txt_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedTypeError, match=r"binary content .* is not a supported document type"):
        detect_type(_write(tmp_path, "data.txt", bytes(range(256)) * 8))


def test_text_with_nul_bytes_is_binary(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedTypeError):
        detect_type(_write(tmp_path, "notes.txt", b"hello\x00world\x00" * 50))


def test_zip_that_is_not_docx(tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
        archive.writestr("data/a.csv", "a,b\n1,2\n")
    with pytest.raises(UnsupportedTypeError, match=r"ZIP archive \(2 entries, no word/document.xml\)"):
        detect_type(path)


def test_xlsx_is_named(tmp_path: Path) -> None:
    path = tmp_path / "sheet.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(UnsupportedTypeError, match="Excel workbook"):
        detect_type(path)


def test_zip_named_docx_without_document_part_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "report.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(CorruptDocumentError, match=r"report\.docx is not a valid DOCX"):
        detect_type(path)


def test_truncated_docx_is_corrupt(evaldata: Path, tmp_path: Path) -> None:
    data = (evaldata / "docs" / "docx-python-docx" / "test.docx").read_bytes()
    with pytest.raises(CorruptDocumentError, match="ZIP container is damaged"):
        detect_type(_write(tmp_path, "cut.docx", data[: len(data) // 2]))


def test_legacy_and_encrypted_office_files(tmp_path: Path) -> None:
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    with pytest.raises(UnsupportedTypeError, match=r"legacy Microsoft Office file"):
        detect_type(_write(tmp_path, "old.doc", ole2 + b"WordDocument".ljust(64, b"\x00")))
    encrypted = ole2 + "EncryptedPackage".encode("utf-16-le") + bytes(64)
    with pytest.raises(EncryptedDocumentError, match="password-protected"):
        detect_type(_write(tmp_path, "secret.docx", encrypted))


def test_svg_is_an_image(tmp_path: Path) -> None:
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><text>hi</text></svg>'
    with pytest.raises(UnsupportedTypeError, match="SVG image"):
        detect_type(_write(tmp_path, "logo.svg", svg))


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n  ", codecs.BOM_UTF8 + b"\n \n"])
def test_empty_and_whitespace_only(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(EmptyDocumentError):
        detect_type(_write(tmp_path, "blank.md", data))


def test_zero_bytes_message(tmp_path: Path) -> None:
    with pytest.raises(EmptyDocumentError, match=r"empty\.txt is empty \(0 bytes\)"):
        detect_type(_write(tmp_path, "empty.txt", b""))


@pytest.mark.parametrize(
    ("name", "kind", "language"),
    [
        ("notes.md", "markdown", None),
        ("notes.markdown", "markdown", None),
        ("main.py", "code", "python"),
        ("app.ts", "code", "typescript"),
        ("server.go", "code", "go"),
        ("lib.rs", "code", "rust"),
        ("Main.java", "code", "java"),
        ("x.cpp", "code", "cpp"),
        ("run.sh", "code", "shell"),
        ("query.SQL", "code", "sql"),
        ("page.htm", "html", None),
        ("notes.txt", "text", None),
        ("README", "text", None),
    ],
)
def test_extension_refines_text_kinds(tmp_path: Path, name: str, kind: str, language: str | None) -> None:
    detected = detect_type(_write(tmp_path, "upload.bin", b"x = 1\nprint(x)\n"), filename=name)
    assert (detected.kind, detected.language) == (kind, language)


def test_code_extension_wins_over_html_markers(tmp_path: Path) -> None:
    detected = detect_type(_write(tmp_path, "index.php", b"<html><body><?php echo 1; ?></body></html>\n"))
    assert (detected.kind, detected.language, detected.mime_type) == ("code", "php", "text/x-php")


def test_markdown_quoting_pdf_header_is_not_pdf(tmp_path: Path) -> None:
    detected = detect_type(_write(tmp_path, "pdf.md", b"# PDF files\n\nThey start with `%PDF-1.7`.\n"))
    assert detected.kind == "markdown"


@pytest.mark.parametrize(
    ("encoding", "text", "bom"),
    [
        ("gb18030", ZH, b""),
        ("big5", ZH_HANT, b""),
        ("shift_jis", JA, b""),
        ("utf-16-le", ZH, codecs.BOM_UTF16_LE),
        ("utf-16-be", ZH_HANT, codecs.BOM_UTF16_BE),
        ("utf-32-le", ZH, codecs.BOM_UTF32_LE),
        ("utf-8", ZH, codecs.BOM_UTF8),
        ("utf-16-le", "Plain English words in UTF-16 without a byte order mark.\n" * 3, b""),
    ],
)
def test_text_encodings_are_detected(tmp_path: Path, encoding: str, text: str, bom: bytes) -> None:
    detected = detect_type(_write(tmp_path, "doc.txt", bom + text.encode(encoding)))
    assert detected.kind == "text"
    assert detected.encoding is not None
    assert (bom + text.encode(encoding)).decode(detected.encoding).lstrip("\ufeff") == text


def test_decode_text_handles_a_cut_multibyte_character() -> None:
    data = ZH.encode("utf-8")
    decoded = decode_text(data[:-2], truncated=True)
    assert decoded is not None
    assert decoded.encoding == "utf-8"
    assert ZH.startswith(decoded.text)
    whole = decode_text(data[:-2])  # as a whole file, a cut character is not valid UTF-8
    assert whole is None or whole.encoding != "utf-8"


def test_decode_text_rejects_binary() -> None:
    assert decode_text(PNG) is None
    assert decode_text(bytes(range(256)) * 4) is None
