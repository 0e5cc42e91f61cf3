"""Near-duplicates among vectors (documents or chunks): pairs that say the same thing, and their groups.

Pure: ids, L2-normalised vectors and (optionally) texts in, pairs and groups out; no database.

1. Candidates: cosines of all pairs in row blocks (``block × n`` at a time, never ``n × n``), kept from a floor
   (the lowest score any kind can be confirmed at). For a Matryoshka model with a large dimension this coarse pass
   runs on a re-normalised prefix of the vectors (:data:`COARSE_DIMENSION`) with a lower floor
   (:data:`COARSE_SLACK`); the full vectors then confirm.
2. Confirmation on full vectors, by kind. Each text gets a script hint (``zh``, ``ja``, ``ko``, ``latin``) and
   character shingles (CJK-aware: 3-grams for CJK text, 5-grams otherwise, whitespace and punctuation dropped):

   - ``translation``: the two texts are in different scripts; confirmed from ``threshold - CROSS_LINGUAL_OFFSET``,
     since a multilingual model puts a text and its translation less close than a text and its edited copy; but
     below ``threshold`` not when both texts write numbers and share none (a translation keeps its numbers), and
     only when the pair is, within :data:`TRANSLATION_MARGIN`, the best translation of both its items (another
     paragraph of the same article in the other language can score as high as a translation, not higher than it);
   - ``copy``: same script and shingle Jaccard ≥ :data:`COPY_JACCARD`; confirmed from ``threshold - COPY_SLACK``
     (the shared wording confirms what a slightly lower cosine suggests: copies with a few sentences dropped);
   - ``similar``: same script, little shared wording (a paraphrase, or a translation between two languages of one
     script); confirmed from ``threshold``. Without texts every pair is of this kind.
3. Groups: connected components of the confirmed pairs (union-find), largest first.

The constants were chosen on the set ``zhiku bench duplicates`` builds from XQuAD (English and Chinese paragraphs,
their edited copies, and the other paragraphs of the same articles as hard negatives) with the default model,
use-multilingual-v3; see docs/duplicates.md for the figures.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Kind = Literal["copy", "translation", "similar"]
KINDS: tuple[Kind, ...] = ("copy", "translation", "similar")

DEFAULT_THRESHOLD = 0.85
"""Cosine from which two texts of one script with little shared wording are near-duplicates. Measured with
use-multilingual-v3 on XQuAD: edited copies score 0.82-0.99 (median 0.96), the other paragraphs of the same
article at most 0.85 (99th percentile 0.76); 0.85 keeps every such neighbour out."""

CROSS_LINGUAL_OFFSET = 0.17
"""Translations are confirmed this much below the threshold (0.68 by default): an English paragraph and its
Chinese translation score 0.56-0.92 (median 0.79, 5th percentile 0.69), while an English and a Chinese paragraph
of the same article that are not translations reach 0.75 at most (99th percentile 0.65)."""

TRANSLATION_MARGIN = 0.05
"""A translation pair must score within this of the best translation pair of each of its items."""

COPY_SLACK = 0.10
"""Pairs of one script that share their wording (shingle Jaccard ≥ :data:`COPY_JACCARD`) are confirmed this much
below the threshold: the wording confirms them, so copies with sentences dropped (cosine down to 0.82) are found."""

COPY_JACCARD = 0.3
"""Shingle Jaccard from which a same-script pair is a copy: edited copies (a sentence dropped, two swapped, a
typo every 80 characters) share 0.41-0.9 of their shingles (median 0.75), neighbouring paragraphs of one article
at most 0.23."""

COARSE_DIMENSION = 256
"""The prefix the coarse pass compares for Matryoshka models whose dimension is at least twice this."""

COARSE_SLACK = 0.05
"""How much lower the coarse pass's floor is than the confirmation's: a prefix's cosine strays from the full one."""

MAX_TEXT_CHARS = 20_000
"""Shingles of a text are taken from at most this many characters (a long document's beginning)."""

_BLOCK_CELLS = 8_000_000
"""Cells of one block of the cosine matrix (32 MB of float32): the rows per block are this over ``n``."""

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")


@dataclass(frozen=True)
class Pair:
    """Two near-duplicate items (indexes into the input, ``left < right``), their cosine, shingle Jaccard (None
    without texts) and kind."""

    left: int
    right: int
    score: float
    jaccard: float | None
    kind: Kind


@dataclass
class Group:
    """Items that say the same thing: indexes into the input, the pairs that join them, their kinds."""

    members: list[int]
    pairs: list[Pair] = field(default_factory=list)

    @property
    def kinds(self) -> list[Kind]:
        """The kinds of the group's pairs, in :data:`KINDS` order."""
        found = {pair.kind for pair in self.pairs}
        return [kind for kind in KINDS if kind in found]

    @property
    def score(self) -> float:
        """The group's weakest confirmed pair (how sure the weakest link is)."""
        return min(pair.score for pair in self.pairs)

    def best_score(self, member: int) -> float:
        """The highest cosine of ``member`` with another member."""
        return max(p.score for p in self.pairs if member in (p.left, p.right))


