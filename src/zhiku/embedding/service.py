"""The serving side of embeddings: which models are served, the cache in front, the micro-batcher behind.

Used by the HTTP server (``/v1/embeddings``); everything here is asyncio-friendly and keeps model work and disk
I/O off the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from zhiku.config import Settings, TokenInput, TruncateMode
from zhiku.embedding.base import Embedder, InputType, l2_normalize, truncate_dimension, validate_texts
from zhiku.embedding.batching import BatchKey, BatchStats, MicroBatcher
from zhiku.embedding.cache import CachedEmbedding, CacheStats, EmbeddingCache, cache_key, create_cache
from zhiku.embedding.factory import get_embedder
from zhiku.embedding.models import ModelSpec, registered_model, resolve_model
from zhiku.embedding.openai_tokens import decode_cl100k
from zhiku.errors import InvalidInputError, UnknownModelError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedEmbeddings:
    """Vectors for one request, in input order, with the tokens the model read."""

    vectors: np.ndarray
    prompt_tokens: int
    model: str
    dimension: int
    cache_hits: int
    truncated: int
    """Inputs cut at the model's token limit (``truncate=end``): their end was not read."""


class EmbeddingService:
    """Loads the served models, and embeds requests through the cache and a micro-batcher per model."""

    def __init__(
        self,
        settings: Settings,
        *,
        cache: EmbeddingCache | None = None,
        on_batch: Callable[[str, BatchStats], None] | None = None,
    ) -> None:
        self.settings = settings
        names = settings.serve_models or [settings.embedding_model]
        self.specs: dict[str, ModelSpec] = {}
        self._configured: dict[str, str] = {}  # each served model as written in the settings -> its name
        self._aliases: dict[str, str] = {}  # other names of the served models (theirs, and served_model_name)
        self._public: dict[str, str] = {}  # a served model's name -> the id clients see
        for name in names:
            spec = resolve_model(name)
            self.specs[spec.name] = spec
            self._configured[name] = spec.name
            self._public.setdefault(spec.name, spec.name)
            for alias in spec.aliases:
                self._aliases.setdefault(alias, spec.name)
        if settings.served_model_name:
            first = next(iter(self.specs))
            self._public[first] = settings.served_model_name[0]
            self._aliases.update(dict.fromkeys(settings.served_model_name, first))
        self.cache = cache if cache is not None else create_cache(settings)
        self.cache_stats = CacheStats()
        self.embedders: dict[str, Embedder] = {}
        self.batchers: dict[str, MicroBatcher] = {}
        self._on_batch = on_batch
        self._ready = False

    @property
    def ready(self) -> bool:
        """True once every served model is loaded."""
        return self._ready

    async def start(self) -> None:
        """Load every served model (in a thread) and start its micro-batcher."""
        for name, spec in self.specs.items():
            # the process-wide instance: knowledge-base ingestion and search share the loaded model
            embedder = await asyncio.to_thread(get_embedder, spec.name, self.settings)
            remote = bool(self.settings.remote_urls)
            batcher = MicroBatcher(
                embedder,
                max_inputs=self.settings.batch_max_inputs,
                max_tokens=self.settings.batch_max_tokens,
                max_wait=self.settings.batch_max_wait_ms / 1000,
                max_queue=self.settings.queue_max_inputs,
                # a local model already uses every core per call; remote servers take calls in parallel
                workers=self.settings.remote_max_concurrency if remote else 1,
                on_batch=functools.partial(self._on_batch, name) if self._on_batch else None,
            )
            batcher.start()
            self.embedders[name], self.batchers[name] = embedder, batcher
        self._ready = True

    async def stop(self) -> None:
        """Stop the batchers and close the cache (the shared embedders stay loaded for the process)."""
        self._ready = False
        for batcher in self.batchers.values():
            await batcher.stop()
        if self.cache is not None:
            self.cache.close()

    def resolve(self, model: str) -> ModelSpec:
        """The served model a request names (registry name, alias or source id), or ``UnknownModelError``."""
        if model in self.specs:
            return self.specs[model]
        if model in self._configured:
            return self.specs[self._configured[model]]
        if model in self._aliases:
            return self.specs[self._aliases[model]]
        spec = registered_model(model)  # names and aliases only: a request never makes the server look at the disk
        if spec is None or spec.name not in self.specs:
            served = ", ".join(sorted(self.specs))
            shown = repr(model if len(model) <= 100 else model[:100] + "…")
            raise UnknownModelError(f"model {shown} is not served here; served: {served}", param="model")
        return spec

    def public_name(self, name: str) -> str:
        """The id clients see for the served model ``name`` (``served_model_name`` for the first one, if set)."""
        return self._public.get(name, name)

    def queued_inputs(self) -> int:
        """Inputs waiting for a model, over all served models."""
        return sum(batcher.queued_inputs for batcher in self.batchers.values())

    def upstreams(self) -> dict[str, bool]:
        """Remote servers and whether each is up (empty for local models)."""
        status: dict[str, bool] = {}
        for embedder in self.embedders.values():
            status.update(getattr(embedder, "upstream_status", dict)())
        return status

    async def check_upstreams(self) -> dict[str, bool]:
        """Probe the remote servers now (no-op for local models)."""
        status: dict[str, bool] = {}
        for embedder in self.embedders.values():
            check = getattr(embedder, "check_health", None)
            if check is not None:
                status.update(await asyncio.to_thread(check))
        return status

    def decode_tokens(self, model: str, arrays: Sequence[Sequence[int]], semantics: TokenInput) -> list[str]:
        """Texts for token-id inputs, read as ``semantics`` says (setting ``token_input``): OpenAI's cl100k ids,
        the served model's own ids (as vLLM and TEI read them), or refused."""
        if semantics == "refuse":
            raise InvalidInputError(
                "this server does not accept token arrays (setting token_input=refuse): send the text. LangChain's "
                "OpenAIEmbeddings sends token arrays unless created with check_embedding_ctx_length=False",
                param="input",
            )
        if semantics == "cl100k":
            return decode_cl100k(arrays)
        tokenizer = self.embedders[self.resolve(model).name].tokenizer
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        texts = []
        for index, ids in enumerate(arrays):
            if not ids:
                raise InvalidInputError(f"input[{index}] is an empty token array", param="input")
            bad = next((i for i in ids if not 0 <= i < size), None)
            if bad is not None:
                raise InvalidInputError(
                    f"input[{index}] has token id {bad}, outside the model's vocabulary of {size} (token arrays are "
                    "read as the served model's own ids; see the setting token_input)",
                    param="input",
                )
            texts.append(tokenizer.decode(list(ids), skip_special_tokens=False))
        return texts

    async def embed(
        self,
        model: str,
        inputs: Sequence[str],
        *,
        input_type: InputType = "document",
        instruction: str | None = None,
        truncate: TruncateMode | None = None,
        dimensions: int | None = None,
    ) -> ServedEmbeddings:
        """Embed ``inputs`` with a served model: cached vectors are reused, the rest are micro-batched."""
        spec = self.resolve(model)
        dimension = spec.check_dimension(dimensions)
        if instruction is not None and input_type != "query":
            raise InvalidInputError(
                "instruction applies to queries only: send input_type='query' with it (documents are embedded "
                "without an instruction)",
                param="instruction",
            )
        texts = validate_texts(list(inputs), max_chars=self.settings.max_input_chars)
        mode: TruncateMode = truncate or self.settings.default_truncate
        embedder = self.embedders[spec.name]
        keys: list[str] = []
        if self.cache is not None:
            keys = [cache_key(spec.name, mode, embedder.format_input(t, input_type, instruction)) for t in texts]
            found = await asyncio.to_thread(self.cache.get_many, keys)
        else:
            embedder.format_input("", input_type, instruction)  # validates input_type and instruction
            found = [None] * len(texts)
        missing = [i for i, entry in enumerate(found) if entry is None]
        self.cache_stats.record(len(texts) - len(missing), len(missing))
        vectors = np.zeros((len(texts), spec.dimension), dtype=np.float32)
        tokens = [0] * len(texts)
        truncated = [False] * len(texts)
        for i, entry in enumerate(found):
            if entry is not None:
                vectors[i], tokens[i], truncated[i] = entry.vector, entry.tokens, entry.truncated
        if missing:
            key = BatchKey(input_type, instruction, mode)
            result = await self.batchers[spec.name].embed([texts[i] for i in missing], key)
            fresh = l2_normalize(result.vectors)
            for row, i in enumerate(missing):
                vectors[i], tokens[i], truncated[i] = fresh[row], result.token_counts[row], result.truncated[row]
            if self.cache is not None:
                entries = [(keys[i], CachedEmbedding(vectors[i], tokens[i], truncated[i])) for i in missing]
                await asyncio.to_thread(self.cache.put_many, entries)
        return ServedEmbeddings(
            vectors=truncate_dimension(vectors, dimension),
            prompt_tokens=sum(tokens),
            model=spec.name,
            dimension=dimension,
            cache_hits=len(texts) - len(missing),
            truncated=sum(truncated),
        )
