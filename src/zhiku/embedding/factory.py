"""Pick and build the embedder the settings ask for."""

from __future__ import annotations

import threading

from zhiku.config import Settings, get_settings
from zhiku.embedding.base import Embedder
from zhiku.embedding.models import ModelSpec, resolve_model

_cache: dict[tuple[str, str, tuple[str, ...], str], Embedder] = {}
_cache_lock = threading.Lock()


def create_embedder(spec: ModelSpec, settings: Settings) -> Embedder:
    """Build a new embedder for ``spec``: remote when ``remote_urls`` is set, else the spec's local backend."""
    if settings.remote_urls:
        from zhiku.embedding.remote import RemoteEmbedder

        return RemoteEmbedder(spec, settings)
    if spec.backend == "usem3":
        from zhiku.embedding.usem3 import UseEmbedder

        return UseEmbedder(spec, settings)
    if spec.backend == "openai":
        from zhiku.errors import ConfigError

        raise ConfigError(f"model {spec.name} is served remotely: set ZHIKU_REMOTE_URLS")
    backend = resolve_backend(spec, settings)
    if backend != "torch":
        from zhiku.embedding.onnx import OnnxEmbedder

        return OnnxEmbedder(spec, settings, quantized=backend == "onnx-int8")
    from zhiku.embedding.local import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(spec, settings)


def resolve_backend(spec: ModelSpec, settings: Settings) -> str:
    """``torch``, ``onnx`` or ``onnx-int8`` for a local sentence-transformers model (see ``embedding_backend``).

    ``auto`` on CPU: int8 ONNX for encoder models whose int8 retrieval quality was measured within 0.5 nDCG@10
    point of fp32 (``ModelSpec.int8_verified``); torch otherwise (fp32 ONNX measured no faster than torch here).
    """
    if settings.embedding_backend != "auto":
        return settings.embedding_backend
    from zhiku.embedding.onnx import onnx_supported

    if settings.embedding_device != "cpu" or not spec.int8_verified or not onnx_supported(spec):
        return "torch"
    return "onnx-int8"


def get_embedder(model: str | None = None, settings: Settings | None = None) -> Embedder:
    """The shared embedder for ``model`` (default: the configured one), loaded once per process."""
    settings = settings or get_settings()
    spec = resolve_model(model or settings.embedding_model)
    key = (spec.name, settings.embedding_device, tuple(settings.remote_urls), settings.embedding_backend)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = create_embedder(spec, settings)
        return _cache[key]
