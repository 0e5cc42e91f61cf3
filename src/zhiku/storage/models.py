"""SQLAlchemy models of the metadata database: the source of truth for knowledge bases, documents, chunks, jobs."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def new_id() -> str:
    """A random 32-hex-digit identifier."""
    return uuid.uuid4().hex


def utcnow() -> dt.datetime:
    """Timezone-aware now in UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores them as naive text; they come back aware)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        """Store in UTC."""
        if value is not None and value.tzinfo is not None:
            return value.astimezone(dt.UTC)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        """Read back as aware UTC."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base of all zhiku tables."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class DocumentStatus(enum.StrEnum):
    """Where a document is in its life."""

    queued = "queued"
    parsing = "parsing"
    embedding = "embedding"
    ready = "ready"
    duplicate = "duplicate"
    failed = "failed"


class JobStatus(enum.StrEnum):
    """Where a job is in its life; ``dead`` = failed after its last attempt."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class KnowledgeBase(Base):
    """A named collection of documents embedded with one model, dimension and instruction."""

    __tablename__ = "knowledge_bases"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_kb_tenant_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64), default="default", index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    embedding_model: Mapped[str] = mapped_column(String(500))
    dimension: Mapped[int] = mapped_column(Integer)
    index_dimension: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Matryoshka two-stage search: HNSW on this prefix of the vectors, rescoring at ``dimension``."""
    instruction: Mapped[str | None] = mapped_column(Text, nullable=True)
    chunk_tokens: Mapped[int] = mapped_column(Integer)
    chunk_overlap: Mapped[int] = mapped_column(Integer)
    collection: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    """Who created it (:attr:`zhiku.keys.Principal.actor`); ``None`` before accounts existed."""
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    documents: Mapped[list[Document]] = relationship(back_populates="knowledge_base", cascade="all, delete-orphan")


SOURCE_PREFIX = "source:"
"""Documents of a synced source (:mod:`zhiku.knowledge.sources`) are identified as ``source:<source id>:<path>``."""


class Document(Base):
    """One source document in a knowledge base; ``version`` is the active (searchable) version, 0 = none yet."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("kb_id", "source", name="uq_document_kb_source"),
        Index("ix_documents_kb_hash", "kb_id", "content_hash"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(2000))
    filename: Mapped[str] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64))
    mime_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default=DocumentStatus.queued, index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    warnings: Mapped[list[Any]] = mapped_column(default=list)
    title: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    pending_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pending_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    duplicate_of: Mapped[str | None] = mapped_column(String(32), nullable=True)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    """User metadata: string keys to string values, filterable with ``key=value``."""
    document_date: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    """When the source was last modified (file mtime or given at upload); date filters fall back to created_at."""
    ocr_pages: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Pages of the active version read by OCR: page number (as a string) to the OCR confidence (0-1)."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    """Who added it (:attr:`zhiku.keys.Principal.actor`), or the source that synced it; ``None`` if unknown."""
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    knowledge_base: Mapped[KnowledgeBase] = relationship(back_populates="documents")
    tag_rows: Mapped[list[DocumentTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="DocumentTag.tag"
    )

    @property
    def tags(self) -> list[str]:
        """The document's tags, sorted."""
        return [row.tag for row in self.tag_rows]

    @property
    def auto_tags(self) -> dict[str, float]:
        """The tags given by auto-tagging, with their confidence (0-1)."""
        return {row.tag: row.confidence for row in self.tag_rows if row.confidence is not None}

    @property
    def path(self) -> str:
        """The document's path in the repository or folder it is synced from (``src/pkg/mod.py``), else its file
        name: what parsers are told the document is called (code sections are headed by it)."""
        if self.source.startswith(SOURCE_PREFIX):
            path = self.source.split(":", 2)[2]
            if path:
                return path
        return self.filename


class OcrPage(Base):
    """The OCR text of one page of a stored file (by content hash), kept so that a job interrupted in the middle of
    a long scan, or giving other jobs a turn, resumes where it was, and a page is read by OCR once."""

    __tablename__ = "ocr_pages"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    page: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text, default="")
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why the page could not be read (then ``text`` is empty); such a page is not tried again."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DocumentTag(Base):
    """A tag on a document (a table, not a JSON list, so tag filters are portable, indexed SQL)."""

    __tablename__ = "document_tags"
    __table_args__ = (Index("ix_document_tags_tag", "tag"),)

    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)
    """For a tag given by auto-tagging (:mod:`zhiku.pipeline.auto_tags`): its confidence (0-1); ``None`` for a tag a
    person gave. Auto-tags are replaced when auto-tagging runs again; a person's tags never are."""


