"""Near-duplicates: the algorithm on vectors built to have known pairs, and the service on the real stack (the
default multilingual model, the metadata database, Qdrant Edge or pgvector) with XQuAD paragraphs, their Chinese
translations (XQuAD shares paragraph ids across languages) and edited copies."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from zhiku.bench.duplicates import edited_copy, load_corpus
from zhiku.core import Zhiku
from zhiku.errors import InvalidInputError, NotFoundError
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import get_document, register_file
from zhiku.knowledge.duplicates import find_duplicates, keep_one_per_group
from zhiku.pipeline import near_duplicates as nd
from zhiku.pipeline.tasks import job_runner
from zhiku.storage.models import Job

# ---------- the algorithm ----------


def planted(n: int, dimension: int, copies: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """``n`` random unit vectors, the first ``copies`` of them with a noisy copy appended (cosine about 0.95)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, dimension)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    noise = rng.standard_normal((copies, dimension)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    vectors = np.vstack([base, base[:copies] + 0.3 * noise])
    return vectors, {(i, n + i) for i in range(copies)}


@pytest.mark.parametrize("block_cells", [7, 1000, 8_000_000])
def test_blockwise_candidates_equal_the_full_matrix(block_cells: int, monkeypatch: pytest.MonkeyPatch) -> None:
    vectors, _ = planted(300, 32, 40, seed=1)
    unit = nd.unit_rows(vectors)
    full = unit @ unit.T
    expected = {(i, j) for i in range(len(unit)) for j in range(i + 1, len(unit)) if full[i, j] >= 0.3}
    monkeypatch.setattr(nd, "_BLOCK_CELLS", block_cells)
    found = {(i, j): score for i, j, score in nd.candidate_pairs(unit, 0.3)}
    assert set(found) == expected
    for (i, j), score in found.items():
        assert score == pytest.approx(full[i, j], abs=1e-5)


def test_pairs_groups_owners_and_the_matryoshka_coarse_pass() -> None:
    vectors, truth = planted(400, 1024, 30, seed=2)
    full = nd.near_duplicate_pairs(vectors, threshold=0.85)
    assert {(p.left, p.right) for p in full} == truth
    assert all(p.kind == "similar" and p.jaccard is None for p in full)
    assert [p.score for p in full] == sorted((p.score for p in full), reverse=True)
    # a prefix of random vectors is as close as the whole: the coarse pass finds the same pairs
    assert nd.coarse_view(nd.unit_rows(vectors), matryoshka=True) is not None
    assert nd.coarse_view(nd.unit_rows(vectors[:, :300]), matryoshka=True) is None  # too small to cut
    coarse = nd.near_duplicate_pairs(vectors, threshold=0.85, matryoshka=True)
    assert [(p.left, p.right) for p in coarse] == [(p.left, p.right) for p in full]
    assert [p.score for p in coarse] == pytest.approx([p.score for p in full], abs=1e-5)  # confirmed on full vectors
    # pairs of one owner (chunks of one document) are not compared
    owners = [f"d{i}" for i in range(400)] + [f"d{i}" if i % 2 else f"x{i}" for i in range(30)]
    owned = nd.near_duplicate_pairs(vectors, threshold=0.85, owners=owners)
    assert {(p.left, p.right) for p in owned} == {(i, 400 + i) for i in range(0, 30, 2)}
    # three items joined by two pairs are one group
    chain = nd.group_pairs([nd.Pair(0, 1, 0.9, None, "similar"), nd.Pair(1, 5, 0.95, None, "similar"),
                            nd.Pair(7, 8, 0.99, None, "similar")])  # fmt: skip
    assert [g.members for g in chain] == [[0, 1, 5], [7, 8]]
    assert chain[0].score == 0.9
    assert chain[0].best_score(1) == 0.95


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("The Super Bowl was played in Santa Clara.", "latin"),
        ("超级碗在圣克拉拉举行。", "zh"),
        ("スーパーボウルはサンタクララで開催された。", "ja"),
        ("슈퍼볼은 산타클라라에서 열렸다.", "ko"),
        ("第50届超级碗 (Super Bowl 50) 于2016年举行。", "zh"),
        ("An English text quoting 北京 once.", "latin"),
        ("2016 — 50", ""),
    ],
)
def test_script_hints(text: str, hint: str) -> None:
    assert nd.script_hint(text) == hint


