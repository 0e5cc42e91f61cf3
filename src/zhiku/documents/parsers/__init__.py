"""Document parsers: :func:`parse_file` sniffs the type from the content and dispatches to the right parser.

Every parser module exposes ``parse(path, detected, *, filename=None) -> ParsedDocument`` and raises only
:class:`~zhiku.errors.DocumentError` subclasses for bad input.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from zhiku.documents.limits import ParseLimits
from zhiku.documents.sniff import DetectedType, Kind, detect_type
from zhiku.documents.types import ParsedDocument
from zhiku.errors import CorruptDocumentError, DocumentError

Parser = Callable[..., ParsedDocument]

PARSER_MODULES: dict[Kind, str] = {
    kind: f"zhiku.documents.parsers.{kind}" for kind in ("pdf", "docx", "markdown", "html", "text", "code")
}
"""The parser module of each kind, imported when a document of that kind first comes: a package missing for one
format (say, HTML's) fails those documents with the reason, and the others are parsed as usual."""

__all__ = ["PARSER_MODULES", "check_file", "parse_detected", "parse_file", "parser_for"]


def parser_for(kind: Kind) -> Parser:
    """The ``parse`` function of ``kind``'s module (``ImportError`` when a package it needs is missing)."""
    parse: Parser = importlib.import_module(PARSER_MODULES[kind]).parse
    return parse


TEXT_KINDS = frozenset({"markdown", "html", "text", "code"})
"""Kinds read by decoding the whole file: their size in bytes bounds their size in characters."""


def parse_file(path: Path, *, filename: str | None = None, limits: ParseLimits | None = None) -> ParsedDocument:
    """Detect the type of ``path`` from its bytes and parse it.

    ``filename`` is the name the user uploaded (used for messages and to refine text kinds by extension);
    it defaults to ``path.name``.

    Raises:
        DocumentError: a subclass saying why the file cannot be ingested (unsupported type, encrypted,
            corrupt, empty, or over the character ``limits``: :class:`~zhiku.errors.DocumentTooLargeError`).
    """
    detected = detect_type(path, filename)
    return parse_detected(path, detected, filename=filename, limits=limits)


def check_file(path: Path, *, filename: str | None = None, limits: ParseLimits | None = None) -> DetectedType:
    """The fast structural check of an upload: its type from its bytes, and the structure of that type (a PDF
    opens and has pages, a DOCX container is sound, a text file is not bound to exceed the character limit).

    It reads no page content: the full parse runs in the ingestion job, which may still fail on damage this check
    cannot see (a corrupt page, an image-only scan) and then says why.

    Raises:
        DocumentError: a subclass saying why the file cannot be ingested.
    """
    name = filename or path.name
    limits = limits or ParseLimits()
    detected = detect_type(path, filename)
    if detected.kind in TEXT_KINDS:
        limits.check_text_bytes(path.stat().st_size, name)
    elif detected.kind in ("pdf", "docx"):
        importlib.import_module(PARSER_MODULES[detected.kind]).check_structure(path, name)
    return detected


def parse_detected(
    path: Path, detected: DetectedType, *, filename: str | None = None, limits: ParseLimits | None = None
) -> ParsedDocument:
    """Parse ``path`` with the parser for an already detected type; unexpected failures become corrupt-document.

    ``limits`` (default: :class:`ParseLimits`' defaults) bound the characters it may yield; text files that must
    be over them are refused before they are read.
    """
    name = filename or path.name
    limits = limits or ParseLimits()
    if detected.kind in TEXT_KINDS:
        limits.check_text_bytes(path.stat().st_size, name)
    parser = parser_for(detected.kind)
    try:
        document = parser(path, detected, filename=filename)
    except (DocumentError, OSError, MemoryError, ImportError):
        raise
    except Exception as exc:  # a parser library failed in a way its module did not anticipate
        raise CorruptDocumentError(
            f"{name} could not be parsed as {detected.kind}: {type(exc).__name__}: {exc}"
        ) from exc
    limits.check_document(document, name, paged=detected.kind == "pdf")
    if detected.language and document.language is None:
        document.language = detected.language
    return document
