"""The topic map's quality and time (`zhiku bench topics EVALDATA`).

Quality: the XQuAD paragraphs (48 articles × 5 paragraphs) of English, of Chinese and of both in one knowledge
base are ingested through the real pipeline (the default model, SQLite, Qdrant Edge); the clusters are compared
with the articles (normalised mutual information, adjusted Rand index), for the automatic cut and for 48 clusters
asked for; in the mixed knowledge base, the share of paragraphs whose translation is in their cluster.

Time: a 10,000-chunk knowledge base made directly in the metadata database (documents, chunks with XQuAD texts,
and *synthetic* document vectors around 50 random topic directions: the vectors are for timing only, their
clusters mean nothing), mapped (vectors, clustering, names, layout), then again as after a change of the
documents, then from the cache. The quality part runs first, so scikit-learn and jieba are loaded by then.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import register_in_groups
from zhiku.knowledge.topics import clear_cache, topic_map
from zhiku.pipeline.embed import model_key, text_hash
from zhiku.pipeline.tasks import job_runner
from zhiku.storage.models import Chunk, Document, DocumentStatus, DocumentVector, Job, KnowledgeBase, new_id, utcnow


@dataclass(frozen=True)
class QualityRow:
    """How well the clusters of one corpus follow its articles."""

    corpus: str
    documents: int
    clusters: int
    nmi: float
    ari: float
    nmi_48: float
    ari_48: float
    pairs: float | None
    seconds: float


@dataclass(frozen=True)
class TimeRow:
    """The time to map a synthetic knowledge base."""

    documents: int
    chunks: int
    clusters: int
    cold_seconds: float
    warm_seconds: float
    cached_seconds: float


def _corpus(evaldata: Path, language: str) -> list[dict[str, str]]:
    path = evaldata / "retrieval" / f"xquad-{language}" / "corpus.jsonl"
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def bench_quality(evaldata: Path, settings: Settings, log: Callable[[str], object]) -> list[QualityRow]:
    """NMI and ARI of the topic map against the XQuAD articles for en, zh and en+zh."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    rows: list[QualityRow] = []
    corpora = {language: _corpus(evaldata, language) for language in ("en", "zh")}
    with tempfile.TemporaryDirectory(prefix="zhiku-bench-topics-") as tmp:
        root = Path(tmp)
        zhiku = Zhiku(settings.model_copy(update={"home": root / "home", "database_url": None}))
        try:
            for name, languages in (("xquad-en", ["en"]), ("xquad-zh", ["zh"]), ("xquad-en+zh", ["en", "zh"])):
                log(f"ingesting {name} ...")
                kb = create_knowledge_base(zhiku, name.replace("+", "-"))  # no "+" in a knowledge base name
                folder = root / name
                folder.mkdir()
                paths = []
                for language in languages:
                    for row in corpora[language]:
                        path = folder / f"{language}-{row['_id']}.txt"
                        path.write_text(row["text"], encoding="utf-8")
                        paths.append(path)
                titles = {row["_id"]: row["title"] for row in corpora["en"]}
                register_in_groups(zhiku, kb, paths)
                _run_all(zhiku)
                names = _names(zhiku, kb)
                started = time.perf_counter()
                found = topic_map(zhiku, kb)
                seconds = time.perf_counter() - started
                asked = topic_map(zhiku, kb, clusters=48)
                label = {d.id: d.cluster for d in found.documents}
                label_48 = {d.id: d.cluster for d in asked.documents}
                ids = sorted(label)
                truth = [titles[names[i].split("-", 1)[1]] for i in ids]
                pairs = None
                if len(languages) == 2:
                    by_name = {names[i]: label[i] for i in ids}
                    together = [by_name[f"en-{p}"] == by_name[f"zh-{p}"] for p in titles]
                    pairs = sum(together) / len(together)
                rows.append(
                    QualityRow(
                        corpus=name,
                        documents=len(ids),
                        clusters=len(found.clusters),
                        nmi=float(normalized_mutual_info_score(truth, [label[i] for i in ids])),
                        ari=float(adjusted_rand_score(truth, [label[i] for i in ids])),
                        nmi_48=float(normalized_mutual_info_score(truth, [label_48[i] for i in ids])),
                        ari_48=float(adjusted_rand_score(truth, [label_48[i] for i in ids])),
                        pairs=pairs,
                        seconds=seconds,
                    )
                )
                log(f"{name}: {rows[-1]}")
        finally:
            zhiku.close()
    return rows


def _names(zhiku: Zhiku, kb: KnowledgeBase) -> dict[str, str]:
    """Document id → file stem (``en-xq-00-00``)."""
    with zhiku.db.session() as session:
        return {
            document_id: filename.rsplit(".", 1)[0]
            for document_id, filename in session.execute(
                select(Document.id, Document.filename).where(Document.kb_id == kb.id)
            )
        }


