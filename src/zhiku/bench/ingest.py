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
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import register_in_groups
from zhiku.pipeline.embed import EMBED_BATCH
from zhiku.pipeline.tasks import job_runner
from zhiku.storage.models import Chunk


@dataclass(frozen=True)
class IngestBenchResult:
    """Median figures of an ingestion benchmark under one setup."""

    model: str
    setup: str
    documents: int
    chunks: int
    tokens: int
    ingest_seconds: float
    encode_seconds: float
    rounds: int

    @property
    def ratio(self) -> float:
        """Pipeline chunks/s divided by bare-model chunks/s on the same chunks (1.0 = no overhead)."""
        return self.encode_seconds / self.ingest_seconds


@dataclass(frozen=True)
class IngestSetup:
    """One configuration to measure: a local runtime (``None`` = the default), the documents per group and the
    vector store (``edge``, or ``pgvector`` at ``pgvector_url``)."""

    backend: str | None
    batch_documents: int
    store: str = "edge"
    pgvector_url: str | None = None

    @property
    def label(self) -> str:
        """How the setup is shown in the report."""
        return f"{self.backend or 'default'}, groups of {self.batch_documents}, {self.store}"


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
        # warm-up on texts of many lengths: kernels for new input shapes are built once, before either timing
        sample = sorted(path.read_text(encoding="utf-8") for path in sorted(docs.iterdir())[:EMBED_BATCH])
        embedder.encode_bare([text[: 40 * (1 + index)] for index, text in enumerate(sample)])
        started = time.perf_counter()
        with job_runner(zhiku, poll_interval=0.05) as runner:  # started first, as `zhiku ingest` does
            jobs = [r.job_id for r in register_in_groups(zhiku, kb, sorted(docs.iterdir()))]
            runner.wait_for([j for j in jobs if j])
        ingest_seconds = time.perf_counter() - started
        with zhiku.db.session() as session:
            rows = session.execute(select(Chunk.text, Chunk.tokens)).all()
        # the bare model at its best: the backend's own encode of all chunks, sorted by length, EMBED_BATCH a call
        texts = sorted((embedder.format_input(text, "document") for text, _ in rows), key=len)
        started = time.perf_counter()
        for start in range(0, len(texts), EMBED_BATCH):
            embedder.encode_bare(texts[start : start + EMBED_BATCH])
        encode_seconds = time.perf_counter() - started
        zhiku.vectors.delete_collection(kb.collection)  # a shared store (pgvector) outlives the round's home
        return ingest_seconds, encode_seconds, [tokens for _, tokens in rows], embedder.spec.name
    finally:
        zhiku.close()


def bench_ingest(
    corpora: list[Path],
    settings: Settings,
    *,
    documents: int,
    passages_per_document: int,
    model: str | None,
    setups: list[IngestSetup],
    rounds: int = 3,
) -> tuple[list[IngestBenchResult], float]:
    """Ingest generated documents ``rounds`` times per setup, each next to a bare-model pass over the same chunks.

    Setups take turns within each round, so machine noise hits them alike. Returns the results and the peak
    RSS of the process in MiB.
    """
    import zhiku.documents.parsers  # noqa: F401 - import cost is start-up, not ingestion

    ingest: dict[IngestSetup, list[float]] = {setup: [] for setup in setups}
    encode: dict[IngestSetup, list[float]] = {setup: [] for setup in setups}
    shape: dict[IngestSetup, tuple[list[int], str]] = {}
    with tempfile.TemporaryDirectory(prefix="zhiku-bench-") as scratch:
        root = Path(scratch)
        (root / "docs").mkdir()
        count = write_documents(corpora, root / "docs", documents, passages_per_document)
        for index in range(rounds):
            for number, setup in enumerate(setups):
                update: dict[str, object] = {"ingest_batch_documents": setup.batch_documents}
                if setup.backend is not None:
                    update["embedding_backend"] = setup.backend
                if setup.store != "edge":
                    update |= {"vector_store": setup.store, "pgvector_url": setup.pgvector_url}
                ingest_seconds, encode_seconds, tokens, name = _one_round(
                    root / "docs", root / f"home-{index}-{number}", settings.model_copy(update=update), model
                )
                ingest[setup].append(ingest_seconds)
                encode[setup].append(encode_seconds)
                shape[setup] = (tokens, name)
    results = [
        IngestBenchResult(
            model=shape[setup][1],
            setup=setup.label,
            documents=count,
            chunks=len(shape[setup][0]),
            tokens=sum(shape[setup][0]),
            ingest_seconds=statistics.median(ingest[setup]),
            encode_seconds=statistics.median(encode[setup]),
            rounds=rounds,
        )
        for setup in setups
    ]
    return results, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
