"""Document type sniffing: decide what a file is from its bytes, using the name only to refine text kinds.

The order is deliberate: known container signatures first (PDF, ZIP/DOCX, legacy OLE2 Office files), then
"is this text in some plausible encoding?", and only for text the extension picks markdown, code or HTML.
Anything else is binary and rejected with a message naming what was found (via ``puremagic``).
"""

from __future__ import annotations

import codecs
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Literal

import puremagic
from charset_normalizer import from_bytes

from zhiku.errors import CorruptDocumentError, EmptyDocumentError, EncryptedDocumentError, UnsupportedTypeError

Kind = Literal["pdf", "docx", "markdown", "html", "text", "code"]

#: How many leading bytes are read to decide the type (text decoding of the whole file happens in the parser).
SNIFF_BYTES = 64 * 1024

PDF_MIME = "application/pdf"
DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MARKDOWN_MIME = "text/markdown"
HTML_MIME = "text/html"
TEXT_MIME = "text/plain"

MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn", ".mdwn"})
HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml", ".shtml"})

#: Extension -> language name for source code (and structured text that reads best verbatim).
CODE_LANGUAGES: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".scala": "scala",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".cs": "csharp",
    ".rb": "ruby",
    ".php": "php",
    ".swift": "swift",
    ".m": "objective-c",
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
    ".ps1": "powershell",
    ".sql": "sql",
    ".r": "r",
    ".lua": "lua",
    ".pl": "perl",
    ".dart": "dart",
    ".vue": "vue",
    ".css": "css",
    ".scss": "scss",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".xml": "xml",
    ".ini": "ini",
    ".proto": "protobuf",
}

_CODE_MIME: dict[str, str] = {
    "javascript": "text/javascript",
    "json": "application/json",
    "xml": "application/xml",
    "css": "text/css",
    "yaml": "application/yaml",
}

#: Control characters that do not occur in text (all C0/C1 except tab, newlines, vertical tab, form feed, escape).
_BAD_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x84\x86-\x9f]")
#: More than this share of other control characters means the bytes are not text in that encoding.
_MAX_CONTROL_RATIO = 0.01

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_PROLOGUE = r"^(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*"
_HTML_START = re.compile(_PROLOGUE + r"<(?:!doctype\s+html|html[\s>])", re.IGNORECASE | re.DOTALL)
_HTML_TAGS = re.compile(r"<(?:head|body|title|meta\s|div[\s>]|p>|table[\s>]|h[1-6][\s>])", re.IGNORECASE)
_SVG_START = re.compile(_PROLOGUE + r"(?:<!doctype[^>]*>\s*)?<svg[\s>]", re.IGNORECASE | re.DOTALL)

#: Detected legacy encodings -> the superset that decodes the same bytes plus the characters real files use.
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "shift_jis": "cp932", "euc_kr": "cp949"}

_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

#: ZIP-based formats that are recognisable by a member name (checked in order), with a human name.
_ZIP_KINDS: tuple[tuple[str, str], ...] = (
    ("xl/workbook.xml", "an Excel workbook (XLSX)"),
    ("ppt/presentation.xml", "a PowerPoint presentation (PPTX)"),
    ("META-INF/MANIFEST.MF", "a Java archive (JAR)"),
    ("AndroidManifest.xml", "an Android package (APK)"),
)
_ODF_MIMETYPES = {
    "application/vnd.oasis.opendocument.text": "an OpenDocument text file (ODT)",
    "application/vnd.oasis.opendocument.spreadsheet": "an OpenDocument spreadsheet (ODS)",
    "application/vnd.oasis.opendocument.presentation": "an OpenDocument presentation (ODP)",
    "application/epub+zip": "an EPUB e-book",
}


@dataclass(frozen=True)
class DetectedType:
    """What a file is: its MIME type, which parser handles it and, for code, the language.

    ``encoding`` is the text encoding found while sniffing (text kinds only; the parser re-checks it on
    the whole file).
    """

    mime_type: str
    kind: Kind
    language: str | None = None
    encoding: str | None = None


@dataclass(frozen=True)
class DecodedText:
    """Bytes decoded to text: the text (BOM removed), the encoding used, and how sure we are."""

    text: str
    encoding: str
    had_bom: bool = False


