"""Embedding engine: model registry, backends (local, USE, remote) and Qwen3 semantics."""

from zhiku.embedding.base import Embedder, EmbeddingResult
from zhiku.embedding.factory import create_embedder, get_embedder
from zhiku.embedding.models import REGISTRY, ModelSpec, resolve_model

__all__ = ["REGISTRY", "Embedder", "EmbeddingResult", "ModelSpec", "create_embedder", "get_embedder", "resolve_model"]
