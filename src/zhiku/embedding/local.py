"""Local backend: a sentence-transformers model in this process (torch now; ONNX in a later issue).

Qwen3-Embedding models are assembled from the spec rather than trusted to whatever a folder says: tokenizer
padded on the left, last-token pooling, L2 normalisation, and every sequence ending in exactly one
``<|endoftext|>``, as the model card prescribes.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from zhiku.config import Settings
from zhiku.embedding.base import Embedder
from zhiku.embedding.models import ModelSpec, model_location
from zhiku.embedding.padding import plan_batches
from zhiku.embedding.tokenization import counting_copy, ensure_single_eos, special_token_count
from zhiku.errors import ModelLoadError
from zhiku.extras import require_torch

log = logging.getLogger(__name__)

CPU_BATCH_SIZE = 8
"""On CPU, cost follows padded tokens and small batches already use every core, so short length-sorted batches
win: 240 xquad-en passages in batches of 32 texts took 9.3 s at batch_size 32, 6.6 s at 8 (all-MiniLM-L6-v2)."""
GPU_BATCH_SIZE = 32


class SentenceTransformerEmbedder(Embedder):
    """Runs a sentence-transformers model on the local CPU or GPU."""

    def __init__(self, spec: ModelSpec, settings: Settings) -> None:
        super().__init__(spec, settings)
        self._lock = threading.Lock()
        cpu = settings.embedding_device == "cpu"
        self.batch_size = settings.embedding_batch_size or (CPU_BATCH_SIZE if cpu else GPU_BATCH_SIZE)
        self.model = self._load()
        native = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") else None
        native = native or self.model.get_sentence_embedding_dimension()
        if native and native != spec.dimension:
            if spec.dimension:
                raise ModelLoadError(f"model {spec.name} produces {native} dims, its spec says {spec.dimension}")
            from dataclasses import replace

            self.spec = replace(spec, dimension=int(native))
        self.hf_tokenizer = self.model.tokenizer
        self.tokenizer = counting_copy(self.hf_tokenizer.backend_tokenizer)
        self.special_tokens = special_token_count(self.tokenizer)

    def _load(self) -> Any:
        require_torch(f"model {self.spec.name} (run by sentence-transformers)")
        import torch
        from sentence_transformers import SentenceTransformer

        if self.settings.embedding_threads:
            torch.set_num_threads(self.settings.embedding_threads)
        location = model_location(self.spec)
        try:
            if self.spec.pooling == "lasttoken":
                return self._assemble_last_token_model(location)
            model = SentenceTransformer(location, device=self.settings.embedding_device)
        except ModelLoadError:
            raise
        except Exception as exc:
            hint = ""
            if not Path(location).exists():
                hint = (
                    " (not a local folder: with no network, download the weights elsewhere, copy the folder "
                    "here and set ZHIKU_EMBEDDING_MODEL to its path)"
                )
            raise ModelLoadError(f"cannot load model {self.spec.name} from {location}: {exc}{hint}") from exc
        model.max_seq_length = min(model.max_seq_length or self.spec.max_tokens, self.spec.max_tokens)
        return model

    def _assemble_last_token_model(self, location: str) -> Any:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

        transformer = Transformer(
            location,
            processor_kwargs={"padding_side": self.spec.padding_side},
            max_seq_length=self.spec.max_tokens,
        )
        tokenizer = transformer.tokenizer
        tokenizer.padding_side = self.spec.padding_side
        if self.spec.eos_token:
            ensure_single_eos(tokenizer, self.spec.eos_token)
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="lasttoken")
        return SentenceTransformer(modules=[transformer, pooling, Normalize()], device=self.settings.embedding_device)

    def _encode(self, texts: list[str]) -> np.ndarray:
        # sentence-transformers sorts by characters and cuts fixed runs; cut where the token counts jump instead
        lengths = [len(encoding) for encoding in self._encodings(texts)]
        order: list[int] = []
        parts: list[np.ndarray] = []
        with self._lock:  # one forward pass at a time; torch already uses every core
            for rows in plan_batches(lengths, self.batch_size):
                vectors = self.model.encode(
                    [texts[i] for i in rows],
                    batch_size=len(rows),
                    convert_to_numpy=True,
                    normalize_embeddings=False,
                    show_progress_bar=False,
                )
                order.extend(rows)
                parts.append(np.asarray(vectors, dtype=np.float32))
        if not parts:
            return np.zeros((0, self.spec.dimension), dtype=np.float32)
        stacked = np.concatenate(parts)
        out = np.empty_like(stacked)
        out[order] = stacked
        return out
