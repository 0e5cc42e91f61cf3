"""Documents: multipart upload (streamed to disk, checked before anything is registered), list, get, download,
labels, re-ingest, delete, page and chunk previews."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from python_multipart.multipart import DEFAULT_MAX_HEADER_SIZE
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from zhiku.api.auth import Reader, Writer
from zhiku.api.deps import AppState, State
from zhiku.api.schemas import ChunkOut, DocumentLabels, DocumentOut, PageOut, SimilarDocumentOut, UploadOutcome
from zhiku.api.security import file_headers
from zhiku.core import Zhiku
from zhiku.errors import (
    DocumentError,
    FileTooLargeError,
    InvalidInputError,
    NotFoundError,
    QuotaExceededError,
    UnsupportedTypeError,
)
from zhiku.keys import Principal
from zhiku.knowledge.bases import get_knowledge_base, tenant_usage
from zhiku.knowledge.documents import (
    Labels,
    NewFile,
    delete_document,
    get_document,
    label_document,
    list_documents,
    register_files,
    reingest_document,
    sanitize_filename,
)
from zhiku.knowledge.pages import document_page
from zhiku.knowledge.similar import similar_documents
from zhiku.search.filters import check_metadata, normalize_tag, parse_date
from zhiku.search.options import MAX_TOP_K, TOP_K
from zhiku.search.retrieve import chunk_in_context
from zhiku.storage.models import Document, KnowledgeBase
from zhiku.storage.staging import staging_folder

router = APIRouter(prefix="/api/v1/knowledge-bases/{kb_id}", tags=["documents"])


def upload_path(path: str) -> bool:
    """True for the upload route (it has its own, larger body limit)."""
    return path.startswith("/api/v1/knowledge-bases/") and path.rstrip("/").endswith("/documents")


MAX_SOURCE_CHARS = 1000
"""Longer upload paths are identified by a prefix and a hash (the column holds 2,000 characters)."""


def _source_for(filename: str) -> str:
    """A stable document identity for an uploaded name: its cleaned relative path (no '..', no root), in full
    (two long names that differ only beyond the display name's cut are two documents)."""
    raw = PurePosixPath(filename.replace("\\", "/")).parts
    parts = [sanitize_filename(p, max_bytes=None) for p in raw if p not in ("", ".", "..", "/")]
    source = "upload:" + "/".join(parts or ["unnamed"])
    if len(source) > MAX_SOURCE_CHARS:
        digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
        source = f"{source[: MAX_SOURCE_CHARS - 70]}…#{digest}"
    return source


def _labels(tags: list[str], metadata: str | None, document_date: str | None) -> Labels:
    meta = None
    if metadata:
        try:
            parsed = json.loads(metadata)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"metadata must be a JSON object of strings: {exc}", param="metadata") from None
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            raise InvalidInputError("metadata must be a JSON object of string values", param="metadata")
        meta = check_metadata(parsed)
    return Labels(
        tags=[normalize_tag(t) for t in tags] if tags else None,
        metadata=meta,
        document_date=parse_date(document_date, param="document_date") if document_date else None,
    )


def _stage(zhiku: Zhiku, upload: UploadFile, folder: Path) -> tuple[Path, str, int]:
    """Copy one upload to ``folder`` (bounded by ``max_file_bytes``) and run the fast structural check on it (in a
    checking process: its type by content, a PDF that opens, a sound DOCX container, text within the character
    limit); returns (path, name, size).

    The staged file is named by its position only: the uploaded name, however long or strange, is a display name
    and never a path component."""
    raw_name = upload.filename or "unnamed"
    name = sanitize_filename(raw_name)
    target = folder / str(len(list(folder.iterdir())))
    size = 0
    max_bytes = zhiku.settings.max_file_bytes
    with target.open("wb") as sink:
        while chunk := upload.file.read(1024 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise FileTooLargeError(f"{name} is over the limit of {max_bytes:,} bytes (setting max_file_bytes)")
            sink.write(chunk)
    try:
        zhiku.checkers.check(target, name)  # unsupported, empty, encrypted, damaged, oversized: the upload stops here
    except DocumentError as exc:
        exc.param = exc.param or "files"
        raise
    return target, raw_name, size


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "string", "format": "binary"},
                            "description": "The files (repeat the part). Each is checked by content: PDF, DOCX, "
                            "text, Markdown, HTML, ...; other types are a 415, damaged or empty ones a 422.",
                        },
                        "tags": {"type": "array", "items": {"type": "string"}, "description": "Tags (repeatable)."},
                        "metadata": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "description": "A JSON object of string values.",
                        },
                        "document_date": {
                            "type": "string",
                            "format": "date-time",
                            "description": "ISO 8601 date or date-time.",
                        },
                    },
                },
                "encoding": {"metadata": {"contentType": "application/json"}},
            }
        },
    }
}


