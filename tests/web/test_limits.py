"""The web UI's search limits are the server's (app.js keeps them as constants, no round trip for them)."""

from __future__ import annotations

import re

from zhiku.search.options import MAX_TOP_K, TOP_K
from zhiku.web import STATIC_DIR


def test_the_ui_uses_the_server_top_k_default_and_maximum() -> None:
    app = (STATIC_DIR / "app.js").read_text("utf-8")
    constants = dict(re.findall(r"^const (TOP_K|MAX_TOP_K) = (\d+);$", app, re.MULTILINE))
    assert constants == {"TOP_K": str(TOP_K), "MAX_TOP_K": str(MAX_TOP_K)}
    assert "max: MAX_TOP_K, value: TOP_K" in app


def test_the_topic_map_uses_the_server_cluster_range() -> None:
    from zhiku.knowledge.topics import MAX_CLUSTERS, MIN_CLUSTERS

    topics = (STATIC_DIR / "topics.js").read_text("utf-8")
    constants = dict(re.findall(r"^const (MIN_CLUSTERS|MAX_CLUSTERS) = (\d+);", topics, re.MULTILINE))
    assert constants == {"MIN_CLUSTERS": str(MIN_CLUSTERS), "MAX_CLUSTERS": str(MAX_CLUSTERS)}
    assert "min: MIN_CLUSTERS, max: MAX_CLUSTERS" in topics