def test_kinds_and_thresholds() -> None:
    t = nd.DEFAULT_THRESHOLD
    assert nd.confirm(t - 0.1, ("latin", "zh"), 0.0, t) == "translation"
    assert nd.confirm(t - nd.CROSS_LINGUAL_OFFSET - 0.01, ("latin", "zh"), 0.0, t) is None
    assert nd.confirm(t - 0.05, ("latin", "latin"), 0.6, t) == "copy"  # shared wording confirms a lower cosine
    assert nd.confirm(t - 0.05, ("latin", "latin"), 0.1, t) is None  # ... which alone it does not
    assert nd.confirm(t + 0.01, ("latin", "latin"), 0.1, t) == "similar"
    assert nd.confirm(t + 0.01, None, None, t) == "similar"
    assert nd.confirm(t - 0.01, None, None, t) is None
    english = "Warsaw is the capital and largest city of Poland. It stands on the Vistula River."
    assert nd.jaccard(nd.shingles(english), nd.shingles(english.upper().replace(" ", "  "))) == 1.0
    chinese = "华沙是波兰的首都和最大城市。它位于维斯瓦河畔。"
    assert all(len(s) == 3 for s in nd.shingles(chinese))
    assert nd.jaccard(nd.shingles(chinese), nd.shingles(english)) == 0.0


# ---------- the service, on the real stack ----------

A, B, C = "xq-04-00", "xq-08-00", "xq-11-00"  # a translation family, an English and a Chinese copy family
NEGATIVES = {"en": ["xq-04-01", "xq-04-02", "xq-01-00", "xq-06-00"], "zh": ["xq-04-03", "xq-13-00"]}


def run_all(zhiku: Zhiku, jobs: list[str]) -> None:
    with job_runner(zhiku, workers=1, poll_interval=0.05) as runner:
        runner.wait_for(jobs, timeout=300)


