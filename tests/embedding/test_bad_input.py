"""Bad input gets a precise error naming what is wrong, and the embedder keeps working afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zhiku.config import Settings
from zhiku.embedding import create_embedder, resolve_model
from zhiku.embedding.base import Embedder
from zhiku.errors import DimensionError, InputTooLongError, InvalidInputError, UnknownModelError, ZhikuError


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return create_embedder(resolve_model("use-multilingual-v3"), Settings(home=tmp_path_factory.mktemp("h")))


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("", InvalidInputError, r"^input is empty or only whitespace$"),
        ("   \n\t", InvalidInputError, r"^input is empty or only whitespace$"),
        ([], InvalidInputError, r"^input must not be an empty list$"),
        (["ok", ""], InvalidInputError, r"^input\[1\] is empty or only whitespace$"),
        (["ok", 3], InvalidInputError, r"^input\[1\] must be a string, got int$"),
        ([None], InvalidInputError, r"^input\[0\] must be a string, got NoneType$"),
        (42, InvalidInputError, r"^input must be a string or a list of strings, got int$"),
        (b"bytes", InvalidInputError, r"^input must be a string or a list of strings, got bytes$"),
        ("a\x00b", InvalidInputError, r"^input contains a NUL byte at position 1$"),
        (["fine", "x\x00"], InvalidInputError, r"^input\[1\] contains a NUL byte at position 1$"),
        ("x" * 1_000_000, InputTooLongError, r"^input has 1,000,000 characters; the limit is 200,000"),
    ],
)
def test_bad_inputs(embedder: Embedder, value: Any, error: type[ZhikuError], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        embedder.embed(value)
    assert 400 <= info.value.status_code < 500
    assert embedder.embed("still works").vectors.shape == (1, 512)


@pytest.mark.parametrize("dim", [0, 31, 256, 513, 4096])
def test_non_matryoshka_model_accepts_only_native_dimension(embedder: Embedder, dim: int) -> None:
    with pytest.raises(DimensionError, match=r"not a Matryoshka model: only its native dimension 512"):
        embedder.embed("x", dimensions=dim)
    assert embedder.embed("x", dimensions=512).vectors.shape == (1, 512)


def test_dimension_must_be_an_integer(embedder: Embedder) -> None:
    with pytest.raises(DimensionError, match="dimensions must be an integer"):
        embedder.embed("x", dimensions="64")  # type: ignore[arg-type]
    with pytest.raises(DimensionError, match="dimensions must be an integer"):
        embedder.embed("x", dimensions=True)


def test_bad_truncate_and_input_type(embedder: Embedder) -> None:
    with pytest.raises(InvalidInputError, match="truncate must be one of end, pool, error; got 'middle'"):
        embedder.embed("x", truncate="middle")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="input_type must be 'query' or 'document', got 'passage'"):
        embedder.embed("x", input_type="passage")  # type: ignore[arg-type]


def test_instruction_on_a_model_without_instructions(embedder: Embedder) -> None:
    with pytest.raises(InvalidInputError, match="does not take instructions"):
        embedder.embed("x", input_type="query", instruction="Classify it")


@pytest.mark.parametrize("name", ["no-such-model", "Qwen/Qwen9-Embedding", "/nonexistent/folder", ""])
def test_unknown_model(name: str) -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve_model(name)
    assert info.value.status_code == 404
    if name:
        assert repr(name) in info.value.message
        assert "qwen3-embedding-0.6b" in info.value.message


def test_registered_model_without_weights_is_a_clear_load_error(tmp_path: Path) -> None:
    from zhiku.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match=r"(?s)cannot load model qwen3-embedding-0.6b .*not a local folder"):
        create_embedder(resolve_model("qwen3-embedding-0.6b"), Settings(home=tmp_path))


def test_pool_window_limit(tmp_path: Path) -> None:
    small = create_embedder(resolve_model("use-multilingual-v3"), Settings(home=tmp_path, max_pool_windows=2))
    with pytest.raises(InputTooLongError, match=r"windows of \d+ tokens, over the limit of 2"):
        small.embed("词 " * 3000, truncate="pool")
