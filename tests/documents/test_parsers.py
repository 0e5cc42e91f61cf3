"""Parsers on real fixtures (PDF, DOCX, HTML, Markdown) and generated inputs."""

from __future__ import annotations

import codecs
import re
import zipfile
from pathlib import Path

import docx
import pytest
from bs4 import BeautifulSoup

from zhiku.documents.parsers import parse_file
from zhiku.documents.parsers.pdf import clean_page_text
from zhiku.documents.types import ParsedDocument
from zhiku.errors import (
    CorruptDocumentError,
    DocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    UnsupportedTypeError,
)

ZH = "电子排版系统的出现给印刷出版业带来了一场革命，利用电子计算机及各种辅助设备，可以完成从文稿、图表的录入。"
ZH_HANT = "統一中文文案、排版的相關用法，降低團隊成員之間的溝通成本，增強網站氣質。"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _page_text(doc: ParsedDocument, number: int) -> str:
    page = doc.pages[number - 1]
    assert page.number == number
    return doc.text[page.start : page.end]


def _assert_pages_cover_text(doc: ParsedDocument) -> None:
    """Pages are in order, joined by exactly one blank line, and cover the whole text."""
    assert doc.pages[0].start == 0
    assert doc.pages[-1].end == len(doc.text)
    for before, after in zip(doc.pages, doc.pages[1:], strict=False):
        assert doc.text[before.end : after.start] == "\n\n"


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


# --- PDF -------------------------------------------------------------------------------------------------------


def test_ctex_faq_pages_and_known_sentence(evaldata: Path) -> None:
    doc = parse_file(evaldata / "pdf" / "ctex-kit" / "ctex-faq.pdf")
    assert len(doc.pages) == 41
    assert doc.mime_type == "application/pdf"
    assert doc.title == "CTeX FAQ"
    _assert_pages_cover_text(doc)
    sentence = "CTEX 是一个关于 TEX 的中文网站"
    assert sentence in _page_text(doc, 5)
    assert sentence not in _page_text(doc, 4)
    assert doc.page_at(doc.text.index(sentence)) == 5
    assert "\r" not in doc.text
    assert doc.pages_needing_ocr == []
    assert "CTEX-Ext" in doc.text  # PDFium's hyphen marker (U+FFFE) becomes a hyphen
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\ufffe]", doc.text)


def test_pages_have_no_trailing_whitespace(evaldata: Path) -> None:
    doc = parse_file(evaldata / "pdf" / "ctex-kit" / "zhlineskip-man.pdf")
    assert len(doc.pages) == 8
    assert doc.title == "zhlineskip-man"
    _assert_pages_cover_text(doc)
    assert "zhlineskip 宏包" in _page_text(doc, 3)
    for number in range(1, 9):
        text = _page_text(doc, number)
        assert text == text.rstrip()
        assert all(line == line.rstrip() for line in text.split("\n"))


def test_xecjk_mixed_chinese_english(evaldata: Path) -> None:
    doc = parse_file(evaldata / "pdf" / "ctex-kit" / "xeCJK.pdf")
    assert len(doc.pages) == 55
    assert doc.title is None  # the metadata title is empty
    assert "xeCJK 是一个 XeLaTeX 宏包，用于排版 CJK 文字" in _page_text(doc, 2)


def test_encrypted_pdf(evaldata: Path) -> None:
    path = (
        evaldata / "pdf" / "py-pdf-sample-files" / "005-libreoffice-writer-password" / "libreoffice-writer-password.pdf"
    )
    with pytest.raises(EncryptedDocumentError, match=r"libreoffice-writer-password\.pdf is password-protected"):
        parse_file(path)


@pytest.mark.parametrize(
    "relative",
    ["ocrmypdf/skew.pdf", "ocrmypdf/linn.pdf", "py-pdf-sample-files/019-grayscale-image/grayscale-image.pdf"],
)
def test_image_only_pdf_lists_every_page_for_ocr(evaldata: Path, relative: str) -> None:
    """The parser reads text layers only: a scan parses to empty pages that all need OCR (ingestion reads them)."""
    doc = parse_file(evaldata / "pdf" / relative, filename="scan.pdf")
    assert doc.text == ""
    assert doc.pages_needing_ocr == [page.number for page in doc.pages]
    assert doc.ocr_pages == {}


def test_partly_scanned_pdf_lists_pages_needing_ocr(evaldata: Path) -> None:
    doc = parse_file(evaldata / "pdf" / "ocrmypdf" / "multipage.pdf")
    assert len(doc.pages) == 6
    assert doc.pages_needing_ocr == [1, 2, 3, 5, 6]
    assert "page 1 has no text layer (needs OCR)" in doc.warnings
    assert _page_text(doc, 1) == ""
    assert "Percentage" in _page_text(doc, 4)
    _assert_pages_cover_text(doc)


