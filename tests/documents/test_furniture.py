"""Page furniture found and removed: TOC entries, contents pages, running headers and footers, page numbers."""

from __future__ import annotations

from pathlib import Path

from zhiku.documents.furniture import strip_furniture
from zhiku.documents.parsers import pdf
from zhiku.documents.sniff import detect_type

FOOTER = "ACME Handbook v2.1 Copyright ©2003–2009 ACME"


def page(number: int, body: str, header: str = "") -> str:
    return "\n".join(line for line in (header, body, FOOTER, str(number)) if line)


def test_running_footer_page_numbers_and_toc_go_and_content_stays() -> None:
    contents = "\n".join(
        [f"{i} Question number {i} . . . . . . . . . . . . {i + 2}" for i in range(1, 7)] + ["C Chapter three 7"]
    )
    bodies = {2: "Alpha body.\nMore alpha.", 3: "Beta body.\nMore beta.", 4: "Gamma body.\nMore gamma."}
    pages = [page(1, contents), *(page(n, body, f"C Chapter three {n}") for n, body in bodies.items())]
    cleaned, removed = strip_furniture(pages)
    assert cleaned[0] == ""  # a contents page: every line is an entry
    assert cleaned[1:] == list(bodies.values())  # running head with the page number, footer, number: gone
    assert (removed.toc_lines, removed.running_lines, removed.page_numbers) == (7, 7, 4)
    one_off = [page(n, body, "Introduction" if n == 2 else "") for n, body in bodies.items()]
    assert strip_furniture(one_off)[0][0] == "Introduction\nAlpha body.\nMore alpha."  # a heading once is content


def test_page_numbers_in_their_usual_dress() -> None:
    bodies = ["Alpha text.", "Beta text.", "Gamma text."]
    for dress in ("- {n} -", "Page {n} of 3", "第 {n} 页", "{n} / 3", "p. {n}"):
        pages = [f"{body}\n{dress.format(n=n)}" for n, body in enumerate(bodies, start=1)]
        assert strip_furniture(pages)[0] == bodies, dress


def test_a_page_is_never_emptied_of_content_and_short_documents_keep_repeats() -> None:
    assert strip_furniture(["Same line\nSame line"])[0] == ["Same line\nSame line"]
    two = ["Intro\nShared footer", "Results\nShared footer"]
    assert strip_furniture(two)[0] == two  # two pages say nothing about repetition
    numbers_only = ["1", "2", "3"]
    assert strip_furniture(numbers_only)[0] == numbers_only  # a page that is only a number keeps it
    body = "Loading the data takes . . . 3 seconds on average, then the model runs."
    assert strip_furniture([body])[0] == [body]  # a leader inside a sentence is not a TOC entry


def test_the_ctex_faq_parses_without_its_contents_and_footer(evaldata: Path) -> None:
    path = evaldata / "pdf" / "ctex-kit" / "ctex-faq.pdf"
    parsed = pdf.parse(path, detect_type(path))
    assert len(parsed.pages) == 41
    page_23 = parsed.text[parsed.pages[22].start : parsed.pages[22].end]
    assert page_23.startswith("55 DVI 里不能显示 EPS 图片？")
    assert ". . . . ." not in parsed.text
    assert "Copyright ©2003–2009 CTEX.ORG" not in parsed.text
    assert parsed.text[parsed.pages[1].start : parsed.pages[1].end] == ""  # page 2 is all contents