async def _read_form(request: Request, max_files: int) -> FormData:
    """The multipart body, or a 400 that says what is wrong with it (Starlette says only "Invalid multipart
    data." for a parser error)."""
    try:
        return await request.form(max_files=max_files, max_fields=200)
    except HTTPException as exc:
        cause = exc.__context__.__cause__ if exc.__context__ is not None else None
        if cause is not None and "header size" in str(cause):
            message = (
                f"a header of a multipart part is over the parser's limit of {DEFAULT_MAX_HEADER_SIZE:,} bytes: "
                "most likely a file name that long (shorten it; names are kept to 255 bytes anyway)"
            )
        else:
            message = f"the multipart body cannot be read: {cause or exc.detail}"
        raise InvalidInputError(message, param="files") from None


@router.post("/documents", status_code=201, openapi_extra=UPLOAD_BODY)
async def upload(kb_id: str, request: Request, state: State, principal: Writer) -> list[UploadOutcome]:
    """Upload files (multipart/form-data, field `files`, repeatable; optional `tags` (repeatable), `metadata`
    (JSON object of strings) and `document_date` (ISO 8601)). Every file is checked first (size, type by
    content, name); if any is refused, nothing is registered and the error names the file. Accepted files are
    queued for ingestion; follow them with the job events."""
    settings = state.settings
    kb = await run_in_threadpool(get_knowledge_base, state.zhiku, kb_id, principal.tenant_id)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise UnsupportedTypeError(f"send files as multipart/form-data, not {content_type or 'no content type'!r}")
    form = await _read_form(request, settings.max_upload_files)
    try:
        files = [value for key, value in form.multi_items() if key == "files" and isinstance(value, UploadFile)]
        if not files:
            raise InvalidInputError("no files: send one or more multipart parts named 'files'", param="files")
        labels = _labels(
            [str(t) for t in form.getlist("tags")], _text(form.get("metadata")), _text(form.get("document_date"))
        )
        with staging_folder(settings.ensure_home()) as staging:  # locked: `zhiku serve` cleans unowned ones
            staged = [await run_in_threadpool(_stage, state.zhiku, f, staging) for f in files]
            if settings.tenant_quota_bytes is not None:
                used = await run_in_threadpool(tenant_usage, state.zhiku, principal.tenant_id)
                incoming = sum(size for _, _, size in staged)
                if used + incoming > settings.tenant_quota_bytes:
                    raise QuotaExceededError(
                        f"storage quota exceeded: {used:,} bytes used + {incoming:,} uploaded > "
                        f"{settings.tenant_quota_bytes:,} (setting tenant_quota_bytes)"
                    )
            new_files = [NewFile(path, _source_for(raw_name), raw_name) for path, raw_name, _ in staged]
            register = functools.partial(
                register_files, state.zhiku, kb, new_files, labels=labels, created_by=principal.actor
            )
            registrations = await run_in_threadpool(register)  # one transaction for the whole upload
            return [
                UploadOutcome.model_validate(
                    {
                        "filename": sanitize_filename(raw_name),
                        "outcome": registration.outcome,
                        "document_id": registration.document_id,
                        "job_id": registration.job_id,
                        "message": registration.message,
                    }
                )
                for (_, raw_name, _), registration in zip(staged, registrations, strict=True)
            ]
    finally:
        await form.close()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


