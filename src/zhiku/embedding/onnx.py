"""ONNX Runtime backend for encoder models (BERT-style, mean or CLS pooling), fp32 or dynamically int8-quantized.

The model is exported once with ``torch.onnx.export`` (eager attention), its attention and layer norms fused by
ONNX Runtime's transformer optimizer, and quantized with ``onnxruntime.quantization``; both files are cached under
``$ZHIKU_HOME/onnx/<model>/v<EXPORT_REVISION>/`` (never in site-packages), written atomically under a file lock so
that concurrent processes export once.

Why eager attention: ``torch.onnx`` writes PyTorch's SDPA attention as a chain of primitive ops that the optimizer
does not recognise; the eager implementation's MatMul-Softmax-MatMul pattern is fused into one ``Attention``
contrib op per layer, whose projections the quantizer then turns into int8 too. Measured side by side on
all-MiniLM-L6-v2 (240 xquad-en passages, batches of 8, 2 cores): unfused int8 1.89x torch, fused int8 2.35x.
A model whose attention the optimizer cannot fuse keeps the plain export.

sentence-transformers' own ``backend="onnx"`` needs ``optimum-onnx``, whose pins conflict with
sentence-transformers 6, so zhiku exports directly. Decoder models (Qwen3) stay on torch.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from zhiku.config import Settings
from zhiku.embedding.base import Embedder
from zhiku.embedding.models import ModelSpec, model_location
from zhiku.embedding.padding import plan_batches
from zhiku.embedding.tokenization import counting_copy, special_token_count
from zhiku.errors import ConfigError, ModelLoadError
from zhiku.extras import require_torch

log = logging.getLogger(__name__)
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17
EXPORT_REVISION = 2
"""Bumped when the export recipe changes, so that files cached by an older recipe are replaced."""


SUPPORTED_MODULES = frozenset(
    {
        "sentence_transformers.models.Transformer",
        "sentence_transformers.models.Pooling",
        "sentence_transformers.models.Normalize",
    }
)


def onnx_supported(spec: ModelSpec) -> bool:
    """Whether the ONNX backend can run ``spec``: a local sentence-transformers folder whose modules are only a
    transformer encoder, mean or CLS pooling and normalisation (no Dense layers, no decoder)."""
    if spec.backend != "sentence-transformers" or spec.pooling not in ("mean", "cls", "model"):
        return False
    try:
        folder = Path(model_location(spec))
    except ModelLoadError:
        return False
    modules_file = folder / "modules.json"
    if not (folder / "tokenizer.json").is_file() or not modules_file.is_file():
        return False
    try:
        modules = {
            str(m.get("type", "")).replace(".sentence_transformer.modules.", ".models.")
            for m in json.loads(modules_file.read_text())
        }
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError, AttributeError):
        return False
    simple_pooling = bool(pooling.get("pooling_mode_mean_tokens") or pooling.get("pooling_mode_cls_token"))
    return modules <= SUPPORTED_MODULES and simple_pooling


def export_folder(settings: Settings, spec: ModelSpec) -> Path:
    """Where a model's ONNX files are cached (one folder per export recipe revision)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.name).strip("._")[-120:] or "model"
    return settings.ensure_home() / "onnx" / safe / f"v{EXPORT_REVISION}"


def ensure_exported(settings: Settings, spec: ModelSpec, *, quantized: bool) -> Path:
    """The ONNX file for ``spec`` (exported, and quantized if asked, on first use); returns its path."""
    folder = export_folder(settings, spec)
    target = folder / ("model.int8.onnx" if quantized else "model.onnx")
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be exporting the same model
        fp32 = folder / "model.onnx"
        if not fp32.is_file():
            _export(spec, fp32)
            _remove_older_revisions(folder)
        if quantized and not target.is_file():
            from onnx import TensorProto
            from onnxruntime.quantization import QuantType, quantize_dynamic

            partial = folder / "model.int8.onnx.partial"
            # per-channel int8 weights of the MatMuls and fused attention projections only: measured on
            # all-MiniLM-L6-v2, plain per-tensor quantization of every op lost 1.7 nDCG@10 points on
            # expmrc-squad-dev. The optimizer's contrib ops carry no type information: they are float32.
            quantize_dynamic(
                str(fp32),
                str(partial),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul", "Attention"],
                extra_options={"DefaultTensorType": TensorProto.FLOAT},
            )
            os.replace(partial, target)
    return target


def _remove_older_revisions(folder: Path) -> None:
    """Delete ONNX files cached by older export recipes (``<model>/*.onnx``, ``<model>/v<n>/``)."""
    model_folder = folder.parent
    for stale in model_folder.glob("*.onnx"):
        stale.unlink(missing_ok=True)
    for old in model_folder.glob("v*"):
        if old.is_dir() and old != folder:
            for stale in old.glob("*.onnx"):
                stale.unlink(missing_ok=True)


