"""Near-duplicate detection: precision and recall on a set built from XQuAD, and the time for 10,000 chunks.

The set (:func:`build_set`): XQuAD's English and Chinese corpora share paragraph ids, so translations are known.
Per article (48), by its number modulo 4, the first paragraph comes as

0. English and its Chinese translation,
1. English and an edited English copy,
2. Chinese and an edited Chinese copy,
3. English, its Chinese translation and an edited English copy;

edits (:func:`edited_copy`, seeded) drop a sentence, swap two neighbouring ones and put a typo every 80
characters. Negatives: paragraphs 1 and 2 in English and 3 in Chinese of every article, alone (hard ones: they
share their article's topic). Everything is ingested through the real pipeline (parse, chunk, embed, flip) into
a knowledge base of the default model, then grouped by :func:`zhiku.knowledge.duplicates.find_duplicates`.

Scores are over pairs: a pair of documents in one reported group is a found pair. Monolingual pairs (copies)
and cross-lingual ones (translations) are counted apart. At the chunk level a found chunk pair is right when
its two documents are one paragraph's family; recall there is the share of true document pairs with at least
one chunk pair found.

The 10,000-chunk timing runs the algorithm (:mod:`zhiku.pipeline.near_duplicates`) on synthetic vectors (5,000
random unit vectors and 5,000 noisy copies of them), as the database read is not what it measures: no texts, so
every candidate is confirmed on its cosine alone; once at 512 dimensions (the default model), once at 1,024 with
the Matryoshka coarse pass on a 256 prefix.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import register_file
from zhiku.knowledge.duplicates import find_duplicates
from zhiku.pipeline.near_duplicates import group_pairs, near_duplicate_pairs
from zhiku.pipeline.tasks import job_runner

_SENTENCE = re.compile(r"(?<=[.!?。！？])\s*")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_TYPO_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_TYPO_HAN = "的了是在有和人这中大"


def sentences(text: str) -> list[str]:
    """The text's sentences (after ., !, ?, 。, ！, ？)."""
    return [s for s in _SENTENCE.split(text) if s.strip()]


