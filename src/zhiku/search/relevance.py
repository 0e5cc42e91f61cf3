"""Relevance on one 0-1 scale for every query and mode: the ``score`` of a search hit.

Raw scores have no fixed scale: a cosine means different things to different models, BM25 grows with the
query's length and the corpus, and hybrid fusion z-scores within one result list (so an unrelated query's best
hit still scores high). The relevance of a hit is built from absolute evidence instead:

- **dense**: how far the cosine stands above a reference, in units of the model's own spread between
  *unrelated* passages and *answers*: a typical answer's margin scores :data:`ANSWER_RELEVANCE` (0.8), clipped
  to 0-1. Both levels are measured by the model itself, once per model, instruction and dimension, on built-in
  anchor pairs (:data:`ANCHORS`: questions with the passage that answers them, in Chinese and English, within
  and across languages): *answer* is the mean cosine of a question to its passage, *unrelated* the mean to the
  other passages. The reference is the unrelated level or, when the search saw at least
  :data:`MIN_NEIGHBOURS` other candidates, their median cosine if that is higher: a hit must stand out from
  its neighbours in the index, as an answer does (on the shared sets this tells answered from unanswerable
  questions better than the cosine alone: 0.909 against 0.870 AUC zh→en, see docs/search.md).
- **lexical**: the share of the query's terms found in the passage (:func:`~zhiku.search.fusion.term_coverage`).
- **hybrid**: the two mixed with the weight hybrid fusion gives the lexical side for this query.
- **rerank**: the reranker's own probability that the passage answers the query.

Hits keep their ranking order: a hit never shows more relevance than the hit ranked above it, so a
``min_score`` threshold cuts the list at one place.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zhiku.embedding.base import Embedder

ANCHORS: tuple[tuple[str, str], ...] = (
    (
        "How long does it take to boil an egg?",
        "A hard-boiled egg needs about ten minutes in boiling water; a soft-boiled one about six.",
    ),
    (
        "What causes the seasons on Earth?",
        "Seasons come from the tilt of Earth's axis, which changes how directly sunlight strikes each hemisphere.",
    ),
    (
        "Who wrote the play Hamlet?",
        "Hamlet is a tragedy written by William Shakespeare around 1600, set in the royal court of Denmark.",
    ),
    (
        "How do I reset my account password?",
        "To reset your password, open the sign-in page, choose 'Forgot password' and follow the emailed link.",
    ),
    (
        "What is the boiling point of water at sea level?",
        "At sea level water boils at 100 degrees Celsius; at higher altitudes it boils at lower temperatures.",
    ),
    ("大熊猫主要吃什么？", "大熊猫的食物几乎全部是竹子，每天要花十几个小时进食。"),
    ("如何申请退款？", "购买后三十天内可在订单页面提交退款申请，审核通过后款项原路退回。"),
    ("长城有多长？", "明长城全长约八千八百公里，东起鸭绿江，西至嘉峪关。"),
    ("光合作用需要哪些条件？", "光合作用需要光照、水和二氧化碳，在叶绿体中把它们转化为葡萄糖和氧气。"),
    ("Why is the sky blue?", "天空呈蓝色是因为大气中的分子对短波长的蓝光散射得比红光更强。"),
    ("How many bones does an adult human have?", "成年人的骨骼通常由二百零六块骨头组成，婴儿出生时骨头更多。"),
    (
        "什么是通货膨胀？",
        "Inflation is a general rise in prices over time, which reduces what a unit of money can buy.",
    ),
    (
        "火山为什么会喷发？",
        "A volcano erupts when pressure from gas-rich molten rock below the surface forces magma up through the crust.",
    ),
    ("What does a derailleur do on a bicycle?", "自行车的变速器把链条从一个齿轮移到另一个齿轮上，从而改变传动比。"),
)
"""Questions, each with a passage that answers it (English, Chinese, and across the two); every other passage is
unrelated to it."""
ANSWER_RELEVANCE = 0.8
"""The relevance of a cosine at the model's answer level: room above it for closer matches (a near copy)."""
MIN_NEIGHBOURS = 10
"""Fewer other candidates than this (a small knowledge base) say nothing reliable about the neighbourhood."""
MIN_SPREAD = 0.02
"""Below this gap between the answer and unrelated levels the model does not separate them (a random test
model): the cosine itself is used, clipped to 0-1."""


@dataclass(frozen=True)
class CosineScale:
    """Where a model's cosines lie for unrelated passages and for answers."""

    unrelated: float
    answer: float

    def relevance(self, cosines: np.ndarray, candidates: Sequence[float] = ()) -> np.ndarray:
        """Cosines mapped to 0-1: their margin over the reference (see the module) in units of the model's
        spread, a typical answer's margin at :data:`ANSWER_RELEVANCE`; ``candidates`` are the cosines of every
        candidate of the search."""
        spread = self.answer - self.unrelated
        if spread < MIN_SPREAD:
            raw: np.ndarray = np.clip(cosines, 0.0, 1.0)
            return raw
        reference = self.unrelated
        if len(candidates) > MIN_NEIGHBOURS:
            reference = max(reference, float(np.median(np.asarray(candidates))))
        clipped: np.ndarray = np.clip(ANSWER_RELEVANCE * (cosines - reference) / spread, 0.0, 1.0)
        return clipped


@functools.lru_cache(maxsize=64)
def _cached_scale(embedder: Embedder, instruction: str | None, dimension: int | None) -> CosineScale:
    questions = embedder.embed(
        [q for q, _ in ANCHORS], input_type="query", instruction=instruction, dimensions=dimension
    ).vectors
    passages = embedder.embed([p for _, p in ANCHORS], input_type="document", dimensions=dimension).vectors
    similarity = questions @ passages.T
    diagonal = np.eye(len(ANCHORS), dtype=bool)
    return CosineScale(unrelated=float(similarity[~diagonal].mean()), answer=float(similarity[diagonal].mean()))


def cosine_scale(embedder: Embedder, instruction: str | None, dimension: int | None) -> CosineScale:
    """The model's :class:`CosineScale` for queries with ``instruction`` at ``dimension``, measured on
    :data:`ANCHORS` once per process (28 short embeddings)."""
    return _cached_scale(embedder, instruction, dimension)


def hybrid_relevance(dense: np.ndarray, lexical: np.ndarray, lexical_weight: float) -> np.ndarray:
    """Dense and lexical relevance mixed as hybrid fusion mixes the two sides for this query."""
    mixed: np.ndarray = (1 - lexical_weight) * dense + lexical_weight * lexical
    return mixed


def in_rank_order(values: Sequence[float]) -> list[float]:
    """``values`` (in ranking order) capped so that none exceeds the one before it."""
    capped: list[float] = []
    ceiling = 1.0
    for value in values:
        ceiling = min(ceiling, max(0.0, float(value)))
        capped.append(ceiling)
    return capped
