"""Objects the routes share, kept on ``app.state`` by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from zhiku.api.metrics import Metrics
from zhiku.config import Settings
from zhiku.embedding.service import EmbeddingService


@dataclass
class AppState:
    """What one running app holds."""

    settings: Settings
    embeddings: EmbeddingService
    metrics: Metrics


def app_state(request: Request) -> AppState:
    """FastAPI dependency: the app's :class:`AppState`."""
    state: AppState = request.app.state.zhiku
    return state