def script_hint(text: str) -> str:
    """The text's writing system as a language hint: ``zh`` (Han), ``ja`` (kana with or without Han), ``ko``
    (Hangul), ``latin``, or ``""`` when it has no letters of these. CJK characters count five Latin letters (about
    a word each)."""
    sample = text[:MAX_TEXT_CHARS]
    han, kana, hangul = len(_HAN.findall(sample)), len(_KANA.findall(sample)), len(_HANGUL.findall(sample))
    latin = len(_LATIN.findall(sample))
    cjk = han + kana + hangul
    if cjk * 5 >= latin and cjk > 0:
        if hangul >= han + kana:
            return "ko"
        return "ja" if kana * 10 >= cjk else "zh"
    return "latin" if latin else ""


def shingles(text: str, hint: str | None = None) -> set[str]:
    """Character shingles of the text, normalised (NFKC, lower case, no whitespace or punctuation): 3-grams for
    CJK text (a character is about a word), 5-grams otherwise. ``hint``: the text's :func:`script_hint`, if known."""
    flat = _PUNCT.sub("", unicodedata.normalize("NFKC", text[:MAX_TEXT_CHARS]).lower())
    size = 3 if (hint if hint is not None else script_hint(text)) in ("zh", "ja", "ko") else 5
    if len(flat) <= size:
        return {flat} if flat else set()
    return {flat[i : i + size] for i in range(len(flat) - size + 1)}


def numbers(text: str) -> set[str]:
    """The numbers written in digits in the text (thousands separators dropped): a translation keeps them."""
    return {n.replace(",", "") for n in _NUMBER.findall(unicodedata.normalize("NFKC", text[:MAX_TEXT_CHARS]))}


def numbers_agree(a: set[str], b: set[str]) -> bool | None:
    """Whether two texts' numbers meet (None when one has none)."""
    return bool(a & b) if a and b else None


def jaccard(a: set[str], b: set[str]) -> float:
    """|a ∩ b| / |a ∪ b| (0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """The rows of ``vectors`` L2-normalised (float32; zero rows stay zero)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: np.ndarray = matrix / np.where(norms == 0, 1.0, norms)
    return unit


def coarse_view(vectors: np.ndarray, matryoshka: bool) -> np.ndarray | None:
    """The re-normalised Matryoshka prefix the coarse pass compares, or None to compare the full vectors."""
    if not matryoshka or vectors.shape[1] < 2 * COARSE_DIMENSION:
        return None
    return unit_rows(vectors[:, :COARSE_DIMENSION])


def floor(threshold: float, with_texts: bool) -> float:
    """The lowest cosine any kind is confirmed at."""
    return threshold - max(CROSS_LINGUAL_OFFSET, COPY_SLACK) if with_texts else threshold


