"""The ``zhiku`` app: its own commands (embed, models, config, demo, serve, worker, eval, version), the other
command modules' commands and groups registered on it, and the console-script entry point :func:`main`."""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from zhiku import __version__
from zhiku.bench.report import append_report
from zhiku.cli.bench import bench_app
from zhiku.cli.common import err, out, quiet_libraries
from zhiku.cli.dedup import dedup
from zhiku.cli.ingest import ingest, reindex
from zhiku.cli.jobs import jobs_app
from zhiku.cli.kb import docs_app, kb_app, search_command
from zhiku.cli.keys import keys_app
from zhiku.cli.mcp import mcp_command
from zhiku.cli.sync import sources_app, sync
from zhiku.cli.tags import tags_app
from zhiku.cli.topics import topics_command
from zhiku.cli.users import users_app
from zhiku.cli.watch import watch
from zhiku.client import (
    ServerRecord,
    looks_like_zhiku,
    process_alive,
    read_server_record,
    remove_server_record,
    server_file,
    write_server_record,
)
from zhiku.config import Settings, get_settings, settings_reference_markdown
from zhiku.core import Zhiku
from zhiku.embedding import get_embedder
from zhiku.embedding.models import DEFAULT_MODEL, REGISTRY
from zhiku.errors import InvalidInputError, ZhikuError
from zhiku.eval.harness import evaluate_set
from zhiku.eval.retrieval import evaluate_dense, load_beir
from zhiku.keys import create_api_key, revoke_api_key
from zhiku.search.options import MODES

