"""Request and response bodies of the knowledge-base API (they make the OpenAPI schema)."""

from __future__ import annotations

import datetime as dt
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationInfo, field_validator

from zhiku.search.options import MAX_QUERY_CHARS, MAX_TOP_K, TOP_K
from zhiku.search.retrieve import Hit
from zhiku.storage.models import Account, ApiKey, AuditEntry, Document, Job, KnowledgeBase


def _json_number(value: object) -> object:
    """Numbers as JSON has them: pydantic's lax mode would also take ``true`` and ``"5"``, which the schema
    refuses (integral floats such as ``5.0`` stay integers, as in JSON Schema)."""
    if isinstance(value, bool | str):
        raise ValueError(f"must be a number, not {'a boolean' if isinstance(value, bool) else 'a string'}")
    return value


CREATED_BY = (
    "Who made it: `account:<id>` (a person in the web UI), `key:<id>` (an API key), `cli` (a command on the "
    "server's machine), `source:<id>` (a synced repository or folder) or `bootstrap`; null when not recorded "
    "(made before accounts existed, or by zhiku itself)."
)

JsonInt = Annotated[int, BeforeValidator(_json_number)]
"""An integer that refuses booleans and strings (for list items; fields of a :class:`JsonBody` get it anyway)."""


def _numeric(annotation: object) -> bool:
    return any(arg in (int, float) for arg in (typing.get_args(annotation) or (annotation,)))


class JsonBody(BaseModel):
    """A JSON request body whose number fields take JSON numbers only, as the schema says."""

    @field_validator("*", mode="before")
    @classmethod
    def _json_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        return _json_number(value) if field is not None and _numeric(field.annotation) else value


SPACE_CLASS = r"\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""The characters ``str.strip()`` removes, as a regex character-class body (the same in Python and ECMA-262)."""
NOT_BLANK = f"[^{SPACE_CLASS}]"
"""A schema pattern: the string has a character that is not whitespace."""
TEXT_PATTERN = f"^[^\\x00]*[^\\x00{SPACE_CLASS}][^\\x00]*$"
"""A schema pattern: not only whitespace, and no NUL character."""
KB_NAME_SCHEMA: dict[str, Any] = {
    # knowledge.NAME_PATTERN, which the server checks, without its trailing spaces; \w is any script's letter or digit
    "pattern": r"^\w([\w.\- ]{0,98}[\w.\-])?$",
    "description": "1-100 letters (any script), digits, '_', '-', '.' and spaces; starts with a letter, digit or "
    "'_', does not end with a space.",
}


class KnowledgeBaseCreate(JsonBody):
    """A new knowledge base; model, dimension and instruction are fixed for its lifetime."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, json_schema_extra=KB_NAME_SCHEMA)
    description: str = Field(default="", max_length=2000)
    model: str | None = Field(default=None, max_length=500, description="Embedding model; default: the server's.")
    dimension: int | None = Field(default=None, ge=1, le=65536, description="Matryoshka dimension.")
    index_dimension: int | None = Field(default=None, ge=1, le=65536, description="Two-stage search index size.")
    instruction: str | None = Field(default=None, max_length=2000, description="Query instruction preset or task.")
    chunk_tokens: int | None = Field(default=None, ge=16, le=32768)
    chunk_overlap: int | None = Field(default=None, ge=0, le=16384)


class KnowledgeBaseUpdate(JsonBody):
    """Changeable settings of a knowledge base."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100, json_schema_extra=KB_NAME_SCHEMA)
    description: str | None = Field(default=None, max_length=2000)


