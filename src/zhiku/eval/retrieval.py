"""Dense retrieval evaluation on BEIR-format folders (``corpus.jsonl``, ``queries.jsonl``, ``qrels.tsv``)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zhiku.embedding.base import Embedder


@dataclass(frozen=True)
class BeirSet:
    """A retrieval test set: documents, queries and which documents answer which query."""

    name: str
    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]


@dataclass(frozen=True)
class RetrievalScores:
    """Mean metrics over the queries of one set, plus embedding throughput."""

    name: str
    ndcg_at_10: float
    recall_at_10: float
    mrr_at_10: float
    queries: int
    documents: int
    passages_per_second: float


def load_beir(folder: Path, limit_queries: int | None = None) -> BeirSet:
    """Read a BEIR folder; documents are embedded as their text (titles are not part of the passage)."""
    docs = [json.loads(line) for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line]
    queries = [json.loads(line) for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines() if line]
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        query_id, doc_id, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(query_id, {})[doc_id] = int(score)
    # queries without relevance judgements or without text (one in xquad-en) cannot be scored
    queries = [q for q in queries if q["_id"] in qrels and q["text"].strip()][:limit_queries]
    return BeirSet(
        name=folder.name,
        doc_ids=[d["_id"] for d in docs],
        doc_texts=[d["text"] for d in docs],
        query_ids=[q["_id"] for q in queries],
        query_texts=[q["text"] for q in queries],
        qrels=qrels,
    )


def rank_metrics(ranked: list[str], relevant: dict[str, int], k: int = 10) -> tuple[float, float, float]:
    """nDCG@k, recall@k and MRR@k of one ranked list against graded relevance."""
    gains = [relevant.get(doc, 0) for doc in ranked[:k]]
    dcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    hits = sum(1 for g in gains if g > 0)
    mrr = next((1.0 / (i + 1) for i, g in enumerate(gains) if g > 0), 0.0)
    return (dcg / idcg if idcg else 0.0), hits / max(1, len(relevant)), mrr


def evaluate_dense(embedder: Embedder, data: BeirSet, *, dimensions: int | None = None) -> RetrievalScores:
    """Embed the corpus and queries with ``embedder`` and score exact dot-product retrieval."""
    started = time.perf_counter()
    docs = embedder.embed(data.doc_texts, input_type="document", dimensions=dimensions).vectors
    elapsed = time.perf_counter() - started
    queries = embedder.embed(data.query_texts, input_type="query", dimensions=dimensions).vectors
    scores = queries @ docs.T
    top = np.argsort(-scores, axis=1)[:, :10]
    per_query = [
        rank_metrics([data.doc_ids[j] for j in top[i]], data.qrels[qid]) for i, qid in enumerate(data.query_ids)
    ]
    ndcg, recall, mrr = (float(np.mean(col)) for col in zip(*per_query, strict=True))
    return RetrievalScores(
        name=data.name,
        ndcg_at_10=ndcg,
        recall_at_10=recall,
        mrr_at_10=mrr,
        queries=len(data.query_ids),
        documents=len(data.doc_ids),
        passages_per_second=len(data.doc_ids) / elapsed,
    )
