"""End-to-end ingestion throughput next to the bare model's encode throughput on the same chunks.

Each round ingests the same documents into a fresh ZHIKU_HOME (so nothing is cached), then times the bare model
on the chunks that round produced, in the pipeline's batch size. Medians over the rounds are reported, measured
side by side in one process so that machine noise hits both alike.

Documents of three sizes (``shapes``), each its own set, taking turns within a round:

- ``notes``: short notes of one or two corpus passages (alternately);
- ``passages``: ``passages_per_document`` passages each (2 by default);
- ``pdfs``: the PDF files of the given folders (long manuals and varied samples), their pages parsed (OCR off:
  a scanned page would time the OCR engine, not the pipeline; such a file is reported as failed).

``existing`` sizes of knowledge base run side by side too: before each round the knowledge base is given that many
documents that are only rows (a document, its vector: random unit vectors, no chunks, no file), so that what an
ingestion group reads of the knowledge base as a whole (the near-duplicate check's document vectors) is timed
at that size, while the bare pass stays the same.
"""

from __future__ import annotations

import json
import resource
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import register_in_groups
from zhiku.pipeline.embed import EMBED_BATCH, model_key
from zhiku.pipeline.tasks import job_runner
from zhiku.storage.models import Chunk, Document, DocumentStatus, DocumentVector, KnowledgeBase

SHAPES = ("notes", "passages", "pdfs")
_Run = tuple[str, "IngestSetup", int]
"""A shape of documents, a setup and the documents the knowledge base holds before."""


@dataclass(frozen=True)
class IngestBenchResult:
    """Median figures of an ingestion benchmark under one setup, on one shape of documents."""

    model: str
    shape: str
    setup: str
    documents: int
    chunks: int
    tokens: int
    ingest_seconds: float
    encode_seconds: float
    rounds: int
    existing: int = 0

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