def detect_type(path: Path, filename: str | None = None) -> DetectedType:
    """Detect the document type of ``path`` from its content; ``filename`` (default ``path.name``) refines text.

    Raises:
        EmptyDocumentError: the file is empty or only whitespace.
        UnsupportedTypeError: the content is binary (image, executable, archive, ...) or a ZIP that is not DOCX.
        EncryptedDocumentError: a password-protected Office document.
        CorruptDocumentError: a damaged DOCX (ZIP) container.
    """
    name = filename or path.name
    suffix = PurePath(name).suffix.lower()
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
        whole = len(head) < SNIFF_BYTES or handle.read(1) == b""
    if not head:
        raise EmptyDocumentError(f"{name} is empty (0 bytes)")

    pdf_at = head.find(b"%PDF-", 0, 1024)
    if pdf_at == 0 or (pdf_at > 0 and (not head[:pdf_at].strip() or suffix == ".pdf" or b"\x00" in head[:pdf_at])):
        return DetectedType(PDF_MIME, "pdf")  # readers accept junk before the header; text merely quoting it is not
    if head.startswith(_ZIP_MAGICS):
        return _detect_zip(path, head, name, suffix)
    if head.startswith(_OLE2_MAGIC):
        raise _ole2_error(head, name)

    decoded = decode_text(head, truncated=not whole)
    if decoded is None:
        raise UnsupportedTypeError(
            f"binary content ({_describe_binary(head)}) in {name} is not a supported document type; "
            "zhiku accepts PDF, DOCX, HTML, Markdown, plain text and source code"
        )
    if whole and not decoded.text.strip():
        raise EmptyDocumentError(f"{name} contains only whitespace")
    return _text_kind(decoded, suffix, name)


def decode_text(data: bytes, *, truncated: bool = False) -> DecodedText | None:
    """Decode ``data`` as text: BOM, then strict UTF-8, then ``charset-normalizer``; ``None`` if it is not text.

    ``truncated`` says ``data`` is only the start of a file, so a multi-byte character may be cut at the end.
    Text that decodes but is full of control characters (binary data in a single-byte encoding) is not text.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = _decode_prefix(data[len(bom) :], encoding, truncated)
            if text is not None and plausible_text(text):
                return DecodedText(text, encoding, had_bom=True)
            return None
    if b"\x00" not in data:
        text = _decode_prefix(data, "utf-8", truncated)
        if text is not None:
            return DecodedText(text, "utf-8") if plausible_text(text) else None
    guess = _guess_encoding(data, truncated)
    if guess is None:
        return None
    text = _decode_prefix(data, guess, truncated)
    if text is None or not plausible_text(text):
        return None
    return DecodedText(text, guess)


def _guess_encoding(data: bytes, truncated: bool) -> str | None:
    """The most plausible encoding by ``charset-normalizer`` (retrying without a cut trailing character)."""
    attempts = [data, data[:-1], data[:-2], data[:-3]] if truncated else [data]
    for sample in attempts:
        if not sample:
            break
        best = from_bytes(sample).best()
        if best is not None:
            name = codecs.lookup(best.encoding).name
            return _SUPERSETS.get(name, name)
    if b"\x00" in data:
        return _guess_utf16(data)
    return None


def _guess_utf16(data: bytes) -> str | None:
    """UTF-16 without a BOM for mostly-ASCII text: the zero bytes sit on one parity."""
    even = data[0::2].count(0)
    odd = data[1::2].count(0)
    half = len(data) // 2
    if half and odd > 0.3 * half and even < 0.02 * half:
        return "utf-16-le"
    if half and even > 0.3 * half and odd < 0.02 * half:
        return "utf-16-be"
    return None


def _decode_prefix(data: bytes, encoding: str, truncated: bool) -> str | None:
    """Decode strictly; a truncated prefix may end in an incomplete character, which is dropped."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        return str(decoder.decode(data, final=not truncated))
    except (UnicodeDecodeError, LookupError):
        return None


def plausible_text(text: str) -> bool:
    """No NUL and (almost) no other control characters: what real text looks like in the right encoding."""
    if "\x00" in text:
        return False
    return len(_BAD_CONTROLS.findall(text)) <= _MAX_CONTROL_RATIO * len(text)