def candidate_pairs(
    vectors: np.ndarray, minimum: float, owners: Sequence[str] | None = None
) -> Iterator[tuple[int, int, float]]:
    """(i, j, cosine) of the pairs ``i < j`` of rows of ``vectors`` (unit rows) with cosine ≥ ``minimum``, block
    by block; pairs of rows with the same owner (chunks of one document) are skipped."""
    n = len(vectors)
    rows = max(1, _BLOCK_CELLS // max(1, n))
    owner_codes = None
    if owners is not None:
        codes: dict[str, int] = {}
        owner_codes = np.array([codes.setdefault(owner, len(codes)) for owner in owners])
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        block = vectors[start:stop] @ vectors[start:].T  # only columns j ≥ start: the upper triangle and a bit
        local_i, local_j = np.nonzero(block >= minimum)
        for a, b in zip(local_i.tolist(), local_j.tolist(), strict=True):
            i, j = start + a, start + b
            if j <= i or (owner_codes is not None and owner_codes[i] == owner_codes[j]):
                continue
            yield i, j, float(block[a, b])


def confirm(
    score: float,
    hints: tuple[str, str] | None,
    similarity: float | None,
    threshold: float,
    numbers_agree: bool | None = None,
) -> Kind | None:
    """The kind of a candidate pair with full-vector cosine ``score``, or None when it is not confirmed.

    ``hints`` are the two texts' script hints and ``similarity`` their shingle Jaccard (both None without texts);
    ``numbers_agree`` whether they share a number (None when one of them has none: no evidence either way).
    """
    if hints is None or similarity is None:
        return "similar" if score >= threshold else None
    left, right = hints
    if left and right and left != right:
        if numbers_agree is False and score < threshold:
            return None  # both texts cite numbers, none in common: neighbours on one topic, not translations
        return "translation" if score >= threshold - CROSS_LINGUAL_OFFSET else None
    if similarity >= COPY_JACCARD and score >= threshold - COPY_SLACK:
        return "copy"
    return "similar" if score >= threshold else None


def near_duplicate_pairs(
    vectors: np.ndarray,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    texts: Sequence[str] | None = None,
    owners: Sequence[str] | None = None,
    matryoshka: bool = False,
) -> list[Pair]:
    """The confirmed near-duplicate pairs among the rows of ``vectors``, best first.

    ``texts`` (one per row) give kinds and the lower thresholds of copies and translations; ``owners`` (one per
    row) leave out pairs of one owner; ``matryoshka`` lets the coarse pass compare a prefix of large vectors.
    """
    full = unit_rows(vectors)
    if texts is not None and len(texts) != len(full):
        raise ValueError(f"{len(texts)} texts for {len(full)} vectors")
    minimum = floor(threshold, texts is not None)
    coarse = coarse_view(full, matryoshka)
    if coarse is None:
        candidates = list(candidate_pairs(full, minimum, owners))
    else:
        candidates = [
            (i, j, float(full[i] @ full[j])) for i, j, _ in candidate_pairs(coarse, minimum - COARSE_SLACK, owners)
        ]
    hints: dict[int, str] = {}  # of the candidates' texts only, as their shingles and numbers
    shingle_sets: dict[int, set[str]] = {}
    number_sets: dict[int, set[str]] = {}
    pairs: list[Pair] = []
    for i, j, score in candidates:
        if score < minimum:
            continue
        similarity = agree = None
        pair_hints = None
        if texts is not None:
            for k in (i, j):
                if k not in shingle_sets:
                    hints[k] = script_hint(texts[k])
                    shingle_sets[k], number_sets[k] = shingles(texts[k], hints[k]), numbers(texts[k])
            similarity = jaccard(shingle_sets[i], shingle_sets[j])
            agree = numbers_agree(number_sets[i], number_sets[j])
            pair_hints = (hints[i], hints[j])
        kind = confirm(score, pair_hints, similarity, threshold, agree)
        if kind is not None:
            pairs.append(Pair(i, j, score, similarity, kind))
    pairs = best_translations(pairs)
    pairs.sort(key=lambda p: (-p.score, p.left, p.right))
    return pairs


def best_translations(pairs: Sequence[Pair]) -> list[Pair]:
    """``pairs`` without the translations that are not (within :data:`TRANSLATION_MARGIN`) the best translation of
    both their items: another paragraph of the same article in the other language can score as high as a
    translation does, but not higher than the translation itself."""
    best: dict[int, float] = {}
    for pair in pairs:
        if pair.kind == "translation":
            for item in (pair.left, pair.right):
                best[item] = max(best.get(item, -1.0), pair.score)
    return [
        p for p in pairs if p.kind != "translation" or p.score >= max(best[p.left], best[p.right]) - TRANSLATION_MARGIN
    ]


def group_pairs(pairs: Sequence[Pair]) -> list[Group]:
    """Connected components of ``pairs`` (union-find), largest first, then by their best pair."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    for pair in pairs:
        a, b = root(pair.left), root(pair.right)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, Group] = {}
    for pair in pairs:
        groups.setdefault(root(pair.left), Group(members=[])).pairs.append(pair)
    for group in groups.values():
        group.members = sorted({m for p in group.pairs for m in (p.left, p.right)})
    return sorted(groups.values(), key=lambda g: (-len(g.members), -max(p.score for p in g.pairs), g.members[0]))


def cosine_blocks(items: np.ndarray, others: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(first item, block of cosines) for the rows of ``items`` against every row of ``others`` (both unit rows):
    one matrix product per block of items, each at most :data:`_BLOCK_CELLS` cells."""
    rows = max(1, _BLOCK_CELLS // max(1, len(others)))
    for start in range(0, len(items), rows):
        yield start, items[start : start + rows] @ others.T


def matches_of(
    scores: np.ndarray,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    text: str | None = None,
    other_texts: Callable[[list[int]], list[str]] | None = None,
    exclude: int | None = None,
) -> list[tuple[int, float, Kind]]:
    """The rows of a matrix that nearly duplicate one item, given the item's cosine with each row (``scores``, e.g.
    a row of :func:`cosine_blocks`; changed here): (row, cosine, kind), best first. ``other_texts`` fetches the
    texts of the candidate rows only (a kb's texts are not all read); row ``exclude`` (the item's own row) is left
    out."""
    if len(scores) == 0:
        return []
    if exclude is not None:
        scores[exclude] = -np.inf
    with_texts = text is not None and other_texts is not None
    rows = [int(i) for i in np.nonzero(scores >= floor(threshold, with_texts))[0]]
    if not rows:
        return []
    found: list[tuple[int, float, Kind]] = []
    if text is not None and other_texts is not None:
        own_hint = script_hint(text)
        own_shingles, own_numbers = shingles(text, own_hint), numbers(text)
        for row, other in zip(rows, other_texts(rows), strict=True):
            other_hint = script_hint(other)
            kind = confirm(
                float(scores[row]),
                (own_hint, other_hint),
                jaccard(own_shingles, shingles(other, other_hint)),
                threshold,
                numbers_agree(own_numbers, numbers(other)),
            )
            if kind is not None:
                found.append((row, float(scores[row]), kind))
    else:
        found = [(row, float(scores[row]), "similar") for row in rows if scores[row] >= threshold]
    return sorted(found, key=lambda f: -f[1])