def edited_copy(text: str, rng: random.Random) -> str:
    """An edited copy: one sentence dropped (of texts with more than three), two neighbours swapped (of more than
    two), a typo every 80 characters (a Latin letter, or a common Han character in Chinese text)."""
    parts = sentences(text)
    if len(parts) > 3:
        parts.pop(rng.randrange(len(parts)))
    if len(parts) > 2:
        i = rng.randrange(len(parts) - 1)
        parts[i], parts[i + 1] = parts[i + 1], parts[i]
    chinese = _CJK.search(text) is not None
    chars = list(("" if chinese else " ").join(parts))
    for _ in range(max(1, len(chars) // 80)):
        at = rng.randrange(len(chars))
        chars[at] = rng.choice(_TYPO_HAN if chinese else _TYPO_LETTERS)
    return "".join(chars)


@dataclass(frozen=True)
class Item:
    """A document of the set: its file name, text, language and family (the XQuAD paragraph id; None for a
    negative)."""

    name: str
    text: str
    language: str
    family: str | None


def load_corpus(evaldata: Path, language: str) -> dict[str, str]:
    """XQuAD paragraphs of one language by id."""
    path = evaldata / "retrieval" / f"xquad-{language}" / "corpus.jsonl"
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line)
    return {row["_id"]: row["text"] for row in rows}


def build_set(evaldata: Path, seed: int = 22, articles: int = 48, family: int = 0) -> list[Item]:
    """The documents of the set (see the module's description); ``family`` is the paragraph of each article that
    gets copies and translations (0: the set the thresholds were chosen on; 2: a held-out one, the negatives then
    being paragraphs 0 and 1 in English and 3 in Chinese)."""
    en, zh = load_corpus(evaldata, "en"), load_corpus(evaldata, "zh")
    rng = random.Random(seed)  # noqa: S311 - reproducible edits, not secrets
    negatives = [(p, lang) for p, lang in ((0, "en"), (1, "en"), (2, "en"), (3, "zh")) if p != family][:3]
    items: list[Item] = []
    for article in range(articles):
        first = f"xq-{article:02d}-{family:02d}"
        role = (article + family) % 4
        if role in (0, 1, 3):
            items.append(Item(f"en-{first}.txt", en[first], "en", first))
        if role in (0, 2, 3):
            items.append(Item(f"zh-{first}.txt", zh[first], "zh", first))
        if role in (1, 3):
            items.append(Item(f"en-{first}-edited.txt", edited_copy(en[first], rng), "en", first))
        if role == 2:
            items.append(Item(f"zh-{first}-edited.txt", edited_copy(zh[first], rng), "zh", first))
        for paragraph, language in negatives:
            pid = f"xq-{article:02d}-{paragraph:02d}"
            items.append(Item(f"{language}-{pid}.txt", (en if language == "en" else zh)[pid], language, None))
    return items


@dataclass(frozen=True)
class Scores:
    """Precision and recall of one kind of pair at one level and threshold."""

    level: str
    threshold: float
    pairs: str
    true: int
    found: int
    right: int
    seconds: float

    @property
    def precision(self) -> float:
        """Right of found (1.0 when nothing was found)."""
        return self.right / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        """True pairs found."""
        return self.right / self.true if self.true else 1.0


def _true_pairs(items: list[Item], cross: bool) -> set[frozenset[str]]:
    families: dict[str, list[Item]] = {}
    for item in items:
        if item.family:
            families.setdefault(item.family, []).append(item)
    return {
        frozenset((a.name, b.name))
        for members in families.values()
        for a, b in combinations(members, 2)
        if (a.language != b.language) == cross
    }


def score_set(zhiku: Zhiku, items: list[Item], kb_name: str, thresholds: list[float]) -> list[Scores]:
    """Precision and recall of copies and translations, documents and chunks, at each threshold."""
    from zhiku.knowledge.bases import get_knowledge_base

    kb = get_knowledge_base(zhiku, kb_name)
    by_name = {item.name: item for item in items}
    results: list[Scores] = []
    for threshold in thresholds:
        for level in ("documents", "chunks"):
            started = time.perf_counter()
            groups = find_duplicates(zhiku, kb, level=level, threshold=threshold)
            seconds = time.perf_counter() - started
            found: set[frozenset[str]] = set()
            for group in groups:
                for pair in group.pairs:
                    a, b = group.members[pair.left].filename, group.members[pair.right].filename
                    if a != b:
                        found.add(frozenset((a, b)))
            if level == "documents":  # every pair of a reported group is reported as one text
                found = {
                    frozenset((a.filename, b.filename))
                    for group in groups
                    for a, b in combinations(group.members, 2)
                    if a.filename != b.filename
                }
            for cross, label in ((False, "copies (monolingual)"), (True, "translations (en-zh)")):
                true = _true_pairs(items, cross)
                mine = {p for p in found if (len({by_name[n].language for n in p}) == 2) == cross}
                right = mine & true
                results.append(Scores(level, threshold, label, len(true), len(mine), len(right), seconds))
    return results


def ingest_set(zhiku: Zhiku, items: list[Item], folder: Path, kb_name: str, chunk_tokens: int) -> float:
    """Write the set's files and ingest them into a new knowledge base; the seconds it took."""
    kb = create_knowledge_base(zhiku, kb_name, chunk_tokens=chunk_tokens, chunk_overlap=0)
    started = time.perf_counter()
    with job_runner(zhiku, poll_interval=0.05) as runner:
        jobs = []
        for item in items:
            path = folder / item.name
            path.write_text(item.text, encoding="utf-8")
            registration = register_file(zhiku, kb, path)
            if registration.job_id:
                jobs.append(registration.job_id)
        runner.wait_for(jobs, timeout=3600)
    return time.perf_counter() - started


@dataclass(frozen=True)
class Timing:
    """Seconds to group ``chunks`` vectors of ``dimension`` (best of the runs)."""

    chunks: int
    dimension: int
    coarse: str
    pairs: int
    groups: int
    seconds: float


def time_synthetic(chunks: int = 10_000, dimension: int = 512, matryoshka: bool = False, runs: int = 3) -> Timing:
    """Group ``chunks`` synthetic unit vectors: half random, half noisy copies of those (cosine about 0.95)."""
    rng = np.random.default_rng(22)
    base = rng.standard_normal((chunks // 2, dimension)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    noise = rng.standard_normal(base.shape).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    vectors = np.vstack([base, base + 0.33 * noise])
    best = float("inf")
    pairs: list[object] = []
    groups: list[object] = []
    for _ in range(runs):
        started = time.perf_counter()
        found = near_duplicate_pairs(vectors, threshold=0.85, matryoshka=matryoshka)
        grouped = group_pairs(found)
        best = min(best, time.perf_counter() - started)
        pairs, groups = list(found), list(grouped)
    coarse = "256 prefix" if matryoshka and dimension >= 512 else "full vectors"
    return Timing(chunks, dimension, coarse, len(pairs), len(groups), best)


@dataclass(frozen=True)
class SetRun:
    """One set, ingested and scored."""

    name: str
    items: list[Item]
    seconds: float
    scores: list[Scores]


@dataclass(frozen=True)
class KbTiming:
    """Seconds of :func:`find_duplicates` on a stored knowledge base of ``chunks`` chunks in ``documents``
    documents (database reads, candidates, shingles of the candidates' texts, groups)."""

    chunks: int
    documents: int
    groups: int
    seconds: float


def time_stored_kb(evaldata: Path, settings: Settings, chunks: int = 10_000, per_document: int = 10) -> KbTiming:
    """Time chunk-level :func:`find_duplicates` on a knowledge base of ``chunks`` stored chunks (SQLite): rows and
    embedding-cache entries written directly, texts from XQuAD, vectors synthetic (half random, half noisy copies of
    another document's chunk with an edited copy of its text), so no model runs."""
    import hashlib

    from sqlalchemy import insert

    from zhiku.pipeline.embed import model_key
    from zhiku.storage.models import Chunk, Document, DocumentStatus, EmbeddingCacheEntry

    texts = list(load_corpus(evaldata, "en").values()) + list(load_corpus(evaldata, "zh").values())
    rng = np.random.default_rng(22)
    edits = random.Random(22)  # noqa: S311 - reproducible edits
    with tempfile.TemporaryDirectory(prefix="zhiku-dedup-kb-") as scratch:
        zhiku = Zhiku(settings.model_copy(update={"home": Path(scratch) / "home", "database_url": None}))
        try:
            kb = create_knowledge_base(zhiku, "timing")
            half = chunks // 2
            vectors = rng.standard_normal((chunks, kb.dimension)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            bodies = [f"{texts[i % len(texts)]} [{i}]" for i in range(half)]
            for i in range(half, chunks):  # a copy of chunk i - half, in another document
                vectors[i] = vectors[i - half] + 0.33 * vectors[i]
                bodies.append(edited_copy(bodies[i - half], edits))
            documents = [
                {"id": f"{d:032x}", "kb_id": kb.id, "source": f"upload:doc-{d}.txt", "filename": f"doc-{d}.txt",
                 "content_hash": f"{d:064x}", "size_bytes": 1, "status": DocumentStatus.ready, "version": 1,
                 "chunk_count": per_document, "warnings": [], "meta": {}, "ocr_pages": {}}
                for d in range(chunks // per_document)
            ]  # fmt: skip
            rows, entries = [], []
            for i, body in enumerate(bodies):
                digest = hashlib.sha256(body.encode()).hexdigest()
                rows.append({"id": f"c{i}", "document_id": f"{i // per_document:032x}", "version": 1,
                             "ordinal": i % per_document, "text": body, "tokens": 64, "page_start": 1,
                             "page_end": 1, "char_start": 0, "char_end": len(body), "heading_path": [],
                             "context": "", "text_hash": digest})  # fmt: skip
                entries.append({"model_key": model_key(kb), "text_hash": digest, "vector": vectors[i].tobytes()})
            with zhiku.db.session() as session:
                session.execute(insert(Document), documents)
                session.execute(insert(Chunk.metadata.tables[Chunk.__tablename__]), rows)
                session.execute(insert(EmbeddingCacheEntry), entries)
            started = time.perf_counter()
            groups = find_duplicates(zhiku, kb, level="chunks")
            seconds = time.perf_counter() - started
        finally:
            zhiku.close()
    return KbTiming(chunks, len(documents), len(groups), seconds)


def bench_duplicates(
    evaldata: Path, settings: Settings, thresholds: list[float], chunk_tokens: int = 64
) -> tuple[list[SetRun], list[Timing], KbTiming]:
    """Build the tuning set and a held-out one, ingest each in a scratch home, score them at each threshold, and
    time 10,000 chunks."""
    runs: list[SetRun] = []
    sets = [("tuning (paragraph 0 families, seed 22)", build_set(evaldata)),
            ("held-out (paragraph 2 families, seed 23)", build_set(evaldata, seed=23, family=2))]  # fmt: skip
    for name, items in sets:
        with tempfile.TemporaryDirectory(prefix="zhiku-dedup-") as scratch:
            root = Path(scratch)
            (root / "in").mkdir()
            zhiku = Zhiku(settings.model_copy(update={"home": root / "home", "database_url": None}))
            try:
                seconds = ingest_set(zhiku, items, root / "in", "dedup-bench", chunk_tokens)
                runs.append(SetRun(name, items, seconds, score_set(zhiku, items, "dedup-bench", thresholds)))
            finally:
                zhiku.close()
    timings = [time_synthetic(), time_synthetic(dimension=1024, matryoshka=True)]
    return runs, timings, time_stored_kb(evaldata, settings)


def render(runs: list[SetRun], timings: list[Timing], stored: KbTiming) -> str:
    """The Markdown tables of a run."""
    lines = [
        "| set | level | threshold | pairs | true | found | right | precision | recall | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines += [
            f"| {run.name.split(' ')[0]} | {s.level} | {s.threshold:.2f} | {s.pairs} | {s.true} | {s.found} | "
            f"{s.right} | {s.precision:.3f} | {s.recall:.3f} | {s.seconds:.2f} |"
            for s in run.scores
        ]
    lines += [""]
    lines += [
        f"{run.name}: {len(run.items)} documents ingested in {run.seconds:.1f} s, "
        f"{sum(1 for i in run.items if i.family)} in families, {sum(1 for i in run.items if not i.family)} alone"
        for run in runs
    ]
    lines += ["", "| synthetic chunks | dimension | coarse pass | pairs | groups | seconds |"]
    lines += ["|---|---|---|---|---|---|"]
    lines += [
        f"| {t.chunks:,} | {t.dimension} | {t.coarse} | {t.pairs:,} | {t.groups:,} | {t.seconds:.2f} |" for t in timings
    ]
    lines += [
        "",
        f"A stored knowledge base of {stored.chunks:,} chunks in {stored.documents:,} documents (SQLite; synthetic "
        f'vectors, XQuAD texts): `find_duplicates(level="chunks")` {stored.seconds:.2f} s, {stored.groups:,} groups.',
    ]
    return "\n".join(lines)