def test_malformed_simple1_is_repaired(evaldata: Path) -> None:
    """simple1.pdf has no valid xref table; PDFium rebuilds it, so the text is still extracted."""
    doc = parse_file(evaldata / "pdf" / "pdfminer-six" / "simple1.pdf")
    assert len(doc.pages) == 1
    assert doc.text.startswith("Hello World\nHello World\nHello World")


def test_garbage_after_pdf_header_is_corrupt(tmp_path: Path) -> None:
    with pytest.raises(CorruptDocumentError, match=r"broken\.pdf is not a readable PDF: .*PDFium"):
        parse_file(_write(tmp_path, "broken.pdf", b"%PDF-1.7\n1 0 obj garbage\n" * 20))


def test_truncated_pdf_is_corrupt(evaldata: Path, tmp_path: Path) -> None:
    data = (evaldata / "pdf" / "ctex-kit" / "zhlineskip-man.pdf").read_bytes()
    with pytest.raises(CorruptDocumentError):
        parse_file(_write(tmp_path, "cut.pdf", data[:4000]))


def test_clean_page_text() -> None:
    assert clean_page_text("a  \r\nb\x0c\rCTEX\ufffeExt \r\n\r\n") == "a\nb\nCTEX-Ext"


# --- DOCX ------------------------------------------------------------------------------------------------------


def test_docx_fixture_heading_section(evaldata: Path) -> None:
    doc = parse_file(evaldata / "docs" / "docx-python-docx" / "par-known-paragraphs.docx")
    assert doc.text == "Heading Paragraph\n\nNormal paragraph"
    assert doc.heading_path_at(doc.text.index("Normal")) == ("Heading Paragraph",)
    assert doc.pages[0].end == len(doc.text)


def test_docx_fixture_without_text_is_empty(evaldata: Path) -> None:
    with pytest.raises(EmptyDocumentError, match=r"having-images\.docx contains no text"):
        parse_file(evaldata / "docs" / "docx-python-docx" / "having-images.docx")