def _text_kind(decoded: DecodedText, suffix: str, name: str) -> DetectedType:
    """Pick markdown / code / html / text for decoded text: the extension first, then HTML markers."""
    start = decoded.text.lstrip("\ufeff \t\r\n")[:4096]
    if _SVG_START.match(start):
        raise UnsupportedTypeError(f"{name} is an SVG image, which is not a supported document type")
    encoding = decoded.encoding
    if suffix in MARKDOWN_EXTENSIONS:
        return DetectedType(MARKDOWN_MIME, "markdown", encoding=encoding)
    if suffix in CODE_LANGUAGES:
        language = CODE_LANGUAGES[suffix]
        return DetectedType(_CODE_MIME.get(language, f"text/x-{language}"), "code", language, encoding)
    if suffix in HTML_EXTENSIONS or _looks_like_html(start):
        return DetectedType(HTML_MIME, "html", encoding=encoding)
    return DetectedType(TEXT_MIME, "text", encoding=encoding)


def _looks_like_html(start: str) -> bool:
    """An HTML document starts with a doctype/<html>, or begins with a tag and has typical HTML tags."""
    if _HTML_START.match(start):
        return True
    return start.startswith("<") and len(_HTML_TAGS.findall(start)) >= 2


MAX_UNZIPPED_BYTES = 512 * 1024 * 1024
"""Most bytes a DOCX may unpack to; real documents stay far below (their text is a few MB at most)."""
MAX_ZIP_RATIO = 200
"""Largest declared compression ratio of a DOCX above 10 MB unpacked; zip bombs reach thousands."""


def _refuse_zip_bomb(archive: zipfile.ZipFile, packed: int, name: str) -> None:
    """Refuse ZIP containers that declare an absurd unpacked size before anything is decompressed."""
    unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > MAX_UNZIPPED_BYTES or (unpacked > 10 * 1024 * 1024 and unpacked > MAX_ZIP_RATIO * max(packed, 1)):
        raise UnsupportedTypeError(
            f"{name} unpacks to {unpacked:,} bytes from {packed:,} (a ZIP bomb?); refused before decompressing"
        )


def _detect_zip(path: Path, head: bytes, name: str, suffix: str) -> DetectedType:
    """A ZIP is accepted only as a DOCX (it has the WordprocessingML main part); anything else names itself."""
    try:
        with zipfile.ZipFile(path) as archive:
            _refuse_zip_bomb(archive, path.stat().st_size, name)
            members = set(archive.namelist())
            content_types = ""
            if "[Content_Types].xml" in members:
                content_types = archive.read("[Content_Types].xml")[:65536].decode("utf-8", "replace")
            mimetype = ""
            if "mimetype" in members:
                mimetype = archive.read("mimetype")[:200].decode("ascii", "replace").strip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, KeyError, ValueError) as exc:
        if suffix in {".docx", ".docm"} or b"word/" in head:
            raise CorruptDocumentError(
                f"{name} looks like a DOCX file but its ZIP container is damaged: {exc}"
            ) from exc
        raise UnsupportedTypeError(
            f"{name} is a damaged ZIP archive ({exc}), which is not a supported document type"
        ) from exc
    if "word/document.xml" in members or "wordprocessingml.document.main" in content_types:
        return DetectedType(DOCX_MIME, "docx")
    if suffix in {".docx", ".docm"}:
        raise CorruptDocumentError(f"{name} is not a valid DOCX file: the ZIP archive has no word/document.xml")
    found = _ODF_MIMETYPES.get(mimetype)
    if found is None:
        found = next((label for member, label in _ZIP_KINDS if member in members), None)
    if found is None:
        found = f"a ZIP archive ({len(members)} entries, no word/document.xml)"
    raise UnsupportedTypeError(
        f"{name} is {found}, which is not a supported document type; "
        "only DOCX among ZIP-based formats is accepted (upload the files inside it separately)"
    )


def _ole2_error(head: bytes, name: str) -> Exception:
    """Legacy Office files (OLE2): encrypted OOXML lives in one too (``EncryptedPackage``)."""
    if "EncryptedPackage".encode("utf-16-le") in head:
        return EncryptedDocumentError(
            f"{name} is password-protected (an encrypted Office document); remove the password and upload it again"
        )
    return UnsupportedTypeError(
        f"{name} is a legacy Microsoft Office file (OLE2: .doc, .xls or .ppt), which is not a supported document "
        "type; save it as .docx or PDF"
    )


def _describe_binary(head: bytes) -> str:
    """Name binary content by its magic bytes (``puremagic``), e.g. ``"Portable Network Graphics file, image/png"``."""
    try:
        matches = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        return "unrecognised binary data"
    if not matches:
        return "unrecognised binary data"
    best = matches[0]  # puremagic sorts by confidence
    parts = [part for part in (best.name, best.mime_type) if part]
    return ", ".join(parts) if parts else f"{best.extension} file"
