"""Document parsers: :func:`parse_file` sniffs the type from the content and dispatches to the right parser.

Every parser module exposes ``parse(path, detected, *, filename=None) -> ParsedDocument`` and raises only
:class:`~zhiku.errors.DocumentError` subclasses for bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from zhiku.documents.parsers import code, docx, html, markdown, pdf, text
from zhiku.documents.sniff import DetectedType, Kind, detect_type
from zhiku.documents.types import ParsedDocument
from zhiku.errors import CorruptDocumentError, DocumentError

Parser = Callable[..., ParsedDocument]

PARSERS: dict[Kind, Parser] = {
    "pdf": pdf.parse,
    "docx": docx.parse,
    "markdown": markdown.parse,
    "html": html.parse,
    "text": text.parse,
    "code": code.parse,
}

__all__ = ["PARSERS", "parse_detected", "parse_file"]


def parse_file(path: Path, *, filename: str | None = None) -> ParsedDocument:
    """Detect the type of ``path`` from its bytes and parse it.

    ``filename`` is the name the user uploaded (used for messages and to refine text kinds by extension);
    it defaults to ``path.name``.

    Raises:
        DocumentError: a subclass saying why the file cannot be ingested (unsupported type, encrypted,
            corrupt, empty).
    """
    detected = detect_type(path, filename)
    return parse_detected(path, detected, filename=filename)


def parse_detected(path: Path, detected: DetectedType, *, filename: str | None = None) -> ParsedDocument:
    """Parse ``path`` with the parser for an already detected type; unexpected failures become corrupt-document."""
    name = filename or path.name
    parser = PARSERS[detected.kind]
    try:
        document = parser(path, detected, filename=filename)
    except (DocumentError, OSError):
        raise
    except Exception as exc:  # a parser library failed in a way its module did not anticipate
        raise CorruptDocumentError(
            f"{name} could not be parsed as {detected.kind}: {type(exc).__name__}: {exc}"
        ) from exc
    if detected.language and document.language is None:
        document.language = detected.language
    return document
