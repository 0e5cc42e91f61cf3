"""End-to-end ingestion throughput next to the bare model's encode throughput on the same chunks."""

from __future__ import annotations

import json
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.jobs.runner import JobRunner
from zhiku.knowledge import create_knowledge_base, register_file
from zhiku.storage.models import Chunk, Document


@dataclass(frozen=True)
class IngestBenchResult:
    """Figures of one ingestion benchmark run."""

    model: str
    documents: int
    chunks: int
    tokens: int
    ingest_seconds: float
    encode_seconds: float
    peak_rss_mib: float

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


def bench_ingest(
    corpora: list[Path], settings: Settings, *, documents: int, passages_per_document: int, model: str | None
) -> IngestBenchResult:
    """Ingest generated documents into a fresh home, then time the bare model on the resulting chunks."""
    with tempfile.TemporaryDirectory(prefix="zhiku-bench-") as scratch:
        root = Path(scratch)
        (root / "docs").mkdir()
        count = write_documents(corpora, root / "docs", documents, passages_per_document)
        bench_settings = settings.model_copy(update={"home": root / "home", "database_url": None})
        zhiku = Zhiku(bench_settings)
        try:
            kb = create_knowledge_base(zhiku, "bench", model=model)
            embedder = zhiku.embedder_for(kb)
            embedder.embed(["warm-up"])
            started = time.perf_counter()
            jobs = [register_file(zhiku, kb, path).job_id for path in sorted((root / "docs").iterdir())]
            with JobRunner(zhiku, poll_interval=0.02) as runner:
                runner.wait_for([j for j in jobs if j])
            ingest_seconds = time.perf_counter() - started
            with zhiku.db.session() as session:
                rows = session.execute(
                    select(Chunk.text, Chunk.tokens).join(Document, Chunk.document_id == Document.id)
                ).all()
            texts = [text for text, _ in rows]
            started = time.perf_counter()
            for start in range(0, len(texts), 64):  # the same batches the pipeline uses
                embedder.embed(texts[start : start + 64], dimensions=kb.dimension)
            encode_seconds = time.perf_counter() - started
        finally:
            zhiku.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return IngestBenchResult(
        model=kb.embedding_model,
        documents=count,
        chunks=len(texts),
        tokens=sum(tokens for _, tokens in rows),
        ingest_seconds=ingest_seconds,
        encode_seconds=encode_seconds,
        peak_rss_mib=peak,
    )