def test_copies_and_translations_found_flagged_at_ingestion_and_kept_one_per_group(
    zhiku: Zhiku, evaldata: Path, tmp_path: Path
) -> None:
    en, zh = load_corpus(evaldata, "en"), load_corpus(evaldata, "zh")
    rng = random.Random(5)  # noqa: S311 - reproducible edits
    files = {
        f"en-{A}.txt": en[A],
        f"en-{A}-edited.txt": edited_copy(en[A], rng),
        f"en-{B}.txt": en[B],
        f"en-{B}-edited.txt": edited_copy(en[B], rng),
        f"zh-{C}.txt": zh[C],
        f"zh-{C}-edited.txt": edited_copy(zh[C], rng),
        **{f"{lang}-{pid}.txt": (en if lang == "en" else zh)[pid] for lang, pids in NEGATIVES.items() for pid in pids},
    }
    kb = create_knowledge_base(zhiku, "dedup", chunk_tokens=64, chunk_overlap=0)
    folder = tmp_path / "in"
    folder.mkdir()
    ids: dict[str, str] = {}
    jobs: dict[str, str] = {}

    def add(name: str, text: str) -> None:
        (folder / name).write_text(text, encoding="utf-8")
        registration = register_file(zhiku, kb, folder / name)
        assert registration.document_id
        assert registration.job_id
        ids[name], jobs[name] = registration.document_id, registration.job_id

    for name, text in files.items():
        add(name, text)
    run_all(zhiku, list(jobs.values()))
    name_of = {document_id: name for name, document_id in ids.items()}

    groups = find_duplicates(zhiku, kb)
    found = sorted(sorted(m.filename for m in g.members) for g in groups)
    assert found == [sorted([f"en-{A}.txt", f"en-{A}-edited.txt"]), sorted([f"en-{B}.txt", f"en-{B}-edited.txt"]),
                     sorted([f"zh-{C}.txt", f"zh-{C}-edited.txt"])]  # fmt: skip
    assert all(g.kinds == ["copy"] for g in groups)
    chinese = next(g for g in groups if g.members[0].filename.startswith("zh-"))
    assert {m.language for m in chinese.members} == {"zh"}
    assert all(g.score >= nd.DEFAULT_THRESHOLD - nd.COPY_SLACK for g in groups)

    # the Chinese translation of A, uploaded now: flagged at ingestion (not refused), then grouped with A
    add(f"zh-{A}.txt", zh[A])
    run_all(zhiku, [jobs[f"zh-{A}.txt"]])
    with zhiku.db.session() as session:
        flagged = session.get_one(Job, jobs[f"zh-{A}.txt"])
        assert flagged.status == "succeeded"
        flags = flagged.payload["near_duplicates"]
        quiet = session.scalars(select(Job).where(Job.id == jobs[f"en-{NEGATIVES['en'][2]}.txt"])).one()
        assert quiet.payload["near_duplicates"] == []
    assert {f["filename"] for f in flags} >= {f"en-{A}.txt"}
    assert {f["filename"] for f in flags} <= {f"en-{A}.txt", f"en-{A}-edited.txt"}
    assert all(f["kind"] == "translation" and f["score"] >= nd.DEFAULT_THRESHOLD - nd.CROSS_LINGUAL_OFFSET
               for f in flags)  # fmt: skip
    document = get_document(zhiku, kb, ids[f"zh-{A}.txt"])
    assert document.status == "ready"
    assert any(str(w).startswith(f"near-duplicate of en-{A}.txt (translation") for w in document.warnings)

    groups = find_duplicates(zhiku, kb)
    family = next(g for g in groups if any(m.filename == f"zh-{A}.txt" for m in g.members))
    assert sorted(m.filename for m in family.members) == sorted([f"en-{A}.txt", f"en-{A}-edited.txt", f"zh-{A}.txt"])
    assert family.kinds == ["copy", "translation"]
    assert next(iter(find_duplicates(zhiku, kb, kinds=["translation"]))).kinds == ["translation"]
    strict = find_duplicates(zhiku, kb, threshold=0.99)  # the offsets stay relative to the threshold
    floors = {"copy": 0.99 - nd.COPY_SLACK, "translation": 0.99 - nd.CROSS_LINGUAL_OFFSET, "similar": 0.99}
    assert all(p.score >= floors[p.kind] - 1e-6 for g in strict for p in g.pairs)
    assert find_duplicates(zhiku, kb, threshold=1.0, kinds=["similar"]) == []

    # chunks: pairs of chunks of different documents, of one family only
    chunk_groups = find_duplicates(zhiku, kb, level="chunks")
    assert chunk_groups
    family_of = {name: name.split("-", 1)[1].removesuffix(".txt").removesuffix("-edited") for name in ids}
    for group in chunk_groups:
        for pair in group.pairs:
            left, right = group.members[pair.left], group.members[pair.right]
            assert left.document_id != right.document_id
            assert family_of[left.filename] == family_of[right.filename], (left.filename, right.filename)
            assert left.chunk_id
            assert left.ordinal is not None
    paired = {frozenset((g.members[p.left].filename, g.members[p.right].filename)) for g in chunk_groups
              for p in g.pairs}  # fmt: skip
    assert frozenset((f"en-{B}.txt", f"en-{B}-edited.txt")) in paired

    # hostile options
    for bad in ({"level": "pages"}, {"threshold": 1.5}, {"threshold": 0.1}, {"threshold": float("nan")},
                {"threshold": True}, {"kinds": ["twin"]}):  # fmt: skip
        with pytest.raises(InvalidInputError) as raised:
            find_duplicates(zhiku, kb, **bad)  # type: ignore[arg-type]
        assert raised.value.param == next(iter(bad)) or raised.value.param == "kinds"
    with pytest.raises(NotFoundError):
        keep_one_per_group(zhiku, kb, keep=[ids[f"en-{NEGATIVES['en'][0]}.txt"]])  # in no group
    with pytest.raises(InvalidInputError, match="two documents of one group"):
        keep_one_per_group(zhiku, kb, keep=[ids[f"en-{B}.txt"], ids[f"en-{B}-edited.txt"]])
    assert len(find_duplicates(zhiku, kb)) == 3  # nothing was deleted by the refused calls

    # keep the Chinese translation: only its group is resolved
    done = keep_one_per_group(zhiku, kb, keep=[ids[f"zh-{A}.txt"]])
    assert [m.filename for m in done.kept] == [f"zh-{A}.txt"]
    assert sorted(m.filename for m in done.deleted) == sorted([f"en-{A}.txt", f"en-{A}-edited.txt"])
    remaining = find_duplicates(zhiku, kb)
    assert sorted(sorted(m.filename for m in g.members) for g in remaining) == [
        sorted([f"en-{B}.txt", f"en-{B}-edited.txt"]), sorted([f"zh-{C}.txt", f"zh-{C}-edited.txt"])]  # fmt: skip
    # every other group keeps its oldest member: the original
    done = keep_one_per_group(zhiku, kb)
    assert sorted(name_of[m.document_id] for m in done.kept) == [f"en-{B}.txt", f"zh-{C}.txt"]
    assert find_duplicates(zhiku, kb) == []
