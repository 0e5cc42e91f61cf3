"""What only the pgvector store has to prove, on a real PostgreSQL 16 with pgvector 0.6.2 (a fresh database per
test): PostgreSQL walks the collection's HNSW index, Matryoshka two-stage search, filters that the graph walk
would miss, several processes writing one collection, and hostile payload keys and texts.
(The protocol itself is checked for all stores by tests/storage/test_vectors.py.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

from tests.storage.test_vectors_matryoshka import brute_force, decaying, make_points
from zhiku.errors import ConflictError, InvalidInputError
from zhiku.storage.vectors import SearchFilter, VectorPoint
from zhiku.storage.vectors.pgvector import PgVectorStore

COLLECTION = "chunks"


@pytest.fixture
def store(pgvector_url: str) -> Iterator[PgVectorStore]:
    store = PgVectorStore(pgvector_url, hnsw_ef=200)
    yield store
    store.close()


def _plan(url: str, query: sql.Composable) -> str:
    with psycopg.connect(url.replace("+psycopg", "")) as connection:
        rows = connection.execute(sql.SQL("EXPLAIN {}").format(query)).fetchall()
    return "\n".join(str(row[0]) for row in rows)


def test_dense_search_walks_the_collections_hnsw_index(store: PgVectorStore, pgvector_url: str) -> None:
    rng = np.random.default_rng(0)
    store.ensure_collection(COLLECTION, 64)
    store.ensure_collection("other", 64)
    vectors = decaying(rng, 3000, 64)
    points = make_points(vectors)
    store.upsert(COLLECTION, points)
    store.upsert("other", make_points(decaying(rng, 500, 64)))
    store.optimize(COLLECTION)
    collection_id = store._layout(COLLECTION)[0]  # type: ignore[index]
    query = sql.SQL(
        "SELECT id FROM zhiku_vector_points WHERE collection_id = {} AND kb_id = 'kb' "
        "ORDER BY embedding::vector(64) <#> {}::vector LIMIT 10"
    ).format(sql.Literal(collection_id), sql.Literal("[" + ",".join(["0.125"] * 64) + "]"))
    plan = _plan(pgvector_url, query)
    assert f"zhiku_vectors_hnsw_{collection_id}" in plan, plan
    index_of = {p.id: i for i, p in enumerate(points)}
    recalls = []
    for query in decaying(rng, 30, 64):
        hits = store.search_dense(COLLECTION, query, top_k=10, filter=SearchFilter(kb_id="kb"))
        top, _ = brute_force(vectors, query, 10)
        recalls.append(len({index_of[h.id] for h in hits} & set(top)) / 10)
        for hit in hits:
            assert hit.score == pytest.approx(float(vectors[index_of[hit.id]] @ query), abs=1e-4)
    assert np.mean(recalls) >= 0.95, f"recall@10 {np.mean(recalls):.3f}"


def test_matryoshka_two_stage(store: PgVectorStore, pgvector_url: str) -> None:
    """The HNSW index is on the prefix only; returned scores are full-dimension cosines; recall@10 >= 0.95."""
    rng = np.random.default_rng(1)
    vectors = decaying(rng, 2000, 256)
    store.ensure_collection(COLLECTION, 256, index_dimension=64)
    points = make_points(vectors)
    store.upsert(COLLECTION, points)
    with psycopg.connect(pgvector_url.replace("+psycopg", "")) as connection:
        (definition,) = connection.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'zhiku_vectors_hnsw_%'"
        ).fetchone()  # type: ignore[misc]
    assert "index_embedding)::vector(64)" in definition
    index_of = {p.id: i for i, p in enumerate(points)}
    recalls = []
    for query in decaying(rng, 30, 256):
        hits = store.search_dense(COLLECTION, query, top_k=10)
        top, _ = brute_force(vectors, query, 10)
        recalls.append(len({index_of[h.id] for h in hits} & set(top)) / 10)
        for hit in hits:
            assert hit.score == pytest.approx(float(vectors[index_of[hit.id]] @ query), abs=1e-4)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert np.mean(recalls) >= 0.95, f"recall@10 {np.mean(recalls):.3f}"
    with pytest.raises(ConflictError, match="index dimension"):
        PgVectorStore(pgvector_url).ensure_collection(COLLECTION, 256, index_dimension=32)  # read from the database


def test_stage_two_reorders_by_the_full_vector(store: PgVectorStore) -> None:
    dim, index = 64, 32
    query = np.zeros(dim, dtype=np.float32)
    query[0], query[index] = 1.0, 1.0
    prefix_winner = np.zeros(dim, dtype=np.float32)
    prefix_winner[0], prefix_winner[index + 1] = 1.0, 1.0
    full_winner = np.zeros(dim, dtype=np.float32)
    full_winner[0], full_winner[1], full_winner[index] = 1.0, 0.3, 1.0
    store.ensure_collection(COLLECTION, dim, index_dimension=index)
    points = make_points(np.stack([prefix_winner, full_winner]))
    store.upsert(COLLECTION, points)
    hits = store.search_dense(COLLECTION, query, top_k=2)
    assert [h.id for h in hits] == [points[1].id, points[0].id]
    assert hits[1].score == pytest.approx(0.5, abs=1e-5)


@pytest.mark.parametrize("index_dimension", [None, 32])
def test_a_selective_filter_loses_nothing(store: PgVectorStore, index_dimension: int | None) -> None:
    """30 far points among 3,000 near ones: the graph walk finds none of them, the exact fallback all."""
    rng = np.random.default_rng(3)
    dim = 128
    query = decaying(rng, 1, dim)[0]
    near = decaying(rng, 3000, dim) * 0.2 + query
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    far = decaying(rng, 30, dim)
    store.ensure_collection(COLLECTION, dim, index_dimension=index_dimension)
    points = make_points(np.concatenate([near, far]), kb_ids=["near"] * 3000 + ["far"] * 30)
    store.upsert(COLLECTION, points)
    hits = store.search_dense(COLLECTION, query, top_k=10, filter=SearchFilter(kb_id="far"))
    top, scores = brute_force(far, query, 10)
    assert [h.id for h in hits] == [points[3000 + i].id for i in top]
    np.testing.assert_allclose([h.score for h in hits], scores, atol=1e-4)
    by_docs = store.search_dense(COLLECTION, query, top_k=10, filter=SearchFilter(document_ids=["d3", "d3001"]))
    assert {h.payload["document_id"] for h in by_docs} == {"d3", "d3001"}


def test_payload_filters_and_hostile_values(store: PgVectorStore) -> None:
    store.ensure_collection(COLLECTION, 8)
    vectors = decaying(np.random.default_rng(5), 4, 8)
    texts = ["nul \x00 byte", "引号 ' \" ; DROP TABLE zhiku_vector_points; --", "plain", "plain"]
    points = make_points(vectors, texts=texts)
    points = [
        VectorPoint(id=p.id, vector=p.vector, text=p.text, payload={**p.payload, "lang": lang, "page": page})
        for p, lang, page in zip(points, ["zh", "en", "zh", "fr"], [1, 2, 3, 1], strict=True)
    ]
    points[3] = VectorPoint(
        id=points[3].id, vector=points[3].vector, text="plain", payload={**points[3].payload, "note\x00": "a\x00b"}
    )  # NUL is not allowed in PostgreSQL text or JSONB: replaced, not refused
    store.upsert(COLLECTION, points)
    assert store.count(COLLECTION, SearchFilter(payload={"lang": "zh"})) == 2
    assert store.count(COLLECTION, SearchFilter(payload={"lang": ["en", "fr"], "page": 1})) == 1
    assert store.count(COLLECTION, SearchFilter(payload={"page": [1, 2]})) == 3
    assert store.count(COLLECTION, SearchFilter(payload={"version": 1})) == 4
    assert store.search_text(COLLECTION, "DROP TABLE")[0].id == points[1].id
    assert store.search_text(COLLECTION, "byte")[0].payload["text"] == "nul \ufffd byte"
    for key in ("a'b", "x) OR (1=1", "", "a" * 65, "payload->>'x'"):
        with pytest.raises(InvalidInputError, match="payload filter field"):
            store.count(COLLECTION, SearchFilter(payload={key: "x"}))
    with pytest.raises(InvalidInputError, match="all strings or all integers"):
        store.count(COLLECTION, SearchFilter(payload={"lang": ["zh", 1]}))  # type: ignore[list-item]
    assert store.count(COLLECTION) == 4


def test_dimension_over_pgvectors_index_limit_is_refused(store: PgVectorStore) -> None:
    with pytest.raises(InvalidInputError, match="up to 2000 dimensions"):
        store.ensure_collection("big", 2560)
    store.ensure_collection("big", 2560, index_dimension=1024)  # Qwen3-Embedding-4B with a Matryoshka index
    assert store.index_dimension("big") == 1024


WRITER = textwrap.dedent(
    """
    import sys, uuid
    import numpy as np
    from zhiku.storage.vectors import VectorPoint
    from zhiku.storage.vectors.pgvector import PgVectorStore

    url, worker = sys.argv[1], int(sys.argv[2])
    store = PgVectorStore(url)
    store.ensure_collection("shared", 16)
    rng = np.random.default_rng(worker)
    for batch in range(10):
        # both processes also write the same 5 points every batch: upserts of one id must not collide
        points = [
            VectorPoint(
                id=str(uuid.UUID(int=i + 1)) if i < 5 else str(uuid.uuid4()),
                vector=rng.standard_normal(16).astype("float32"),
                text=f"共享 shared passage {i}",
                payload={"kb_id": "kb", "document_id": f"w{worker}-{batch}" if i >= 5 else "common", "version": 1},
            )
            for i in range(40)
        ]
        store.upsert("shared", points)
    store.close()
    """
)


def test_two_processes_write_one_collection(pgvector_url: str, tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    processes = [
        subprocess.Popen([sys.executable, str(script), pgvector_url, str(worker)], stderr=subprocess.PIPE)
        for worker in range(2)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    store = PgVectorStore(pgvector_url)
    try:
        assert store.count("shared") == 2 * 10 * 35 + 5
        assert store.count("shared", SearchFilter(document_ids=["common"])) == 5
        hits = store.search_text("shared", "共享", top_k=1000)
        assert len(hits) == 2 * 10 * 35 + 5  # every point has its postings exactly once
        assert len({h.id for h in hits}) == len(hits)
    finally:
        store.close()


def test_closed_store_reopens_and_bad_settings_say_what_to_do(pgvector_url: str, tmp_path: Path) -> None:
    from zhiku.config import Settings
    from zhiku.errors import ConfigError, VectorStoreError
    from zhiku.storage.vectors import create_vector_store

    store = PgVectorStore(pgvector_url)
    store.ensure_collection(COLLECTION, 8)
    other = PgVectorStore(pgvector_url)  # another process's view
    other.ensure_collection("gone", 8)
    assert store.has_collection("gone")
    other.delete_collection("gone")
    other.close()
    assert not store.has_collection("gone")  # asked of the database, not of a cache
    store.close()
    assert store.count(COLLECTION) == 0  # a new pool after close(), as the other stores reopen
    store.close()
    with pytest.raises(ConfigError, match="ZHIKU_PGVECTOR_URL"):
        create_vector_store(Settings(home=tmp_path, vector_store="pgvector"))  # SQLite metadata, no URL
    with pytest.raises(ConfigError, match="PostgreSQL URL") as wrong:
        PgVectorStore("mysql://user:pw@host/db")
    assert "pw" not in str(wrong.value)
    with pytest.raises(VectorStoreError) as refused:
        PgVectorStore("postgresql://zhiku:s3cret@127.0.0.1:9/zhiku?connect_timeout=2")
    assert "s3cret" not in str(refused.value)
    assert "zhiku:***@" in str(refused.value)


def test_a_collection_the_store_refuses_leaves_no_knowledge_base(pgvector_url: str, tmp_path: Path) -> None:
    """The store fails for real (its table is renamed away): no knowledge base row, and the name stays free."""
    from zhiku.config import Settings
    from zhiku.core import Zhiku
    from zhiku.errors import VectorStoreError
    from zhiku.knowledge.bases import create_knowledge_base, list_knowledge_bases

    with Zhiku(Settings(home=tmp_path, database_url=pgvector_url, vector_store="pgvector")) as zhiku:
        create_knowledge_base(zhiku, "first")
        raw = pgvector_url.replace("+psycopg", "")
        with psycopg.connect(raw, autocommit=True) as connection:
            connection.execute("ALTER TABLE zhiku_vector_collections RENAME TO zhiku_vector_collections_away")
        try:
            with pytest.raises(VectorStoreError):
                create_knowledge_base(zhiku, "second")
        finally:
            with psycopg.connect(raw, autocommit=True) as connection:
                connection.execute("ALTER TABLE zhiku_vector_collections_away RENAME TO zhiku_vector_collections")
        assert [kb.name for kb in list_knowledge_bases(zhiku)] == ["first"]
        second = create_knowledge_base(zhiku, "second")
        assert zhiku.vectors.has_collection(second.collection)
