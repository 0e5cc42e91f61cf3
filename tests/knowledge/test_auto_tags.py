"""Auto-tags on the real stack (default multilingual model, SQLite or PostgreSQL, Qdrant Edge or pgvector): XQuAD
paragraphs of three subjects in English and Chinese, tagged zero-shot with English labels; at ingestion, on
demand, beside tags people gave, and found by the ``tag=`` search filter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from tests.knowledge.helpers import run_queued_jobs
from zhiku.bench.autotags import SUBJECTS, labelled_paragraphs
from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.errors import InvalidInputError
from zhiku.knowledge.auto_tags import get_labels, run_auto_tags, set_labels
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import get_document, label_document, register_file
from zhiku.pipeline.auto_tags import Label, classify
from zhiku.search.filters import parse_filters
from zhiku.search.options import SearchOptions
from zhiku.search.retrieve import search
from zhiku.storage.models import Document

CHOSEN = ("education", "history", "science and technology")
PER_ARTICLE = 2
ARTICLES_PER_SUBJECT = 4


def corpus(evaldata: Path) -> list[tuple[str, str, str]]:
    """(name, text, subject): the first paragraphs of the first four articles of each chosen subject, en and zh."""
    rows = []
    for language in ("en", "zh"):
        taken: dict[str, int] = {}  # paragraphs taken per article
        articles: dict[str, set[str]] = {}  # articles taken per subject
        for paragraph_id, text, subject in labelled_paragraphs(evaldata, language):
            article = paragraph_id[:5]
            chosen = articles.setdefault(subject, set())
            if subject not in CHOSEN or taken.get(article, 0) >= PER_ARTICLE:
                continue
            if article not in chosen and len(chosen) >= ARTICLES_PER_SUBJECT:
                continue
            chosen.add(article)
            taken[article] = taken.get(article, 0) + 1
            rows.append((f"{language}-{paragraph_id}", text, subject))
    return rows


def labels() -> list[Label]:
    return [Label(name, SUBJECTS[name][0]) for name in CHOSEN]


def test_documents_are_tagged_zero_shot_at_ingestion_and_on_demand(
    zhiku: Zhiku, evaldata: Path, tmp_path: Path
) -> None:
    kb = create_knowledge_base(zhiku, "xquad")
    assert set_labels(zhiku, kb, labels()) == labels()
    rows = corpus(evaldata)
    truth: dict[str, str] = {}
    for name, text, subject in rows:
        path = tmp_path / "in" / f"{name}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        registration = register_file(zhiku, kb, path)
        assert registration.document_id is not None
        truth[registration.document_id] = subject
    run_queued_jobs(zhiku)  # tagged as they are ingested

    with zhiku.db.session() as session:
        documents = {d.id: d for d in session.scalars(select(Document).where(Document.kb_id == kb.id))}
    tagged = {doc_id: d.auto_tags for doc_id, d in documents.items() if d.auto_tags}
    assert all(len(tags) == 1 and 0.5 <= next(iter(tags.values())) <= 1.0 for tags in tagged.values())
    right = sum(next(iter(tags)) == truth[doc_id] for doc_id, tags in tagged.items())
    # measured with the default model: most paragraphs are tagged, and far more right than chance (1/3)
    assert len(tagged) >= 0.6 * len(truth), (len(tagged), len(truth))
    assert right >= 0.75 * len(tagged), (right, len(tagged))
    for language in ("en", "zh"):  # both languages, with English labels
        names = {d.filename.split("-")[0] for doc_id, d in documents.items() if doc_id in tagged}
        assert language in names

    # a person's tag stays through a run; an auto-tag a person re-adds becomes theirs
    some_id = next(iter(tagged))
    auto = next(iter(tagged[some_id]))
    label_document(zhiku, get_document(zhiku, kb, some_id), add_tags=["reviewed", auto])
    everything = run_auto_tags(zhiku, kb, min_confidence=0.0)
    assert everything.documents == everything.tagged == len(truth)
    assert sum(everything.by_label.values()) == len(truth)
    document = get_document(zhiku, kb, some_id)
    assert {"reviewed", auto} <= set(document.tags)
    assert "reviewed" not in document.auto_tags
    assert auto not in document.auto_tags  # a person's tag now, not replaced
    assert all(len(get_document(zhiku, kb, doc_id).tags) >= 1 for doc_id in truth)

    # the tag filter finds auto-tagged documents
    history = [doc_id for doc_id in truth if "history" in get_document(zhiku, kb, doc_id).auto_tags]
    assert history
    hits = search(zhiku, kb, "war", SearchOptions(top_k=50, filter=parse_filters(["tag=history"])))
    assert hits
    assert {hit.document_id for hit in hits} <= {d for d in truth if "history" in get_document(zhiku, kb, d).tags}

    # stricter: fewer tags; labels removed: the next run removes auto-tags, people's stay
    strict = run_auto_tags(zhiku, kb, min_confidence=0.99)
    assert strict.tagged < everything.tagged
    set_labels(zhiku, kb, [])
    assert get_labels(zhiku, kb) == []
    assert run_auto_tags(zhiku, kb).tagged == 0
    assert get_document(zhiku, kb, some_id).tags == sorted({"reviewed", auto})


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ([Label("a", ""), Label("A ", "")], "given twice"),
        ([Label("", "")], "invalid tag"),
        ([Label("x" * 101, "")], "invalid tag"),
        ([Label("ok", "d" * 1001)], "at most 1000"),
        ([Label("ok", "bell\x07")], "printable"),
        ([Label("tab\there", "")], "invalid tag"),
        ([Label(f"l{i}", "") for i in range(101)], "at most 100 labels"),
    ],
)
def test_bad_labels_are_refused(tmp_path: Path, given: list[Label], why: str) -> None:
    zhiku = Zhiku(Settings(home=tmp_path / "home"))
    try:
        kb = create_knowledge_base(zhiku, "kb")
        set_labels(zhiku, kb, [Label("kept", "")])
        with pytest.raises(InvalidInputError, match=why):
            set_labels(zhiku, kb, given)
        assert get_labels(zhiku, kb) == [Label("kept", "")]  # nothing changed
    finally:
        zhiku.close()


def test_classify_learns_the_labels_prototypes() -> None:
    """Two tight groups of documents; the label vectors sit between them, nearer their own group: every document
    goes to its group's label, with more confidence after the prototype round than from the labels alone."""
    rng = np.random.default_rng(1)
    centres = np.eye(2, 16, dtype=np.float32)
    documents = np.concatenate([centres[i] + 0.05 * rng.standard_normal((20, 16)) for i in range(2)])
    documents /= np.linalg.norm(documents, axis=1, keepdims=True)
    labels = np.stack([0.6 * centres[0] + 0.4 * centres[1], 0.4 * centres[0] + 0.6 * centres[1]])
    chosen, confidence = classify(documents.astype(np.float32), labels.astype(np.float32))
    assert chosen.tolist() == [0] * 20 + [1] * 20
    assert confidence.min() > 0.9
    empty_choice, empty_confidence = classify(np.zeros((0, 16), np.float32), labels)
    assert len(empty_choice) == len(empty_confidence) == 0