def _run_all(zhiku: Zhiku) -> None:
    with zhiku.db.session() as session:
        ids = list(session.scalars(select(Job.id).where(Job.status.in_(["queued", "running"]))))
    with job_runner(zhiku, workers=2, poll_interval=0.05) as runner:
        runner.wait_for(ids, timeout=3600)


def bench_time(
    evaldata: Path, settings: Settings, shapes: list[tuple[int, int]], log: Callable[[str], object]
) -> list[TimeRow]:
    """The time to map knowledge bases of ``(documents, chunks per document)`` with synthetic vectors."""
    texts = [row["text"] for language in ("en", "zh") for row in _corpus(evaldata, language)]
    rng = np.random.default_rng(0)
    rows: list[TimeRow] = []
    with tempfile.TemporaryDirectory(prefix="zhiku-bench-topics-") as tmp:
        zhiku = Zhiku(settings.model_copy(update={"home": Path(tmp) / "home", "database_url": None}))
        try:
            for documents, per_document in shapes:
                kb = create_knowledge_base(zhiku, f"synthetic-{documents}x{per_document}")
                centres = rng.standard_normal((50, kb.dimension)).astype(np.float32)
                vectors = centres[rng.integers(0, 50, documents)] + 0.8 * rng.standard_normal(
                    (documents, kb.dimension)
                ).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                _fill(zhiku, kb, vectors, per_document, texts)
                log(f"mapping {documents} documents x {per_document} chunks ...")
                started = time.perf_counter()
                found = topic_map(zhiku, kb)
                cold = time.perf_counter() - started
                clear_cache()  # as after a change of the documents, in a process that made maps before
                started = time.perf_counter()
                topic_map(zhiku, kb)
                warm = time.perf_counter() - started
                started = time.perf_counter()
                topic_map(zhiku, kb)
                cached = time.perf_counter() - started
                rows.append(TimeRow(documents, documents * per_document, len(found.clusters), cold, warm, cached))
                log(str(rows[-1]))
        finally:
            zhiku.close()
    return rows


def _fill(zhiku: Zhiku, kb: KnowledgeBase, vectors: np.ndarray, per_document: int, texts: list[str]) -> None:
    """Ready documents with ``per_document`` chunks each (texts from ``texts``, in turn) and the given vectors."""
    now = utcnow()
    key = model_key(kb)
    with zhiku.db.session() as session:
        for start in range(0, len(vectors), 500):
            docs, chunks, stored = [], [], []
            for n in range(start, min(start + 500, len(vectors))):
                document_id = new_id()
                docs.append(
                    {
                        "id": document_id,
                        "kb_id": kb.id,
                        "source": f"synthetic:{n}",
                        "filename": f"doc-{n:05d}.txt",
                        "content_hash": f"{n:064x}",
                        "size_bytes": 1000,
                        "status": DocumentStatus.ready,
                        "version": 1,
                        "chunk_count": per_document,
                        "warnings": [],
                        "meta": {},
                        "ocr_pages": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                for ordinal in range(per_document):
                    text = texts[(n * per_document + ordinal) % len(texts)]
                    chunks.append(
                        {
                            "id": new_id(),
                            "document_id": document_id,
                            "version": 1,
                            "ordinal": ordinal,
                            "text": text,
                            "tokens": 100,
                            "page_start": 1,
                            "page_end": 1,
                            "char_start": 0,
                            "char_end": len(text),
                            "heading_path": [],
                            "text_hash": text_hash(text),
                            "context": "",
                        }
                    )
                stored.append(
                    {
                        "document_id": document_id,
                        "version": 1,
                        "model_key": key,
                        "vector": vectors[n].astype("<f4").tobytes(),
                        "updated_at": now,
                    }
                )
            session.execute(insert(Document), docs)
            session.execute(insert(Chunk), chunks)
            session.execute(insert(DocumentVector), stored)


def quality_table(rows: list[QualityRow]) -> str:
    """The quality rows as a Markdown table."""
    lines = [
        "| corpus | documents | clusters (auto) | NMI | ARI | NMI (48 asked) | ARI (48 asked) | translation in its "
        "cluster | map time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        pairs = f"{r.pairs:.1%}" if r.pairs is not None else "–"
        lines.append(
            f"| {r.corpus} | {r.documents} | {r.clusters} | {r.nmi:.3f} | {r.ari:.3f} | {r.nmi_48:.3f} | "
            f"{r.ari_48:.3f} | {pairs} | {r.seconds:.2f} s |"
        )
    return "\n".join(lines)


def time_table(rows: list[TimeRow]) -> str:
    """The time rows as a Markdown table."""
    lines = [
        "| documents | chunks | clusters (auto) | first map | computed again | from the cache |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.documents:,} | {r.chunks:,} | {r.clusters} | {r.cold_seconds:.2f} s | {r.warm_seconds:.2f} s | "
            f"{r.cached_seconds * 1000:.0f} ms |"
        )
    return "\n".join(lines)
