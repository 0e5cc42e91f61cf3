"""zhiku's hybrid fusion of dense and BM25 scores, as pure functions.

Not plain reciprocal-rank fusion, because RRF drags a strong side down to the level of a weak one: on
cross-lingual queries BM25 has almost no signal, on monolingual ones it is the stronger side (see
docs/search.md for the numbers that chose the method).
"""

from __future__ import annotations

import numpy as np

from zhiku.text.terms import query_terms

LEXICAL_GAIN = 1.2
"""Lexical weight per unit of query-term coverage (see :func:`fuse`)."""
MAX_LEXICAL_WEIGHT = 0.95
"""The dense side always keeps at least this much say (1 - 0.95), as a tie-breaker among lexical equals."""


def _z_scores(scores: dict[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    values = np.fromiter(scores.values(), dtype=np.float64)
    spread = float(values.std()) or 1.0
    mean = float(values.mean())
    return {key: (value - mean) / spread for key, value in scores.items()}


def term_coverage(query: str, text: str) -> float:
    """Share of the query's terms (Chinese words via jieba, other words) that occur in ``text``."""
    return coverage_of(query_terms(query), text)


def coverage_of(terms: list[str], text: str) -> float:
    """Share of ``terms`` (a query's, from :func:`~zhiku.text.terms.query_terms`) that occur in ``text``."""
    if not terms:
        return 0.0
    lowered = text.lower()
    return sum(1 for term in terms if term.lower() in lowered) / len(terms)


def lexical_weight(coverage: float) -> float:
    """How much the BM25 side counts, from the query-term coverage of the best BM25 hit."""
    return min(MAX_LEXICAL_WEIGHT, LEXICAL_GAIN * coverage)


def fuse(dense: dict[str, float], lexical: dict[str, float], coverage: float) -> dict[str, float]:
    """zhiku's hybrid score: a convex mix of z-scored dense and BM25 scores, weighted by lexical evidence.

    Each side's scores are z-scored over its own candidates (a candidate missing from one side gets that side's
    lowest score). The BM25 weight is ``min(0.95, 1.2 * coverage)`` where ``coverage`` is the share of query
    terms found in the best BM25 hit: a Chinese question over an English corpus matches almost no terms (weight
    near 0, the dense ranking stands), a monolingual question whose words appear in the passage gets most of
    its ranking from BM25, with the embedding breaking ties and rescuing paraphrases. docs/search.md has the
    numbers that chose this over reciprocal-rank fusion and fixed weights.
    """
    dense_z, lexical_z = _z_scores(dense), _z_scores(lexical)
    if not lexical_z:
        return dense_z
    if not dense_z:
        return lexical_z
    weight = lexical_weight(coverage)
    dense_floor, lexical_floor = min(dense_z.values()), min(lexical_z.values())
    return {
        key: (1 - weight) * dense_z.get(key, dense_floor) + weight * lexical_z.get(key, lexical_floor)
        for key in dense_z.keys() | lexical_z.keys()
    }