app = typer.Typer(
    name="zhiku",
    help="zhiku (智库): self-hosted knowledge-base semantic search built around Qwen3-Embedding.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class OutputFormat(StrEnum):
    """Output formats of ``zhiku embed``."""

    jsonl = "jsonl"
    npy = "npy"


class Truncate(StrEnum):
    """Over-length handling."""

    end = "end"
    pool = "pool"
    error = "error"


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
    quiet_libraries()
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
    table = Table(title="embedding models")
    for column in ("name", "backend", "dims", "matryoshka", "max tokens", "source"):
        table.add_column(column, overflow="fold")  # a narrow terminal wraps a name, never cuts it
    for spec in REGISTRY.values():
        name = spec.name + (" (default)" if spec.name == DEFAULT_MODEL else "")
        dims = f"{spec.min_dimension}-{spec.dimension}" if spec.matryoshka else "-"
        table.add_row(name, spec.backend, str(spec.dimension), dims, str(spec.max_tokens), spec.source)
    out.print(table)


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
    out.print(table)


@app.command()
def demo(model: Annotated[str | None, typer.Option("--model", "-m")] = None) -> None:
    """Embed a few Chinese and English sentences offline and show which match across languages."""
    quiet_libraries()
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
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Server processes (each loads the model; on the embedded store a store process of its own owns "
            "the vectors).",
        ),
    ] = 1,
) -> None:
    """Run the HTTP server: OpenAI-compatible /v1/embeddings, /v1/models, /healthz, /readyz, /metrics."""
    # imported here, not at the top: only this command runs a server
    import uvicorn

    settings = get_settings()
    host = host or settings.serve_host
    port = port or settings.serve_port
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and settings.auth == "off":
        err.print(
            f"[bold red]warning:[/] authentication is OFF and zhiku listens on {host}, reachable from other "
            "machines: anyone there can read, change and delete every knowledge base. "
            "Set ZHIKU_AUTH=on."
        )
    if workers > 1 and settings.embedding_threads is None:
        # each process would otherwise run its model on every core: N processes' thread pools then fight over
        # the cores (measured with 2 processes on 2 cores, 4 clients: 13 searches/s instead of 53)
        os.environ["ZHIKU_EMBEDDING_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    err.print(f"zhiku serving on http://{host}:{port} (models load first; /readyz says when ready)")
    # uvicorn ends by raising the signal that stopped it again, with the handler it found: make SIGTERM end this
    # process through the ``finally`` below (as Ctrl-C does), which revokes the CLI key and deletes server.json
    signal.signal(signal.SIGTERM, _exit_on_signal)
    # the CLI of this home must go through this server only when the server owns the vector store (Qdrant Edge);
    # with a shared store (pgvector, Qdrant server) the CLI opens it beside the server, as any other process does
    record = _record_server(settings, host, port) if settings.vector_store == "edge" else None
    try:
        with _vector_store_process(settings, workers):
            uvicorn.run(
                "zhiku.api.app:create_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level=settings.log_level.lower(),
                access_log=False,
                # keep idle client connections longer than uvicorn's 5 s: fewer races where a client reuses a
                # connection the server is just closing (and what load balancers in front expect)
                timeout_keep_alive=75,
                # on SIGTERM, open connections (live event streams never end by themselves) get 3 s, then the jobs
                # stop at their next safe point: the server is gone within 10 s
                timeout_graceful_shutdown=3,
            )
    finally:
        if record is not None:
            _forget_server(settings, record)


@contextlib.contextmanager
def _vector_store_process(settings: Settings, workers: int) -> Iterator[None]:
    """With several server processes on the embedded store, a store process of its own for the block: only one
    process may open the Qdrant Edge shards, and it answers the server processes' store calls."""
    if workers == 1 or settings.vector_store != "edge":
        yield
        return
    from zhiku.storage.vectors.edge_process import store_process

    with store_process() as socket:
        os.environ["ZHIKU_EDGE_STORE_SOCKET"] = str(socket)  # read by the server processes' settings
        try:
            yield
        finally:
            del os.environ["ZHIKU_EDGE_STORE_SOCKET"]


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _local_url(host: str, port: int) -> str:
    """The URL at which a CLI on this machine reaches a server listening on ``host``."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return f"http://{host}:{port}"
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return f"http://[{address}]:{port}" if address.version == 6 else f"http://{address}:{port}"


def _record_server(settings: Settings, host: str, port: int) -> ServerRecord | None:
    """Write ``$ZHIKU_HOME/server.json`` so the CLI of this home goes through this server (with auth on, with an
    admin key of the ``default`` tenant made for it now); ``None`` when another live server has recorded itself."""
    # imported here, not at the top: only this command runs a server
    from zhiku.api.app import bootstrap_admin

    home = settings.ensure_home()
    previous = read_server_record(home)
    # a record with this very process id was left by an earlier server in this container (both were PID 1)
    alive = previous is not None and previous.pid != os.getpid() and process_alive(previous.pid)
    if previous is not None and alive and looks_like_zhiku(previous.pid):
        err.print(
            f"[yellow]warning:[/] another zhiku server (pid {previous.pid}, {previous.url}) has recorded itself in "
            f"{server_file(home)}; the CLI of this home goes through that one"
        )
        return None
    record = ServerRecord(url=_local_url(host, port), pid=os.getpid())
    with Zhiku(settings) as zhiku:
        if previous is not None and previous.key_id:  # left by a server that was killed
            with contextlib.suppress(ZhikuError):
                revoke_api_key(zhiku, previous.key_id)
        if settings.auth == "on":
            bootstrap_admin(zhiku)  # first, so that the first start still prints the admin key and account
            row, secret = create_api_key(zhiku, "default", "admin", f"local CLI key (zhiku serve pid {os.getpid()})")
            record = ServerRecord(url=record.url, pid=record.pid, key=secret, key_id=row.id)
    write_server_record(home, record)
    return record


def _forget_server(settings: Settings, record: ServerRecord) -> None:
    """Undo :func:`_record_server` when the server stops: revoke the CLI key, delete the file."""
    remove_server_record(settings.home, record.pid)
    if record.key_id is None:
        return
    try:
        with Zhiku(settings) as zhiku:
            revoke_api_key(zhiku, record.key_id)
    except Exception as exc:  # noqa: BLE001 - the server has stopped; say what is left and end
        err.print(f"[yellow]warning:[/] could not revoke the local CLI key {record.key_id}: {exc}")


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", min=1, help="Jobs at once (default: ingest_workers).")
    ] = None,
) -> None:
    """Run a Celery worker for background jobs (settings: job_backend=celery, redis_url, a shared database)."""
    # imported here, not at the top: importing Celery takes a while, and only this command needs it
    from zhiku.jobs.celery_app import run_worker
    from zhiku.pipeline.tasks import GROUP_TASKS, TASKS

    settings = get_settings()
    if settings.job_backend != "celery":
        err.print(
            "[yellow]note:[/] job_backend is 'embedded': API servers and the CLI run jobs themselves and "
            "will not send any to this worker (set ZHIKU_JOB_BACKEND=celery everywhere)"
        )
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
    unanswerable: Annotated[
        Path | None,
        typer.Option(
            "--unanswerable",
            help="A BEIR folder whose queries the sets cannot answer (other topics): how well the best hit's score "
            "tells answered from unanswerable questions (answerable AUC).",
        ),
    ] = None,
) -> None:
    """Retrieval quality on BEIR-format sets: the corpus goes through the real ingestion pipeline into a
    temporary knowledge base, then every query runs in each mode (nDCG@10, Recall@1/5/10, MRR@10, latency, and
    how well the 0-1 score separates relevant from irrelevant top-10 hits across queries: score AUC, beside the
    raw score's)."""
    quiet_libraries()
    if model_only:
        _evaluate_model_only(folders, model, dim, limit, as_json)
        return
    modes = mode or list(MODES)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise InvalidInputError(f"unknown mode(s) {', '.join(unknown)}: use dense, lexical or hybrid")
    columns = ("set", "mode", "model", "queries", "nDCG@10", "R@1", "R@5", "R@10", "MRR@10", "p50 ms", "p95 ms",
               "score AUC", "raw AUC", "answerable AUC", "raw answerable AUC")  # fmt: skip
    foreign = load_beir(unanswerable, limit).query_texts if unanswerable else []
    table = Table(title="retrieval quality (through the ingestion pipeline)")
    for column in columns:
        table.add_column(column, justify="right")
    markdown = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for folder in folders:
        evaluated = evaluate_set(
            folder,
            get_settings(),
            modes,  # type: ignore[arg-type]
            model=model,
            dimension=dim,
            limit=limit,
            unanswerable=foreign,
        )
        for scores in evaluated:
            markdown.append(
                f"| {scores.dataset} | {scores.mode} | {scores.model}/{scores.dimension} | {scores.queries} "
                f"| {scores.ndcg_at_10:.3f} | {scores.recall_at_1:.3f} | {scores.recall_at_5:.3f} "
                f"| {scores.recall_at_10:.3f} | {scores.mrr_at_10:.3f} | {scores.latency_p50_ms:.1f} "
                f"| {scores.latency_p95_ms:.1f} | {scores.score_auc:.3f} | {scores.raw_score_auc:.3f} "
                f"| {scores.answerable_auc:.3f} | {scores.raw_answerable_auc:.3f} |"
            )
            if as_json:
                typer.echo(json.dumps(scores.__dict__))
                continue
            table.add_row(
                scores.dataset,
                scores.mode,
                f"{scores.model}/{scores.dimension}",
                str(scores.queries),
                f"{scores.ndcg_at_10:.3f}",
                f"{scores.recall_at_1:.3f}",
                f"{scores.recall_at_5:.3f}",
                f"{scores.recall_at_10:.3f}",
                f"{scores.mrr_at_10:.3f}",
                f"{scores.latency_p50_ms:.1f}",
                f"{scores.latency_p95_ms:.1f}",
                f"{scores.score_auc:.3f}",
                f"{scores.raw_score_auc:.3f}",
                f"{scores.answerable_auc:.3f}",
                f"{scores.raw_answerable_auc:.3f}",
            )
    if not as_json:
        out.print(table)
    if output is not None:
        append_report(output, "retrieval quality", "\n".join(markdown), "latency = whole search incl. query embedding")


def _evaluate_model_only(
    folders: list[Path], model: str | None, dim: int | None, limit: int | None, as_json: bool
) -> None:
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
            scores.name,
            str(scores.queries),
            str(scores.documents),
            f"{scores.ndcg_at_10:.3f}",
            f"{scores.recall_at_10:.3f}",
            f"{scores.mrr_at_10:.3f}",
            f"{scores.passages_per_second:.1f}",
        )
    if not as_json:
        out.print(table)


app.command("reindex")(reindex)
app.add_typer(kb_app, name="kb")
app.add_typer(docs_app, name="docs")
app.add_typer(tags_app, name="tags")
app.add_typer(jobs_app, name="jobs")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.command("ingest")(ingest)
app.command("sync")(sync)
app.add_typer(sources_app, name="sources")
app.command("watch")(watch)
app.command("search")(search_command)
app.command("dedup")(dedup)
app.command("mcp")(mcp_command)
app.add_typer(bench_app, name="bench")
app.command("topics")(topics_command)


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
        err.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)  # one line, however long
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