def test_docx_structure_tables_and_title(tmp_path: Path) -> None:
    document = docx.Document()
    document.core_properties.title = ""
    document.add_paragraph("Quarterly Report", style="Title")
    document.add_paragraph("Intro paragraph.")
    document.add_heading("Revenue", level=1)
    document.add_paragraph("Revenue grew.")
    table = document.add_table(rows=2, cols=3)
    for row, values in zip(table.rows, [("Region", "Q1", "Q2"), ("华东", "10", "12")], strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_heading("By product", level=2)
    document.add_paragraph("Widgets sold well.")
    document.add_heading("Costs", level=1)
    document.add_paragraph("Costs fell.")
    path = tmp_path / "report.docx"
    document.save(str(path))

    doc = parse_file(path)
    assert doc.title == "Quarterly Report"
    assert doc.text == (
        "Quarterly Report\n\nIntro paragraph.\n\nRevenue\n\nRevenue grew.\n\nRegion | Q1 | Q2\n华东 | 10 | 12"
        "\n\nBy product\n\nWidgets sold well.\n\nCosts\n\nCosts fell."
    )
    assert doc.heading_path_at(doc.text.index("华东")) == ("Quarterly Report", "Revenue")
    assert doc.heading_path_at(doc.text.index("Widgets")) == ("Quarterly Report", "Revenue", "By product")
    assert doc.heading_path_at(doc.text.index("Costs fell")) == ("Quarterly Report", "Costs")
    for section in doc.sections:
        assert doc.text[section.start :].startswith(section.heading_path[-1])


def test_docx_core_title_wins(tmp_path: Path) -> None:
    document = docx.Document()
    document.core_properties.title = "From Properties"
    document.add_paragraph("Body text.")
    path = tmp_path / "t.docx"
    document.save(str(path))
    assert parse_file(path).title == "From Properties"


def test_docx_with_broken_xml_is_corrupt(evaldata: Path, tmp_path: Path) -> None:
    source = evaldata / "docs" / "docx-python-docx" / "test.docx"
    path = tmp_path / "broken.docx"
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as broken:
        for item in original.infolist():
            data = original.read(item.filename)
            broken.writestr(item, b"<w:document><unclosed>" if item.filename == "word/document.xml" else data)
    with pytest.raises(CorruptDocumentError, match=r"broken\.docx"):
        parse_file(path)


# --- HTML ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["wikipedia", "wikipedia-3"])
def test_html_main_content_matches_readability_expectation(evaldata: Path, name: str) -> None:
    folder = evaldata / "docs" / "html-readability" / name
    doc = parse_file(folder / "source.html")
    expected = BeautifulSoup((folder / "expected.html").read_text(encoding="utf-8"), "html.parser").get_text(" ")
    got, want = _words(doc.text), _words(expected)
    assert len(got & want) / len(got) > 0.9  # precision: little that readability would drop
    assert len(got & want) / len(want) > 0.85  # recall: most of the article
    for boilerplate in ("Navigation menu", "Personal tools", "Privacy policy", "Jump to:", "Create account"):
        assert boilerplate not in doc.text
    assert "\n\n" in doc.text


def test_html_mozilla_article_text_and_headings(evaldata: Path) -> None:
    doc = parse_file(evaldata / "docs" / "html-readability" / "wikipedia" / "source.html")
    assert doc.title == "Mozilla - Wikipedia"
    sentence = "Mozilla is a free-software community, created in 1998 by members of Netscape."
    assert sentence in doc.text
    offset = doc.text.index("Jamie Zawinski says he came up with the name")
    assert doc.heading_path_at(offset)[-1] == "History"
    assert doc.heading_path_at(doc.text.index("Bugzilla is a web-based"))[-2:] == ("Software", "Bugzilla")


def test_html_small_page_drops_navigation(tmp_path: Path) -> None:
    page = (
        "<!DOCTYPE html><html><head><title>Guide</title><style>p{color:red}</style></head><body>"
        "<nav><a href='/'>Home</a> <a href='/about'>About us</a></nav><header><h1>Site name</h1></header>"
        "<main><h1>Setup</h1><p>Install the <b>package</b>\n   first.</p><h2>Options</h2>"
        "<ul><li>fast</li><li>safe</li></ul><script>var x = 1;</script></main>"
        "<aside>Related links</aside><footer>© 2024 footer text</footer></body></html>"
    )
    doc = parse_file(_write(tmp_path, "guide.html", page.encode()))
    assert doc.text == "Setup\n\nInstall the package first.\n\nOptions\n\nfast\nsafe"
    assert doc.title == "Guide"
    assert doc.heading_path_at(doc.text.index("safe")) == ("Setup", "Options")


def test_html_charset_from_meta(tmp_path: Path) -> None:
    page = (
        f'<html><head><meta charset="gb2312"><title>标题</title></head><body><h2>第一节</h2><p>{ZH}</p></body></html>'
    )
    doc = parse_file(_write(tmp_path, "zh.html", page.encode("gb18030")))
    assert doc.text == f"第一节\n\n{ZH}"
    assert doc.title == "标题"


def test_html_with_only_navigation_is_empty(tmp_path: Path) -> None:
    page = b"<html><body><nav><a href='/'>Home</a></nav><script>alert(1)</script></body></html>"
    with pytest.raises(EmptyDocumentError, match=r"nav\.html has no text content"):
        parse_file(_write(tmp_path, "nav.html", page))


# --- Markdown --------------------------------------------------------------------------------------------------


def test_chinese_markdown_heading_paths(evaldata: Path) -> None:
    path = evaldata / "docs" / "markdown" / "chinese-copywriting-guidelines.README.md"
    doc = parse_file(path)
    assert doc.text == path.read_text(encoding="utf-8").replace("\r\n", "\n").rstrip()  # the source, verbatim
    assert doc.title == "中文文案排版指北"
    offset = doc.text.index("### 中英文之間需要增加空格") + 20
    assert doc.heading_path_at(offset) == ("中文文案排版指北", "空格", "中英文之間需要增加空格")
    section = next(s for s in doc.sections if s.heading_path[-1] == "標點符號")
    assert doc.text[section.start : section.end].startswith("## 標點符號\n")
    assert doc.text[section.end :].startswith("## 全形和半形")
    assert ("中文文案排版指北", "空格", "`text-spacing` to the rescue?") not in [s.heading_path for s in doc.sections]
    assert ("中文文案排版指北", "空格", "text-spacing to the rescue?") in [s.heading_path for s in doc.sections]


def test_english_markdown_sections(evaldata: Path) -> None:
    doc = parse_file(evaldata / "docs" / "markdown" / "xquad-README.en.md")
    assert doc.title == "XQuAD"
    assert [s.heading_path for s in doc.sections][:3] == [
        ("XQuAD",),
        ("XQuAD", "Data"),
        ("XQuAD", "Training and evaluation"),
    ]


def test_markdown_setext_front_matter_and_code_fences(tmp_path: Path) -> None:
    source = (
        "---\ntitle: From Front Matter\n---\nIntro\n\nPart One\n========\n\nText one.\n\n```\n# not a heading\n```\n\n"
        "Sub part\n--------\n\nText two.\r\n\r\n# Part Two\n\nEnd.\n"
    )
    doc = parse_file(_write(tmp_path, "doc.md", source.encode()))
    assert doc.title == "From Front Matter"
    assert [s.heading_path for s in doc.sections] == [("Part One",), ("Part One", "Sub part"), ("Part Two",)]
    assert doc.heading_path_at(doc.text.index("# not a heading")) == ("Part One",)
    assert doc.heading_path_at(doc.text.index("Text two")) == ("Part One", "Sub part")
    assert doc.heading_path_at(doc.text.index("Intro")) == ()
    assert doc.text[doc.sections[2].start :].startswith("# Part Two")
    assert "\r" not in doc.text


# --- plain text and code ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "text", "bom"),
    [
        ("gb18030", ZH, b""),
        ("big5", ZH_HANT, b""),
        ("utf-16-le", ZH, codecs.BOM_UTF16_LE),
        ("utf-16-be", ZH, codecs.BOM_UTF16_BE),
        ("utf-8", ZH, codecs.BOM_UTF8),
    ],
)
def test_plain_text_encodings(tmp_path: Path, encoding: str, text: str, bom: bytes) -> None:
    data = bom + f"{text}\r\n第二行\r\n\r\n".encode(encoding)
    doc = parse_file(_write(tmp_path, "notes.txt", data))
    assert doc.text == f"{text}\n第二行"
    assert doc.mime_type == "text/plain"
    assert doc.pages == [doc.pages[0]]
    assert (doc.pages[0].start, doc.pages[0].end) == (0, len(doc.text))