class AutoTagLabel(Base):
    """A label the knowledge base's owner wants documents tagged with, zero-shot, and what it means."""

    __tablename__ = "auto_tag_labels"

    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    """The tag given (normalised like every tag)."""
    description: Mapped[str] = mapped_column(Text, default="")
    """What documents of this label are about, in a phrase (any language): it is embedded with the name."""
    position: Mapped[int] = mapped_column(Integer, default=0)


class Chunk(Base):
    """A chunk of one version of a document; ``(document_id, version, ordinal)`` is its identity."""

    __tablename__ = "chunks"
    __table_args__ = (
        UniqueConstraint("document_id", "version", "ordinal", name="uq_chunk_doc_version_ordinal"),
        Index("ix_chunks_hash", "text_hash"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    tokens: Mapped[int] = mapped_column(Integer)
    page_start: Mapped[int] = mapped_column(Integer)
    page_end: Mapped[int] = mapped_column(Integer)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    heading_path: Mapped[list[Any]] = mapped_column(default=list)
    text_hash: Mapped[str] = mapped_column(String(64))
    #: Read with the text but not part of it: a table's header row(s) over a group of its rows, else "".
    context: Mapped[str] = mapped_column(Text, default="", server_default="")


class Job(Base):
    """A durable unit of background work. The row is the truth; runners only claim and update it."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_run_after", "status", "run_after"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(50))
    kb_id: Mapped[str | None] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"), nullable=True)
    document_id: Mapped[str | None] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), nullable=True, index=True
    )
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.queued)
    stage: Mapped[str] = mapped_column(String(50), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """The runner ("host:pid") running the job, or the one that finished it."""
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    run_after: Mapped[dt.datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    """Who queued it (:attr:`zhiku.keys.Principal.actor`); ``None`` for jobs zhiku queued itself."""


class DocumentVector(Base):
    """One vector for a whole document version (its chunks' vectors pooled): similar documents, duplicates, maps."""

    __tablename__ = "document_vectors"

    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    """The document version it was pooled from (a vector of an older version is pooled again on use)."""
    model_key: Mapped[str] = mapped_column(String(300))
    """The embedding model and dimension of the chunk vectors it was pooled from (they change with a re-index)."""
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    """float32, little-endian, L2-normalised, of the knowledge base's dimension."""
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class EmbeddingCacheEntry(Base):
    """A chunk text's vector for one model setup, so identical texts are embedded once."""

    __tablename__ = "embedding_cache"

    model_key: Mapped[str] = mapped_column(String(600), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key of a tenant: only its SHA-256 is stored (keys are 256-bit random, so no slow hash is needed)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    """The key's first characters, shown in listings so users can tell keys apart."""
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True, index=True
    )
    """The person who owns the key (it stops working while they are disabled); ``None``: the tenant's."""
    created_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    """Who created it: ``account:<id>``, ``key:<id>``, ``cli`` or ``bootstrap``."""


class Account(Base):
    """A person who logs in to a tenant: a login name (or e-mail), an Argon2id password hash and a role."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    login: Mapped[str] = mapped_column(String(254), unique=True)
    """Lower-cased user name or e-mail address, unique across tenants (a login names one account)."""
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class LoginSession(Base):
    """A logged-in browser: only a SHA-256 of its cookie's token is stored; deleting the row logs it out."""

    __tablename__ = "login_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    """Sent back by the UI in ``X-CSRF-Token`` on every write made with the cookie."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    address: Mapped[str] = mapped_column(String(64), default="")


class AuditEntry(Base):
    """One administrative action: who did what to which object, and when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(50))
    target: Mapped[str] = mapped_column(String(100), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SourceKind(enum.StrEnum):
    """Where a source's files come from."""

    git = "git"
    folder = "folder"


class SourceStatus(enum.StrEnum):
    """How a source's last sync went."""

    new = "new"
    syncing = "syncing"
    synced = "synced"
    failed = "failed"


class Source(Base):
    """A git repository or a folder whose files a knowledge base keeps in sync (``zhiku sync``).

    Its documents are those whose ``source`` starts with ``source:<id>:`` (then the file's path in the repository
    or folder). ``manifest`` maps each path registered at the last sync to what identified its content then (a
    git blob id, or a folder file's size and modification time), so unchanged files are not even read again; a
    file the sync skipped (say, not a document type) is recorded as ``[key, reason]``.
    """

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    location: Mapped[str] = mapped_column(String(2000))
    """The repository's URL, or the folder's absolute path."""
    ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """The branch or tag followed (git; ``None``: the remote's default branch)."""
    commit: Mapped[str | None] = mapped_column("synced_commit", String(64), nullable=True)
    """The commit of the last successful sync (git)."""
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default=SourceStatus.new)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    synced_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
