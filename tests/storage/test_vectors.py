"""The vector-store protocol suite, run against the three adapters: the embedded Qdrant Edge store (a real shard in
tmp_path; also owned by a real store process, as under ``zhiku serve --workers N``, and asked over its socket),
the Qdrant server adapter through qdrant-client's local mode (no Qdrant server binary can be installed on these
machines; local mode runs the same client code paths against an embedded engine) and the pgvector store on a real
PostgreSQL 16 with pgvector (a fresh database per test).
Tests that exercise Qdrant Edge internals (reopening shards, the WAL, one owner per shard) use it directly."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from zhiku.config import Settings
from zhiku.errors import ConflictError, InvalidInputError, NotFoundError
from zhiku.eval.retrieval import load_beir, rank_metrics
from zhiku.storage.vectors import SearchFilter, VectorPoint, VectorStore, create_vector_store
from zhiku.storage.vectors.edge_process import EdgeStoreClient, store_process
from zhiku.storage.vectors.pgvector import PgVectorStore
from zhiku.storage.vectors.qdrant import QdrantStore
from zhiku.storage.vectors.qdrant_edge import QdrantEdgeStore

DIM = 16
COLLECTION = "chunks"

PASSAGES = [
    ("zh-capital", "kb-zh", "北京是中华人民共和国的首都，也是全国的政治和文化中心。"),
    ("zh-panda", "kb-zh", "大熊猫主要生活在四川的山区竹林里，以竹子为主要食物。"),
    ("zh-tea", "kb-zh", "龙井茶产于浙江杭州西湖一带，是中国著名的绿茶。"),
    ("en-python", "kb-en", "Python is a programming language known for readable syntax and a large standard library."),
    ("en-volcano", "kb-en", "A volcano erupts when molten rock, ash and gases escape from a magma chamber."),
    ("en-coffee", "kb-en", "Coffee beans are roasted seeds of the coffee plant, brewed into a popular drink."),
]


def unit(vector: np.ndarray) -> np.ndarray:
    return np.asarray(vector / np.linalg.norm(vector), dtype=np.float32)


def basis(index: int, dim: int = DIM) -> np.ndarray:
    vector = np.zeros(dim, dtype=np.float32)
    vector[index] = 1.0
    return vector


def make_point(
    vector: np.ndarray,
    *,
    text: str = "",
    document_id: str = "doc",
    version: int = 1,
    kb_id: str = "kb",
    **extra: object,
) -> VectorPoint:
    payload = {"kb_id": kb_id, "document_id": document_id, "version": version, **extra}
    return VectorPoint(id=str(uuid.uuid4()), vector=vector, text=text, payload=payload)


STORES = ["edge", "edge-process", "qdrant-client", "pgvector"]
_STORE_PROCESSES = pytest.StashKey[dict[Path, Path]]()


def open_store(kind: str, folder: Path, request: pytest.FixtureRequest) -> VectorStore:
    """A store of ``kind``: Qdrant Edge or qdrant-client local mode in ``folder``, Qdrant Edge in ``folder`` owned by
    a store process (that of ``zhiku serve --workers N``) and asked over its socket, or pgvector in a fresh database
    (the same database, or store process, again when asked twice in one test)."""
    if kind == "edge":
        return QdrantEdgeStore(folder)
    if kind == "edge-process":
        running = request.node.stash.setdefault(_STORE_PROCESSES, {})
        if folder not in running:
            stack = contextlib.ExitStack()
            request.addfinalizer(stack.close)
            running[folder] = stack.enter_context(store_process({"ZHIKU_HOME": str(folder.parent)}))
        return EdgeStoreClient(running[folder])
    if kind == "pgvector":
        return PgVectorStore(request.getfixturevalue("pgvector_url"))
    return QdrantStore(path=folder)


def kind_of(store: VectorStore) -> str:
    if isinstance(store, QdrantEdgeStore):
        return "edge"
    if isinstance(store, EdgeStoreClient):
        return "edge-process"
    return "pgvector" if isinstance(store, PgVectorStore) else "qdrant-client"


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    store = open_store(request.param, tmp_path / "vectors", request)
    store.ensure_collection(COLLECTION, DIM)
    yield store
    store.close()


@pytest.fixture
def passages(store: VectorStore) -> dict[str, VectorPoint]:
    """The six passages above, passage i at basis vector i, one document per passage."""
    points = {
        key: make_point(basis(i), text=text, document_id=key, kb_id=kb) for i, (key, kb, text) in enumerate(PASSAGES)
    }
    store.upsert(COLLECTION, list(points.values()))
    return points


def test_factory_and_protocol(settings: Settings) -> None:
    store = create_vector_store(settings)
    try:
        assert isinstance(store, QdrantEdgeStore)
        assert isinstance(store, VectorStore)
        assert store.path == settings.home / "vectors"
    finally:
        store.close()


@pytest.mark.filterwarnings("ignore:Local mode performs exact")
def test_search_ef_setting_widens_the_hnsw_beam(tmp_path: Path) -> None:
    """``vector_search_ef`` reaches both adapters' dense searches; on an indexed collection a wider beam finds
    more of the exact nearest neighbours."""
    # 1024 dims: 4000 points are over Qdrant's full-scan threshold (10 MB of vectors), so the graph is walked
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((4000, 1024)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    points = [make_point(v) for v in vectors]
    queries = [unit(rng.standard_normal(1024).astype(np.float32)) for _ in range(40)]
    truth = [{points[i].id for i in np.argsort(-(vectors @ q))[:10]} for q in queries]
    recall = {}
    for ef in (10, 400):
        settings = Settings(home=tmp_path, vector_search_ef=ef)
        store = create_vector_store(settings)
        assert isinstance(store, QdrantEdgeStore)
        assert store.hnsw_ef == ef
        store.indexing_threshold_kb = 1  # build the graph although the collection is small
        try:
            if ef == 10:
                store.ensure_collection(COLLECTION, 1024)
                store.upsert(COLLECTION, points)
                store.optimize(COLLECTION)
            found = [{h.id for h in store.search_dense(COLLECTION, q, top_k=10)} for q in queries]
            recall[ef] = sum(len(f & t) for f, t in zip(found, truth, strict=True)) / 400
        finally:
            store.close()
    assert recall[400] > recall[10] + 0.05, recall
    assert recall[400] >= 0.9, recall
    server = QdrantStore(path=tmp_path / "local", hnsw_ef=400)  # local mode: searched exactly, params accepted
    try:
        server.ensure_collection(COLLECTION, 1024)
        server.upsert(COLLECTION, points[:100])
        assert server.search_dense(COLLECTION, vectors[7], top_k=1)[0].id == points[7].id
        assert server.search_hybrid(COLLECTION, vectors[7], "", top_k=1)[0].id == points[7].id
    finally:
        server.close()


def test_factory_picks_the_qdrant_server_adapter(tmp_path: Path) -> None:
    from zhiku.errors import ConfigError, VectorStoreError

    with pytest.raises(ConfigError, match="qdrant_url"):
        create_vector_store(Settings(home=tmp_path, vector_store="qdrant"))
    unreachable = f"http://127.0.0.1:{_free_port()}"
    store = create_vector_store(Settings(home=tmp_path, vector_store="qdrant", qdrant_url=unreachable))
    try:
        assert isinstance(store, QdrantStore)
        assert isinstance(store, VectorStore)
        with pytest.raises(VectorStoreError, match="cannot look up"):
            store.has_collection("x")
    finally:
        store.close()


def _free_port() -> int:
    from tests.servers import free_port

    return free_port()


def test_collections_lifecycle(store: VectorStore) -> None:
    assert store.has_collection(COLLECTION)
    assert not store.has_collection("other")
    store.ensure_collection(COLLECTION, DIM)  # idempotent
    assert store.dimension(COLLECTION) == DIM
    assert list(store.collections()) == [COLLECTION]
    store.ensure_collection("other", 8)
    store.upsert("other", [make_point(basis(0, 8))])
    assert store.count("other") == 1
    store.delete_collection("other")
    assert not store.has_collection("other")
    store.delete_collection("other")  # idempotent
    with pytest.raises(NotFoundError):
        store.count("other")
    with pytest.raises(InvalidInputError):
        store.ensure_collection("../escape", DIM)


def test_other_dimension_conflicts(store: VectorStore, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with pytest.raises(ConflictError, match="dimension 16, not 32"):
        store.ensure_collection(COLLECTION, 32)
    store.close()
    reopened = open_store(kind_of(store), tmp_path / "vectors", request)  # not open yet: read from disk
    try:
        with pytest.raises(ConflictError, match="dimension 16"):
            reopened.ensure_collection(COLLECTION, 32)
        reopened.ensure_collection(COLLECTION, DIM)
    finally:
        reopened.close()


def test_dense_nearest_by_construction(store: VectorStore) -> None:
    rng = np.random.default_rng(0)
    vectors = [unit(rng.standard_normal(DIM)) for _ in range(200)]
    points = [make_point(v, document_id=f"d{i % 10}") for i, v in enumerate(vectors)]
    store.upsert(COLLECTION, points)
    target = 123
    query = unit(vectors[target] + 0.05 * rng.standard_normal(DIM))
    hits = store.search_dense(COLLECTION, query, top_k=5)
    assert len(hits) == 5
    assert hits[0].id == points[target].id
    assert hits[0].score == pytest.approx(float(query @ vectors[target]), abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    expected = np.argsort(-np.array([float(query @ v) for v in vectors]))[:5]
    assert [h.id for h in hits] == [points[i].id for i in expected]
    assert hits[0].payload["document_id"] == "d3"
    # without payloads (as a search asks): the same ids and scores, nothing else
    bare = store.search_dense(COLLECTION, query, top_k=5, with_payload=False)
    assert [(h.id, round(h.score, 5)) for h in bare] == [(h.id, round(h.score, 5)) for h in hits]
    assert all(h.payload == {} for h in bare)
    # unnormalised queries and vectors are normalised: scores stay cosine similarities
    assert store.search_dense(COLLECTION, query * 7, top_k=1)[0].score == pytest.approx(hits[0].score, abs=1e-4)


def test_filters(store: VectorStore, passages: dict[str, VectorPoint]) -> None:
    query = unit(np.ones(DIM, dtype=np.float32))
    by_kb = store.search_dense(COLLECTION, query, top_k=10, filter=SearchFilter(kb_id="kb-zh"))
    assert {h.payload["document_id"] for h in by_kb} == {"zh-capital", "zh-panda", "zh-tea"}
    by_docs = store.search_dense(
        COLLECTION, query, top_k=10, filter=SearchFilter(document_ids=["en-coffee", "zh-tea", "missing"])
    )
    assert {h.payload["document_id"] for h in by_docs} == {"en-coffee", "zh-tea"}
    both = SearchFilter(kb_id="kb-en", document_ids=["en-coffee", "zh-tea"])
    assert [h.payload["document_id"] for h in store.search_dense(COLLECTION, query, filter=both)] == ["en-coffee"]
    assert store.search_dense(COLLECTION, query, filter=SearchFilter(document_ids=[])) == []
    assert store.count(COLLECTION, SearchFilter(kb_id="kb-en")) == 3
    assert store.count(COLLECTION, SearchFilter(kb_id="kb-en", payload={"version": 1})) == 3
    assert store.count(COLLECTION, SearchFilter(payload={"version": 2})) == 0
    text_hits = store.search_text(COLLECTION, "首都 coffee", filter=SearchFilter(kb_id="kb-zh"))
    assert [h.payload["document_id"] for h in text_hits] == ["zh-capital"]


def test_payload_equality_filter(store: VectorStore) -> None:
    store.upsert(
        COLLECTION,
        [make_point(basis(0), lang="zh"), make_point(basis(1), lang="en"), make_point(basis(2), lang="fr")],
    )
    assert store.count(COLLECTION, SearchFilter(payload={"lang": "zh"})) == 1
    assert store.count(COLLECTION, SearchFilter(payload={"lang": ["zh", "en"]})) == 2
    assert store.count(COLLECTION, SearchFilter(payload={"lang": []})) == 0


def test_delete_by_document_and_version(store: VectorStore) -> None:
    points = [
        make_point(basis(0), document_id="a", version=1),
        make_point(basis(1), document_id="a", version=1),
        make_point(basis(2), document_id="a", version=2),
        make_point(basis(3), document_id="b", version=1),
    ]
    store.upsert(COLLECTION, points)
    assert store.delete(COLLECTION, document_id="a", version=1) == 2
    assert store.count(COLLECTION) == 2
    assert store.count(COLLECTION, SearchFilter(document_ids=["a"])) == 1
    assert store.count(COLLECTION, SearchFilter(document_ids=["b"])) == 1
    assert store.delete(COLLECTION, document_id="a", version=1) == 0
    assert store.delete(COLLECTION, document_id="a") == 1
    assert store.count(COLLECTION) == 1
    remaining = store.search_dense(COLLECTION, basis(3), top_k=10)
    assert [h.id for h in remaining] == [points[3].id]
    assert store.delete("never-created", document_id="a") == 0


def test_upsert_same_id_replaces(store: VectorStore) -> None:
    point = make_point(basis(0), text="旧的文本")
    store.upsert(COLLECTION, [point])
    store.upsert(COLLECTION, [point])
    updated = VectorPoint(id=point.id.upper(), vector=basis(1), text="新的文本", payload=point.payload)
    store.upsert(COLLECTION, [updated])
    assert store.count(COLLECTION) == 1
    hit = store.search_dense(COLLECTION, basis(1), top_k=5)[0]
    assert hit.id == point.id
    assert hit.score == pytest.approx(1.0)
    assert hit.payload["text"] == "新的文本"


def test_large_upsert_is_batched(tmp_path: Path) -> None:
    store = QdrantEdgeStore(tmp_path / "v", batch_size=64)
    try:
        store.ensure_collection(COLLECTION, DIM)
        rng = np.random.default_rng(1)
        points = [make_point(unit(rng.standard_normal(DIM)), document_id=f"d{i % 7}") for i in range(1000)]
        store.upsert(COLLECTION, points)
        store.upsert(COLLECTION, points[:500])
        assert store.count(COLLECTION) == 1000
        assert store.count(COLLECTION, SearchFilter(document_ids=["d0"])) == len(points[::7])
    finally:
        store.close()


def test_bm25_chinese_and_english(store: VectorStore, passages: dict[str, VectorPoint]) -> None:
    cases = {
        "中国的首都是哪个城市？": "zh-capital",
        "大熊猫吃什么": "zh-panda",
        "杭州西湖的绿茶": "zh-tea",
        "which programming language has readable syntax": "en-python",
        "magma and ash from an eruption": "en-volcano",
        "roasting a coffee bean": "en-coffee",  # English is stemmed
    }
    for query, expected in cases.items():
        hits = store.search_text(COLLECTION, query, top_k=3)
        assert hits, query
        assert hits[0].payload["document_id"] == expected, (query, [h.payload["document_id"] for h in hits])
        assert hits[0].payload["text"] == {k: t for k, _, t in PASSAGES}[expected]
    assert store.search_text(COLLECTION, "   ") == []
    assert store.search_text(COLLECTION, "量子计算 zyxwv") == []


def test_bm25_matches_numbers(store: VectorStore) -> None:
    """A number alone is a term: years, error codes and versions in a question match (Qdrant Edge's multilingual
    tokenizer drops digit-only tokens; the store marks them so that it keeps them), and texts come back as given."""
    texts = {
        "year": "Background checks rose sharply in 2015 across the states.",
        "code": "The server answered with status 404 and an empty body.",
        "version": "Release 3.14 fixed the importer.",
        "words": "Checks were counted by state and by month.",
        "zh": "二〇一五年，即2015年的检查数量。",
    }
    store.ensure_collection(COLLECTION, DIM)
    rng = np.random.default_rng(7)
    store.upsert(
        COLLECTION, [make_point(unit(rng.standard_normal(DIM)), text=t, document_id=k) for k, t in texts.items()]
    )
    for query, expected in {
        "2015": "year",
        "404": "code",
        "status 404": "code",
        "3.14": "version",
        "2015年": "zh",
    }.items():
        hits = store.search_text(COLLECTION, query, top_k=5)
        assert hits, query
        assert hits[0].payload["document_id"] == expected, (query, [h.payload["document_id"] for h in hits])
        assert hits[0].payload["text"] == texts[expected]
    hybrid = store.search_hybrid(COLLECTION, unit(rng.standard_normal(DIM)), "checks in 2015", top_k=5)
    assert {h.payload["document_id"] for h in hybrid} >= {"year", "words"}


def test_hybrid_fuses_both_sides(store: VectorStore, passages: dict[str, VectorPoint]) -> None:
    # the vector points at the panda passage, the text at the volcano passage: both must come back
    hits = store.search_hybrid(COLLECTION, basis(1), "volcano magma", top_k=4)
    documents = [h.payload["document_id"] for h in hits]
    assert "zh-panda" in documents[:2]
    assert "en-volcano" in documents[:2]
    assert len(hits) == 4
    assert all(0 < h.score <= 1 for h in hits)
    # agreeing sides rank their passage first
    agreed = store.search_hybrid(COLLECTION, basis(2), "龙井茶", top_k=3)
    assert agreed[0].payload["document_id"] == "zh-tea"
    assert agreed[0].score > agreed[1].score
    # the filter applies to both sides
    filtered = store.search_hybrid(COLLECTION, basis(1), "volcano magma", top_k=10, filter=SearchFilter(kb_id="kb-zh"))
    assert {h.payload["document_id"] for h in filtered} == {"zh-capital", "zh-panda", "zh-tea"}
    # a blank text query degrades to dense-only fusion
    assert store.search_hybrid(COLLECTION, basis(5), " ", top_k=1)[0].payload["document_id"] == "en-coffee"


def test_count(store: VectorStore, passages: dict[str, VectorPoint]) -> None:
    assert store.count(COLLECTION) == len(PASSAGES)
    assert store.count(COLLECTION, SearchFilter(document_ids=["zh-tea", "en-python"])) == 2
    assert store.count(COLLECTION, SearchFilter(kb_id="nope")) == 0


def test_reopen_after_close_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "vectors"
    first = QdrantEdgeStore(path)
    first.ensure_collection(COLLECTION, DIM)
    point = make_point(basis(4), text="上海是中国最大的城市", document_id="sh")
    first.upsert(COLLECTION, [point, make_point(basis(5), document_id="other")])
    first.delete(COLLECTION, document_id="other")
    first.optimize(COLLECTION)
    first.close()

    second = QdrantEdgeStore(path)
    try:
        assert second.has_collection(COLLECTION)
        assert second.count(COLLECTION) == 1
        assert second.search_dense(COLLECTION, basis(4), top_k=1)[0].id == point.id
        assert second.search_text(COLLECTION, "最大的城市")[0].id == point.id
        with pytest.raises(ConflictError, match="another process"):
            QdrantEdgeStore(path).count(COLLECTION)  # one owner per shard directory
    finally:
        second.close()


def test_unflushed_writes_survive_through_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "vectors"
    first = QdrantEdgeStore(path)
    first.ensure_collection(COLLECTION, DIM)
    first.upsert(COLLECTION, [make_point(basis(0), text="预写日志")])
    # simulate a crash: release the shard without flushing our store (close() would flush)
    first._open[COLLECTION].shard.close()
    first._open.clear()
    second = QdrantEdgeStore(path)
    try:
        assert second.count(COLLECTION) == 1
        assert len(second.search_text(COLLECTION, "日志")) == 1
    finally:
        second.close()


def test_invalid_input(store: VectorStore) -> None:
    with pytest.raises(InvalidInputError, match="dimension 8"):
        store.upsert(COLLECTION, [make_point(basis(0, 8))])
    with pytest.raises(InvalidInputError, match="dimension 8"):
        store.search_dense(COLLECTION, basis(0, 8))
    with pytest.raises(InvalidInputError, match="UUID"):
        store.upsert(
            COLLECTION, [VectorPoint(id="chunk-1", vector=basis(0), text="", payload=make_point(basis(0)).payload)]
        )
    with pytest.raises(InvalidInputError, match="version"):
        store.upsert(
            COLLECTION, [VectorPoint(id=str(uuid.uuid4()), vector=basis(0), text="", payload={"document_id": "d"})]
        )
    with pytest.raises(InvalidInputError, match="NaN"):
        store.upsert(COLLECTION, [make_point(np.full(DIM, np.nan, dtype=np.float32))])
    with pytest.raises(InvalidInputError, match="top_k"):
        store.search_text(COLLECTION, "x", top_k=0)
    with pytest.raises(InvalidInputError):
        store.ensure_collection("x", 0)
    with pytest.raises(NotFoundError):
        store.search_dense("missing", basis(0))
    assert store.count(COLLECTION) == 0


def test_concurrent_reads_and_writes(store: VectorStore) -> None:
    rng = np.random.default_rng(2)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for batch in range(10):
                points = [
                    make_point(unit(rng.standard_normal(DIM)), document_id=f"w{worker}-{batch}") for _ in range(20)
                ]
                store.upsert(COLLECTION, points)
                store.delete(COLLECTION, document_id=f"w{worker}-{batch}", version=99)
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(30):
                store.search_hybrid(COLLECTION, basis(0), "文本", top_k=5)
                store.count(COLLECTION)
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)] + [
        threading.Thread(target=reader) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.count(COLLECTION) == 3 * 10 * 20


@pytest.mark.parametrize("kind", STORES)
def test_text_search_quality_on_xquad_zh(
    evaldata: Path, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """BM25 through each store's multilingual text index: nDCG@10 >= 0.9 on Chinese XQuAD (edge: 0.96)."""
    data = load_beir(evaldata / "retrieval" / "xquad-zh")
    store = open_store(kind, tmp_path / "vectors", request)
    try:
        store.ensure_collection("xquad", 8)
        rng = np.random.default_rng(3)
        points = [
            make_point(unit(rng.standard_normal(8)), text=text, document_id=doc_id, kb_id="xquad")
            for doc_id, text in zip(data.doc_ids, data.doc_texts, strict=True)
        ]
        store.upsert("xquad", points)
        ndcgs, empty = [], 0
        for query_id, query in zip(data.query_ids, data.query_texts, strict=True):
            hits = store.search_text("xquad", query, top_k=10, filter=SearchFilter(kb_id="xquad"))
            empty += not hits
            ndcgs.append(rank_metrics([h.payload["document_id"] for h in hits], data.qrels[query_id])[0])
        ndcg = float(np.mean(ndcgs))
        assert ndcg >= 0.9, f"nDCG@10 {ndcg:.3f}"
        assert empty <= len(data.query_ids) // 100
    finally:
        store.close()


