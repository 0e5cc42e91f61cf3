"""Search latency: p50/p95/p99 of the vector store's search calls on a synthetic collection, and QPS under load.

Only the store calls are timed (query vectors are generated up front, so embedding the query is excluded).
A synthetic collection of ``points`` chunks is built with :func:`build_synthetic_collection`: unit vectors
(reproducible from ``seed``, batch by batch, so 1M points never sit in memory at once) and mixed
Chinese/English texts for the BM25 index, then optimised so the HNSW index exists.

The vectors are drawn either from an :class:`EmbeddingDistribution` (a Gaussian with the mean and covariance of
a real model's embeddings of real passages, then L2-normalised) or uniformly on the sphere (``random``).
Real embeddings spread over a few dominant directions (the spectrum of their covariance falls off steeply);
uniform random vectors in hundreds of dimensions are all nearly orthogonal to each other, HNSW's worst case and
unlike any embedding model's output: building the HNSW graph of 100,000 uniform 512-d vectors took more than
10 CPU-minutes here, almost all of it in distance computations. :func:`bench_search` then times queries in
several modes:

``dense``
    ``search_dense``: nearest neighbours of the query vector.
``text``
    ``search_text``: BM25 over the chunk text.
``hybrid``
    ``search_dense`` then ``search_text``, timed together: the two store calls ``zhiku search --mode hybrid``
    makes (zhiku fuses them itself, see :func:`zhiku.search.fusion.fuse`; the fusion is microseconds).
``rrf``
    ``search_hybrid``: the store's one-query dense + BM25 fusion (reciprocal rank fusion inside Qdrant Edge).

Query vectors are perturbed corpus vectors (each has a near neighbour, as a real question has a relevant
chunk). With ``concurrency`` > 1 that many client threads issue the
queries in a closed loop and throughput (QPS) is reported next to the per-call latencies.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zhiku.config import Settings
from zhiku.embedding import get_embedder
from zhiku.embedding.base import Embedder
from zhiku.embedding.models import resolve_model
from zhiku.errors import InvalidInputError
from zhiku.storage.vectors.base import DOCUMENT_FIELD, KB_FIELD, VERSION_FIELD, SearchFilter, VectorPoint, VectorStore
from zhiku.storage.vectors.qdrant_edge import QdrantEdgeStore

MODES = ("dense", "text", "hybrid", "rrf")
"""Search modes :func:`bench_search` knows (see the module docstring)."""
BENCH_KB = "bench-kb"
"""The ``kb_id`` every synthetic point carries (a ``with_filter`` query filters on it, as zhiku search does)."""
VECTOR_BATCH = 1000
"""Points generated (and upserted) per batch; the vectors of batch ``i`` come from ``default_rng([seed, i])``."""

QUERIES = (
    "黑豹队的防守丢了多少分？",
    "超级碗50的中场表演由谁担任主演？",
    "如何配置向量数据库的索引参数",
    "公司的年假政策是怎样规定的",
    "合同到期后如何续签",
    "长江流域的气候特点",
    "什么是机器学习中的过拟合",
    "数据备份和恢复的步骤",
    "How many points did the Panthers defense surrender?",
    "Who headlined the Super Bowl 50 halftime show?",
    "How do I configure the index parameters of the vector database?",
    "What is the annual leave policy of the company?",
    "steps to back up and restore the database",
    "What causes overfitting in machine learning models?",
    "Victoria 维多利亚州 university 大学 rankings",
    "API 接口 rate limit 限流 configuration",
)
"""Default query texts: realistic Chinese, English and mixed questions (some match the BEIR passages)."""

_ZH_WORDS = (
    "数据 系统 用户 配置 索引 向量 数据库 查询 文档 知识 模型 训练 服务器 网络 安全 权限 合同 公司 政策 年假 员工 "
    "客户 产品 价格 市场 经济 发展 城市 历史 文化 大学 学生 研究 科学 技术 医院 健康 环境 气候 河流 长江 黄河 "
    "北京 上海 政府 法律 规定 管理 项目 计划 报告 会议 时间 问题 方法 结果 分析 影响 重要 主要 需要 可以 进行 "
    "通过 提供 支持 使用 包括 以及 因为 所以 但是 如果 已经 目前 一些 这个 那个 我们 他们 比赛 球队 防守 进攻 "
    "冠军 音乐 电影 艺术 语言 翻译 备份 恢复 步骤 接口 限流 性能 延迟 吞吐 集群 节点 存储 缓存 日志 监控"
).split()
_EN_WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an they "
    "data system user configure index vector database query document knowledge model training server network "
    "security permission contract company policy leave employee customer product price market economy city history "
    "culture university student research science technology hospital health environment climate river government "
    "law regulation management project plan report meeting time problem method result analysis impact game team "
    "defense championship music film art language translation backup restore step interface limit performance "
    "latency throughput cluster node storage cache log monitoring Panthers Broncos Super Bowl halftime show"
).split()
_ZH_SET = frozenset(_ZH_WORDS)


@dataclass(frozen=True)
class EmbeddingDistribution:
    """A Gaussian with the mean and covariance of real embeddings; samples are L2-normalised like embeddings."""

    mean: np.ndarray
    """(dimension,) float32: the embeddings' mean."""
    scale: np.ndarray
    """(dimension, dimension) float32: ``C = scale @ scale.T`` is the embeddings' covariance."""

    @property
    def dimension(self) -> int:
        """Dimension of the vectors drawn."""
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, embeddings: np.ndarray) -> EmbeddingDistribution:
        """Fit to ``embeddings`` (n x dimension, n well above the dimension for a full-rank covariance)."""
        data = np.asarray(embeddings, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] < 2:
            raise ValueError("need at least two embeddings to fit a distribution")
        values, vectors = np.linalg.eigh(np.cov(data, rowvar=False))
        scale = vectors * np.sqrt(np.clip(values, 0.0, None))
        return cls(data.mean(axis=0).astype(np.float32), scale.astype(np.float32))

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` float32 unit vectors."""
        draws: np.ndarray = rng.standard_normal((count, self.dimension), dtype=np.float32) @ self.scale.T
        draws += self.mean
        draws /= np.linalg.norm(draws, axis=1, keepdims=True)
        return draws

    def effective_dimension(self) -> float:
        """Participation ratio of the covariance spectrum, ``(sum l)^2 / sum l^2``: the dimension it spreads over
        (the full dimension for uniform random vectors)."""
        values = np.clip(np.linalg.eigvalsh(self.scale.astype(np.float64) @ self.scale.T), 0.0, None)
        return float(values.sum() ** 2 / max(float((values**2).sum()), 1e-30))

    def save(self, path: Path) -> None:
        """Write to ``path`` (``.npz``)."""
        with path.open("wb") as handle:
            np.savez(handle, mean=self.mean, scale=self.scale)

    @classmethod
    def load(cls, path: Path) -> EmbeddingDistribution:
        """Read what :meth:`save` wrote."""
        with np.load(path) as data:
            return cls(np.asarray(data["mean"], dtype=np.float32), np.asarray(data["scale"], dtype=np.float32))


@dataclass(frozen=True)
class BuildResult:
    """How long building a synthetic collection took and what it left on disk."""

    name: str
    points: int
    dimension: int
    upsert_seconds: float
    optimize_seconds: float
    disk_bytes: int | None
    """Bytes under the collection's shard directory (``None`` when the store has no local directory)."""

    @property
    def seconds(self) -> float:
        """Total build time: generation + upsert + optimize."""
        return self.upsert_seconds + self.optimize_seconds


@dataclass(frozen=True)
class SearchBenchResult:
    """Latency percentiles of one mode at one concurrency (medians over the rounds)."""

    mode: str
    points: int
    concurrency: int
    queries: int
    top_k: int
    filtered: bool
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    qps: float
    """Completed queries per second of wall time, all clients together."""
    rounds: int = 1
    store: str = "edge"
    """The vector store measured: ``edge`` (Qdrant Edge) or ``pgvector``."""


# ---------------------------------------------------------------------------------------------- synthetic data


def synthetic_vectors(
    seed: int, batch: int, count: int, dimension: int, distribution: EmbeddingDistribution | None = None
) -> np.ndarray:
    """The float32 unit vectors of batch ``batch`` (``count`` rows), reproducible from ``seed`` (and the
    distribution): drawn from ``distribution``, or uniformly on the sphere when it is ``None``."""
    rng = np.random.default_rng([seed, batch])
    if distribution is not None:
        if distribution.dimension != dimension:
            raise ValueError(f"the distribution has dimension {distribution.dimension}, not {dimension}")
        return distribution.sample(rng, count)
    matrix = rng.standard_normal((count, dimension), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def point_id(seed: int, index: int) -> str:
    """The UUID of synthetic point ``index``."""
    return str(uuid.UUID(int=((seed & 0xFFFFFFFF) << 64) | index))


def load_passages(corpora: Sequence[Path]) -> list[str]:
    """Passages of BEIR folders' ``corpus.jsonl``, interleaved across the corpora (Chinese next to English)."""
    lists = [
        [json.loads(line)["text"] for line in (f / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line]
        for f in corpora
    ]
    longest = max((len(texts) for texts in lists), default=0)
    return [texts[i] for i in range(longest) for texts in lists if i < len(texts)]


def load_queries(corpora: Sequence[Path], limit: int = 200) -> list[str]:
    """Query texts of BEIR folders' ``queries.jsonl``, interleaved, at most ``limit``."""
    lists = []
    for folder in corpora:
        file = folder / "queries.jsonl"
        if file.is_file():
            lines = file.read_text(encoding="utf-8").splitlines()
            lists.append([json.loads(line)["text"] for line in lines if line])
    longest = max((len(texts) for texts in lists), default=0)
    return [texts[i] for i in range(longest) for texts in lists if i < len(texts)][:limit]


def fit_distribution(
    embedder: Embedder, passages: Sequence[str], dimension: int, *, limit: int = 5000, batch: int = 256
) -> EmbeddingDistribution:
    """Embed up to ``limit`` passages as documents with ``embedder`` at ``dimension`` and fit their distribution."""
    texts = list(passages[:limit])
    if len(texts) <= dimension:
        raise ValueError(f"need more than {dimension} passages to fit a {dimension}-d covariance, got {len(texts)}")
    parts = [
        embedder.embed(texts[start : start + batch], input_type="document", dimensions=dimension).vectors
        for start in range(0, len(texts), batch)
    ]
    return EmbeddingDistribution.fit(np.concatenate(parts))


def word_soup(rng: np.random.Generator) -> str:
    """One synthetic passage of 40-160 words: mostly Chinese or mostly English, Zipf-distributed vocabulary."""
    chinese = rng.random() < 0.5
    main, other = (_ZH_WORDS, _EN_WORDS) if chinese else (_EN_WORDS, _ZH_WORDS)
    words = []
    for _ in range(int(rng.integers(40, 161))):
        vocabulary = other if rng.random() < 0.1 else main
        words.append(vocabulary[(int(rng.zipf(1.3)) - 1) % len(vocabulary)])
    if not chinese:
        return " ".join(words) + "."
    parts = []
    for index, word in enumerate(words):
        parts.append(word if word in _ZH_SET else f" {word} ")
        if index % 9 == 8:
            parts.append("，" if index % 27 != 26 else "。")
    return "".join(parts) + "。"


def _texts(texts_from: Sequence[Path] | None, seed: int) -> Iterator[str]:
    """Endless chunk texts: BEIR passages cycled with a numbered suffix, or synthetic word soup."""
    passages = load_passages(texts_from) if texts_from else []
    if passages:
        for index, passage in enumerate(itertools.cycle(passages)):
            yield passage if index < len(passages) else f"{passage} ({index // len(passages)})"
    rng = np.random.default_rng([seed, 0x7E57])
    while True:
        yield word_soup(rng)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def build_synthetic_collection(
    store: VectorStore,
    name: str,
    *,
    points: int,
    dimension: int,
    seed: int = 0,
    texts_from: list[Path] | None = None,
    documents: int = 1000,
    distribution: EmbeddingDistribution | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BuildResult:
    """Drop and rebuild collection ``name`` with ``points`` synthetic chunks, then optimise it (HNSW built).

    Vectors are unit vectors from ``distribution`` (uniform on the sphere if ``None``; float32, batch ``i`` from
    ``default_rng([seed, i])``); texts are the
    passages of ``texts_from`` (BEIR folders with ``corpus.jsonl``) cycled, each repeat suffixed with its cycle
    number, or synthetic Chinese/English word soup. Payload: ``kb_id`` = :data:`BENCH_KB`, ``document_id`` one of
    ``documents`` (contiguous runs of chunks, as a document's chunks are), ``version`` 1. ``progress`` is called
    with (points written, points) after each batch.
    """
    if points <= 0 or dimension <= 0 or documents <= 0:
        raise ValueError("points, dimension and documents must be positive")
    store.delete_collection(name)
    store.ensure_collection(name, dimension)
    texts = _texts(texts_from, seed)
    started = time.perf_counter()
    for batch, start in enumerate(range(0, points, VECTOR_BATCH)):
        count = min(VECTOR_BATCH, points - start)
        vectors = synthetic_vectors(seed, batch, count, dimension, distribution)
        batch_points = [
            VectorPoint(
                id=point_id(seed, start + row),
                vector=vectors[row],
                text=next(texts),
                payload={
                    KB_FIELD: BENCH_KB,
                    DOCUMENT_FIELD: f"doc-{(start + row) * documents // points:06d}",
                    VERSION_FIELD: 1,
                },
            )
            for row in range(count)
        ]
        store.upsert(name, batch_points)
        if progress is not None:
            progress(start + count, points)
    upserted = time.perf_counter()
    store.optimize(name)
    optimized = time.perf_counter()
    store_path = getattr(store, "path", None)
    folder = Path(store_path) / name if store_path is not None else None
    disk = _folder_bytes(folder) if folder is not None and folder.is_dir() else None
    return BuildResult(name, points, dimension, upserted - started, optimized - upserted, disk)


def query_vectors(
    seed: int,
    points: int,
    dimension: int,
    count: int,
    *,
    noise: float = 0.6,
    query_seed: int = 1,
    distribution: EmbeddingDistribution | None = None,
) -> np.ndarray:
    """``count`` query vectors near corpus vectors of a collection built with ``seed`` (and ``distribution``):
    unit(v + noise).

    The noise vector has norm ``noise``, so a query's cosine similarity to its source point is about
    ``1 / sqrt(1 + noise**2)`` (0.86 for 0.6).
    """
    rng = np.random.default_rng([seed, 0x0E7, query_seed])
    indices = rng.integers(0, points, size=count)
    rows = np.empty((count, dimension), dtype=np.float32)
    for batch in np.unique(indices // VECTOR_BATCH):
        size = min(VECTOR_BATCH, points - int(batch) * VECTOR_BATCH)
        source = synthetic_vectors(seed, int(batch), size, dimension, distribution)
        chosen = np.flatnonzero(indices // VECTOR_BATCH == batch)
        rows[chosen] = source[indices[chosen] % VECTOR_BATCH]
    jitter = rng.standard_normal((count, dimension), dtype=np.float32)
    jitter *= noise / np.linalg.norm(jitter, axis=1, keepdims=True)
    rows += jitter
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def dense_recall(
    store: VectorStore,
    name: str,
    *,
    points: int,
    dimension: int,
    seed: int = 0,
    distribution: EmbeddingDistribution | None = None,
    queries: int = 100,
    k: int = 10,
) -> float:
    """Mean recall@k of ``store.search_dense`` against the exact nearest neighbours, found here by brute force
    over the regenerated corpus vectors (so the HNSW walk, quantization and rescoring are all judged)."""
    vectors = query_vectors(seed, points, dimension, queries, query_seed=3, distribution=distribution)
    best_scores = np.full((queries, k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((queries, k), dtype=np.int64)
    for batch, start in enumerate(range(0, points, VECTOR_BATCH)):
        count = min(VECTOR_BATCH, points - start)
        scores = np.concatenate(
            [best_scores, vectors @ synthetic_vectors(seed, batch, count, dimension, distribution).T], axis=1
        )
        rows = np.concatenate([best_rows, np.broadcast_to(np.arange(start, start + count), (queries, count))], axis=1)
        keep = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, keep, axis=1)
        best_rows = np.take_along_axis(rows, keep, axis=1)
    found = 0
    for vector, truth in zip(vectors, best_rows, strict=True):
        hits = {hit.id for hit in store.search_dense(name, vector, top_k=k)}
        found += len(hits & {point_id(seed, int(row)) for row in truth})
    return found / (queries * k)


# ---------------------------------------------------------------------------------------------- timing


def _search_call(
    store: VectorStore, name: str, mode: str, top_k: int, flt: SearchFilter | None
) -> Callable[[np.ndarray, str], object]:
    # the dense side without payloads, as a search asks it (zhiku.search.retrieve)
    if mode == "dense":
        return lambda vector, text: store.search_dense(name, vector, top_k=top_k, filter=flt, with_payload=False)
    if mode == "text":
        return lambda vector, text: store.search_text(name, text, top_k=top_k, filter=flt)
    if mode == "hybrid":
        return lambda vector, text: (
            store.search_dense(name, vector, top_k=top_k, filter=flt, with_payload=False),
            store.search_text(name, text, top_k=top_k, filter=flt),
        )
    if mode == "rrf":
        return lambda vector, text: store.search_hybrid(name, vector, text, top_k=top_k, filter=flt)
    raise ValueError(f"unknown search mode {mode!r}; expected one of {', '.join(MODES)}")


def _timed_pass(
    call: Callable[[np.ndarray, str], object], vectors: np.ndarray, texts: Sequence[str], concurrency: int
) -> tuple[list[float], float]:
    """Run every query once with ``concurrency`` closed-loop clients; per-call seconds and the wall time."""
    count = len(vectors)

    def client(worker: int, start: threading.Barrier) -> list[float]:
        timings = []
        start.wait()
        for index in range(worker, count, concurrency):
            text = texts[index % len(texts)]
            began = time.perf_counter()
            call(vectors[index], text)
            timings.append(time.perf_counter() - began)
        return timings

    barrier = threading.Barrier(concurrency + 1)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-client") as pool:
        futures = [pool.submit(client, worker, barrier) for worker in range(concurrency)]
        barrier.wait()
        began = time.perf_counter()
        timings = [t for future in futures for t in future.result()]
        wall = time.perf_counter() - began
    return timings, wall


def bench_search(
    store: VectorStore,
    name: str,
    *,
    queries: int,
    top_k: int = 50,
    modes: Sequence[str] = ("dense", "hybrid", "text"),
    concurrency: int = 1,
    with_filter: bool = False,
    seed: int = 0,
    dimension: int | None = None,
    query_texts: Sequence[str] | None = None,
    warmup: int = 50,
    rounds: int = 1,
    distribution: EmbeddingDistribution | None = None,
) -> list[SearchBenchResult]:
    """Time ``queries`` searches per mode on collection ``name`` (built by :func:`build_synthetic_collection`).

    ``top_k`` defaults to 50, the candidates zhiku search asks each side for. ``with_filter`` adds the
    ``kb_id`` filter zhiku search always sends (it matches every synthetic point). ``seed`` and ``distribution``
    must be the build's for the query vectors to have near neighbours; ``dimension`` defaults to
    ``store.dimension(name)``.
    Each mode first runs ``warmup`` untimed queries, then ``rounds`` timed passes; the reported figures are
    medians over the rounds.
    """
    if queries <= 0 or concurrency <= 0 or rounds <= 0:
        raise ValueError("queries, concurrency and rounds must be positive")
    if dimension is None:
        get_dimension = getattr(store, "dimension", None)
        if get_dimension is None:
            raise ValueError("pass dimension= for a store without a dimension() method")
        dimension = int(get_dimension(name))
    points = store.count(name)
    vectors = query_vectors(seed, points, dimension, queries, distribution=distribution)
    texts = list(query_texts or QUERIES)
    flt = SearchFilter(kb_id=BENCH_KB) if with_filter else None
    results = []
    for mode in modes:
        call = _search_call(store, name, mode, top_k, flt)
        warm = query_vectors(seed, points, dimension, max(1, warmup), query_seed=2, distribution=distribution)
        _timed_pass(call, warm, texts, 1)
        per_round: list[tuple[float, float, float, float, float]] = []
        for _ in range(rounds):
            timings, wall = _timed_pass(call, vectors, texts, concurrency)
            milliseconds = np.asarray(timings) * 1000
            p50, p95, p99 = (float(v) for v in np.percentile(milliseconds, [50, 95, 99]))
            per_round.append((p50, p95, p99, float(milliseconds.mean()), queries / wall))
        p50, p95, p99, mean, qps = (statistics.median(column) for column in zip(*per_round, strict=True))
        results.append(
            SearchBenchResult(mode, points, concurrency, queries, top_k, with_filter, p50, p95, p99, mean, qps, rounds)
        )
    return results


# ---------------------------------------------------------------------------------------------- report


def render_table(results: Sequence[SearchBenchResult]) -> str:
    """The results as a Markdown table (one row per mode and concurrency)."""
    lines = [
        "| store | mode | points | clients | queries | top_k | filter | p50 ms | p95 ms | p99 ms | mean ms | QPS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.store} | {r.mode} | {r.points:,} | {r.concurrency} | {r.queries} | {r.top_k} "
            f"| {'kb' if r.filtered else '-'} "
            f"| {r.p50_ms:.2f} | {r.p95_ms:.2f} | {r.p99_ms:.2f} | {r.mean_ms:.2f} | {r.qps:.0f} |"
        )
    return "\n".join(lines)


def describe_build(build: BuildResult) -> str:
    """One line about the build: points, dimension, times and disk size (for the report notes)."""
    disk = f", {build.disk_bytes / 2**20:.0f} MiB on disk" if build.disk_bytes is not None else ""
    return (
        f"collection of {build.points:,} synthetic points, dimension {build.dimension}: upsert "
        f"{build.upsert_seconds:.1f} s, optimize {build.optimize_seconds:.1f} s{disk}"
    )


STORES = ("edge", "pgvector")
"""Vector stores :func:`run_search_bench` can measure."""


def open_bench_store(kind: str, folder: Path, settings: Settings, pgvector_url: str | None) -> VectorStore:
    """The store ``kind``: Qdrant Edge in ``folder``, or pgvector at ``pgvector_url`` (default: the settings')."""
    search_ef = settings.vector_search_ef or None
    if kind == "edge":
        return QdrantEdgeStore(folder, hnsw_ef=search_ef)
    if kind == "pgvector":
        from zhiku.storage.vectors.pgvector import PgVectorStore

        url = pgvector_url or settings.pgvector_url or settings.database_url
        if not url or not url.startswith("postgres"):
            raise InvalidInputError("--stores pgvector needs --pgvector-url (or ZHIKU_PGVECTOR_URL)", param="stores")
        return PgVectorStore(url, hnsw_ef=search_ef)
    raise InvalidInputError(f"unknown store {kind!r}: use {' or '.join(STORES)}", param="stores")


def run_search_bench(
    corpora: list[Path],
    settings: Settings,
    *,
    points: int,
    dimension: int,
    vectors: str,
    model: str | None,
    queries: int,
    rounds: int,
    concurrency: Sequence[int] | None,
    store: Path | None,
    say: Callable[[str], None],
    stores: Sequence[str] = ("edge",),
    pgvector_url: str | None = None,
    with_filter: bool = True,
) -> tuple[str, str]:
    """``zhiku bench search``: build (or reuse, from ``store`` or the pgvector database) the synthetic collection
    in each of ``stores``, with vectors ``fitted`` to ``model``'s embeddings of the corpora or ``random``, then
    time the searches, the stores taking turns at each concurrency; returns the results table and the notes on
    how it was measured. ``with_filter`` sends the ``kb_id`` filter every zhiku search sends. ``say`` reports
    long steps as they begin."""
    if vectors not in ("fitted", "random"):
        raise InvalidInputError(f"--vectors must be fitted or random, got {vectors!r}", param="vectors")
    distribution: EmbeddingDistribution | None = None
    name = f"bench_{points}_{dimension}"
    notes = f"{points:,} synthetic chunks of dim {dimension}"
    if vectors == "fitted":
        spec = resolve_model(model or settings.embedding_model)
        name += f"_{spec.name}"
        notes += f", vectors drawn from a Gaussian fitted to {spec.name}'s embeddings of the corpora's passages"
    else:
        notes += ", vectors uniform on the sphere"
    notes += f"; texts from {', '.join(c.name for c in corpora)}"
    search_ef = settings.vector_search_ef or None
    with tempfile.TemporaryDirectory(prefix="zhiku-bench-search-") as scratch:
        folder = store or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        opened = {kind: open_bench_store(kind, folder, settings, pgvector_url) for kind in stores}
        try:
            record = folder / f"{name}.build.json"
            saved_distribution = folder / f"{name}.distribution.npz"
            reused = {kind: s.has_collection(name) and s.count(name) == points for kind, s in opened.items()}
            if vectors == "fitted":
                if saved_distribution.is_file() and any(reused.values()):
                    distribution = EmbeddingDistribution.load(saved_distribution)
                else:
                    reused = dict.fromkeys(opened, False)
                    say(f"fitting the vector distribution to {spec.name}'s embeddings of the passages...")
                    distribution = fit_distribution(get_embedder(spec.name), load_passages(corpora), dimension)
                    distribution.save(saved_distribution)
                notes += f" (effective dimension {distribution.effective_dimension():.0f})"
            for kind, vector_store in opened.items():
                if reused[kind]:
                    notes += f"; {kind}: collection reused"
                    kind_record = record.with_suffix(f".{kind}.json")
                    if kind_record.is_file():
                        notes += " (" + describe_build(BuildResult(**json.loads(kind_record.read_text()))) + ")"
                else:
                    say(f"building the {kind} collection of {points:,} points...")
                    build = build_synthetic_collection(
                        vector_store,
                        name,
                        points=points,
                        dimension=dimension,
                        texts_from=corpora,
                        distribution=distribution,
                    )
                    notes += f"; {kind}: " + describe_build(build)
                    record.with_suffix(f".{kind}.json").write_text(json.dumps(dataclasses.asdict(build)))
                recall = dense_recall(vector_store, name, points=points, dimension=dimension, distribution=distribution)
                notes += f"; {kind} dense recall@10 against exact search {recall:.3f}"
            notes += f" (HNSW search beam {search_ef})" if search_ef is not None else " (the stores' default beams)"
            results = []
            for clients in concurrency or [1, 8]:
                for kind, vector_store in opened.items():  # the stores take turns, so machine noise hits both
                    say(f"timing {kind} with {clients} client(s)...")
                    measured = bench_search(
                        vector_store,
                        name,
                        queries=queries,
                        concurrency=clients,
                        with_filter=with_filter,
                        query_texts=load_queries(corpora),
                        dimension=dimension,
                        rounds=rounds,
                        distribution=distribution,
                    )
                    results += [dataclasses.replace(r, store=kind) for r in measured]
        finally:
            for vector_store in opened.values():
                vector_store.close()
    return render_table(results), notes


# ---------------------------------------------------------------------------------------------- lexical quality


@dataclass(frozen=True)
class LexicalQuality:
    """BM25 ranking quality of one store on one BEIR set, with its latency."""

    store: str
    dataset: str
    queries: int
    ndcg_at_10: float
    p50_ms: float


def bench_lexical(
    corpora: Sequence[Path], settings: Settings, stores: Sequence[str], *, pgvector_url: str | None = None
) -> list[LexicalQuality]:
    """nDCG@10 of each store's ``search_text`` (BM25 on zhiku's terms) over each BEIR set: the passages go into a
    fresh collection of each store (random vectors: only the text is judged), every query is asked with the
    ``kb_id`` filter every search sends."""
    from zhiku.eval.retrieval import load_beir, rank_metrics

    results = []
    with tempfile.TemporaryDirectory(prefix="zhiku-bench-lexical-") as scratch:
        for corpus in corpora:
            data = load_beir(corpus)
            rng = np.random.default_rng(0)
            points = [
                VectorPoint(
                    id=str(uuid.uuid4()),
                    vector=rng.standard_normal(8).astype(np.float32),
                    text=text,
                    payload={KB_FIELD: BENCH_KB, DOCUMENT_FIELD: doc_id, VERSION_FIELD: 1},
                )
                for doc_id, text in zip(data.doc_ids, data.doc_texts, strict=True)
            ]
            name = f"lexical_{uuid.uuid4().hex[:12]}"
            for kind in stores:
                store = open_bench_store(kind, Path(scratch) / kind, settings, pgvector_url)
                try:
                    store.ensure_collection(name, 8)
                    store.upsert(name, points)
                    store.optimize(name)
                    ndcgs, timings = [], []
                    for query_id, query in zip(data.query_ids, data.query_texts, strict=True):
                        began = time.perf_counter()
                        hits = store.search_text(name, query, top_k=10, filter=SearchFilter(kb_id=BENCH_KB))
                        timings.append(time.perf_counter() - began)
                        ndcgs.append(rank_metrics([h.payload[DOCUMENT_FIELD] for h in hits], data.qrels[query_id])[0])
                    results.append(
                        LexicalQuality(
                            kind, data.name, len(ndcgs), float(np.mean(ndcgs)), statistics.median(timings) * 1000
                        )
                    )
                finally:
                    store.delete_collection(name)
                    store.close()
    return results


def render_lexical_table(results: Sequence[LexicalQuality]) -> str:
    """The lexical results as a Markdown table."""
    lines = ["| set | store | queries | nDCG@10 | p50 ms |", "|---|---|---|---|---|"]
    lines += [f"| {r.dataset} | {r.store} | {r.queries} | {r.ndcg_at_10:.4f} | {r.p50_ms:.2f} |" for r in results]
    return "\n".join(lines)
