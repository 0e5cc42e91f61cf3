"""The embedding engine shared by every backend.

:class:`Embedder` owns everything that must behave the same whatever runs the model: input validation,
query instructions, over-length handling (``end``/``pool``/``error``), Matryoshka truncation and
re-normalisation, and token usage. Backends only turn a list of texts that fit the model into vectors and
say where each text's tokens lie.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from tokenizers import Encoding, Tokenizer

from zhiku.config import Settings, TruncateMode
from zhiku.embedding.instructions import format_query, resolve_instruction
from zhiku.embedding.models import ModelSpec
from zhiku.errors import InputTooLongError, InvalidInputError

InputType = Literal["query", "document"]
Span = tuple[int, int]


@dataclass(frozen=True)
class EmbeddingResult:
    """Vectors for a list of inputs, in input order, with what it cost."""

    vectors: np.ndarray
    """float32 array of shape (n, dimension), each row L2-normalised."""
    token_counts: list[int]
    """Tokens the model read for each input (after truncation, summed over windows when pooling)."""
    truncated: list[bool]
    """Whether each input was cut at the model's limit."""
    windows: list[int]
    """How many token windows each input was embedded as (1 unless pooled)."""
    model: str
    dimension: int

    @property
    def prompt_tokens(self) -> int:
        """Total tokens read, as reported in OpenAI-style usage."""
        return sum(self.token_counts)

    @property
    def truncated_inputs(self) -> int:
        """Number of inputs cut at the model's limit."""
        return sum(self.truncated)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation; all-zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32, copy=False)


def truncate_dimension(vectors: np.ndarray, dimension: int) -> np.ndarray:
    """Matryoshka: keep the first ``dimension`` components, then re-normalise."""
    if vectors.shape[1] == dimension:
        return l2_normalize(vectors)
    return l2_normalize(np.ascontiguousarray(vectors[:, :dimension]))


def validate_texts(inputs: object, *, max_chars: int, param: str = "input") -> list[str]:
    """Check that ``inputs`` is a string or a non-empty list of non-empty strings and return the list."""
    if isinstance(inputs, str):
        texts = [inputs]
    elif isinstance(inputs, Sequence) and not isinstance(inputs, bytes | bytearray):
        texts = list(inputs)
        if not texts:
            raise InvalidInputError(f"{param} must not be an empty list", param=param)
    else:
        raise InvalidInputError(
            f"{param} must be a string or a list of strings, got {type(inputs).__name__}", param=param
        )
    for i, text in enumerate(texts):
        where = f"{param}[{i}]" if not isinstance(inputs, str) else param
        if not isinstance(text, str):
            raise InvalidInputError(f"{where} must be a string, got {type(text).__name__}", param=param)
        if not text.strip():
            raise InvalidInputError(f"{where} is empty or only whitespace", param=param)
        if "\x00" in text:
            raise InvalidInputError(f"{where} contains a NUL byte at position {text.index(chr(0))}", param=param)
        if len(text) > max_chars:
            raise InputTooLongError(
                f"{where} has {len(text):,} characters; the limit is {max_chars:,} (setting max_input_chars)",
                param=param,
            )
    return texts


