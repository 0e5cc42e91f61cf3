"""Rerankers behind one interface: Qwen3-Reranker and sentence-transformers CrossEncoder models.

A reranker scores (query, passage) pairs jointly; higher means more relevant. Reranking is off by default: it is
only used when a caller builds one with :func:`create_reranker`.

Qwen3-Reranker follows the "Transformers Usage" section of the model card of ``Qwen/Qwen3-Reranker-0.6B``
(https://huggingface.co/Qwen/Qwen3-Reranker-0.6B; the 4B and 8B cards carry the same code), functions
``format_instruction``, ``process_inputs`` and ``compute_logits``:

- ``AutoModelForCausalLM`` (``Qwen3ForCausalLM``, the LM head is the scorer) and ``AutoTokenizer`` with
  ``padding_side="left"``; ``max_length = 8192``.
- Pair text ``"<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {doc}"``; when the instruction is
  None it is ``"Given a web search query, retrieve relevant passages that answer the query"``.
- The pair texts are tokenized alone (``padding=False, truncation="longest_first",
  max_length=max_length - len(prefix_tokens) - len(suffix_tokens)``), then each becomes
  ``prefix_tokens + ids + suffix_tokens`` so that truncation only ever cuts the pair text (the end of the
  document), never the chat template; then ``tokenizer.pad(padding=True)`` pads on the left.
- ``prefix = "<|im_start|>system\\nJudge whether the Document meets the requirements based on the Query and the
  Instruct provided. Note that the answer can only be \\"yes\\" or \\"no\\".<|im_end|>\\n<|im_start|>user\\n"`` and
  ``suffix = "<|im_end|>\\n<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n"``, both encoded with
  ``add_special_tokens=False``.
- Score: the logits at the last position (left padding makes it the last real token) of the tokens
  ``convert_tokens_to_ids("yes")`` / ``("no")`` (9693 / 2152), ``log_softmax`` over ``[no, yes]``, ``exp`` of
  the ``yes`` entry, i.e. P(yes) in [0, 1].

Deliberate differences, none of which changes a score beyond float rounding:

- The pair texts are tokenized with ``add_special_tokens=False``. The released Qwen3-Reranker tokenizer adds no
  special tokens (unlike the Qwen3-Embedding one, it has no ``<|endoftext|>`` post-processor; see
  ggml-org/llama.cpp#14252), so this is what the card's code produces with the released files; it also keeps
  a stray ``<|endoftext|>`` out of the prompt if a folder ships the embedding tokenizer by mistake.
- The forward pass keeps only the last position's logits (``logits_to_keep=1``, ``use_cache=False``): the card
  computes the full ``[batch, length, 151669]`` logits, gigabytes for long inputs.
- Pairs are batched (``batch_size``) in order of length to limit padding; scores come back in input order.
- ``max_length`` is capped at the model's ``max_position_embeddings``; the default 8192 is the card's.
- On CPU the weights are loaded as float32; on other devices in the checkpoint's dtype.

CrossEncoder models keep sentence-transformers' default activation: the one saved in the model's config
(``sentence_transformers.activation_fn``), else ``Sigmoid`` for one-label models, so scores are probabilities
for most rerankers; models that save ``Identity`` (e.g. the ``cross-encoder/ms-marco-*`` family) return raw
logits. Either way higher is more relevant, which is all the interface promises. Models with more than one
output label are refused. CrossEncoders are not instruction-aware: ``instruction`` is accepted and ignored.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from zhiku.errors import InvalidInputError, ModelLoadError, UnknownModelError
from zhiku.extras import require_torch

if TYPE_CHECKING:
    from zhiku.config import Settings

log = logging.getLogger(__name__)

QWEN3_RERANKER_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_RERANKER_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_RERANKER_PAIR = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"
QWEN3_RERANKER_DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

#: Registry names of rerankers -> Hugging Face ids.
RERANKER_REGISTRY: dict[str, str] = {
    "qwen3-reranker-0.6b": "Qwen/Qwen3-Reranker-0.6B",
    "qwen3-reranker-4b": "Qwen/Qwen3-Reranker-4B",
    "qwen3-reranker-8b": "Qwen/Qwen3-Reranker-8B",
}

_OFFLINE_HINT = (
    " (not a local folder: with no network, download the model elsewhere, e.g. "
    "`huggingface-cli download {hf_id} --local-dir <folder>`, copy the folder here and use its path as the "
    "reranker name)"
)


@runtime_checkable
class Reranker(Protocol):
    """Scores passages against a query; higher is more relevant."""

    name: str

    def score(self, query: str, passages: Sequence[str], *, instruction: str | None = None) -> np.ndarray:
        """Relevance of each passage to ``query`` as float32, in the order of ``passages`` (empty -> empty)."""
        ...


def _check_inputs(query: object, passages: object, instruction: object) -> list[str]:
    """Validate the arguments of :meth:`Reranker.score` and return the passages as a list."""
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be a string, not {type(query).__name__}", param="query")
    if isinstance(passages, str | bytes) or not isinstance(passages, Sequence):
        raise InvalidInputError(f"passages must be a list of strings, not {type(passages).__name__}", param="passages")
    for i, passage in enumerate(passages):
        if not isinstance(passage, str):
            raise InvalidInputError(f"passages[{i}] must be a string, not {type(passage).__name__}", param="passages")
    if instruction is not None and not isinstance(instruction, str):
        raise InvalidInputError(
            f"instruction must be a string or null, not {type(instruction).__name__}", param="instruction"
        )
    return list(passages)


def _load_error(what: str, location: str, exc: BaseException, hf_id: str | None = None) -> ModelLoadError:
    hint = "" if Path(location).exists() else _OFFLINE_HINT.format(hf_id=hf_id or location)
    return ModelLoadError(f"cannot load {what} from {location}: {exc}{hint}", param="model")


class Qwen3Reranker:
    """Qwen3-Reranker (0.6B/4B/8B): P("yes") at the last position of the model card's prompt."""

    def __init__(
        self,
        model_path: str,
        *,
        device: str = "cpu",
        batch_size: int = 8,
        max_length: int = 8192,
        name: str | None = None,
    ) -> None:
        """Load the model and tokenizer from ``model_path`` (folder or Hugging Face id) onto ``device``."""
        if batch_size < 1:
            raise ModelLoadError(f"batch_size must be at least 1, got {batch_size}")
        self.name = name or model_path
        self.model_path = model_path
        self.device = device
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self.tokenizer, self.model = self._load(model_path, device)
        self.token_true_id = self._token_id("yes")
        self.token_false_id = self._token_id("no")
        self.prefix_tokens: list[int] = self.tokenizer.encode(QWEN3_RERANKER_PREFIX, add_special_tokens=False)
        self.suffix_tokens: list[int] = self.tokenizer.encode(QWEN3_RERANKER_SUFFIX, add_special_tokens=False)
        limit = getattr(self.model.config, "max_position_embeddings", None)
        self.max_length = min(max_length, int(limit)) if limit else max_length
        if self.max_length <= len(self.prefix_tokens) + len(self.suffix_tokens):
            raise ModelLoadError(
                f"max_length {self.max_length} leaves no room for the query and document "
                f"(the prompt template alone is {len(self.prefix_tokens) + len(self.suffix_tokens)} tokens)"
            )

    @staticmethod
    def _load(model_path: str, device: str) -> tuple[Any, Any]:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        hf_id = model_path if not Path(model_path).exists() else None
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
            dtype: Any = torch.float32 if device == "cpu" else "auto"
            model: Any = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
            model = model.to(device).eval()
        except Exception as exc:
            raise _load_error("Qwen3 reranker", model_path, exc, hf_id) from exc
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:  # the released tokenizer pads with <|endoftext|>
            tokenizer.pad_token = "<|endoftext|>"
        return tokenizer, model

    def _token_id(self, token: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if not isinstance(token_id, int) or token_id == self.tokenizer.unk_token_id:
            raise ModelLoadError(f"the tokenizer of {self.model_path} has no {token!r} token; not a Qwen3 reranker")
        return token_id

    @staticmethod
    def format_pair(query: str, passage: str, instruction: str | None = None) -> str:
        """The model card's ``format_instruction``: the user turn between the prompt prefix and suffix."""
        if instruction is None:
            instruction = QWEN3_RERANKER_DEFAULT_INSTRUCTION
        return QWEN3_RERANKER_PAIR.format(instruction=instruction, query=query, doc=passage)

    @classmethod
    def format_prompt(cls, query: str, passage: str, instruction: str | None = None) -> str:
        """The whole prompt the model sees (before truncation), for display and debugging."""
        return QWEN3_RERANKER_PREFIX + cls.format_pair(query, passage, instruction) + QWEN3_RERANKER_SUFFIX

    def encode_pairs(self, pairs: list[str]) -> list[list[int]]:
        """Token ids of each pair text, truncated at the end, wrapped in the prefix and suffix tokens."""
        budget = self.max_length - len(self.prefix_tokens) - len(self.suffix_tokens)
        encoded = self.tokenizer(
            pairs,
            padding=False,
            truncation="longest_first",
            return_attention_mask=False,
            max_length=budget,
            add_special_tokens=False,
        )
        return [self.prefix_tokens + list(ids) + self.suffix_tokens for ids in encoded["input_ids"]]

    def score(self, query: str, passages: Sequence[str], *, instruction: str | None = None) -> np.ndarray:
        """P("yes") for each passage, float32 in [0, 1], in the order of ``passages``."""
        docs = _check_inputs(query, passages, instruction)
        if not docs:
            return np.zeros(0, dtype=np.float32)
        ids = self.encode_pairs([self.format_pair(query, doc, instruction) for doc in docs])
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        scores = np.zeros(len(ids), dtype=np.float32)
        with self._lock:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                scores[chunk] = self._compute([ids[i] for i in chunk])
        return scores

    def _compute(self, batch: list[list[int]]) -> np.ndarray:
        import torch

        inputs = self.tokenizer.pad({"input_ids": batch}, padding=True, return_tensors="pt")
        with torch.inference_mode():
            out = self.model(
                input_ids=inputs["input_ids"].to(self.model.device),
                attention_mask=inputs["attention_mask"].to(self.model.device),
                logits_to_keep=1,
                use_cache=False,
            )
            last = out.logits[:, -1, :]
            pair = torch.stack([last[:, self.token_false_id], last[:, self.token_true_id]], dim=1).float()
            probs = torch.nn.functional.log_softmax(pair, dim=1)[:, 1].exp()
        return np.asarray(probs.cpu().numpy(), dtype=np.float32)


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder`` with one output label (e.g. bge-reranker, ms-marco MiniLM)."""

    def __init__(
        self, model_name_or_path: str, *, device: str = "cpu", batch_size: int = 32, name: str | None = None
    ) -> None:
        """Load the cross-encoder from a folder or Hugging Face id onto ``device``."""
        from sentence_transformers import CrossEncoder

        if batch_size < 1:
            raise ModelLoadError(f"batch_size must be at least 1, got {batch_size}")
        self.name = name or model_name_or_path
        self.batch_size = batch_size
        self._lock = threading.Lock()
        try:
            self.model = CrossEncoder(model_name_or_path, device=device)
        except Exception as exc:
            raise _load_error("cross-encoder reranker", model_name_or_path, exc) from exc
        if self.model.num_labels != 1:
            raise ModelLoadError(
                f"{model_name_or_path} outputs {self.model.num_labels} labels per pair; a reranker must output one "
                "relevance score",
                param="model",
            )

    def score(self, query: str, passages: Sequence[str], *, instruction: str | None = None) -> np.ndarray:
        """The model's relevance score for each passage (its default activation), float32, in input order.

        ``instruction`` is accepted for interface compatibility and ignored: CrossEncoders are not
        instruction-aware.
        """
        docs = _check_inputs(query, passages, instruction)
        if not docs:
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            scores = self.model.predict(
                [(query, doc) for doc in docs],
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        return np.asarray(scores, dtype=np.float32).reshape(len(docs))


def _folder_config(path: Path) -> dict[str, Any]:
    config_file = path / "config.json"
    if not config_file.is_file():
        return {}
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {config_file}: {exc}", param="model") from exc
    return config if isinstance(config, dict) else {}


def create_reranker(name_or_path: str, settings: Settings) -> Reranker:
    """Build the reranker ``name_or_path`` names, on ``settings.embedding_device`` (and ``embedding_threads``).

    - ``qwen3-reranker-0.6b`` / ``-4b`` / ``-8b`` (or their Hugging Face ids ``Qwen/Qwen3-Reranker-*``):
      :class:`Qwen3Reranker`; offline this needs the weights in the Hugging Face cache, else a clear
      :class:`ModelLoadError` says how to provide them (use a folder path instead).
    - a folder whose ``config.json`` says ``model_type: qwen3`` with a ``Qwen3ForCausalLM`` head:
      :class:`Qwen3Reranker`. A Qwen3 folder without the LM head (a Qwen3-Embedding model) is refused.
    - anything else (folder or Hugging Face id): :class:`CrossEncoderReranker`.
    """
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise UnknownModelError("reranker name must be a non-empty string", param="model")
    require_torch(f"reranker {name_or_path.strip()}")
    if settings.embedding_threads:
        import torch

        torch.set_num_threads(settings.embedding_threads)
    device = settings.embedding_device
    key = name_or_path.strip()
    hf_ids = {hf_id.lower(): hf_id for hf_id in RERANKER_REGISTRY.values()}
    if key.lower() in RERANKER_REGISTRY or key.lower() in hf_ids:
        hf_id = RERANKER_REGISTRY.get(key.lower()) or hf_ids[key.lower()]
        return Qwen3Reranker(hf_id, device=device, name=key)
    path = Path(key).expanduser()
    if path.is_dir():
        config = _folder_config(path)
        architectures = config.get("architectures") or []
        if config.get("model_type") == "qwen3":
            if "Qwen3ForCausalLM" in architectures:
                return Qwen3Reranker(str(path), device=device, name=key)
            if not any("SequenceClassification" in arch for arch in architectures):
                raise ModelLoadError(
                    f"{path} holds a Qwen3 model without a language-model head ({', '.join(architectures) or '?'}); "
                    "a Qwen3 reranker folder must say Qwen3ForCausalLM (is this an embedding model?)",
                    param="model",
                )
    return CrossEncoderReranker(key, device=device, name=key)
