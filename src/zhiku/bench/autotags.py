"""Auto-tagging measured: XQuAD paragraphs (English, Chinese, and both in one knowledge base) ingested through the
real pipeline, tagged zero-shot with six subject labels, scored against the subject of their article.

The labelled set is built here: each of the 48 XQuAD articles is given one of six subjects (:data:`SUBJECTS`, a
judgement made once from the article titles, before measuring). A paragraph is labelled with its article's
subject, so the truth is noisy (a paragraph of "Warsaw" may be about its history); what matters is comparing
methods on the same set. Labels are given in English for both languages, as an owner would.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.knowledge.auto_tags import run_auto_tags, set_labels
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import NewFile, register_files
from zhiku.pipeline.auto_tags import Label, classify
from zhiku.pipeline.tasks import job_runner
from zhiku.storage.models import Document, Job

SUBJECTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "science and technology": (
        "Natural science, mathematics, medicine, engineering, computing and inventions",
        (
            "Nikola_Tesla", "Computational_complexity_theory", "Steam_engine", "Oxygen", "Apollo_program",
            "Ctenophora", "Packet_switching", "Geology", "Immune_system", "Chloroplast", "Prime_number", "Force",
            "Pharmacy", "Construction",
        ),
    ),
    "places": (
        "Cities, regions, countries, rivers and their geography",
        (
            "Warsaw", "Southern_California", "Victoria_(Australia)", "Amazon_rainforest", "Fresno,_California",
            "Newcastle_upon_Tyne", "Jacksonville,_Florida", "Kenya", "Rhine",
        ),
    ),
    "history": (
        "Past events, wars, dynasties, empires and historical figures",
        (
            "Normans", "Martin_Luther", "Huguenot", "Black_Death", "Genghis_Khan", "Yuan_dynasty", "Imperialism",
            "French_and_Indian_War", "1973_oil_crisis",
        ),
    ),
    "politics, law and society": (
        "Government, law, parliaments, economics, religion and social movements",
        (
            "European_Union_law", "Civil_disobedience", "Economic_inequality", "Scottish_Parliament", "Islamism",
            "Intergovernmental_Panel_on_Climate_Change", "United_Methodist_Church",
        ),
    ),
    "education": ("Schools, universities, teachers and teaching",
                  ("Teacher", "Private_school", "Harvard_University", "University_of_Chicago")),
    "media, sport and culture": (
        "Television, broadcasting, sports events, museums and the arts",
        ("Super_Bowl_50", "Sky_(United_Kingdom)", "American_Broadcasting_Company", "Doctor_Who",
         "Victoria_and_Albert_Museum"),
    ),
}  # fmt: skip
"""Subject → (description, XQuAD article titles)."""

SUBJECT_OF = {title: subject for subject, (_, titles) in SUBJECTS.items() for title in titles}


def subject_labels() -> list[Label]:
    """The six subjects as auto-tag labels (names are tags, so case-folded)."""
    return [Label(name, description) for name, (description, _) in SUBJECTS.items()]


def labelled_paragraphs(evaldata: Path, language: str) -> list[tuple[str, str, str]]:
    """(paragraph id, text, subject) of every XQuAD paragraph in ``language`` (``en`` or ``zh``)."""
    rows = []
    with (evaldata / "retrieval" / f"xquad-{language}" / "corpus.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            rows.append((str(row["_id"]), str(row["text"]), SUBJECT_OF[row["title"]]))
    return rows


@dataclass(frozen=True)
class TagScore:
    """Auto-tagging of one corpus: accuracy of the tags given, the share of documents tagged, and the accuracy of
    the most likely label on every document (no minimum confidence)."""

    corpus: str
    documents: int
    accuracy: float
    coverage: float
    accuracy_all: float
    run_seconds: float


def score_corpus(
    zhiku: Zhiku, name: str, paragraphs: list[tuple[str, str, str]], folder: Path, min_confidence: float
) -> TagScore:
    """Ingest ``paragraphs`` into a new knowledge base ``name``, tag them, score the tags."""
    kb = create_knowledge_base(zhiku, name)
    files = []
    for paragraph_id, text, _ in paragraphs:
        path = folder / name / f"{paragraph_id}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        files.append(NewFile(path=path, filename=path.name, source=str(path)))
    truth = {}
    for registration, (_, _, subject) in zip(register_files(zhiku, kb, files), paragraphs, strict=True):
        assert registration.document_id is not None
        truth[registration.document_id] = subject
    with zhiku.db.session() as session:
        jobs = list(session.scalars(select(Job.id).where(Job.status.in_(["queued", "running"]))))
    with job_runner(zhiku, workers=1, poll_interval=0.05) as runner:
        runner.wait_for(jobs, timeout=3600)
    set_labels(zhiku, kb, subject_labels())
    started = time.perf_counter()
    run_auto_tags(zhiku, kb, min_confidence=0.0)  # every document's best label, with its confidence
    seconds = time.perf_counter() - started
    with zhiku.db.session() as session:
        best = {d.id: next(iter(d.auto_tags.items()), ("", 0.0)) for d in session.scalars(select(Document))}
    given = {doc: tag for doc, (tag, confidence) in best.items() if doc in truth and confidence >= min_confidence}
    right = sum(tag == truth[doc] for doc, tag in given.items())
    return TagScore(
        corpus=name,
        documents=len(truth),
        accuracy=right / max(1, len(given)),
        coverage=len(given) / len(truth),
        accuracy_all=sum(best.get(doc, ("", 0.0))[0] == subject for doc, subject in truth.items()) / len(truth),
        run_seconds=seconds,
    )


def classify_seconds(documents: int, labels: int, dimension: int, repeats: int = 5) -> float:
    """Median seconds of :func:`classify` on random unit vectors: the arithmetic of a run over ``documents``."""
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((documents, dimension)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    vectors = rng.standard_normal((labels, dimension)).astype(np.float32)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        classify(matrix, vectors)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_autotags(evaldata: Path, log: Callable[[str], object]) -> tuple[list[TagScore], float]:
    """Score en, zh and mixed XQuAD; and time the classification of 10,000 documents (a knowledge base of 10,000
    chunks has at most that many)."""
    with tempfile.TemporaryDirectory(prefix="zhiku-bench-autotags-") as tmp:
        folder = Path(tmp)
        zhiku = Zhiku(Settings(home=folder / "home"))
        try:
            english = labelled_paragraphs(evaldata, "en")
            chinese = labelled_paragraphs(evaldata, "zh")
            mixed = [(f"en-{i}", t, s) for i, t, s in english] + [(f"zh-{i}", t, s) for i, t, s in chinese]
            scores = []
            for name, rows in (("xquad-en", english), ("xquad-zh", chinese), ("xquad-en+zh", mixed)):
                log(f"{name}: {len(rows)} paragraphs")
                scores.append(score_corpus(zhiku, name, rows, folder, zhiku.settings.auto_tag_min_confidence))
        finally:
            zhiku.close()
    return scores, classify_seconds(10_000, len(SUBJECTS), 512)


def markdown_table(scores: list[TagScore], seconds_10k: float) -> list[str]:
    """The results as Markdown table lines."""
    lines = [
        "| corpus | documents | tagged (coverage) | accuracy of the tags | accuracy, best label on all | run (s) |",
        "|---|---|---|---|---|---|",
    ]
    for s in scores:
        lines.append(
            f"| {s.corpus} | {s.documents} | {s.coverage:.2f} | {s.accuracy:.3f} | {s.accuracy_all:.3f} | "
            f"{s.run_seconds:.2f} |"
        )
    lines.append(f"| 10,000 documents (random 512-d vectors, classification only) | 10000 | | | | {seconds_10k:.2f} |")
    return lines
