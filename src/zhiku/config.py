"""zhiku settings: one class, every option documented, read from ``ZHIKU_*`` env vars and ``zhiku.toml``.

Precedence (highest first): arguments passed in code, environment variables (``ZHIKU_<NAME>``), the TOML file,
the defaults below. The TOML file is ``$ZHIKU_CONFIG`` if set, else ``./zhiku.toml`` if present, else
``$ZHIKU_HOME/zhiku.toml``. ``zhiku config`` prints every option with its current value; docs/configuration.md
is generated from the same descriptions (a test keeps it in sync).
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from zhiku.errors import ConfigError

TruncateMode = Literal["end", "pool", "error"]
TokenInput = Literal["cl100k", "model", "refuse"]
ADMIN_KEY_MIN_CHARS = 32


def _default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "zhiku"


def config_file_path() -> Path | None:
    """Return the TOML settings file that applies now, or None when there is none."""
    explicit = os.environ.get("ZHIKU_CONFIG")
    if explicit:
        return Path(explicit)
    local = Path("zhiku.toml")
    if local.is_file():
        return local
    home = os.environ.get("ZHIKU_HOME")
    candidate = (Path(home) if home else _default_home()) / "zhiku.toml"
    return candidate if candidate.is_file() else None


class Settings(BaseSettings):
    """All of zhiku's options. Field descriptions are the documentation."""

    model_config = SettingsConfigDict(env_prefix="ZHIKU_", extra="forbid", validate_default=True)

    home: Path = Field(
        default_factory=_default_home,
        description="Data directory: model caches, ONNX exports, databases, blobs. Tests use a temp one.",
    )
    embedding_model: str = Field(
        default="use-multilingual-v3",
        description=(
            "Embedding model: a registry name (`zhiku models`), a Hugging Face id, or a local folder. "
            "The default works offline; set `qwen3-embedding-0.6b` (or a local Qwen3-Embedding folder) "
            "for production quality."
        ),
    )
    embedding_device: str = Field(default="cpu", description="Torch device for local models: cpu, cuda, cuda:1, mps.")
    embedding_backend: Literal["auto", "torch", "onnx", "onnx-int8"] = Field(
        default="auto",
        description="Runtime of local sentence-transformers encoder models: `torch`, `onnx` (exported once, "
        "cached under `$ZHIKU_HOME/onnx`), `onnx-int8` (dynamically quantized), or `auto`: `onnx-int8` on CPU for "
        "models whose int8 retrieval quality was measured within 0.5 nDCG@10 point of fp32, else torch.",
    )
    embedding_batch_size: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="Texts per forward pass (local); empty = 8 on CPU (length-sorted small batches waste the least "
        "padding: 1.3x faster than 32 on mixed passages, see BENCHMARKS.md), 32 on GPUs.",
    )
    embedding_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads for local inference; empty = all cores (`zhiku serve --workers N`: the cores "
        "divided among the N processes).",
    )
    default_truncate: TruncateMode = Field(
        default="pool",
        description=(
            "Over-length inputs, when a request does not say: `pool` embeds token windows and averages them "
            "weighted by tokens (all of the text counts; clients such as Open WebUI and LangChain's splitters cut "
            "by characters, and many of their chunks are over a 512-token model's limit); `end` cuts at the "
            "model's limit (counted in the `x-zhiku-truncated-inputs` header and a metric, logged once per "
            "client); `error` refuses the input (400)."
        ),
    )
    token_input: TokenInput = Field(
        default="cl100k",
        description=(
            "How `/v1/embeddings` reads token arrays (`input` as lists of integers): `cl100k` as OpenAI's API does, "
            "ids of OpenAI's cl100k_base vocabulary, decoded to the text they encode (what LangChain's "
            "`OpenAIEmbeddings` sends by default: the same vectors as sending the text); `model` as vLLM and TEI "
            "do, ids of the served model's own tokenizer; `refuse`: a 400 asking for text."
        ),
    )
    max_input_chars: int = Field(
        default=200_000,
        ge=1,
        description="Longest accepted input in characters; longer inputs are refused with a clear error.",
    )
    max_pool_windows: int = Field(
        default=64, ge=1, description="Most token windows `truncate=pool` embeds for one input."
    )
    remote_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Base URLs of OpenAI-compatible embedding servers (vLLM, TEI, Infinity, Ollama), e.g. "
            "`http://gpu1:8000/v1`. When set, embeddings come from them instead of the local model. "
            "Env: a JSON list or comma-separated."
        ),
    )
    remote_model: str | None = Field(
        default=None, description="Model name sent to the remote servers; defaults to the model spec's source id."
    )
    remote_api_key: SecretStr | None = Field(default=None, description="Bearer key for the remote servers.")
    remote_timeout: float = Field(default=60.0, gt=0, description="Seconds before one remote request times out.")
    remote_max_retries: int = Field(
        default=4, ge=0, le=20, description="Retries on 429/5xx/connection errors, with exponential backoff."
    )
    remote_backoff: float = Field(default=0.5, ge=0, description="First retry delay in seconds (doubles each time).")
    remote_max_concurrency: int = Field(
        default=4, ge=1, le=256, description="Most requests in flight to the remote servers at once."
    )
    remote_max_batch: int = Field(
        default=64, ge=1, le=100_000, description="Most inputs per remote request (the server's batch limit)."
    )
    remote_encoding_format: Literal["base64", "float"] = Field(
        default="base64",
        description="Encoding asked of the remote servers: base64 is ~4x smaller on the wire; use float for "
        "servers that do not support it.",
    )
    vector_store: Literal["edge", "qdrant", "pgvector"] = Field(
        default="edge",
        description="`edge`: embedded Qdrant Edge under `$ZHIKU_HOME/vectors` (one process owns it); `qdrant`: a "
        "Qdrant server or cluster at `qdrant_url`; `pgvector`: PostgreSQL with pgvector at `pgvector_url` (by "
        "default the metadata database). `qdrant` and `pgvector` are shared by several API and worker processes; "
        "`zhiku serve --workers N` on `edge` gives the shards to a store process of its own that the N server "
        "processes ask (see `edge_store_socket`).",
    )
    edge_store_socket: Path | None = Field(
        default=None,
        description="Unix socket of the process that owns the Qdrant Edge shards, which this process then asks "
        "instead of opening them: set by `zhiku serve --workers N` (N > 1) for its server processes; leave empty.",
    )
    vector_quantization: Literal["int8", "none"] = Field(
        default="int8",
        description="Dense vectors of new collections (Qdrant Edge or server): `int8` keeps a scalar-quantized copy "
        "in RAM that the HNSW graph is built and walked on, candidates rescored with the float32 vectors (4x less "
        "memory to walk, ~2.6x faster index builds); `none` walks the float32 vectors.",
    )
    vector_search_ef: int = Field(
        default=512,
        ge=0,
        le=4096,
        description="HNSW search beam of dense searches (Qdrant Edge or server; pgvector's `hnsw.ef_search`, at most "
        "1000; at least the candidates asked for). "
        "Larger finds more of the true nearest neighbours in large collections, at some latency: at 1M chunks, "
        "recall@10 0.58 with Qdrant's default, 0.81 at 512 for 1.1 -> 3.0 ms (one core, BENCHMARKS.md). 0 = "
        "Qdrant's default. Collections small enough to be searched exactly are unaffected.",
    )
    qdrant_url: str | None = Field(default=None, description="Qdrant server URL, e.g. `http://qdrant:6333`.")
    pgvector_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of the pgvector store (PostgreSQL >= 13 with pgvector >= 0.5); empty = "
        "`database_url`, so vectors live beside the metadata. The tables are created on first use (the `vector` "
        "extension too, which needs a role allowed to create it).",
    )
    qdrant_api_key: SecretStr | None = Field(default=None, description="Qdrant API key.")
    qdrant_shards: int = Field(default=1, ge=1, le=1024, description="Shards of each new Qdrant collection.")
    qdrant_replicas: int = Field(default=1, ge=1, le=16, description="Replication factor of new Qdrant collections.")
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the metadata database; empty = SQLite (WAL) at `$ZHIKU_HOME/zhiku.db`. "
            "PostgreSQL: `postgresql+psycopg://user:pass@host:5432/zhiku`."
        ),
    )
    max_file_bytes: int = Field(
        default=200 * 1024 * 1024, ge=1, description="Largest document accepted for ingestion, in bytes."
    )
    max_document_chars: int = Field(
        default=10_000_000,
        ge=1_000,
        description="Most characters of text one document may yield (about 5,000 pages); a larger one fails with "
        "a clear reason instead of exhausting memory. Text files over 4 bytes per allowed character are refused "
        "before they are read.",
    )
    max_page_chars: int = Field(
        default=1_000_000,
        ge=1_000,
        description="Most characters of text one page of a paged format (PDF) may yield; a real page holds a few "
        "thousand.",
    )
    parse_memory_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=256 * 1024 * 1024,
        description="Memory budget of parsing: documents are parsed in child processes whose address space is "
        "capped at this many bytes, so a decompression bomb fails its own job instead of the server.",
    )
    parse_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Longest time one document may take to parse before its job fails."
    )
    parse_processes: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Child processes that parse documents (each parses one at a time); more only help with more "
        "cores and ingest workers.",
    )
    ocr_enabled: bool = Field(
        default=True,
        description="Read PDF pages that have no text layer (scans) with OCR (RapidOCR, offline). Pages with a "
        "text layer are never OCR'd. Off: such pages are left out with a warning.",
    )
    ocr_dpi: int = Field(
        default=300, ge=72, le=600, description="Resolution at which scanned pages are rendered for OCR."
    )
    ocr_memory_bytes: int = Field(
        default=3 * 1024 * 1024 * 1024,
        ge=1024 * 1024 * 1024,
        description="Address-space cap of the OCR process (the OCR models need about 1.5 GiB for a letter page at "
        "300 dpi).",
    )
    ocr_page_timeout_seconds: float = Field(
        default=180.0, gt=0, description="Longest time OCR may take on one page (about 10 s on one CPU core)."
    )
    ocr_max_pages: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Most scanned pages of one document read by OCR (a few seconds each); the pages after them are "
        "left out with a warning.",
    )
    auto_tag_min_confidence: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Auto-tagging gives a document its most likely label only at this confidence or above (0-1). "
        "At 0.5, 75% of measured documents got a tag, 70% of them the right one (BENCHMARKS.md, auto-tags); "
        "higher tags fewer documents, more surely.",
    )
    ocr_pages_per_turn: int = Field(
        default=6,
        ge=1,
        le=10_000,
        description="While other jobs wait, a job reading a scan gives them a turn after this many pages (the "
        "pages read so far are kept), so a 200-page scan does not hold the queue.",
    )
    default_chunk_tokens: int = Field(
        default=384, ge=16, le=32768, description="Chunk size in tokens for new knowledge bases."
    )
    default_chunk_overlap: int = Field(
        default=48, ge=0, le=8192, description="Overlap between consecutive chunks, in tokens, for new knowledge bases."
    )
    ingest_workers: int = Field(
        default=2, ge=1, le=64, description="Worker threads of the embedded job runner (parsing overlaps embedding)."
    )
    ingest_batch_documents: int = Field(
        default=32,
        ge=1,
        le=1024,
        description="Most queued documents of one knowledge base a worker ingests together, so that the chunks of "
        "many small documents share full model batches (1 = one document at a time).",
    )
    job_backend: Literal["embedded", "celery"] = Field(
        default="embedded",
        description="Who runs background jobs: `embedded` (threads in `zhiku serve` / the CLI) or `celery` "
        "(`zhiku worker` processes fed through Redis at `redis_url`; the job rows stay the truth).",
    )
    job_max_attempts: int = Field(default=3, ge=1, le=100, description="Attempts before a job is marked failed.")
    job_retry_backoff: float = Field(
        default=2.0, ge=0, description="Seconds before a failed job's first retry (doubles with each attempt)."
    )
    job_heartbeat_seconds: float = Field(
        default=5.0, gt=0, description="How often a running job records that it is alive."
    )
    job_stale_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A running job without a heartbeat for this long is considered interrupted and is resumed.",
    )
    remote_health_interval: float = Field(
        default=10.0,
        gt=0,
        description="Seconds between health checks of the remote servers; a failing server is skipped until it "
        "answers again.",
    )
    serve_host: str = Field(default="127.0.0.1", description="Address `zhiku serve` listens on.")
    serve_port: int = Field(default=8000, ge=1, le=65535, description="Port `zhiku serve` listens on.")
    url: str | None = Field(
        default=None,
        description="A zhiku server's base URL (e.g. `http://127.0.0.1:8000`) for the CLI: the commands that read "
        "or write knowledge bases (`ingest`, `search`, `kb`, `docs`, `jobs`, `reindex`) go through its API. "
        "Unset: the server that `zhiku serve` recorded in `$ZHIKU_HOME/server.json`, if it runs, else none "
        "(the CLI opens the stores itself).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="The API key the CLI sends to the server of `url` (the local server's own CLI key, from "
        "`$ZHIKU_HOME/server.json`, is used when that file names the server).",
    )
    serve_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Models `/v1/embeddings` serves (registry names, ids or folders); empty = `embedding_model`. "
        "Env: a JSON list or comma-separated.",
    )
    served_model_name: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Names the first served model (`embedding_model`, or the first of `serve_models`) answers to, "
        "as vLLM's `--served-model-name`: the first is the id `/v1/models` lists and responses carry, e.g. "
        "`Qwen/Qwen3-Embedding-4B` for a model served from a folder, or the model name a client insists on. The "
        "model's own name and aliases keep working. Env: a JSON list or comma-separated.",
    )
    model_folders: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders from which API callers may name local models (the `model` of a new knowledge base or "
        "a re-index: a model folder under one of these, by absolute path or relative to it); empty = none. API "
        "callers may always name registry models and the server's own `embedding_model` and `serve_models`; "
        "any other name gets 404 `model_not_found`, whether or not it exists. The CLI may name any local folder. "
        "Env: a JSON list or comma-separated.",
    )
    batch_max_inputs: int = Field(
        default=64, ge=1, le=4096, description="Most inputs the server's micro-batcher puts in one model call."
    )
    batch_max_tokens: int = Field(
        default=16384, ge=256, description="Most tokens (estimated) in one micro-batch; long inputs go alone."
    )
    batch_max_wait_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="How long an idle micro-batcher waits for more requests before running a batch (ms).",
    )
    queue_max_inputs: int = Field(
        default=4096,
        ge=1,
        description="Inputs that may wait for the model; beyond this, requests get 429 with Retry-After.",
    )
    max_request_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest `/v1/embeddings` request body, in bytes."
    )
    max_inputs_per_request: int = Field(
        default=2048, ge=1, le=100_000, description="Most inputs in one `/v1/embeddings` request (OpenAI: 2048)."
    )
    embedding_cache: Literal["disk", "redis", "off"] = Field(
        default="disk",
        description="Cache of served embeddings: `disk` (LRU under `$ZHIKU_HOME/cache`), `redis` (needs "
        "`redis_url`) or `off`.",
    )
    query_cache_size: int = Field(
        default=4096,
        ge=0,
        le=1_000_000,
        description="Query vectors kept per process, so a repeated search skips the model (about 2 KiB each at "
        "512 dimensions); 0: off.",
    )
    query_batch_size: int = Field(
        default=32,
        ge=1,
        le=1024,
        description="Most queries of concurrent searches embedded in one model call (1: each alone).",
    )
    cache_max_bytes: int = Field(
        default=1024**3,
        ge=1024 * 1024,
        description="Size bound of the disk embedding cache (least recently used entries are evicted).",
    )
    cache_ttl_seconds: int = Field(
        default=30 * 24 * 3600, ge=1, description="Lifetime of an embedding in the Redis cache."
    )
    redis_url: str | None = Field(default=None, description="Redis URL, e.g. `redis://127.0.0.1:6379/0`.")
    auth: Literal["on", "off"] = Field(
        default="on",
        description="API key authentication. `off` is for development on localhost only (`zhiku serve` warns "
        "when it is off on another address); every request then acts as an admin of the `default` tenant.",
    )
    admin_api_key: SecretStr | None = Field(
        default=None,
        description="A bootstrap admin key of the `default` tenant (at least 32 characters; shorter ones, and the "
        "placeholder of deploy/zhiku.env.example, are refused at start). Without it and with no keys in the "
        "database, `zhiku serve` creates one and prints it once.",
    )
    metrics_auth: bool = Field(
        default=True,
        description="`/metrics` asks for an API key of the `default` (operator's) tenant, any scope, like the "
        "other routes: it describes the whole server (every tenant's traffic, model names, upstream URLs). "
        "`false` leaves it open to anyone who reaches the port (e.g. a scraper on a private network). Moot "
        "with `auth=off`.",
    )
    rate_limit_read: str = Field(
        default="12000/minute",
        description="Per key: reads (lists, gets, search). 200/s: above what one server serves on 2 cores (~100-130 "
        "searches/s with one process, ~170-190 with `--workers 2`: BENCHMARKS.md), so the limit stops abuse, not an "
        "application's normal load.",
    )
    rate_limit_write: str = Field(default="120/minute", description="Per key: uploads and changes.")
    rate_limit_embed: str = Field(
        default="12000/minute",
        description="Per key: `/v1/embeddings` requests (200/s: above one process's one-text requests on 2 cores).",
    )
    rate_limit_chat: str = Field(default="60/minute", description="Per key: RAG chat requests.")
    rate_limit_login: str = Field(
        default="10/minute", description="Login attempts per login name and client address (right or wrong)."
    )
    rate_limit_login_account: str = Field(
        default="100/hour",
        description="Login attempts per login name from all addresses together: bounds guessing spread over many "
        "addresses (while it is exceeded, the account's owner waits too).",
    )
    session_hours: float = Field(
        default=12.0,
        gt=0,
        le=24 * 90,
        description="How long a web UI login lasts; logging out, a password reset or disabling the account ends "
        "it sooner.",
    )
    max_upload_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=1024,
        description="Largest multipart upload request (all files together), refused from Content-Length before "
        "reading; each file is also bound by `max_file_bytes`.",
    )
    max_event_streams_per_key: int = Field(
        default=8,
        ge=1,
        le=10_000,
        description="Most live event streams (`.../events`, Server-Sent Events) one API key keeps open on one "
        "server process; beyond, 429 with Retry-After until one closes. Each open stream polls the job rows "
        "4 times a second.",
    )
    max_upload_files: int = Field(default=100, ge=1, le=10_000, description="Most files in one upload request.")
    tenant_quota_bytes: int | None = Field(
        default=None, ge=0, description="Most bytes of documents one tenant may store; empty = unlimited."
    )
    near_duplicate_threshold: float = Field(
        default=0.85,
        ge=0.5,
        le=1.0,
        description="Cosine from which two documents (or chunks) of one script are near-duplicates (`zhiku dedup`, "
        "the duplicates API, the check at ingestion); edited copies that share their wording count from 0.10 "
        "lower, translations from 0.17 lower. See docs/duplicates.md for how these were measured.",
    )
    document_vector_cache_mb: int = Field(
        default=256,
        ge=0,
        le=1_048_576,
        description="Memory per process for the knowledge bases' document vectors (near-duplicate checks at "
        "ingestion, similar documents, topics, auto-tags), so these do not read every document's vector from the "
        "database each time (about 1.5 KiB a document at 384 dimensions); 0: off.",
    )
    near_duplicate_check: bool = Field(
        default=True,
        description="Compare each newly ingested document with the knowledge base's others and flag near-duplicates "
        "in its job's outcome and its warnings (never refused).",
    )
    reranker: str | None = Field(
        default=None,
        description="Reranker used when a search asks for `rerank` (API/UI): `qwen3-reranker-0.6b`, a local "
        "folder or a sentence-transformers CrossEncoder id. Empty: rerank requests answer 400 (param `rerank`) "
        "saying so.",
    )
    chat_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible chat server for RAG answers (vLLM, Ollama, ...), e.g. "
        "`http://127.0.0.1:11434/v1`. Empty: chat answers 501 saying how to configure it.",
    )
    chat_model: str | None = Field(default=None, description="Chat model name sent to `chat_url`.")
    chat_api_key: SecretStr | None = Field(default=None, description="Bearer key for `chat_url`.")
    chat_timeout: float = Field(default=120.0, gt=0, description="Seconds before a chat request times out.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    source_allow_private: bool = Field(
        default=False,
        description="Let git sources added through the API reach hosts on loopback, private, link-local and other "
        "non-public addresses (off: such URLs are refused, so a write key cannot make the server fetch from its own "
        "networks). The command line (`zhiku ingest URL`, embedded) always may.",
    )
    source_max_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=1024,
        description="Most bytes a git source's fetched repository may hold on disk (the fetch is stopped beyond), "
        "and most bytes of files one sync of a source registers.",
    )
    source_max_files: int = Field(
        default=20_000, ge=1, description="Most files of one git source or folder source; a sync beyond fails."
    )
    source_timeout_seconds: float = Field(
        default=300.0, gt=0, description="Seconds one fetch of a git source may take before it is stopped."
    )
    watch_folders: dict[str, str] = Field(
        default_factory=dict,
        description="Folders `zhiku serve` keeps in sync with knowledge bases while it runs: folder path to "
        'knowledge base name, e.g. `{"/srv/handbook": "handbook"}` (env: JSON; TOML: a `[watch_folders]` '
        "table). Each is synced at start and again on every change (see `zhiku watch`).",
    )
    watch_debounce_seconds: float = Field(
        default=1.5,
        gt=0,
        le=600,
        description="A watched folder is synced once changes have paused this long (a burst of saves is one sync).",
    )

    @field_validator("remote_urls", "serve_models", "served_model_name", "model_folders", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [u.strip() for u in text.split(",") if u.strip()]
        return value

    @field_validator("admin_api_key")
    @classmethod
    def _strong_admin_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if len(secret) < ADMIN_KEY_MIN_CHARS:
            raise ValueError(
                f"must be at least {ADMIN_KEY_MIN_CHARS} characters, got {len(secret)} (make one with "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        if secret.startswith("change-me"):
            raise ValueError("is still the placeholder of deploy/zhiku.env.example; set a random key")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def resolved_database_url(self) -> str:
        """The metadata DB URL, defaulting to SQLite under ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'zhiku.db'}"

    def ensure_home(self) -> Path:
        """Create the data directory if needed, readable by its owner only (0700, also when it existed with a
        wider mode: it holds the database, key hashes and every uploaded document), and return it."""
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = self.home.stat().st_mode & 0o777
        if mode & 0o077:
            try:
                self.home.chmod(0o700)
            except PermissionError:  # another user's folder: say so, it is readable by others
                logging.getLogger(__name__).warning(
                    "ZHIKU_HOME %s has mode %o and cannot be made 0700", self.home, mode
                )
        return self.home


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once; invalid ones are a :class:`~zhiku.errors.ConfigError` naming each
    option, its variable and the problem (the CLI prints it without a traceback)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(settings_problems(exc)) from None


def settings_problems(exc: ValidationError) -> str:
    """One line per invalid option, e.g. ``ZHIKU_ADMIN_API_KEY (admin_api_key): must be at least ...``."""
    lines = ["invalid settings:"]
    for error in exc.errors():
        name = ".".join(str(part) for part in error.get("loc", ())) or "?"
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        lines.append(f"  ZHIKU_{name.upper()} ({name}): {message}")
    return "\n".join(lines)


def settings_reference_markdown() -> str:
    """Render every option as a Markdown table (used for docs/configuration.md and `zhiku config`)."""
    lines = [
        "# Configuration",
        "",
        "Generated from `zhiku.config.Settings` (`zhiku config --markdown`). Every option is an environment",
        "variable `ZHIKU_<NAME>` or a key in `zhiku.toml`",
        "(`$ZHIKU_CONFIG`, else `./zhiku.toml`, else `$ZHIKU_HOME/zhiku.toml`).",
        "",
        "| option | env | default | description |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        if name == "home":
            default = "`$XDG_DATA_HOME/zhiku` or `~/.local/share/zhiku`"
        elif field.default_factory is not None:
            default = f"`{field.default_factory()!r}`"  # type: ignore[call-arg]
        else:
            default = f"`{field.default!r}`"
        desc = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{name}` | `ZHIKU_{name.upper()}` | {default} | {desc} |")
    return "\n".join(lines) + "\n"