@router.get("/documents")
def list_all(
    kb_id: str, state: State, principal: Reader, status: Annotated[str | None, Query(max_length=20)] = None
) -> list[DocumentOut]:
    """The knowledge base's documents, newest first (optionally only one status)."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    return [DocumentOut.of(d) for d in list_documents(state.zhiku, kb) if status is None or d.status == status]


def _document(state: AppState, principal: Principal, kb_id: str, document_id: str) -> tuple[KnowledgeBase, Document]:
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    return kb, get_document(state.zhiku, kb, document_id)


@router.get("/documents/{document_id}")
def get(kb_id: str, document_id: str, state: State, principal: Reader) -> DocumentOut:
    """One document."""
    return DocumentOut.of(_document(state, principal, kb_id, document_id)[1])


@router.get("/documents/{document_id}/file", response_class=FileResponse)
def download(kb_id: str, document_id: str, state: State, principal: Reader) -> FileResponse:
    """The original file as uploaded: a download (`Content-Disposition: attachment`) except PDFs, which are shown
    in place; always with a sandboxing Content-Security-Policy, so an uploaded page never runs on zhiku's origin."""
    _, document = _document(state, principal, kb_id, document_id)
    path = state.zhiku.blobs.path_for(document.content_hash)
    if not path.is_file():
        raise NotFoundError(f"the file of {document.filename} is no longer stored")
    media_type = document.mime_type or "application/octet-stream"
    return FileResponse(path, media_type=media_type, headers=file_headers(document.filename, media_type))


@router.patch("/documents/{document_id}")
def relabel(kb_id: str, document_id: str, body: DocumentLabels, state: State, principal: Writer) -> DocumentOut:
    """Change tags, metadata or date (search filters see it at once; no re-indexing)."""
    _, document = _document(state, principal, kb_id, document_id)
    return DocumentOut.of(
        label_document(
            state.zhiku,
            document,
            add_tags=body.add_tags,
            remove_tags=body.remove_tags,
            set_metadata=body.set_metadata,
            unset_metadata=body.unset_metadata,
            document_date=body.document_date,
        )
    )


@router.post("/documents/{document_id}/reingest", status_code=202)
def reingest(kb_id: str, document_id: str, state: State, principal: Writer) -> UploadOutcome:
    """Ingest the document's content again as a new version."""
    kb, document = _document(state, principal, kb_id, document_id)
    registration = reingest_document(state.zhiku, kb, document, created_by=principal.actor)
    return UploadOutcome(
        filename=document.filename, outcome="queued", document_id=document.id, job_id=registration.job_id
    )


@router.delete("/documents/{document_id}", status_code=204)
def delete(kb_id: str, document_id: str, state: State, principal: Writer) -> Response:
    """Delete a document with its chunks and vectors."""
    kb, document = _document(state, principal, kb_id, document_id)
    delete_document(state.zhiku, kb, document)
    return Response(status_code=204)


@router.get("/documents/{document_id}/pages/{page}")
def page_text(kb_id: str, document_id: str, page: int, state: State, principal: Reader) -> PageOut:
    """The text of one page (1-based), to show a hit in place."""
    _, document = _document(state, principal, kb_id, document_id)
    found = document_page(state.zhiku, document, page)
    return PageOut(
        document_id=document.id,
        page=found.page,
        pages=found.pages,
        text=found.text,
        ocr_confidence=found.ocr_confidence,
    )


@router.get("/documents/{document_id}/similar")
def similar(
    kb_id: str,
    document_id: str,
    state: State,
    principal: Reader,
    top_k: Annotated[int, Query(ge=1, le=MAX_TOP_K, description="How many similar documents to return.")] = TOP_K,
) -> list[SimilarDocumentOut]:
    """The knowledge base's documents most like this one ("more like this"), most similar first: the cosine of
    document vectors (each the pooled vectors of its chunks), across languages as far as the model goes. 409 while
    the document has no searchable version."""
    kb, document = _document(state, principal, kb_id, document_id)
    return [
        SimilarDocumentOut(score=round(found.score, 6), document=DocumentOut.of(found.document))
        for found in similar_documents(state.zhiku, kb, document, top_k)
    ]


@router.get("/chunks/{chunk_id}")
def chunk(
    kb_id: str,
    chunk_id: str,
    state: State,
    principal: Reader,
    context: Annotated[int, Query(ge=0, le=10, description="Neighbouring chunks to add each side.")] = 1,
) -> ChunkOut:
    """A chunk of an active document version with the text around it."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    found = chunk_in_context(state.zhiku, kb, chunk_id, context)
    row = found.chunk
    return ChunkOut(
        id=row.id,
        document_id=row.document_id,
        ordinal=row.ordinal,
        page_start=row.page_start,
        page_end=row.page_end,
        char_start=row.char_start,
        char_end=row.char_end,
        text=row.text,
        context_before=found.context_before,
        context_after=found.context_after,
    )
