"""OCR of page images (PDF pages without a text layer), offline, on RapidOCR.

The engine is RapidOCR (PyPI ``rapidocr``) on ONNX Runtime with the PP-OCR detection, orientation and recognition
models that ship inside the wheel (Chinese + English recognition in one model): nothing is downloaded at run
time. It was chosen over Debian's Tesseract (``chi_sim+eng``) for its character error rate on Chinese pages; see
BENCHMARKS.md, "OCR engines", and :mod:`zhiku.bench.ocr`.

The engine is loaded once per process (:func:`load_engine`, called implicitly by :func:`ocr_page`) and calls into
it are serialised by a lock, so one process uses the configured number of threads (1 by default) at a time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from PIL import Image

from zhiku.errors import ModelLoadError

DEFAULT_THREADS = 1

_LOCK = threading.Lock()
_engine: Any = None
_engine_threads: int | None = None


@dataclass(frozen=True)
class OcrLine:
    """One recognised line: its text, the engine's confidence (0-1) and its box in image pixels
    (``left, top, right, bottom``)."""

    text: str
    confidence: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class OcrResult:
    """The text of a page image: lines in reading order (:func:`reading_order`) joined by newlines.

    ``confidence`` is the mean line confidence weighted by line length (0-1; 0 when nothing was recognised).
    """

    text: str
    confidence: float
    lines: tuple[OcrLine, ...]


def reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """Lines in reading order: columns one after the other, not interleaved line by line.

    A recursive XY-cut on the line boxes: a region is split at horizontal gaps of at least half a median line
    height (sections, paragraphs) and, failing that, at vertical gaps of as much (columns) when every column is at
    least a fifth of the region wide (so list labels or line numbers in a margin stay with their lines). A region
    that cannot be cut is read in rows, top to bottom, each row left to right.
    """
    if len(lines) < 2:
        return list(lines)
    heights = sorted(line.box[3] - line.box[1] for line in lines)
    gap = max(heights[len(heights) // 2] / 2, 1.0)
    return _xy_cut(lines, gap)


def _xy_cut(lines: list[OcrLine], gap: float) -> list[OcrLine]:
    """One step of :func:`reading_order` on a region."""
    if len(lines) < 2:
        return lines
    for axis in (1, 0):  # horizontal cuts (rows of blocks) first, then vertical ones (columns)
        parts = _split(lines, axis, gap)
        if len(parts) > 1 and (axis == 1 or _wide_enough(parts)):
            return [line for part in parts for line in _xy_cut(part, gap)]
    return _rows(lines)


def _split(lines: list[OcrLine], axis: int, gap: float) -> list[list[OcrLine]]:
    """Lines grouped where their projections on ``axis`` (0 = x, 1 = y) leave an empty stretch of ``gap`` or more."""
    ordered = sorted(lines, key=lambda line: line.box[axis])
    parts: list[list[OcrLine]] = [[ordered[0]]]
    end = ordered[0].box[axis + 2]
    for line in ordered[1:]:
        if line.box[axis] - end >= gap:
            parts.append([])
        parts[-1].append(line)
        end = max(end, line.box[axis + 2])
    return parts


def _wide_enough(parts: list[list[OcrLine]]) -> bool:
    """Whether every part is at least a fifth of the region's width (real columns, not a margin of labels)."""
    spans = [(min(line.box[0] for line in part), max(line.box[2] for line in part)) for part in parts]
    width = spans[-1][1] - spans[0][0]
    return all(right - left >= width / 5 for left, right in spans)


def _rows(lines: list[OcrLine]) -> list[OcrLine]:
    """Top to bottom; boxes whose vertical centres are within half the first one's height form a row, left to right."""
    ordered = sorted(lines, key=lambda line: (line.box[1] + line.box[3]) / 2)
    rows: list[list[OcrLine]] = []
    row_centre = row_half = 0.0
    for line in ordered:
        centre = (line.box[1] + line.box[3]) / 2
        if rows and abs(centre - row_centre) <= row_half:
            rows[-1].append(line)
            continue
        rows.append([line])
        row_centre, row_half = centre, (line.box[3] - line.box[1]) / 2
    return [line for row in rows for line in sorted(row, key=lambda line: line.box[0])]


def load_engine(threads: int = DEFAULT_THREADS) -> None:
    """Load the OCR engine once for this process (later calls with the same ``threads`` do nothing).

    Raises:
        ModelLoadError: ``rapidocr`` (or ONNX Runtime) is not installed, or its bundled models cannot be loaded.
    """
    global _engine, _engine_threads
    with _LOCK:
        if _engine is not None and _engine_threads == threads:
            return
        _engine = _create_engine(threads)
        _engine_threads = threads


def _create_engine(threads: int) -> Any:
    """A RapidOCR engine on ONNX Runtime with the models in the wheel, ``threads`` threads."""
    try:
        from rapidocr import RapidOCR  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:
        raise ModelLoadError(
            f"OCR is unavailable: the Python package rapidocr cannot be imported ({exc}); "
            "install zhiku's dependencies (pip install -e .)"
        ) from exc
    params = {
        "Global.log_level": "warning",
        # no per-line 0/180 degree classifier: on upright rendered pages it turned some correct lines upside down
        # (read as garbage such as "t t t vt - t ¿ t"); upside-down pages are a page-level question
        "Global.use_cls": False,
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    }
    try:
        return RapidOCR(params=params)
    except Exception as exc:  # the engine's own errors (missing model files, ONNX Runtime failures)
        raise ModelLoadError(f"OCR is unavailable: RapidOCR could not load its models: {exc}") from exc


def ocr_page(image: Image.Image) -> OcrResult:
    """Recognise the text of one page image (render PDF pages at about 300 dpi).

    A blank image gives an empty result, not an error.

    Raises:
        ModelLoadError: the engine is not installed or cannot load its models.
    """
    if _engine is None:
        load_engine()
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    with _LOCK:
        output = _engine(rgb)
    return _result(output)


def _result(output: Any) -> OcrResult:
    """RapidOCR's output (``txts``, ``scores``, ``boxes``: four corner points per line) to an :class:`OcrResult`."""
    texts = output.txts or ()
    scores = output.scores or ()
    boxes = output.boxes if output.boxes is not None else ()
    lines: list[OcrLine] = []
    for text, score, box in zip(texts, scores, boxes, strict=True):
        stripped = str(text).strip()
        if not stripped:
            continue
        xs = [float(point[0]) for point in box]
        ys = [float(point[1]) for point in box]
        lines.append(OcrLine(stripped, float(score), (min(xs), min(ys), max(xs), max(ys))))
    lines = reading_order(lines)
    characters = sum(len(line.text) for line in lines)
    confidence = sum(line.confidence * len(line.text) for line in lines) / characters if characters else 0.0
    return OcrResult("\n".join(line.text for line in lines), confidence, tuple(lines))
