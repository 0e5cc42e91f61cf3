"""Tokenizers converted once and cached on disk, when several processes convert them at the same time (the server
processes of `zhiku serve --workers N` starting on a fresh home): each writes a file of its own, then renames it.

The converters' ``save`` is wrapped to wait until every converter has saved, the worst interleaving, which a
shared temporary name does not survive (a fresh home with `--workers 2` failed to start that way)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import SpmConverter

from zhiku.config import Settings
from zhiku.embedding.qwen_tokenizer import build_qwen3_tokenizer
from zhiku.embedding.tokenization import use_tokenizer


def _all_at_once(count: int, work: Callable[[], Any]) -> list[Any]:
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            results[index] = work()
        except Exception as exc:  # noqa: BLE001 - reported below
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


class _SavesTogether:
    """A converted tokenizer whose ``save`` returns once ``barrier``'s parties have all saved."""

    def __init__(self, inner: Any, barrier: threading.Barrier) -> None:
        self.inner, self.barrier = inner, barrier

    def save(self, path: str) -> None:
        self.inner.save(path)
        self.barrier.wait(timeout=60)


def test_use_tokenizer_converted_by_two_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    barrier = threading.Barrier(2)
    converted = SpmConverter.converted
    monkeypatch.setattr(SpmConverter, "converted", lambda self: _SavesTogether(converted(self), barrier))
    settings = Settings(home=tmp_path)
    results = _all_at_once(2, lambda: use_tokenizer(settings).encode("长江是中国最长的河流。The Yangtze.").ids)
    assert results[0] == results[1], results
    assert len(results[0]) > 5
    folder = tmp_path / "tokenizers" / "use-multilingual-v3"
    assert [p.name for p in folder.iterdir()] == ["tokenizer.json"]  # no partial file left


def test_qwen3_tokenizer_built_by_two_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    barrier = threading.Barrier(2)
    save = PreTrainedTokenizerFast.save_pretrained

    def save_together(self: Any, *args: Any, **kwargs: Any) -> Any:
        saved = save(self, *args, **kwargs)
        barrier.wait(timeout=120)
        return saved

    monkeypatch.setattr(PreTrainedTokenizerFast, "save_pretrained", save_together)
    target = tmp_path / "qwen3"
    assert _all_at_once(2, lambda: build_qwen3_tokenizer(target)) == [target, target]
    assert (target / "tokenizer.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
