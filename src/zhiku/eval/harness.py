"""The quality harness: a BEIR set ingested through the real pipeline, queried in each mode, scored.

Every corpus passage becomes a document of a temporary knowledge base (parsed, chunked, embedded and indexed
exactly as user documents are); a document's rank is that of its best chunk.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.eval.retrieval import BeirSet, load_beir, rank_metrics
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import NewFile, register_in_groups
from zhiku.pipeline.tasks import job_runner
from zhiku.search.options import Mode, SearchOptions
from zhiku.search.retrieve import latency_percentiles, search
from zhiku.storage.models import KnowledgeBase


@dataclass(frozen=True)
class ModeScores:
    """Mean metrics of one retrieval mode on one set, with search latency."""

    dataset: str
    mode: str
    model: str
    dimension: int
    queries: int
    ndcg_at_10: float
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    mrr_at_10: float
    latency_p50_ms: float
    latency_p95_ms: float
    score_auc: float
    """How well ``score`` (0-1 relevance) separates relevant from other top-10 hits, pooled over all queries: the
    chance a relevant hit of any query scores above an irrelevant hit of any query (0.5 = no better than chance)."""
    raw_score_auc: float
    """The same for the mode's raw score (cosine, BM25 or fused z-score), for comparison."""
    answerable_auc: float
    """How well the best hit's ``score`` tells a query answered here (its best hit relevant) from a question the
    set cannot answer (``unanswerable`` queries, from another set): the chance the first scores higher. NaN
    without unanswerable queries. This is what a ``min_score`` threshold relies on."""
    raw_answerable_auc: float
    """The same for the raw score."""


def ingest_beir(
    zhiku: Zhiku, data: BeirSet, folder: Path, *, model: str | None, dimension: int | None
) -> KnowledgeBase:
    """Write each passage to a file and ingest them all into a new knowledge base named after the set."""
    kb = create_knowledge_base(zhiku, data.name, model=model, dimension=dimension)
    folder.mkdir(parents=True, exist_ok=True)
    with job_runner(zhiku, poll_interval=0.05) as runner:
        files: list[Path | NewFile] = []
        for index, (doc_id, text) in enumerate(zip(data.doc_ids, data.doc_texts, strict=True)):
            path = folder / f"{index:07d}.txt"
            path.write_text(text, encoding="utf-8")
            files.append(NewFile(path, source=f"beir:{doc_id}"))
        runner.wait_for([r.job_id for r in register_in_groups(zhiku, kb, files) if r.job_id])
    return kb


def run_queries(
    zhiku: Zhiku, kb: KnowledgeBase, data: BeirSet, mode: Mode, unanswerable: Sequence[str] = ()
) -> ModeScores:
    """Run every query in ``mode`` and average the metrics; documents are ranked by their best chunk. The
    ``unanswerable`` questions (another set's) are asked too, for :attr:`ModeScores.answerable_auc`."""
    metrics, latencies = [], []
    judged: list[tuple[float, float, bool]] = []  # (score, raw score, relevant) of each top-10 hit
    best: list[tuple[float, float, bool]] = []  # (score, raw score, answered here) of each query's best hit
    raw_key = {"dense": "dense", "lexical": "lexical", "hybrid": "fused"}[mode]
    for query_id, query in zip(data.query_ids, data.query_texts, strict=True):
        started = time.perf_counter()
        hits = search(zhiku, kb, query, SearchOptions(mode=mode, top_k=30))
        latencies.append(time.perf_counter() - started)
        ranked: list[str] = []
        for hit in hits:
            doc_id = hit.source.removeprefix("beir:")
            if doc_id not in ranked:
                ranked.append(doc_id)
        relevant = data.qrels[query_id]
        seen: set[str] = set()
        for hit in hits:
            doc_id = hit.source.removeprefix("beir:")
            if doc_id not in seen and len(seen) < 10:
                seen.add(doc_id)
                judged.append((hit.score, hit.scores[raw_key], relevant.get(doc_id, 0) > 0))
        if hits and relevant.get(hits[0].source.removeprefix("beir:"), 0) > 0:
            best.append((hits[0].score, hits[0].scores[raw_key], True))
        ndcg, recall10, mrr = rank_metrics(ranked, relevant, k=10)
        recall1 = rank_metrics(ranked, relevant, k=1)[1]
        recall5 = rank_metrics(ranked, relevant, k=5)[1]
        metrics.append((ndcg, recall1, recall5, recall10, mrr))
    for question in unanswerable:
        hits = search(zhiku, kb, question, SearchOptions(mode=mode, top_k=1))
        best.append((hits[0].score, hits[0].scores[raw_key], False) if hits else (0.0, float("-inf"), False))
    means = np.mean(np.asarray(metrics), axis=0) if metrics else np.zeros(5)
    p50, p95 = latency_percentiles(latencies)
    return ModeScores(
        dataset=data.name,
        mode=mode,
        model=kb.embedding_model,
        dimension=kb.dimension,
        queries=len(metrics),
        ndcg_at_10=float(means[0]),
        recall_at_1=float(means[1]),
        recall_at_5=float(means[2]),
        recall_at_10=float(means[3]),
        mrr_at_10=float(means[4]),
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        score_auc=separation([(score, rel) for score, _, rel in judged]),
        raw_score_auc=separation([(raw, rel) for _, raw, rel in judged]),
        answerable_auc=separation([(score, answered) for score, _, answered in best]),
        raw_answerable_auc=separation([(raw, answered) for _, raw, answered in best]),
    )


def separation(judged: list[tuple[float, bool]]) -> float:
    """ROC AUC of scores for relevant (True) against irrelevant hits, ties counted half (Mann-Whitney)."""
    positives = np.asarray([score for score, relevant in judged if relevant])
    negatives = np.asarray([score for score, relevant in judged if not relevant])
    if not len(positives) or not len(negatives):
        return float("nan")
    above = (positives[:, None] > negatives[None, :]).sum() + 0.5 * (positives[:, None] == negatives[None, :]).sum()
    return float(above / (len(positives) * len(negatives)))


def evaluate_set(
    folder: Path,
    settings: Settings,
    modes: list[Mode],
    *,
    model: str | None = None,
    dimension: int | None = None,
    limit: int | None = None,
    unanswerable: Sequence[str] = (),
) -> list[ModeScores]:
    """Ingest one BEIR set into a temporary home and score each mode (``unanswerable``: questions from
    elsewhere, see :func:`run_queries`)."""
    data = load_beir(folder, limit)
    with tempfile.TemporaryDirectory(prefix="zhiku-eval-") as scratch:
        root = Path(scratch)
        zhiku = Zhiku(settings.model_copy(update={"home": root / "home", "database_url": None}))
        try:
            kb = ingest_beir(zhiku, data, root / "corpus", model=model, dimension=dimension)
            zhiku.vectors.optimize(kb.collection)
            return [run_queries(zhiku, kb, data, mode, unanswerable) for mode in modes]
        finally:
            zhiku.close()