class ReindexRequest(JsonBody):
    """Re-embed a knowledge base, optionally with another model or dimension."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, max_length=500)
    dimension: int | None = Field(default=None, ge=1, le=65536)


class KnowledgeBaseOut(BaseModel):
    """A knowledge base with its counts."""

    id: str
    name: str
    description: str
    model: str
    dimension: int
    index_dimension: int | None
    instruction: str | None
    chunk_tokens: int
    chunk_overlap: int
    documents: dict[str, int] = Field(default_factory=dict, description="Documents by status.")
    chunks: int = 0
    created_at: dt.datetime
    created_by: str | None = Field(default=None, description=CREATED_BY)

    @classmethod
    def of(cls, kb: KnowledgeBase, documents: dict[str, int] | None = None, chunks: int = 0) -> KnowledgeBaseOut:
        """Build from a row."""
        return cls(
            id=kb.id,
            name=kb.name,
            description=kb.description,
            model=kb.embedding_model,
            dimension=kb.dimension,
            index_dimension=kb.index_dimension,
            instruction=kb.instruction,
            chunk_tokens=kb.chunk_tokens,
            chunk_overlap=kb.chunk_overlap,
            documents=documents or {},
            chunks=chunks,
            created_at=kb.created_at,
            created_by=kb.created_by,
        )


class DocumentOut(BaseModel):
    """A document and where it is in its life."""

    id: str
    knowledge_base_id: str
    filename: str
    source: str = Field(
        description="Where the document came from, unique in its knowledge base: 'upload:' and the uploaded "
        "relative path (folder uploads keep their folders), or the path `zhiku add` read it from"
    )
    title: str | None
    mime_type: str | None
    size_bytes: int
    status: str
    error: str | None
    warnings: list[Any]
    pages: int | None
    version: int
    chunk_count: int
    duplicate_of: str | None
    tags: list[str]
    auto_tags: dict[str, float] = Field(
        default_factory=dict,
        description="Which of `tags` auto-tagging gave, with its confidence (0-1); the others were given by people.",
    )
    metadata: dict[str, Any]
    document_date: dt.datetime | None
    created_at: dt.datetime
    created_by: str | None = Field(default=None, description=CREATED_BY)
    updated_at: dt.datetime

    @classmethod
    def of(cls, d: Document) -> DocumentOut:
        """Build from a row."""
        return cls(
            id=d.id,
            knowledge_base_id=d.kb_id,
            filename=d.filename,
            source=d.source,
            title=d.title,
            mime_type=d.mime_type,
            size_bytes=d.size_bytes,
            status=d.status,
            error=d.error,
            warnings=list(d.warnings or []),
            pages=d.pages,
            version=d.version,
            chunk_count=d.chunk_count,
            duplicate_of=d.duplicate_of,
            tags=d.tags,
            auto_tags=d.auto_tags,
            metadata=dict(d.meta or {}),
            document_date=d.document_date,
            created_at=d.created_at,
            created_by=d.created_by,
            updated_at=d.updated_at,
        )


class DocumentLabels(JsonBody):
    """Changes to a document's tags, metadata and date."""

    model_config = ConfigDict(extra="forbid")

    add_tags: list[str] = Field(default_factory=list, max_length=100)
    remove_tags: list[str] = Field(default_factory=list, max_length=100)
    set_metadata: dict[str, str] = Field(default_factory=dict)
    unset_metadata: list[str] = Field(default_factory=list, max_length=100)
    document_date: dt.datetime | None = None


class UploadOutcome(BaseModel):
    """What happened to one uploaded file."""

    filename: str
    outcome: Literal["queued", "unchanged", "duplicate", "failed"]
    document_id: str | None = None
    job_id: str | None = None
    message: str = ""