def test_binary_named_txt_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedTypeError, match=r"notes\.txt"):
        parse_file(_write(tmp_path, "notes.txt", bytes(range(256)) * 16))


def test_empty_file_is_empty(tmp_path: Path) -> None:
    with pytest.raises(EmptyDocumentError):
        parse_file(_write(tmp_path, "empty.md", b""))


def test_png_named_pdf_is_unsupported(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100)
    with pytest.raises(UnsupportedTypeError, match="image/png"):
        parse_file(_write(tmp_path, "scan.pdf", png))


def test_zip_that_is_not_docx_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.jpg", b"\xff\xd8\xff")
    with pytest.raises(UnsupportedTypeError, match=r"photos\.zip is a ZIP archive"):
        parse_file(path)


def test_python_code_sections(tmp_path: Path) -> None:
    source = (
        "import os\n\n\n@cache\ndef load(path):\n    return path\n\n\nclass Store:\n    def get(self):\n        pass\n"
    )
    doc = parse_file(_write(tmp_path, "upload", source.encode()), filename="store.py")
    assert doc.language == "python"
    assert doc.mime_type == "text/x-python"
    assert doc.text == source.rstrip()
    assert [s.heading_path for s in doc.sections] == [
        ("store.py",),
        ("store.py", "def load"),
        ("store.py", "class Store"),
        ("store.py", "class Store", "def get"),
    ]
    assert doc.text[doc.sections[1].start :].startswith("@cache\ndef load")
    assert doc.heading_path_at(doc.text.index("def get")) == ("store.py", "class Store", "def get")


def test_go_code_sections(tmp_path: Path) -> None:
    source = (
        "package main\n\ntype Server struct{}\n\nfunc (s *Server) Run() error {\n\treturn nil\n}\n\nfunc main() {}\n"
    )
    doc = parse_file(_write(tmp_path, "main.go", source.encode()))
    assert doc.language == "go"
    assert [s.heading_path for s in doc.sections] == [
        ("main.go",),
        ("main.go", "type Server"),
        ("main.go", "func (s *Server) Run"),
        ("main.go", "func main"),
    ]


def test_errors_name_the_uploaded_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "tmp-123", b"%PDF-1.4\nnot really\n")
    with pytest.raises(DocumentError, match=r"Annual Report\.pdf"):
        parse_file(path, filename="Annual Report.pdf")


def test_gb18030_characters_outside_gb2312(tmp_path: Path) -> None:
    text = "朱镕基和陶喆都不在 GB2312 字符集里，但在 GBK 和 GB18030 里。电子排版系统的出现给印刷出版业带来了一场革命。"
    doc = parse_file(_write(tmp_path, "names.txt", text.encode("gb18030")))
    assert doc.text == text


def test_html_without_charset_declaration_is_detected(tmp_path: Path) -> None:
    page = f"<html><head><title>无声明</title></head><body><p>{ZH}</p><p>{ZH}</p></body></html>"
    doc = parse_file(_write(tmp_path, "plain.html", page.encode("gb18030")))
    assert doc.text == f"{ZH}\n\n{ZH}"
    assert doc.title == "无声明"
