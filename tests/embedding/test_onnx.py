"""The ONNX Runtime backend: exported once and cached, fp32 equal to torch, int8 close, `auto` picks sensibly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from zhiku.config import Settings
from zhiku.embedding import create_embedder, resolve_model
from zhiku.embedding.factory import resolve_backend
from zhiku.embedding.onnx import EXPORT_REVISION, OnnxEmbedder, export_folder, onnx_supported
from zhiku.errors import ConfigError

MINILM = resolve_model("all-minilm-l6-v2")
TEXTS = [
    "The lighthouse keeper logged every ship passing the reef.",
    "Short.",
    "Embeddings map text to vectors; similar meanings end up close together in the vector space, " * 16,
    "A quick brown fox jumps over the lazy dog.",
    "知识库",
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("onnx-home")
    stale = export_folder(Settings(home=home), MINILM).parent / "model.onnx"  # left by an older export recipe
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"not a model")
    return home


@pytest.fixture(scope="module")
def reference(home: Path) -> np.ndarray:
    return create_embedder(MINILM, Settings(home=home, embedding_backend="torch")).embed(TEXTS).vectors


def test_fp32_export_equals_torch(home: Path, reference: np.ndarray) -> None:
    onnx = create_embedder(MINILM, Settings(home=home, embedding_backend="onnx"))
    assert isinstance(onnx, OnnxEmbedder)
    result = onnx.embed(TEXTS)  # the long text pooled over windows, as the reference
    assert float(np.min(np.sum(result.vectors * reference, axis=1))) > 0.9999
    torch = create_embedder(MINILM, Settings(home=home, embedding_backend="torch"))
    assert result.token_counts == torch.embed(TEXTS).token_counts
    cut = onnx.embed(TEXTS, truncate="end")
    assert cut.token_counts == torch.embed(TEXTS, truncate="end").token_counts  # same tokenizer, same cut
    assert cut.token_counts[2] == 256


def test_int8_is_close_and_exports_are_cached(home: Path, reference: np.ndarray) -> None:
    int8 = create_embedder(MINILM, Settings(home=home, embedding_backend="onnx-int8"))
    cosines = np.sum(int8.embed(TEXTS).vectors * reference, axis=1)
    assert float(np.mean(cosines)) > 0.97
    folder = export_folder(Settings(home=home), MINILM)
    files = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")}
    assert set(files) == {"model.onnx", "model.int8.onnx"}
    assert folder.name == f"v{EXPORT_REVISION}"
    assert not (folder.parent / "model.onnx").exists()  # the older recipe's file is gone
    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    assert sum(node.op_type == "Attention" for node in graph.node) == 6  # one fused attention per layer
    # int8 MatMul weights; the 47 MB embedding table stays fp32
    assert (folder / "model.int8.onnx").stat().st_size < 0.7 * (folder / "model.onnx").stat().st_size
    create_embedder(MINILM, Settings(home=home, embedding_backend="onnx-int8"))  # a second load: no re-export
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")} == files


def test_auto_picks_onnx_only_where_it_is_exact_or_measured(tiny_qwen3: Path, tmp_path: Path) -> None:
    auto = Settings(home=tmp_path, embedding_backend="auto")
    assert onnx_supported(MINILM)
    assert MINILM.int8_verified
    assert resolve_backend(MINILM, auto) == "onnx-int8"
    gpu = Settings(home=tmp_path, embedding_backend="auto", embedding_device="cuda")
    assert resolve_backend(MINILM, gpu) == "torch"
    qwen3 = resolve_model(str(tiny_qwen3))
    assert not onnx_supported(qwen3)  # a decoder with last-token pooling stays on torch
    assert resolve_backend(qwen3, auto) == "torch"
    with pytest.raises(ConfigError, match="cannot run on the ONNX backend"):
        create_embedder(qwen3, Settings(home=tmp_path, embedding_backend="onnx"))