@pytest.mark.parametrize("quantization", [True, False])
def test_quantized_index_returns_exact_scores(tmp_path: Path, quantization: bool) -> None:
    """With the int8 copy (the default) the graph is walked on int8 vectors and the hits rescored with float32:
    scores are the exact cosine similarities and the true nearest neighbour comes first."""
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((3000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    points = [make_point(v, document_id=f"d{i % 30}") for i, v in enumerate(vectors)]
    with QdrantEdgeStore(tmp_path, indexing_threshold_kb=1, quantization=quantization) as store:
        store.ensure_collection(COLLECTION, 64)
        store.upsert(COLLECTION, points)
        store.optimize(COLLECTION)
        config = (tmp_path / COLLECTION / "edge_config.json").read_text()
        assert ('"int8"' in config) is quantization
        for row in (0, 1234, 2999):
            query = unit(vectors[row] + 0.3 * unit(rng.standard_normal(64).astype(np.float32)))
            hits = store.search_dense(COLLECTION, query, top_k=5)
            exact = vectors @ query
            assert hits[0].id == points[int(np.argmax(exact))].id
            by_id = {p.id: float(s) for p, s in zip(points, exact, strict=True)}
            for hit in hits:
                assert hit.score == pytest.approx(by_id[hit.id], abs=1e-5)
            hybrid = store.search_hybrid(COLLECTION, query, "", top_k=5)
            assert hybrid[0].id == hits[0].id


def _graph_bytes(folder: Path) -> int:
    """Bytes of the HNSW link files of every segment of a shard (the main graph plus any per-value graphs)."""
    return sum(f.stat().st_size for f in folder.glob("segments/*/vector_index*/links*.bin"))


def test_text_and_kb_indexes_build_no_per_value_graphs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Qdrant builds an extra HNSW graph for each indexed value held by between ``full_scan_threshold`` points
    and about an eighth of a segment; for the text index that is one graph per frequent word (the 1M-chunk build
    spent more than an hour on them). The current indexes do not; a store with indexes made before that
    re-creates them at its next optimisation, and its searches keep working."""
    import zhiku.storage.vectors.qdrant_edge as edge

    # 4096-d vectors so that the threshold (10 MB of vectors: 625 points) is below an eighth of 8000 points
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((8000, 4096)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    points = [
        make_point(v, text=f"{'alpha' if i % 10 == 0 else 'beta'} chunk {i}", document_id=f"d{i % 20}")
        for i, v in enumerate(vectors)
    ]
    old_style = {
        "kb_id": edge.PayloadSchemaType.Keyword,
        "document_id": edge.PayloadSchemaType.Keyword,
        "version": edge.PayloadSchemaType.Integer,
        "text": edge.TextIndexParams(tokenizer=edge.TokenizerType.Multilingual, lowercase=True, scoring=True),
    }
    sizes = {}
    for style in ("old", "current"):
        with monkeypatch.context() as patch:
            if style == "old":
                patch.setattr(edge, "_payload_indexes", lambda: old_style)
                patch.setattr(QdrantEdgeStore, "_upgrade_indexes", lambda *args: None)
            with QdrantEdgeStore(tmp_path / style) as store:
                store.ensure_collection(COLLECTION, 4096)
                store.upsert(COLLECTION, points)
                store.optimize(COLLECTION)
        sizes[style] = _graph_bytes(tmp_path / style / COLLECTION)
    # the 800 "alpha" points get a graph of their own with the old indexes (about 8% more links here)
    assert sizes["current"] < 0.96 * sizes["old"], sizes

    with QdrantEdgeStore(tmp_path / "old") as store:
        store.optimize(COLLECTION)
        schema = store._open[COLLECTION].shard.info().payload_schema
        for field in ("kb_id", "version", "text"):
            assert schema[field].params.enable_hnsw is False, field
            assert schema[field].points == len(points), field
        assert store.count(COLLECTION) == len(points)
        hits = store.search_text(COLLECTION, "alpha", top_k=1000)
        assert {h.id for h in hits} == {p.id for p in points[::10]}
        assert store.search_dense(COLLECTION, vectors[42], top_k=1)[0].id == points[42].id
