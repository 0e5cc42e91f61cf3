"""Knowledge bases: create (model, dimension, instruction and chunking fixed for life), list, find, rename, count,
delete; a tenant's storage use."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from zhiku.audit import record
from zhiku.core import Zhiku
from zhiku.embedding.instructions import resolve_instruction
from zhiku.embedding.models import resolve_api_model, resolve_model
from zhiku.errors import ConflictError, InvalidInputError, NotFoundError
from zhiku.knowledge.documents import drop_unreferenced_blobs
from zhiku.storage.models import (
    Chunk,
    Document,
    Job,
    KnowledgeBase,
    new_id,
)

NAME_PATTERN = re.compile(r"^[\w][\w.\- ]{0,99}$", re.UNICODE)


@dataclass(frozen=True)
class KnowledgeBaseStats:
    """Counts of a knowledge base's documents by status, and of its active chunks."""

    documents: dict[str, int]
    chunks: int


def create_knowledge_base(
    zhiku: Zhiku,
    name: str,
    *,
    model: str | None = None,
    dimension: int | None = None,
    index_dimension: int | None = None,
    instruction: str | None = None,
    chunk_tokens: int | None = None,
    chunk_overlap: int | None = None,
    description: str = "",
    tenant_id: str = "default",
    from_api: bool = False,
    created_by: str = "cli",
) -> KnowledgeBase:
    """Create a knowledge base; its model, dimension and instruction are fixed for its lifetime.

    ``index_dimension`` (Matryoshka models only) indexes a shorter prefix of each vector and rescores the best
    candidates at the full ``dimension``: less index memory for a small loss of recall. ``from_api``: the model
    name comes from an API caller, who may only name the models :func:`resolve_api_model` allows (the operator's
    commands may name any local model folder). ``created_by`` is recorded with it and in the audit log.
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name != name.strip():
        raise InvalidInputError(
            "knowledge base names are 1-100 characters: letters (any script), digits, '_', '-', '.', spaces; "
            f"got {name!r}",
            param="name",
        )
    settings = zhiku.settings
    if model is not None and from_api:
        spec = resolve_api_model(model, settings)
    else:
        spec = resolve_model(model or settings.embedding_model)
    dim = spec.check_dimension(dimension)
    if index_dimension is not None:
        if not spec.matryoshka or not isinstance(index_dimension, int):
            raise InvalidInputError(
                f"model {spec.name} is not a Matryoshka model: it cannot use a reduced index dimension",
                param="index_dimension",
            )
        if not (spec.min_dimension or 32) <= index_dimension < dim:
            raise InvalidInputError(
                f"index dimension must be {spec.min_dimension} to {dim - 1} (below the dimension {dim}), "
                f"got {index_dimension}",
                param="index_dimension",
            )
    task = None
    if instruction is not None:
        if not spec.instruction_aware:
            raise InvalidInputError(f"model {spec.name} does not take instructions", param="instruction")
        task = resolve_instruction(instruction)
    usable = spec.max_tokens - 2  # room for the model's special tokens
    size = chunk_tokens or min(settings.default_chunk_tokens, usable)  # the default fits short-context models
    overlap = settings.default_chunk_overlap if chunk_overlap is None else chunk_overlap
    if not 16 <= size <= usable:
        raise InvalidInputError(
            f"chunk size must be 16 to {usable} tokens for {spec.name}, got {size}", param="chunk_tokens"
        )
    if not 0 <= overlap < size // 2 + 1:
        raise InvalidInputError(
            f"chunk overlap must be 0 to {size // 2} tokens (half the chunk size), got {overlap}", param="chunk_overlap"
        )
    with zhiku.db.session() as session:
        _check_name_free(session, tenant_id, name)
    kb_id = new_id()
    # the collection first, outside any metadata transaction: a collection the store refuses (e.g. too many
    # dimensions for pgvector's index) leaves no knowledge base behind, and no transaction waits on the store
    collection = f"kb_{kb_id}"
    zhiku.vectors.ensure_collection(collection, dim, index_dimension=index_dimension)
    try:
        with zhiku.db.session() as session:
            _check_name_free(session, tenant_id, name)  # again: another request may have taken it meanwhile
            kb = KnowledgeBase(
                id=kb_id,
                tenant_id=tenant_id,
                name=name,
                description=description,
                embedding_model=spec.name,
                dimension=dim,
                index_dimension=index_dimension,
                instruction=task,
                chunk_tokens=size,
                chunk_overlap=overlap,
                collection=collection,
                created_by=created_by,
            )
            session.add(kb)
            record(session, tenant_id, created_by, "knowledge_base.create", kb_id, name=name, model=spec.name)
    except BaseException:
        zhiku.vectors.delete_collection(collection)
        raise
    return kb


def _check_name_free(session: Session, tenant_id: str, name: str) -> None:
    """``ConflictError`` when the tenant has a knowledge base of that name."""
    taken = session.scalar(
        select(KnowledgeBase.id).where(KnowledgeBase.tenant_id == tenant_id, KnowledgeBase.name == name)
    )
    if taken:
        raise ConflictError(f"a knowledge base named {name!r} already exists")


def list_knowledge_bases(zhiku: Zhiku, tenant_id: str = "default") -> list[KnowledgeBase]:
    """All knowledge bases of a tenant, by name."""
    with zhiku.db.session() as session:
        rows = session.scalars(
            select(KnowledgeBase).where(KnowledgeBase.tenant_id == tenant_id).order_by(KnowledgeBase.name)
        )
        return list(rows)


def get_knowledge_base(zhiku: Zhiku, name_or_id: str, tenant_id: str = "default") -> KnowledgeBase:
    """A knowledge base by name or id, or ``NotFoundError``."""
    with zhiku.db.session() as session:
        kb = session.scalar(
            select(KnowledgeBase).where(
                KnowledgeBase.tenant_id == tenant_id,
                (KnowledgeBase.name == name_or_id) | (KnowledgeBase.id == name_or_id),
            )
        )
    if kb is None:
        raise NotFoundError(f"no knowledge base named {name_or_id!r}")
    return kb


def knowledge_base_stats(zhiku: Zhiku, kb: KnowledgeBase) -> KnowledgeBaseStats:
    """Documents by status and the number of active chunks."""
    with zhiku.db.session() as session:
        by_status = dict(
            session.execute(
                select(Document.status, func.count()).where(Document.kb_id == kb.id).group_by(Document.status)
            ).all()
        )
        chunks = session.scalar(
            select(func.count())
            .select_from(Chunk)
            .join(Document, Chunk.document_id == Document.id)
            .where(Document.kb_id == kb.id, Chunk.version == Document.version)
        )
    return KnowledgeBaseStats({str(k): int(v) for k, v in by_status.items()}, int(chunks or 0))


def tenant_usage(zhiku: Zhiku, tenant_id: str) -> int:
    """Bytes of documents a tenant stores (its quota's measure)."""
    with zhiku.db.session() as session:
        used = session.scalar(
            select(func.coalesce(func.sum(Document.size_bytes), 0))
            .join(KnowledgeBase, Document.kb_id == KnowledgeBase.id)
            .where(KnowledgeBase.tenant_id == tenant_id)
        )
    return int(used or 0)


def update_knowledge_base(
    zhiku: Zhiku, kb: KnowledgeBase, *, name: str | None = None, description: str | None = None
) -> KnowledgeBase:
    """Rename a knowledge base (same name rules as at creation; unique within its tenant) or change its
    description; ``None`` leaves a field as it is."""
    if name is not None and (not isinstance(name, str) or not NAME_PATTERN.match(name) or name != name.strip()):
        raise InvalidInputError(f"invalid knowledge base name {name!r}", param="name")
    with zhiku.db.session() as session:
        row = session.get_one(KnowledgeBase, kb.id)
        if name is not None and name != row.name:
            taken = session.scalar(
                select(KnowledgeBase.id).where(KnowledgeBase.tenant_id == row.tenant_id, KnowledgeBase.name == name)
            )
            if taken:
                raise ConflictError(f"a knowledge base named {name!r} already exists")
            row.name = name
        if description is not None:
            row.description = description
        session.flush()
        return row


def delete_knowledge_base(zhiku: Zhiku, kb: KnowledgeBase, *, deleted_by: str = "cli") -> None:
    """Delete a knowledge base with its documents, chunks, jobs, vectors and unreferenced files (recorded in the
    audit log as done by ``deleted_by``)."""
    with zhiku.db.session() as session:
        hashes = set(session.scalars(select(Document.content_hash).where(Document.kb_id == kb.id)))
        for job in session.scalars(select(Job).where(Job.kb_id == kb.id)):
            session.delete(job)
        session.execute(delete(Chunk).where(Chunk.document_id.in_(_doc_ids(session, kb.id))))
        for document in session.scalars(select(Document).where(Document.kb_id == kb.id)):
            session.delete(document)
        session.delete(session.get_one(KnowledgeBase, kb.id))
        record(session, kb.tenant_id, deleted_by, "knowledge_base.delete", kb.id, name=kb.name)
    zhiku.vectors.delete_collection(kb.collection)
    drop_unreferenced_blobs(zhiku, hashes)


def _doc_ids(session: Session, kb_id: str) -> Any:
    return select(Document.id).where(Document.kb_id == kb_id)
