"""End-to-end ingestion throughput next to the bare model's encode throughput on the same chunks.

Each round ingests the same generated documents into a fresh ZHIKU_HOME (so nothing is cached), then times
the bare model on the chunks that round produced, in the pipeline's batch size. Medians over the rounds are
reported, measured side by side in one process so that machine noise hits both alike.
"""

from __future__ import annotations

import json
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.jobs.runner import JobRunner
from zhiku.jobs.tasks import EMBED_BATCH
from zhiku.knowledge import create_knowledge_base, register_file
from zhiku.storage.models import Chunk


@dataclass(frozen=True)
class IngestBenchResult:
    """Median figures of an ingestion benchmark."""

    model: str
    documents: int
    chunks: int
    tokens: int
    ingest_seconds: float
    encode_seconds: float
    peak_rss_mib: float
    rounds: int

    @property
    def ratio(self) -> float:
        """Pipeline chunks/s divided by bare-model chunks/s on the same chunks (1.0 = no overhead)."""
        return self.encode_seconds / self.ingest_seconds


def write_documents(corpora: list[Path], folder: Path, documents: int, passages_per_document: int) -> int:
    """Write ``documents`` Markdown files, each a few corpus passages under a heading; return how many."""
    passages = [
        json.loads(line)
        for corpus in corpora
        for line in (corpus / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
        if line
    ]
    count = 0
    for index in range(documents):
        group = passages[index * passages_per_document : (index + 1) * passages_per_document]
        if not group:
            break
        body = "\n\n".join(p["text"] for p in group)
        (folder / f"doc-{index:05d}.md").write_text(f"# {group[0].get('title') or index}\n\n{body}\n", encoding="utf-8")
        count += 1
    return count


def _one_round(docs: Path, home: Path, settings: Settings, model: str | None) -> tuple[float, float, list[int], str]:
    zhiku = Zhiku(settings.model_copy(update={"home": home, "database_url": None}))
    try:
        kb = create_knowledge_base(zhiku, "bench", model=model)
        embedder = zhiku.embedder_for(kb)
        embedder.embed(["warm-up"])
        started = time.perf_counter()
        with JobRunner(zhiku, poll_interval=0.05) as runner:  # started first, as `zhiku ingest` does
            jobs = [register_file(zhiku, kb, path).job_id for path in sorted(docs.iterdir())]
            runner.wait_for([j for j in jobs if j])
        ingest_seconds = time.perf_counter() - started
        with zhiku.db.session() as session:
            rows = session.execute(select(Chunk.text, Chunk.tokens)).all()
        texts = [text for text, _ in rows]
        started = time.perf_counter()
        for start in range(0, len(texts), EMBED_BATCH):
            embedder.embed(texts[start : start + EMBED_BATCH], dimensions=kb.dimension)
        encode_seconds = time.perf_counter() - started
        return ingest_seconds, encode_seconds, [tokens for _, tokens in rows], kb.embedding_model
    finally:
        zhiku.close()


def bench_ingest(
    corpora: list[Path],
    settings: Settings,
    *,
    documents: int,
    passages_per_document: int,
    model: str | None,
    rounds: int = 3,
) -> IngestBenchResult:
    """Ingest generated documents ``rounds`` times, each next to a bare-model pass over the same chunks."""
    import zhiku.documents.parsers  # noqa: F401 - import cost is start-up, not ingestion

    ingest, encode = [], []
    with tempfile.TemporaryDirectory(prefix="zhiku-bench-") as scratch:
        root = Path(scratch)
        (root / "docs").mkdir()
        count = write_documents(corpora, root / "docs", documents, passages_per_document)
        for index in range(rounds):
            ingest_seconds, encode_seconds, tokens, name = _one_round(
                root / "docs", root / f"home-{index}", settings, model
            )
            ingest.append(ingest_seconds)
            encode.append(encode_seconds)
    return IngestBenchResult(
        model=name,
        documents=count,
        chunks=len(tokens),
        tokens=sum(tokens),
        ingest_seconds=statistics.median(ingest),
        encode_seconds=statistics.median(encode),
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        rounds=rounds,
    )
