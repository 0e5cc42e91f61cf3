"""Qwen3-Embedding semantics, checked against a transcription of the model card's reference code.

The real weights cannot be downloaded here, so the model is a tiny random-weight Qwen3 with the real Qwen3
tokenizer (DESIGN.md §4): every step that depends on the architecture, the tokenizer, padding, pooling,
instructions and Matryoshka truncation is exercised exactly as with Qwen3-Embedding-0.6B.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the model card's spelling
from transformers import AutoModel, AutoTokenizer

from zhiku.config import Settings
from zhiku.embedding import create_embedder, resolve_model
from zhiku.embedding.base import Embedder
from zhiku.embedding.tokenization import ensure_single_eos
from zhiku.errors import DimensionError, InputTooLongError

TASK = "Given a web search query, retrieve relevant passages that answer the query"


# --- a transcription of the Qwen3-Embedding model card's transformers example ------------------------------
def last_token_pool(last_hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    left_padding = attention_mask[:, -1].sum() == attention_mask.shape[0]
    if left_padding:
        return last_hidden_states[:, -1]
    sequence_lengths = attention_mask.sum(dim=1) - 1
    batch_size = last_hidden_states.shape[0]
    return last_hidden_states[torch.arange(batch_size, device=last_hidden_states.device), sequence_lengths]


def get_detailed_instruct(task_description: str, query: str) -> str:
    return f"Instruct: {task_description}\nQuery:{query}"


def reference_embeddings(folder: Path, input_texts: list[str], max_length: int = 8192) -> np.ndarray:
    tokenizer = AutoTokenizer.from_pretrained(str(folder), padding_side="left")
    model = AutoModel.from_pretrained(str(folder)).eval()
    batch_dict = tokenizer(input_texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**batch_dict)
    embeddings = last_token_pool(outputs.last_hidden_state, batch_dict["attention_mask"])
    return F.normalize(embeddings, p=2, dim=1).numpy()


# -------------------------------------------------------------------------------------------------------------
QUERIES = ["What is the capital of China?", "Explain gravity", "量子计算机是怎样工作的？"]
DOCUMENTS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other. It gives weight to physical objects and "
    "is responsible for the movement of planets around the sun.",
    "量子计算机利用量子叠加和纠缠来进行计算，可以在某些问题上远远超过经典计算机。",
    "短",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def embedder(tiny_qwen3: Path, tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    settings = Settings(home=tmp_path_factory.mktemp("home"), embedding_batch_size=3)
    return create_embedder(resolve_model(str(tiny_qwen3)), settings)


def test_tokenizer_matches_the_released_one(qwen3_tokenizer_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir), padding_side="left")
    batch = tokenizer(["test", "test again"], padding=True)
    assert batch["input_ids"] == [[151643, 1944, 151643], [1944, 1549, 151643]]
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.eos_token_id == 151645
    assert tokenizer.pad_token_id == 151643


def test_folder_is_recognised_as_qwen3(tiny_qwen3: Path) -> None:
    spec = resolve_model(str(tiny_qwen3))
    assert spec.pooling == "lasttoken"
    assert spec.padding_side == "left"
    assert spec.dimension == 64
    assert spec.min_dimension == 32
    assert spec.max_tokens == 512
    assert spec.query_template == "Instruct: {instruction}\nQuery:{text}"


def test_queries_with_instruction_match_reference(embedder: Embedder, tiny_qwen3: Path) -> None:
    ours = embedder.embed(QUERIES, input_type="query", instruction=TASK).vectors
    theirs = reference_embeddings(tiny_qwen3, [get_detailed_instruct(TASK, q) for q in QUERIES])
    assert cosines(ours, theirs).min() >= 0.99999


def test_default_instruction_is_the_model_card_task(embedder: Embedder) -> None:
    assert embedder.format_input("hi", "query") == f"Instruct: {TASK}\nQuery:hi"
    default = embedder.embed(QUERIES, input_type="query").vectors
    explicit = embedder.embed(QUERIES, input_type="query", instruction="retrieval").vectors
    assert cosines(default, explicit).min() >= 0.999999


def test_custom_instruction_changes_query_not_documents(embedder: Embedder) -> None:
    a = embedder.embed(QUERIES, input_type="query", instruction="Retrieve code that implements the request").vectors
    b = embedder.embed(QUERIES, input_type="query").vectors
    assert cosines(a, b).max() < 0.9999
    assert embedder.format_input("doc", "document") == "doc"


def test_documents_and_mixed_length_batch_match_reference(embedder: Embedder, tiny_qwen3: Path) -> None:
    ours = embedder.embed(DOCUMENTS, input_type="document").vectors
    theirs = reference_embeddings(tiny_qwen3, DOCUMENTS)
    assert cosines(ours, theirs).min() >= 0.99999
    # each text alone (no padding at all) gives the same vector as inside the padded batch
    alone = np.concatenate([embedder.embed([d]).vectors for d in DOCUMENTS])
    assert cosines(ours, alone).min() >= 0.99999


@pytest.mark.parametrize("dim", [32, 128, 64])
def test_matryoshka_dimensions(embedder: Embedder, tiny_qwen3: Path, dim: int) -> None:
    native = embedder.spec.dimension
    effective = min(dim, native)
    if dim > native:
        with pytest.raises(DimensionError, match="between 32 and 64"):
            embedder.embed(DOCUMENTS, dimensions=dim)
        return
    result = embedder.embed(DOCUMENTS, dimensions=effective)
    theirs = reference_embeddings(tiny_qwen3, DOCUMENTS)[:, :effective]
    theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
    assert result.vectors.shape == (len(DOCUMENTS), effective)
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    assert cosines(result.vectors, theirs).min() >= 0.99999


@pytest.mark.parametrize("dim", [0, 31, 65, -1])
def test_dimension_out_of_range(embedder: Embedder, dim: int) -> None:
    with pytest.raises(DimensionError, match="between 32 and 64"):
        embedder.embed("x", dimensions=dim)


def test_eos_appended_exactly_once(embedder: Embedder, tiny_qwen3: Path) -> None:
    tokenizer = embedder.hf_tokenizer  # type: ignore[attr-defined]
    ids = tokenizer(["hello", "你好"])["input_ids"]
    assert all(row[-1] == 151643 and row[-2] != 151643 for row in ids)
    assert embedder.special_tokens == 1


def test_tokenizer_without_post_processor_gets_eos_added(qwen3_tokenizer_dir: Path) -> None:
    from tokenizers import processors

    tokenizer = AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir))
    tokenizer.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    assert tokenizer("test")["input_ids"] == [1944]
    ensure_single_eos(tokenizer, "<|endoftext|>")
    assert tokenizer("test")["input_ids"] == [1944, 151643]
    ensure_single_eos(tokenizer, "<|endoftext|>")  # idempotent: never a second one
    assert tokenizer("test")["input_ids"] == [1944, 151643]


def test_token_usage_counts_instruction_and_eos(embedder: Embedder) -> None:
    tokenizer = embedder.hf_tokenizer  # type: ignore[attr-defined]
    result = embedder.embed(["test again"], input_type="query")
    formatted = get_detailed_instruct(TASK, "test again")
    assert result.token_counts == [len(tokenizer(formatted)["input_ids"])]
    assert result.prompt_tokens == result.token_counts[0]


LONG = " ".join(f"word{i}" for i in range(700))  # about 2,100 tokens, over the tiny model's 512


def test_overlong_truncate_end(embedder: Embedder, tiny_qwen3: Path) -> None:
    result = embedder.embed([LONG, "short"], truncate="end")
    assert result.truncated == [True, False]
    assert result.token_counts[0] == 512
    theirs = reference_embeddings(tiny_qwen3, [LONG], max_length=512)
    assert cosines(result.vectors[:1], theirs).min() >= 0.9999


def test_overlong_error(embedder: Embedder) -> None:
    with pytest.raises(InputTooLongError, match=r"input\[0\] has [\d,]+ tokens; .* reads at most 512"):
        embedder.embed([LONG], truncate="error")


def test_overlong_pool_is_token_weighted_mean_of_windows(embedder: Embedder) -> None:
    tokenizer = embedder.hf_tokenizer  # type: ignore[attr-defined]
    pooled = embedder.embed([LONG], truncate="pool")
    assert pooled.windows[0] >= 4
    assert not pooled.truncated[0]
    encoded = tokenizer(LONG, add_special_tokens=False, return_offsets_mapping=True)
    spans = encoded["offset_mapping"]
    windows = [spans[i : i + 511] for i in range(0, len(spans), 511)]
    texts = [LONG[w[0][0] : w[-1][1]] for w in windows]
    parts = embedder.embed(texts).vectors
    weights = np.array([len(w) for w in windows], dtype=np.float32)
    expected = (parts * weights[:, None]).sum(axis=0)
    expected /= np.linalg.norm(expected)
    assert float(pooled.vectors[0] @ expected) >= 0.9999
    assert pooled.token_counts[0] == len(spans) + len(windows)