class Embedder(ABC):
    """Embeds texts with one model.

    Subclasses implement :meth:`_encode` and set :attr:`tokenizer` (a private copy of the model's Hugging Face
    ``tokenizers.Tokenizer``, without truncation or padding, used for counting, windows and chunking) and
    :attr:`special_tokens`.
    """

    #: Tokens the backend adds around every sequence (e.g. 1 for Qwen3's ``<|endoftext|>``).
    special_tokens: int = 0
    tokenizer: Tokenizer

    def __init__(self, spec: ModelSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings

    # -- backend hooks -------------------------------------------------------------------------------------
    @abstractmethod
    def _encode(self, texts: list[str]) -> np.ndarray:
        """Embed texts that fit the model's limit; returns (n, native dimension) float32."""

    def _encodings(self, texts: list[str]) -> list[Encoding]:
        """Each text's content tokens (no special tokens); ``len()`` counts them, ``.offsets`` gives their
        character spans (built only when a text must be cut, as building them costs more than tokenizing)."""
        return self.tokenizer.encode_batch(texts, add_special_tokens=False)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (connections, threads). The default has none."""

    # -- public API ------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The model's registry name."""
        return self.spec.name

    def encode_bare(self, texts: list[str]) -> np.ndarray:
        """The backend's model call alone on ``texts`` as given (no prompt, no token checks, no pooling of
        windows): what benchmarks compare zhiku's pipelines against."""
        return self._encode(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes as a document, special tokens included, without truncation."""
        return [len(encoding) + self.special_tokens for encoding in self._encodings(list(texts))]

    def format_input(self, text: str, input_type: InputType, instruction: str | None = None) -> str:
        """The exact string the model sees for ``text`` (query template or document prompt applied)."""
        if input_type == "query":
            if self.spec.query_template is not None:
                task = resolve_instruction(instruction or self.spec.default_instruction)
                return format_query(self.spec.query_template, task, text)
            if instruction is not None:
                raise InvalidInputError(f"model {self.spec.name} does not take instructions", param="instruction")
            return self.spec.query_prompt + text
        if input_type == "document":
            return self.spec.document_prompt + text
        raise InvalidInputError(f"input_type must be 'query' or 'document', got {input_type!r}", param="input_type")

    def embed(
        self,
        inputs: str | Sequence[str],
        *,
        input_type: InputType = "document",
        instruction: str | None = None,
        dimensions: int | None = None,
        truncate: TruncateMode | None = None,
        token_counts: Sequence[int] | None = None,
    ) -> EmbeddingResult:
        """Embed ``inputs`` as queries or documents.

        ``instruction`` is a preset name or a custom task (queries of instruction-aware models only);
        ``dimensions`` a Matryoshka size; ``truncate`` how to treat inputs over the model's token limit.
        ``token_counts``, when the caller already knows them (chunks are counted with :attr:`tokenizer` when they
        are made), are the inputs' content tokens: inputs within the limit are then not tokenized again here.
        """
        texts = validate_texts(inputs, max_chars=self.settings.max_input_chars)
        dimension = self.spec.check_dimension(dimensions)
        mode = truncate or self.settings.default_truncate
        if mode not in get_args(TruncateMode):
            raise InvalidInputError(f"truncate must be one of end, pool, error; got {mode!r}", param="truncate")
        overhead = self._overhead_tokens(input_type, instruction)
        budget = self.spec.max_tokens - overhead
        if budget < 1:
            raise InvalidInputError(
                f"the instruction alone takes {overhead} tokens, over the model's {self.spec.max_tokens}",
                param="instruction",
            )

        pieces: list[str] = []
        owners: list[int] = []
        weights: list[int] = []
        truncated = [False] * len(texts)
        if token_counts is not None and len(token_counts) != len(texts):
            raise InvalidInputError(f"{len(token_counts)} token counts for {len(texts)} inputs", param="token_counts")
        for index, (text, encoding) in enumerate(
            zip(texts, self._known_or_encoded(texts, token_counts, budget), strict=True)
        ):
            if isinstance(encoding, int):  # known to fit: one window
                pieces.append(self.format_input(text, input_type, instruction))
                owners.append(index)
                weights.append(encoding)
                continue
            windows = self._windows(index, text, encoding, budget, mode)
            truncated[index] = mode == "end" and len(encoding) > budget
            for window_text, window_tokens in windows:
                pieces.append(self.format_input(window_text, input_type, instruction))
                owners.append(index)
                weights.append(window_tokens)

        raw = np.asarray(self._encode(pieces), dtype=np.float32)
        if raw.ndim != 2 or raw.shape[0] != len(pieces):
            raise RuntimeError(f"backend returned shape {raw.shape} for {len(pieces)} inputs")
        vectors = self._pool(raw, owners, weights, len(texts))
        token_counts = [0] * len(texts)
        window_counts = [0] * len(texts)
        for owner, tokens in zip(owners, self._piece_tokens(pieces, weights, input_type), strict=True):
            token_counts[owner] += tokens
            window_counts[owner] += 1
        return EmbeddingResult(
            vectors=truncate_dimension(vectors, dimension),
            token_counts=token_counts,
            truncated=truncated,
            windows=window_counts,
            model=self.spec.name,
            dimension=dimension,
        )

    # -- internals -----------------------------------------------------------------------------------------
    def _known_or_encoded(
        self, texts: list[str], token_counts: Sequence[int] | None, budget: int
    ) -> list[int | Encoding]:
        """Each text's known token count when it fits ``budget``, else its encoding (tokenized here)."""
        if token_counts is None:
            return list(self._encodings(texts))
        unknown = [i for i, count in enumerate(token_counts) if not 0 < count <= budget]
        encoded = dict(zip(unknown, self._encodings([texts[i] for i in unknown]), strict=True))
        return [encoded.get(i, count) for i, count in enumerate(token_counts)]

    def _overhead_tokens(self, input_type: InputType, instruction: str | None) -> int:
        """Tokens added around the text: the query template or document prompt, plus special tokens."""
        wrapper = self.format_input("", input_type, instruction)
        extra = len(self._encodings([wrapper])[0]) if wrapper.strip() else 0
        return extra + self.special_tokens

    def _windows(self, index: int, text: str, encoding: Encoding, budget: int, mode: str) -> list[tuple[str, int]]:
        """Split one text into the pieces to embed, each with its token count."""
        if len(encoding) <= budget:
            return [(text, len(encoding))]
        spans: list[Span] = encoding.offsets
        total = len(spans) + self.spec.max_tokens - budget
        if mode == "error":
            raise InputTooLongError(
                f"input[{index}] has {total:,} tokens; model {self.spec.name} reads at most "
                f"{self.spec.max_tokens:,} (use truncate='end' or 'pool')",
                param="input",
            )
        if mode == "end":
            return [(text[: spans[budget - 1][1]], budget)]
        count = math.ceil(len(spans) / budget)
        if count > self.settings.max_pool_windows:
            raise InputTooLongError(
                f"input[{index}] has {total:,} tokens: {count} windows of {budget} tokens, over the limit of "
                f"{self.settings.max_pool_windows} (setting max_pool_windows)",
                param="input",
            )
        windows = []
        for start in range(0, len(spans), budget):
            chunk = spans[start : start + budget]
            windows.append((text[chunk[0][0] : chunk[-1][1]], len(chunk)))
        return windows

    def _piece_tokens(self, pieces: list[str], content_tokens: list[int], input_type: InputType) -> list[int]:
        """Exact tokens the model reads per piece: wrapped pieces are re-counted, since BPE merges across the
        template boundary; capped at the model's limit, where the backend truncates."""
        if input_type == "document" and not self.spec.document_prompt:
            counts = [tokens + self.special_tokens for tokens in content_tokens]
        else:
            counts = [len(encoding) + self.special_tokens for encoding in self._encodings(pieces)]
        return [min(count, self.spec.max_tokens) for count in counts]

    @staticmethod
    def _pool(raw: np.ndarray, owners: list[int], weights: list[int], n: int) -> np.ndarray:
        """Token-weighted mean of each input's normalised window vectors (one window: the vector itself)."""
        if len(owners) == n:
            return raw
        normalized = l2_normalize(raw)
        out = np.zeros((n, raw.shape[1]), dtype=np.float32)
        np.add.at(out, np.asarray(owners), normalized * np.asarray(weights, dtype=np.float32)[:, None])
        return out
