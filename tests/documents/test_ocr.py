"""OCR of page images with the real engine on real pages (issue #21, item 1).

The CER bounds are the values measured by ``python -m zhiku.bench.ocr`` (BENCHMARKS.md, "OCR engines") with a
margin; text is normalised as there (NFKC, case kept; English whitespace collapsed, Chinese whitespace dropped).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from PIL import Image

from zhiku.bench.ocr import bench_engine, cer, levenshtein, markdown_table, render_page, summarise, text_layer
from zhiku.documents import ocr
from zhiku.errors import CorruptDocumentError, ModelLoadError

# measured at 300 dpi: linn.pdf 0.021, ctex-faq.pdf p5 0.012 (see BENCHMARKS.md, "OCR engines")
LINN_CER_BOUND = 0.04
CTEX_CER_BOUND = 0.03


@pytest.mark.slow
def test_english_scan_matches_ground_truth(evaldata: Path) -> None:
    linn = evaldata / "pdf" / "ocrmypdf" / "linn.pdf"
    result = ocr.ocr_page(render_page(linn, 1, dpi=300))
    truth = linn.with_suffix(".txt").read_text(encoding="utf-8")
    assert cer(result.text, truth, "en") < LINN_CER_BOUND
    assert result.lines[0].text == "The LinnSequencer"
    assert 0.9 < result.confidence <= 1.0
    assert all(0.0 <= line.confidence <= 1.0 for line in result.lines)
    assert result.text == "\n".join(line.text for line in result.lines)


@pytest.mark.slow
def test_chinese_rendered_page_matches_text_layer(evaldata: Path) -> None:
    faq = evaldata / "pdf" / "ctex-kit" / "ctex-faq.pdf"
    result = ocr.ocr_page(render_page(faq, 5, dpi=300))
    assert cer(result.text, text_layer(faq, 5), "zh") < CTEX_CER_BOUND
    assert result.confidence > 0.8
    # boxes are in image pixels, top to bottom
    tops = [line.box[1] for line in result.lines]
    assert tops[0] < tops[-1]


def test_blank_image_gives_empty_text() -> None:
    result = ocr.ocr_page(Image.new("L", (1240, 1754), 255))
    assert result.text == ""
    assert result.lines == ()
    assert result.confidence == 0.0


def _line(text: str, left: float, top: float, right: float) -> ocr.OcrLine:
    return ocr.OcrLine(text, 1.0, (left, top, right, top + 40))


def test_reading_order_reads_columns_one_after_the_other() -> None:
    # a full-width heading, two columns whose lines are offset (interleaved by top), a full-width footer
    lines = [_line("title", 100, 0, 2000)]
    lines += [_line(f"left {i}", 100, 100 + 44 * i, 1000) for i in range(5)]
    lines += [_line(f"right {i}", 1040, 110 + 44 * i, 2000) for i in range(5)]
    lines += [_line("footer", 100, 400, 2000)]
    ordered = [line.text for line in ocr.reading_order(sorted(lines, key=lambda line: line.box[1]))]
    assert ordered == ["title", *(f"left {i}" for i in range(5)), *(f"right {i}" for i in range(5)), "footer"]


def test_reading_order_keeps_margin_labels_with_their_lines() -> None:
    # list labels in a narrow margin are not a column: each stays before its line
    lines = [_line("1.", 100, 0, 140), _line("first item", 200, 0, 2000), _line("continued", 200, 44, 2000)]
    lines += [_line("2.", 100, 88, 140), _line("second item", 200, 88, 2000)]
    ordered = [line.text for line in ocr.reading_order(lines[::-1])]
    assert ordered == ["1.", "first item", "continued", "2.", "second item"]


def test_missing_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr, "_engine", None)
    monkeypatch.setattr(ocr, "_engine_threads", None)
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # import fails as if not installed
    with pytest.raises(ModelLoadError, match="rapidocr"):
        ocr.ocr_page(Image.new("RGB", (64, 64), "white"))


def test_levenshtein_matches_dynamic_programming() -> None:
    def reference(a: str, b: str) -> int:
        previous = list(range(len(b) + 1))
        for i, char_a in enumerate(a, start=1):
            current = [i]
            for j, char_b in enumerate(b, start=1):
                current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
            previous = current
        return previous[-1]

    rng = random.Random(21)  # noqa: S311 - test data
    for _ in range(500):
        a = "".join(rng.choice("ab中文 ") for _ in range(rng.randint(0, 80)))
        b = "".join(rng.choice("ab中文 ") for _ in range(rng.randint(0, 80)))
        assert levenshtein(a, b) == reference(a, b)
    assert cer("中 文", "中文", "zh") == 0.0
    assert cer("The  cat\n", "The cat", "en") == 0.0


def test_bench_harness_on_english_pages(evaldata: Path) -> None:
    # the "none" engine recognises nothing: every page's CER is 1, and the table has one well-formed row
    result = bench_engine(evaldata, "none", "en", dpi=72)
    assert result["pages"][0]["name"] == "linn.pdf p1 (scan)"
    assert all(page["cer"] == 1.0 and page["truth_chars"] > 500 for page in result["pages"])
    summary = summarise(result)
    assert summary["pages"] == 4
    table = list(markdown_table([summary]))
    assert table[2].startswith("| none | en | 4 | 1.000 | 1.000 |")


def test_ocr_text_fills_the_scanned_pages_and_keeps_page_offsets(evaldata: Path) -> None:
    """:func:`with_ocr_text` puts each page's OCR text at its page, records its confidence, replaces the "needs
    OCR" warnings, and says which pages could not be read; pages it was not given still need OCR."""
    from zhiku.documents.parsers import parse_file
    from zhiku.documents.parsers.pdf import with_ocr_text

    doc = parse_file(evaldata / "pdf" / "ocrmypdf" / "multipage.pdf")
    page_four = doc.text[doc.pages[3].start : doc.pages[3].end]
    results = {
        1: ("first page\r\nread by OCR  ", 0.9, None),
        2: ("", 0.0, "the page took more than 180 s"),
        3: ("   ", 0.4, None),
        5: ("fifth page", 0.8, None),
        9: ("not a page of this document", 0.9, None),
    }
    filled = with_ocr_text(doc, results)
    pages = {page.number: filled.text[page.start : page.end] for page in filled.pages}
    assert pages == {1: "first page\nread by OCR", 2: "", 3: "", 4: page_four, 5: "fifth page", 6: ""}
    assert filled.ocr_pages == {1: 0.9, 5: 0.8}
    assert filled.pages_needing_ocr == [6]
    assert "page 2 could not be read by OCR: the page took more than 180 s" in filled.warnings
    assert "page 3: OCR found no text" in filled.warnings
    assert "page 6 has no text layer (needs OCR)" in filled.warnings
    assert not any(f"page {n} has no text layer" in w for n in (1, 2, 3, 5) for w in filled.warnings)
    for page in filled.pages:
        assert filled.page_at(page.start) == page.number


def test_huge_pages_are_rendered_within_the_pixel_budget(tmp_path: Path) -> None:
    """A page declared 200 inches square would be 3.6 gigapixels at 300 dpi: it is rendered at the resolution that
    fits :data:`MAX_OCR_PIXELS` instead."""
    from zhiku.documents.parsers.pdf import MAX_OCR_PIXELS, ocr_render_scale, render_page

    assert ocr_render_scale(612, 792, 300) == 300 / 72  # a letter page: as asked
    huge = tmp_path / "huge.pdf"
    Image.new("L", (2000, 2000), 255).save(huge, resolution=10.0)  # 2000 px at 10 dpi: 14,400 points a side
    image = render_page(huge, "huge.pdf", 1, 300)
    assert image.width * image.height <= MAX_OCR_PIXELS
    assert image.width > 6000  # not smaller than the budget needs
    with pytest.raises(CorruptDocumentError, match=r"huge\.pdf has no page 2"):
        render_page(huge, "huge.pdf", 2, 300)
