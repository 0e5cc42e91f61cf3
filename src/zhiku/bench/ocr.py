"""OCR engines compared: character error rate (CER) and speed on English and Chinese page images.

Ground truth:

- English: ``pdf/ocrmypdf/linn.pdf`` (a one-page scan) against ``linn.txt``, plus pages of born-digital English
  PDFs rendered to images, their text layer being the truth;
- Chinese: pages of the ctex-kit manuals rendered to images, their text layer being the truth.

CER = Levenshtein distance / length of the truth, on normalised text: NFKC (ligatures, full-width forms), case
kept; English with whitespace runs collapsed to one space, Chinese with all whitespace dropped.

Each engine runs single-threaded (ONNX Runtime 1 intra-op / 1 inter-op thread, Tesseract ``OMP_THREAD_LIMIT=1``)
and in its own process (:func:`run_isolated`) so that its peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

DEFAULT_DPI = 300

# (file under pdf/, 1-based page): pages with a substantial text layer, across the three ctex-kit manuals
CHINESE_PAGES: tuple[tuple[str, int], ...] = (
    ("ctex-kit/ctex-faq.pdf", 5),
    ("ctex-kit/ctex-faq.pdf", 6),
    ("ctex-kit/ctex-faq.pdf", 8),
    ("ctex-kit/ctex-faq.pdf", 13),
    ("ctex-kit/ctex-faq.pdf", 27),
    ("ctex-kit/ctex-faq.pdf", 30),
    ("ctex-kit/xeCJK.pdf", 2),
    ("ctex-kit/xeCJK.pdf", 3),
    ("ctex-kit/zhlineskip-man.pdf", 2),
    ("ctex-kit/zhlineskip-man.pdf", 5),
)
# born-digital English pages (single column), truth = text layer
ENGLISH_RENDERED_PAGES: tuple[tuple[str, int], ...] = (
    ("pdfplumber/scotus-transcript-p1.pdf", 1),
    ("py-pdf-sample-files/004-pdflatex-4-pages/pdflatex-4-pages.pdf", 1),
    ("py-pdf-sample-files/004-pdflatex-4-pages/pdflatex-4-pages.pdf", 4),
)
ENGINES = ("rapidocr", "tesseract")


@dataclass(frozen=True)
class PageSample:
    """One page image to recognise and the text it should give."""

    name: str
    language: str  # "en" or "zh"
    pdf: Path
    page: int  # 1-based
    truth: str


@dataclass(frozen=True)
class PageScore:
    """One engine's result on one page."""

    name: str
    language: str
    cer: float
    seconds: float
    truth_chars: int


def render_page(pdf: Path, page: int, dpi: int = DEFAULT_DPI) -> Image.Image:
    """Render one page (1-based) of a PDF to an RGB image, as ingestion renders scanned pages for OCR."""
    from zhiku.documents.parsers.pdf import render_page as render

    return render(pdf, pdf.name, page, dpi)


def text_layer(pdf: Path, page: int) -> str:
    """The text layer of one page (1-based), through the project's PDF text cleaning."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]

    from zhiku.documents.parsers.pdf import clean_page_text

    document = pdfium.PdfDocument(pdf)
    try:
        textpage = document[page - 1].get_textpage()
        raw: str = textpage.get_text_range()
    finally:
        document.close()
    return clean_page_text(raw)


def normalise(text: str, language: str) -> str:
    """NFKC; English: whitespace runs to one space; Chinese: whitespace dropped. Case is kept."""
    text = unicodedata.normalize("NFKC", text)
    if language == "zh":
        return re.sub(r"\s+", "", text)
    return re.sub(r"\s+", " ", text).strip()


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character each), bit-parallel (Myers/Hyyrö)."""
    if not a:
        return len(b)
    if not b:
        return len(a)
    peq: dict[str, int] = {}
    for index, char in enumerate(a):
        peq[char] = peq.get(char, 0) | (1 << index)
    mask = (1 << len(a)) - 1
    last = 1 << (len(a) - 1)
    pv, mv, score = mask, 0, len(a)
    for char in b:
        eq = peq.get(char, 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) & mask) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & mask
        mh = pv & xh
        if ph & last:
            score += 1
        elif mh & last:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = (mh | ~(xv | ph)) & mask
        mv = ph & xv
    return score


def cer(hypothesis: str, truth: str, language: str) -> float:
    """Character error rate of ``hypothesis`` against ``truth`` after :func:`normalise`."""
    ref = normalise(truth, language)
    hyp = normalise(hypothesis, language)
    return levenshtein(hyp, ref) / max(len(ref), 1)


def samples(evaldata: Path, language: str) -> list[PageSample]:
    """The benchmark pages of one language ("en" or "zh")."""
    pdf_root = evaldata / "pdf"
    result: list[PageSample] = []
    if language == "en":
        linn = pdf_root / "ocrmypdf" / "linn.pdf"
        result.append(PageSample("linn.pdf p1 (scan)", "en", linn, 1, (linn.with_suffix(".txt")).read_text("utf-8")))
        pages = ENGLISH_RENDERED_PAGES
    else:
        pages = CHINESE_PAGES
    for relative, page in pages:
        pdf = pdf_root / relative
        result.append(PageSample(f"{pdf.name} p{page}", language, pdf, page, text_layer(pdf, page)))
    return result


