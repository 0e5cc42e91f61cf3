"""Similar documents from document vectors, on the real stack (the default multilingual model, the metadata
database, Qdrant Edge or pgvector): XQuAD paragraphs in English and Chinese, whose translations share an id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, select

from tests.knowledge.helpers import run_queued_jobs, xquad_rows
from zhiku.core import Zhiku
from zhiku.errors import ConflictError
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import delete_document, get_document, register_file
from zhiku.knowledge.similar import similar_documents
from zhiku.pipeline.document_vectors import document_vectors
from zhiku.storage.models import Document, DocumentVector

ARTICLES = 8


def paragraphs(evaldata: Path, language: str) -> dict[str, str]:
    """The first paragraph of each of the first ``ARTICLES`` XQuAD articles, by id."""
    firsts = (row for row in xquad_rows(evaldata, language) if row["_id"].endswith("-00"))
    return {row["_id"]: row["text"] for row, _ in zip(firsts, range(ARTICLES), strict=False)}


def test_a_translation_is_the_most_similar_document_and_vectors_follow_versions(
    zhiku: Zhiku, evaldata: Path, tmp_path: Path
) -> None:
    kb = create_knowledge_base(zhiku, "xquad", chunk_tokens=64, chunk_overlap=0)
    other = create_knowledge_base(zhiku, "other")
    folder = tmp_path / "in"
    folder.mkdir()
    ids: dict[str, str] = {}
    for language in ("en", "zh"):
        for paragraph_id, text in paragraphs(evaldata, language).items():
            path = folder / f"{language}-{paragraph_id}.txt"
            path.write_text(text, encoding="utf-8")
            registration = register_file(zhiku, kb, path)
            assert registration.document_id is not None
            ids[path.stem] = registration.document_id
    outsider = folder / "outsider.txt"
    outsider.write_text(paragraphs(evaldata, "en")["xq-00-00"], encoding="utf-8")
    register_file(zhiku, other, outsider)
    run_queued_jobs(zhiku)
    name_of = {document_id: name for name, document_id in ids.items()}

    for name, document_id in ids.items():
        language, paragraph_id = name.split("-", 1)
        translation = f"{'zh' if language == 'en' else 'en'}-{paragraph_id}"
        found = similar_documents(zhiku, kb, get_document(zhiku, kb, document_id), top_k=5)
        assert name_of[found[0].document.id] == translation, (name, found)
        assert all(s.document.kb_id == kb.id for s in found)  # the other knowledge base's copy is not offered
        assert found[0].score > found[1].score
        assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)

    # the vectors stored at ingestion equal those pooled again from the embedding cache
    listed, stored = document_vectors(zhiku, kb)
    assert len(listed) == 2 * ARTICLES
    assert zhiku.document_vector_cache.size_bytes >= stored.nbytes  # held for the next call
    with zhiku.db.session() as session:
        session.execute(delete(DocumentVector))
    zhiku.document_vector_cache.clear()  # as another process would see the table
    relisted, pooled_again = document_vectors(zhiku, kb)
    assert relisted == listed
    np.testing.assert_allclose(pooled_again, stored, atol=1e-5)
    with zhiku.db.session() as session:
        assert session.scalar(select(DocumentVector).limit(1)) is not None  # pooled once, then kept

    # a new version of the English Super Bowl paragraph, now about Warsaw: its vector follows
    warsaw = paragraphs(evaldata, "en")["xq-01-00"]
    (folder / "en-xq-00-00.txt").write_text(warsaw, encoding="utf-8")
    assert register_file(zhiku, kb, folder / "en-xq-00-00.txt").outcome == "queued"
    with zhiku.db.session() as session:
        pending = session.get_one(Document, ids["en-xq-00-00"])
    newcomer = folder / "newcomer.txt"
    newcomer.write_text(warsaw, encoding="utf-8")
    queued = register_file(zhiku, other, newcomer)
    assert queued.document_id is not None
    with pytest.raises(ConflictError, match="no searchable version yet"):  # until it is ingested
        similar_documents(zhiku, other, get_document(zhiku, other, queued.document_id), top_k=3)
    run_queued_jobs(zhiku)
    renewed = get_document(zhiku, kb, pending.id)
    assert renewed.version == 2
    found = similar_documents(zhiku, kb, renewed, top_k=3)
    assert {name_of[s.document.id] for s in found[:2]} == {"en-xq-01-00", "zh-xq-01-00"}
    with zhiku.db.session() as session:
        assert session.get_one(DocumentVector, pending.id).version == 2

    # what this process holds in memory follows the new version and a deletion, as a process reading the
    # database afresh (its cache off) sees them
    held_before = zhiku.document_vector_cache.size_bytes
    delete_document(zhiku, kb, get_document(zhiku, kb, ids["zh-xq-02-00"]))
    held_ids, held = document_vectors(zhiku, kb)
    fresh = Zhiku(zhiku.settings.model_copy(update={"document_vector_cache_mb": 0}))
    try:
        fresh_ids, fresh_vectors = document_vectors(fresh, kb)
    finally:
        fresh.close()
    assert held_ids == fresh_ids
    assert ids["zh-xq-02-00"] not in held_ids
    assert len(held_ids) == 2 * ARTICLES - 1
    np.testing.assert_array_equal(held, fresh_vectors)
    assert held_before - zhiku.document_vector_cache.size_bytes == held.nbytes // len(held)  # the deleted one went