def write_documents(corpora: list[Path], folder: Path, documents: int, passages_per_document: int | None) -> int:
    """Write ``documents`` Markdown files, each a few corpus passages under a heading (``None``: one and two
    passages alternately, as short notes); return how many."""
    passages = [
        json.loads(line)
        for corpus in corpora
        for line in (corpus / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
        if line
    ]
    count = start = 0
    for index in range(documents):
        size = passages_per_document or 1 + index % 2
        group = passages[start : start + size]
        start += size
        if not group:
            break
        body = "\n\n".join(p["text"] for p in group)
        (folder / f"doc-{index:05d}.md").write_text(f"# {group[0].get('title') or index}\n\n{body}\n", encoding="utf-8")
        count += 1
    return count


def copy_pdfs(folders: list[Path], folder: Path) -> int:
    """Copy every PDF under ``folders`` (recursively) into ``folder``; return how many."""
    count = 0
    for source in folders:
        for path in sorted(source.rglob("*.pdf")):
            (folder / f"{count:04d}-{path.name}").write_bytes(path.read_bytes())
            count += 1
    return count


def shape_label(shape: str, passages_per_document: int, existing: int = 0) -> str:
    """How a shape of documents is shown in the report (and the size of the knowledge base they go into)."""
    label = {"notes": "notes (1-2 passages)", "passages": f"{passages_per_document} passages", "pdfs": "PDFs"}[shape]
    return f"{label} into {existing:,}" if existing else label


def add_existing_documents(zhiku: Zhiku, kb: KnowledgeBase, count: int, seed: int = 0) -> None:
    """Give ``kb`` ``count`` ready documents that are only rows: a document row and a random unit document vector
    each (no chunks, no file, nothing in the vector store)."""
    rng = np.random.default_rng(seed)
    key = model_key(kb)
    for start in range(0, count, 5000):
        documents, vectors = [], []
        for number in range(start, min(count, start + 5000)):
            document_id = uuid.uuid4().hex
            documents.append(
                {"id": document_id, "kb_id": kb.id, "source": f"existing-{number}", "filename": f"existing-{number}.md",
                 "content_hash": uuid.uuid4().hex, "size_bytes": 0, "status": DocumentStatus.ready, "version": 1}
            )  # fmt: skip
            vector = rng.standard_normal(kb.dimension).astype("<f4")
            vectors.append(
                {"document_id": document_id, "version": 1, "model_key": key,
                 "vector": (vector / np.linalg.norm(vector)).tobytes()}
            )  # fmt: skip
        with zhiku.db.session() as session:
            session.execute(insert(Document), documents)
            session.execute(insert(DocumentVector), vectors)


def _one_round(
    docs: Path, home: Path, settings: Settings, model: str | None, existing: int = 0
) -> tuple[float, float, list[int], str]:
    zhiku = Zhiku(settings.model_copy(update={"home": home, "database_url": None, "ocr_enabled": False}))
    try:
        kb = create_knowledge_base(zhiku, "bench", model=model)
        add_existing_documents(zhiku, kb, existing)
        embedder = zhiku.embedder_for(kb)
        # warm-up on texts of many lengths: kernels for new input shapes are built once, before either timing
        warm_text = "A warm-up passage, in English and 中文, of many lengths. " * 40
        embedder.encode_bare([warm_text[: 40 * (1 + index)] for index in range(EMBED_BATCH)])
        started = time.perf_counter()
        with job_runner(zhiku, poll_interval=0.05) as runner:  # started first, as `zhiku ingest` does
            jobs = [r.job_id for r in register_in_groups(zhiku, kb, sorted(docs.iterdir()))]
            runner.wait_for([j for j in jobs if j])
        ingest_seconds = time.perf_counter() - started
        with zhiku.db.session() as session:
            rows = session.execute(select(Chunk.text, Chunk.tokens)).all()  # the new documents' only
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
    shapes: tuple[str, ...] = ("passages",),
    pdf_folders: list[Path] | None = None,
    existing: tuple[int, ...] = (0,),
) -> tuple[list[IngestBenchResult], float]:
    """Ingest each shape of documents ``rounds`` times per setup and size of knowledge base (``existing``
    documents before), each next to a bare-model pass over the same chunks.

    Shapes, sizes and setups take turns within each round, so machine noise hits them alike. Returns the results
    and the peak RSS of the process in MiB.
    """
    import zhiku.documents.parsers  # noqa: F401 - import cost is start-up, not ingestion

    runs: list[_Run] = [(shape, setup, size) for shape in shapes for size in existing for setup in setups]
    ingest: dict[_Run, list[float]] = {run: [] for run in runs}
    encode: dict[_Run, list[float]] = {run: [] for run in runs}
    made: dict[_Run, tuple[list[int], str]] = {}
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="zhiku-bench-") as scratch:
        root = Path(scratch)
        for shape in shapes:
            (root / shape).mkdir()
            if shape == "pdfs":
                counts[shape] = copy_pdfs(pdf_folders or [], root / shape)
            else:
                per_document = passages_per_document if shape == "passages" else None
                counts[shape] = write_documents(corpora, root / shape, documents, per_document)
        for index in range(rounds):
            for number, (shape, setup, size) in enumerate(runs):
                update: dict[str, object] = {"ingest_batch_documents": setup.batch_documents}
                if setup.backend is not None:
                    update["embedding_backend"] = setup.backend
                if setup.store != "edge":
                    update |= {"vector_store": setup.store, "pgvector_url": setup.pgvector_url}
                ingest_seconds, encode_seconds, tokens, name = _one_round(
                    root / shape, root / f"home-{index}-{number}", settings.model_copy(update=update), model, size
                )
                ingest[(shape, setup, size)].append(ingest_seconds)
                encode[(shape, setup, size)].append(encode_seconds)
                made[(shape, setup, size)] = (tokens, name)
    results = [
        IngestBenchResult(
            model=made[run][1],
            shape=shape_label(run[0], passages_per_document, run[2]),
            setup=run[1].label,
            documents=counts[run[0]],
            chunks=len(made[run][0]),
            tokens=sum(made[run][0]),
            ingest_seconds=statistics.median(ingest[run]),
            encode_seconds=statistics.median(encode[run]),
            rounds=rounds,
            existing=run[2],
        )
        for run in runs
    ]
    return results, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