class JobOut(BaseModel):
    """A background job with its progress."""

    id: str
    kind: str
    knowledge_base_id: str | None
    document_id: str | None
    status: str
    stage: str
    progress: float
    attempts: int
    max_attempts: int
    error: str | None
    details: dict[str, Any]
    created_at: dt.datetime
    created_by: str | None = Field(default=None, description=CREATED_BY)
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        """Build from a row."""
        return cls(
            id=job.id,
            kind=job.kind,
            knowledge_base_id=job.kb_id,
            document_id=job.document_id,
            status=job.status,
            stage=job.stage,
            progress=job.progress,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            error=job.error,
            details=dict(job.payload or {}),
            created_at=job.created_at,
            created_by=job.created_by,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class SearchRequest(JsonBody):
    """A search in one knowledge base."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        json_schema_extra={"pattern": TEXT_PATTERN},
        description="Not only whitespace, no NUL character.",
    )
    mode: Literal["dense", "lexical", "hybrid"] = "hybrid"
    top_k: int = Field(default=TOP_K, ge=1, le=MAX_TOP_K)
    filters: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Filter expressions, all must hold: tag=NAME, tag=a|b, KEY=VALUE, date>=2024-01-01, "
        "date<2025-01-01, document=FILE-OR-ID, type=pdf.",
    )
    document_ids: list[str] | None = Field(default=None, max_length=1000)
    min_score: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Drop hits whose score (relevance, 0-1, the same scale for every query and mode) is below this.",
    )
    neighbours: int = Field(default=0, ge=0, le=10)
    rerank: StrictBool = Field(
        default=False, description="Reorder the best candidates with the configured reranker (true or false)."
    )
    hyde: StrictBool = Field(
        default=False,
        description="HyDE: the configured chat model writes a passage answering the query, and the dense side "
        "searches with the mean of its vector and the query's (modes dense and hybrid; 400 without a chat model).",
    )


class HitOut(BaseModel):
    """One search hit with its citation."""

    chunk_id: str
    document_id: str
    filename: str
    title: str | None
    page_start: int
    page_end: int
    char_start: int
    char_end: int
    heading_path: list[str]
    text: str
    highlighted: str = Field(description="The passage with the query's terms wrapped in <mark>.")
    highlights: list[tuple[int, int]]
    score: float = Field(
        description="Relevance from 0 (unrelated) to 1 (as close as a typical answer), comparable across queries "
        "and modes; never higher than the hit above it (docs/search.md)."
    )
    scores: dict[str, float] = Field(description="The raw per-stage scores: dense cosine, BM25, fused, rerank.")
    context_before: str
    context_after: str
    tags: list[str]
    metadata: dict[str, str]
    ocr_confidence: float | None = Field(
        default=None,
        description="When the passage was read by OCR from a scanned page: the OCR's confidence (0-1, the lowest "
        "of its pages); null for text the document itself holds.",
    )
    context: str = Field(
        default="",
        description="When the passage is a group of a table's rows: the table's header row(s), to show above it "
        "(not part of text; highlights and offsets refer to text alone). Empty otherwise.",
    )

    @classmethod
    def of(cls, hit: Hit) -> HitOut:
        """Build from a search hit (its fields of the same names)."""
        return cls.model_validate({name: getattr(hit, name) for name in cls.model_fields})


class SearchResponse(BaseModel):
    """Hits, best first."""

    knowledge_base_id: str
    query: str
    mode: str
    hits: list[HitOut]
    took_ms: float
    hypothetical_answer: str | None = Field(
        default=None, description="With hyde: the chat model's passage that was searched for along with the query."
    )


class PageOut(BaseModel):
    """The text of one page of a document."""

    document_id: str
    page: int
    pages: int
    text: str
    ocr_confidence: float | None = Field(
        default=None, description="When the page is a scan read by OCR: the OCR's confidence (0-1); else null."
    )


class SimilarDocumentOut(BaseModel):
    """A document similar to the one asked about, with the cosine similarity of their document vectors."""

    score: float = Field(description="Cosine similarity of the two documents' vectors (-1 to 1; 1 is the same).")
    document: DocumentOut


class ChunkOut(BaseModel):
    """A chunk with the text around it."""

    id: str
    document_id: str
    ordinal: int
    page_start: int
    page_end: int
    char_start: int
    char_end: int
    text: str
    context_before: str
    context_after: str


class ApiKeyCreate(JsonBody):
    """A new API key."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)
    scope: Literal["read", "write", "admin"] = "read"
    owner: Literal["me", "tenant"] = Field(
        default="me",
        description="`me`: the logged-in person's key; `tenant`: the tenant's (admins; what an admin API key makes).",
    )


class ApiKeyOut(BaseModel):
    """An API key without its secret."""

    id: str
    tenant_id: str
    name: str
    prefix: str
    scope: str
    account_id: str | None = Field(description="The person who owns the key; null: the tenant's key.")
    created_by: str | None = Field(description=CREATED_BY)
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        """Build from a row."""
        return cls(
            id=key.id,
            tenant_id=key.tenant_id,
            name=key.name,
            prefix=key.prefix,
            scope=str(key.scopes[0]),
            account_id=key.account_id,
            created_by=key.created_by,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class ApiKeyCreated(ApiKeyOut):
    """A new key: ``key`` is shown this once."""

    key: str


Role = Literal["reader", "editor", "admin"]


class AccountOut(BaseModel):
    """A person's account (never its password)."""

    id: str
    tenant_id: str
    login: str
    role: Role
    disabled: bool
    created_at: dt.datetime
    created_by: str | None
    last_login_at: dt.datetime | None

    @classmethod
    def of(cls, account: Account) -> AccountOut:
        """Build from a row."""
        return cls(
            id=account.id,
            tenant_id=account.tenant_id,
            login=account.login,
            role=typing.cast(Role, account.role),
            disabled=account.disabled_at is not None,
            created_at=account.created_at,
            created_by=account.created_by,
            last_login_at=account.last_login_at,
        )


class AccountCreate(JsonBody):
    """A new account (an invitation): without a password, one is generated and returned once."""

    model_config = ConfigDict(extra="forbid")

    login: str = Field(
        min_length=1, max_length=254, description="A user name (any script) or e-mail address, stored case-folded."
    )
    role: Role = "reader"
    password: str | None = Field(default=None, min_length=8, max_length=1024, description="Not only spaces.")


class AccountCreated(AccountOut):
    """A new account: ``password`` is the generated one, shown this once (null when it was given)."""

    password: str | None


class AccountUpdate(JsonBody):
    """Change a role, or disable (ends its sessions and stops its keys) or enable an account."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    disabled: StrictBool | None = None


class PasswordReset(JsonBody):
    """A new password for someone else's account (an admin's reset); generated when absent."""

    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(default=None, min_length=8, max_length=1024)


class NewPassword(BaseModel):
    """The password after a reset, shown this once; the account's sessions have ended."""

    account: AccountOut
    password: str


class PasswordChange(JsonBody):
    """A person's own new password."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024, description="Not only spaces.")


class LoginRequest(JsonBody):
    """A login with a user name (or e-mail) and password."""

    model_config = ConfigDict(extra="forbid")

    login: str = Field(max_length=1000)
    password: str = Field(max_length=1024)


class SessionOut(BaseModel):
    """Who is logged in: the account, the CSRF token to send as `X-CSRF-Token` on writes, and the session's end.
    With `auth: "off"` (development) there is no account and every request acts as an admin."""

    auth: Literal["on", "off"]
    account: AccountOut | None
    csrf_token: str
    expires_at: dt.datetime | None


class AuditEntryOut(BaseModel):
    """One administrative action."""

    id: int
    at: dt.datetime
    actor: str = Field(description="`account:<id>`, `key:<id>`, `cli` (on the server's machine) or `bootstrap`.")
    action: str = Field(description="e.g. `knowledge_base.create`, `key.revoke`, `account.update`.")
    target: str = Field(description="The id of the object acted on.")
    details: dict[str, Any]

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryOut:
        """Build from a row."""
        return cls(
            id=entry.id, at=entry.at, actor=entry.actor, action=entry.action, target=entry.target,
            details=entry.details,
        )  # fmt: skip


class ErrorDetail(BaseModel):
    """What went wrong (OpenAI's error shape)."""

    message: str
    type: str
    param: str | None = None
    code: str


class ErrorResponse(BaseModel):
    """Every error response."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Invalid request",
        401: "Not logged in, or a missing, unknown or revoked API key",
        403: "The key's scope (or the account's role) does not allow it; or a session write without its CSRF token",
        404: "Not found (also for other tenants' objects)",
        409: "Conflicts with the current state",
        413: "Too large (body, file, input or quota)",
        415: "Unsupported content type or document type",
        422: "A document that cannot be ingested",
        429: "Rate limited or overloaded (see Retry-After)",
    }.items()
}


class AutoTagLabelBody(BaseModel):
    """An auto-tag label: the tag's name and, optionally, what documents of it are about (embedded with it)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="The tag documents get (trimmed, case-folded).")
    description: str = Field(default="", max_length=1000, description="What it means, in a phrase (any language).")


class AutoTagLabels(BaseModel):
    """A knowledge base's auto-tag labels (an empty list turns auto-tagging at ingestion off)."""

    model_config = ConfigDict(extra="forbid")

    labels: list[AutoTagLabelBody] = Field(max_length=100)


class AutoTagRunBody(JsonBody):
    """Options of an auto-tagging run."""

    model_config = ConfigDict(extra="forbid")

    min_confidence: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Tag a document only at this confidence or above (default: the "
        "server's `auto_tag_min_confidence`).",
    )


class AutoTagRunOut(BaseModel):
    """What an auto-tagging run did."""

    documents: int = Field(description="Ready documents looked at.")
    tagged: int = Field(description="Documents that got a tag.")
    by_label: dict[str, int] = Field(description="Documents per tag.")


class DuplicateMemberOut(BaseModel):
    """A document (or one of its chunks) in a near-duplicate group."""

    document_id: str
    filename: str
    title: str | None
    language: str = Field(description="Script hint of its text: zh, ja, ko, latin, or empty")
    score: float = Field(description="Its highest cosine with another member of the group")
    chunk_count: int
    created_at: dt.datetime
    text: str = Field(description="The beginning of its text (the chunk's text at the chunks level)")
    chunk_id: str | None = None
    ordinal: int | None = None
    page: int | None = None


class DuplicatePairOut(BaseModel):
    """Two members (positions in ``members``) and how they are near-duplicates."""

    left: int
    right: int
    score: float
    kind: Literal["copy", "translation", "similar"]


class DuplicateGroupOut(BaseModel):
    """Documents (or chunks) that say the same thing."""

    members: list[DuplicateMemberOut]
    pairs: list[DuplicatePairOut]
    kinds: list[Literal["copy", "translation", "similar"]]
    score: float = Field(description="The group's weakest confirmed pair")
    keep: int = Field(description="Position of the member kept by a resolve: oldest, then most chunks")


class DuplicatesOut(BaseModel):
    """A knowledge base's near-duplicate groups."""

    knowledge_base_id: str
    level: Literal["documents", "chunks"]
    threshold: float
    groups: list[DuplicateGroupOut]


class DuplicatesResolve(JsonBody):
    """Keep one document per near-duplicate group, delete the others."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(
        default=None, ge=0.5, le=1.0, description="As for the list (default: the server's setting)"
    )
    kinds: list[Literal["copy", "translation", "similar"]] | None = Field(
        default=None, description="Only pairs of these kinds join groups (default: all)"
    )
    keep: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None,
        max_length=1000,
        description="Documents to keep: only their groups are resolved. Without: every group keeps its member "
        "the oldest (most chunks on a tie)",
    )


class DuplicatesResolved(BaseModel):
    """What a resolve kept and deleted."""

    kept: list[DuplicateMemberOut]
    deleted: list[DuplicateMemberOut]


class TopicDocumentOut(BaseModel):
    """A document on the topic map: its cluster and position (each coordinate in -1..1)."""

    id: str
    filename: str
    title: str | None
    cluster: int
    x: float
    y: float


class TopicOut(BaseModel):
    """One cluster of the topic map: its name (distinctive terms), size, centre and documents."""

    id: int
    name: str
    terms: list[str]
    size: int
    x: float
    y: float
    document_ids: list[str]


class TopicMapOut(BaseModel):
    """A knowledge base's documents in clusters, with a 2-D layout."""

    kb_id: str
    automatic: bool = Field(description="Whether the number of clusters was chosen automatically.")
    vectors: str = Field(description="`document` (pooled document vectors) or `clustering-instruction`.")
    clusters: list[TopicOut]
    documents: list[TopicDocumentOut]

    @classmethod
    def of(cls, found: Any) -> TopicMapOut:
        """From a :class:`zhiku.knowledge.topics.TopicMap`."""
        return cls(
            kb_id=found.kb_id,
            automatic=found.automatic,
            vectors=found.vectors,
            clusters=[TopicOut(**vars(c)) for c in found.clusters],
            documents=[TopicDocumentOut(**vars(d)) for d in found.documents],
        )