def make_engine(engine: str, language: str) -> Callable[[Image.Image], str]:
    """A page-image-to-text function for a benchmark engine, loaded once.

    ``rapidocr``: the production path (:func:`zhiku.documents.ocr.ocr_page`, default ch+en models);
    ``tesseract``: Debian's tesseract through pytesseract, ``eng`` for English and ``chi_sim+eng`` for Chinese
    (a ``tesseract`` process per page: its memory is not in this process's RSS; measure it with ``/usr/bin/time``);
    ``none``: no OCR, the harness's own footprint.
    """
    if engine == "rapidocr":
        from zhiku.documents.ocr import load_engine, ocr_page

        load_engine()
        return lambda image: ocr_page(image).text
    if engine == "tesseract":
        import pytesseract  # type: ignore[import-untyped, unused-ignore]

        os.environ["OMP_THREAD_LIMIT"] = "1"
        lang = "eng" if language == "en" else "chi_sim+eng"

        def run(image: Image.Image) -> str:
            text: str = pytesseract.image_to_string(image, lang=lang)
            return text

        return run
    if engine == "none":  # no OCR: the harness's own footprint (rendering, PDFium), to subtract from peak RSS
        return lambda image: ""
    raise ValueError(f"unknown OCR engine {engine!r}; known: {', '.join(ENGINES)}")


def bench_engine(evaldata: Path, engine: str, language: str, dpi: int = DEFAULT_DPI) -> dict[str, Any]:
    """Run one engine on one language's pages in this process; per-page scores and this process's peak RSS."""
    pages = samples(evaldata, language)
    recognise = make_engine(engine, language)
    scores: list[PageScore] = []
    for sample in pages:
        image = render_page(sample.pdf, sample.page, dpi)
        started = time.perf_counter()
        hypothesis = recognise(image)
        seconds = time.perf_counter() - started
        scores.append(
            PageScore(
                sample.name,
                language,
                cer(hypothesis, sample.truth, language),
                seconds,
                len(normalise(sample.truth, language)),
            )
        )
    # this process only: Linux charges a child its parent's RSS at fork, so RUSAGE_CHILDREN would not be
    # tesseract's own footprint
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "engine": engine,
        "language": language,
        "dpi": dpi,
        "pages": [asdict(score) for score in scores],
        "peak_rss_mib": round(own / 1024, 1),
    }


def run_isolated(evaldata: Path, engine: str, language: str, dpi: int = DEFAULT_DPI) -> dict[str, Any]:
    """:func:`bench_engine` in a fresh Python process (fair peak RSS, nothing cached from another engine)."""
    completed = subprocess.run(
        [sys.executable, "-m", "zhiku.bench.ocr", str(evaldata), engine, language, str(dpi)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_THREAD_LIMIT": "1"},
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """CER median / mean, median seconds per page, pages per second, peak RSS of one :func:`bench_engine` result."""
    pages = result["pages"]
    cers = [page["cer"] for page in pages]
    seconds = statistics.median(page["seconds"] for page in pages)
    return {
        "engine": result["engine"],
        "language": result["language"],
        "pages": len(pages),
        "cer_median": statistics.median(cers),
        "cer_mean": statistics.fmean(cers),
        "median_seconds": seconds,
        "pages_per_second": 1 / seconds,
        "peak_rss_mib": result["peak_rss_mib"],
    }


def markdown_table(summaries: list[dict[str, Any]]) -> Iterator[str]:
    """The comparison table in Markdown lines (peak RSS of the benchmark process: not tesseract's, which runs in a
    process of its own per page)."""
    yield "| engine | language | pages | CER median | CER mean | median s/page | pages/s | process peak RSS MiB |"
    yield "|---|---|---|---|---|---|---|---|"
    for row in summaries:
        yield (
            f"| {row['engine']} | {row['language']} | {row['pages']} | {row['cer_median']:.3f} | {row['cer_mean']:.3f}"
            f" | {row['median_seconds']:.2f} | {row['pages_per_second']:.3f} | {row['peak_rss_mib']:.0f} |"
        )


def bench_all(evaldata: Path, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every engine on every language, each in a fresh process; ``log`` gets a line per page. The summaries."""
    summaries = []
    for engine in ENGINES:
        for language in ("en", "zh"):
            result = run_isolated(evaldata, engine, language)
            for page in result["pages"]:
                log(f"{engine} {language} {page['name']}: CER {page['cer']:.3f}, {page['seconds']:.2f} s")
            summaries.append(summarise(result))
    return summaries


def main(argv: list[str]) -> int:
    """``python -m zhiku.bench.ocr EVALDATA ENGINE LANGUAGE [DPI]``: one engine, JSON on stdout;
    ``python -m zhiku.bench.ocr EVALDATA``: every engine and language, each isolated, a Markdown table."""
    evaldata = Path(argv[0])
    if len(argv) >= 3:
        dpi = int(argv[3]) if len(argv) > 3 else DEFAULT_DPI
        print(json.dumps(bench_engine(evaldata, argv[1], argv[2], dpi)))
        return 0
    summaries = bench_all(evaldata, lambda line: print(line, flush=True))
    print("\n".join(markdown_table(summaries)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
