"""What HyDE does to retrieval, with STAND-IN chat models (no chat model's weights can run on this machine).

HyDE searches with the mean of the query's vector and that of a passage a chat model writes to answer it. Its
effect depends on that passage, so the benchmark gives zhiku passages of known quality, written from the XQuAD
corpora (whose English and Chinese paragraphs share ids), and scores each against the query alone:

- ``echo``: the question itself, embedded as a document (a model that adds nothing);
- ``knows``: the relevant paragraph in the other language (a model that knows the answer and writes it out: an
  upper bound, and a cross-language one: a passage in the corpus's own language would match it verbatim);
- ``topic``: another paragraph of the same article, in the other language (a model that knows the subject, not
  the fact);
- ``wrong``: a paragraph of another article, in the other language (a model that makes things up).

A real chat model lies between ``knows`` and ``wrong``, question by question; where depends on the model and on
how well the knowledge base's subject is known to it. The passages go to the real search
(``SearchOptions.hypothetical_answer``): the real pipeline, model and store; only the chat model is stood in for.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.eval.harness import ingest_beir
from zhiku.eval.retrieval import load_beir, rank_metrics
from zhiku.search.options import Mode, SearchOptions
from zhiku.search.retrieve import search

SETS = ("xquad-en", "xquad-zh", "xquad-qzh-cen", "xquad-qen-czh")
WRITERS = ("none", "echo", "knows", "topic", "wrong")
MODES: tuple[Mode, ...] = ("dense", "hybrid")
CORPUS_LANGUAGE = {"xquad-en": "en", "xquad-zh": "zh", "xquad-qzh-cen": "en", "xquad-qen-czh": "zh"}


@dataclass(frozen=True)
class HydeScore:
    """One set, mode and stand-in writer: mean nDCG@10 and recall@1 over the queries."""

    dataset: str
    mode: str
    writer: str
    queries: int
    ndcg_at_10: float
    recall_at_1: float


def _paragraphs(evaldata: Path, language: str) -> dict[str, str]:
    path = evaldata / "retrieval" / f"xquad-{language}" / "corpus.jsonl"
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line)
    return {row["_id"]: row["text"] for row in rows}


def stand_in_passage(writer: str, question: str, answer_id: str, other: dict[str, str]) -> str | None:
    """The passage the stand-in ``writer`` gives for ``question`` whose answer is paragraph ``answer_id``
    (``xq-AA-PP``, article AA); ``other`` holds the paragraphs in the other language. ``None``: no HyDE."""
    article, paragraph = answer_id.split("-")[1:]
    if writer == "none":
        return None
    if writer == "echo":
        return question
    if writer == "knows":
        return other[answer_id]
    if writer == "topic":
        siblings = sorted(key for key in other if key.startswith(f"xq-{article}-") and key != answer_id)
        return other[siblings[int(paragraph) % len(siblings)]]
    if writer == "wrong":
        articles = sorted({key.split("-")[1] for key in other})
        elsewhere = articles[(articles.index(article) + len(articles) // 2) % len(articles)]
        return other[f"xq-{elsewhere}-00"]
    raise ValueError(f"unknown writer {writer!r}")


def bench_hyde(
    evaldata: Path, settings: Settings, *, limit: int, log: Callable[[str], object], sets: tuple[str, ...] = SETS
) -> list[HydeScore]:
    """Every set ingested through the real pipeline (default model, SQLite, Qdrant Edge), then its first
    ``limit`` questions searched dense and hybrid with each stand-in writer's passage."""
    corpora = {"en": _paragraphs(evaldata, "en"), "zh": _paragraphs(evaldata, "zh")}
    scores: list[HydeScore] = []
    for name in sets:
        data = load_beir(evaldata / "retrieval" / name, limit)
        other = corpora["zh" if CORPUS_LANGUAGE[name] == "en" else "en"]
        with tempfile.TemporaryDirectory(prefix="zhiku-hyde-") as scratch:
            zhiku = Zhiku(settings.model_copy(update={"home": Path(scratch) / "home", "database_url": None}))
            try:
                log(f"{name}: ingesting {len(data.doc_ids)} paragraphs")
                kb = ingest_beir(zhiku, data, Path(scratch) / "corpus", model=None, dimension=None)
                for mode in MODES:
                    for writer in WRITERS:
                        metrics = []
                        for query_id, question in zip(data.query_ids, data.query_texts, strict=True):
                            answer_id = next(iter(data.qrels[query_id]))
                            passage = stand_in_passage(writer, question, answer_id, other)
                            options = SearchOptions(
                                mode=mode, top_k=30, hyde=passage is not None, hypothetical_answer=passage
                            )
                            ranked: list[str] = []
                            for hit in search(zhiku, kb, question, options):
                                doc_id = hit.source.removeprefix("beir:")
                                if doc_id not in ranked:
                                    ranked.append(doc_id)
                            ndcg = rank_metrics(ranked, data.qrels[query_id], k=10)[0]
                            metrics.append((ndcg, rank_metrics(ranked, data.qrels[query_id], k=1)[1]))
                        means = np.mean(np.asarray(metrics), axis=0)
                        scores.append(HydeScore(name, mode, writer, len(metrics), float(means[0]), float(means[1])))
                        log(f"{name} {mode} {writer}: nDCG@10 {means[0]:.4f}")
            finally:
                zhiku.close()
    return scores


def markdown_table(scores: list[HydeScore]) -> list[str]:
    """nDCG@10 (and recall@1) per set and mode, one column per stand-in writer, the change from no HyDE in
    brackets."""
    lines = [
        "| set | mode | queries | " + " | ".join(WRITERS) + " |",
        "|---|---|---|" + "---|" * len(WRITERS),
    ]
    keys = sorted({(s.dataset, s.mode) for s in scores}, key=lambda k: (SETS.index(k[0]), k[1]))
    for dataset, mode in keys:
        row = {s.writer: s for s in scores if s.dataset == dataset and s.mode == mode}
        base = row["none"]
        cells = []
        for writer in WRITERS:
            found = row[writer]
            change = "" if writer == "none" else f" ({found.ndcg_at_10 - base.ndcg_at_10:+.3f})"
            cells.append(f"{found.ndcg_at_10:.4f}{change} / R@1 {found.recall_at_1:.3f}")
        lines.append(f"| {dataset} | {mode} | {base.queries} | " + " | ".join(cells) + " |")
    return lines
