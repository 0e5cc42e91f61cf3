"""The model registry and instruction presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zhiku.config import Settings
from zhiku.embedding.instructions import PRESETS, resolve_instruction
from zhiku.embedding.models import DEFAULT_MODEL, REGISTRY, resolve_model
from zhiku.errors import InvalidInputError


@pytest.mark.parametrize(
    ("name", "dimension"), [("qwen3-embedding-0.6b", 1024), ("qwen3-embedding-4b", 2560), ("qwen3-embedding-8b", 4096)]
)
def test_qwen3_entries(name: str, dimension: int) -> None:
    spec = REGISTRY[name]
    assert spec.dimension == dimension
    assert spec.min_dimension == 32
    assert spec.max_tokens == 32768
    assert spec.pooling == "lasttoken"
    assert spec.padding_side == "left"
    assert spec.eos_token == "<|endoftext|>"
    assert spec.query_template == "Instruct: {instruction}\nQuery:{text}"
    assert spec.document_prompt == ""
    assert spec.check_dimension(32) == 32
    assert spec.check_dimension(None) == dimension


def test_aliases_resolve() -> None:
    assert resolve_model("Qwen/Qwen3-Embedding-4B").name == "qwen3-embedding-4b"
    assert resolve_model("usem3").name == "use-multilingual-v3"
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2").name == "all-minilm-l6-v2"


def test_default_model_is_offline_and_multilingual() -> None:
    spec = REGISTRY[DEFAULT_MODEL]
    assert spec.source.startswith("package:")
    assert {"zh", "en"} <= set(spec.languages)


def test_local_qwen3_folder_of_a_registered_size(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "qwen3", "hidden_size": 2560, "max_position_embeddings": 40960})
    )
    spec = resolve_model(str(tmp_path))
    assert spec.dimension == 2560
    assert spec.max_tokens == 32768
    assert spec.source == str(tmp_path)


def test_presets_and_custom_instructions() -> None:
    assert resolve_instruction(None) == PRESETS["retrieval"]
    assert set(PRESETS) >= {"retrieval", "classification", "clustering", "code-search", "bitext"}
    assert resolve_instruction("code-search") == PRESETS["code-search"]
    assert resolve_instruction("  Find legal clauses about liability ") == "Find legal clauses about liability"
    with pytest.raises(InvalidInputError, match="instruction must not be empty"):
        resolve_instruction("  ")


def test_served_names_a_vllm_style_client_expects(tmp_path: Path) -> None:
    """A Qwen3-Embedding folder answers to its folder name and the registry names of its size;
    `served_model_name` renames the first served model (as vLLM's --served-model-name), old names still work."""
    from zhiku.embedding.service import EmbeddingService
    from zhiku.errors import UnknownModelError

    folder = tmp_path / "Qwen3-Embedding-0.6B"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3", "hidden_size": 1024}))
    settings = Settings(home=tmp_path / "home", serve_models=[str(folder), "use-multilingual-v3"])
    service = EmbeddingService(settings)
    for name in (str(folder), "Qwen3-Embedding-0.6B", "qwen3-embedding-0.6b", "Qwen/Qwen3-Embedding-0.6B"):
        assert service.resolve(name).name == str(folder), name
    assert service.public_name(str(folder)) == str(folder)
    with pytest.raises(UnknownModelError, match="not served here"):
        service.resolve("Qwen/Qwen3-Embedding-4B")  # another size is another model

    renamed = EmbeddingService(settings.model_copy(update={"served_model_name": ["Qwen/Qwen3-Embedding-0.6B", "emb"]}))
    assert renamed.public_name(str(folder)) == "Qwen/Qwen3-Embedding-0.6B"
    assert renamed.resolve("emb").name == str(folder)
    assert renamed.public_name("use-multilingual-v3") == "use-multilingual-v3"  # only the first model is renamed
    assert renamed.resolve("usem3").name == "use-multilingual-v3"


def test_served_model_name_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIKU_SERVED_MODEL_NAME", "text-embedding-3-small,my-embedder")
    assert Settings().served_model_name == ["text-embedding-3-small", "my-embedder"]
