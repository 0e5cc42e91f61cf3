"""Knowledge-base defaults adapt to the model: the default chunk size never exceeds a short model's context."""

from __future__ import annotations

from pathlib import Path

import pytest

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.errors import InvalidInputError
from zhiku.knowledge.bases import create_knowledge_base


def test_default_chunk_size_fits_the_model(tmp_path: Path) -> None:
    zhiku = Zhiku(Settings(home=tmp_path / "home"))
    try:
        short = create_knowledge_base(zhiku, "minilm", model="all-minilm-l6-v2")
        assert short.chunk_tokens == 254  # 256-token model, room for [CLS] and [SEP]
        default = create_knowledge_base(zhiku, "use")
        assert default.chunk_tokens == 384
        with pytest.raises(InvalidInputError, match="16 to 254"):
            create_knowledge_base(zhiku, "too-big", model="all-minilm-l6-v2", chunk_tokens=384)  # explicit: refused
    finally:
        zhiku.close()