def _export(spec: ModelSpec, target: Path) -> None:
    require_torch(f"the ONNX export of {spec.name} (once; ONNX Runtime then runs it without PyTorch)")
    import torch
    from transformers import AutoModel, AutoTokenizer

    location = model_location(spec)
    log.info("exporting %s to ONNX (once) at %s", spec.name, target)
    try:
        # eager attention exports as MatMul-Softmax-MatMul, which ONNX Runtime fuses (SDPA's export it does not)
        model = AutoModel.from_pretrained(location, attn_implementation="eager").eval()
        tokenizer = AutoTokenizer.from_pretrained(location)
    except Exception as exc:
        raise ModelLoadError(f"cannot load {spec.name} from {location} for the ONNX export: {exc}") from exc

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = tokenizer(["zhiku exports this model", "once"], padding=True, return_tensors="pt")
    if "token_type_ids" not in sample:
        sample["token_type_ids"] = torch.zeros_like(sample["input_ids"])
    partial = target.with_suffix(".onnx.partial")
    plain = target.with_suffix(".plain.onnx")
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "last_hidden_state")}
    with torch.no_grad():
        torch.onnx.export(
            LastHiddenState(model),
            tuple(sample[name] for name in INPUTS),
            str(plain),
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    try:
        if not _fuse(plain, partial, model.config):
            os.replace(plain, partial)
        os.replace(partial, target)
    finally:
        plain.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)


def _fuse(plain: Path, target: Path, config: Any) -> bool:
    """Write ``plain`` with attention and layer norms fused to ``target``; ``False`` (nothing written) when the
    optimizer does not fuse every layer's attention."""
    from onnxruntime.transformers.optimizer import optimize_model

    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    try:
        optimized = optimize_model(
            str(plain),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
        )
    except Exception as exc:  # noqa: BLE001 - an unfusable graph is still a working export
        log.warning("ONNX Runtime could not optimise the export (%s); keeping it unfused", exc)
        return False
    fused = optimized.get_fused_operator_statistics().get("Attention", 0)
    if layers <= 0 or fused != layers:
        log.warning("ONNX Runtime fused %d of %d attention layers; keeping the export unfused", fused, layers)
        return False
    optimized.save_model_to_file(str(target))
    return True


def _pooling(location: str, spec: ModelSpec) -> str:
    """``mean`` or ``cls``, from the sentence-transformers folder's pooling config."""
    config = Path(location) / "1_Pooling" / "config.json"
    if config.is_file():
        values = json.loads(config.read_text())
        if values.get("pooling_mode_cls_token"):
            return "cls"
        if values.get("pooling_mode_mean_tokens"):
            return "mean"
        raise ConfigError(f"{spec.name}: the ONNX backend supports mean or CLS pooling only")
    return "cls" if spec.pooling == "cls" else "mean"


class OnnxEmbedder(Embedder):
    """Runs an exported encoder with ONNX Runtime on the CPU."""

    def __init__(self, spec: ModelSpec, settings: Settings, *, quantized: bool) -> None:
        super().__init__(spec, settings)
        if not onnx_supported(spec):
            raise ConfigError(
                f"model {spec.name} cannot run on the ONNX backend (local encoder models with mean or CLS pooling "
                "only); set embedding_backend to torch or auto"
            )
        import onnxruntime as ort

        from zhiku.embedding.local import CPU_BATCH_SIZE

        location = model_location(spec)
        self.quantized = quantized
        self.batch_size = settings.embedding_batch_size or CPU_BATCH_SIZE
        self.pooling = _pooling(location, spec)
        path = ensure_exported(settings, spec, quantized=quantized)
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.embedding_threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        # no busy-waiting between runs: the cores are needed by parsing and I/O threads (see zhiku/__init__.py)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        tokenizer_file = Path(location) / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelLoadError(f"{spec.name}: no tokenizer.json in {location}")
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.enable_truncation(max_length=spec.max_tokens)
        self._tokenizer.enable_padding()
        self.tokenizer = counting_copy(self._tokenizer)
        self.special_tokens = special_token_count(self.tokenizer)
        self._lock = threading.Lock()

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.spec.dimension), dtype=np.float32)
        if not texts:
            return out
        with self._lock:  # one run at a time: ONNX Runtime already uses every core
            encodings = self._tokenizer.encode_batch(texts)  # right-padded to the longest text
            ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
            mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
            types = np.asarray([e.type_ids for e in encodings], dtype=np.int64)
            lengths = mask.sum(axis=1)
            for rows in plan_batches(lengths.tolist(), self.batch_size):
                width = int(lengths[rows].max())  # each run is padded to its own longest text only
                feed = {
                    "input_ids": ids[rows, :width],
                    "attention_mask": mask[rows, :width],
                    "token_type_ids": types[rows, :width],
                }
                hidden = self.session.run(None, feed)[0]
                if self.pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    weights = feed["attention_mask"][..., None].astype(np.float32)
                    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
                out[rows] = pooled
        return out
