"""OCR of scanned PDF pages during ingestion, on the real stack: RapidOCR in the OCR process, SQLite or PostgreSQL,
Qdrant Edge and the default model. A page costs a few seconds of OCR, so the scans used here are short:
``multipage.pdf`` (six small pages: 1-3, 5 and 6 are scans, page 4 has a text layer) and ``linn.pdf`` (one page).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.jobs.runner import cancel_job
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import register_file
from zhiku.knowledge.pages import document_page
from zhiku.pipeline.tasks import job_runner
from zhiku.search.options import SearchOptions
from zhiku.search.rag import cite, retrieve_sources
from zhiku.search.retrieve import search
from zhiku.storage.models import Document, Job, OcrPage
from zhiku.storage.ocr_pages import store_ocr_page

SCANNED = [1, 2, 3, 5, 6]


@pytest.fixture
def multipage(evaldata: Path) -> Path:
    return evaldata / "pdf" / "ocrmypdf" / "multipage.pdf"


def open_zhiku(tmp_path: Path, **settings: Any) -> Zhiku:
    return Zhiku(Settings(home=tmp_path / "home", job_retry_backoff=0.05, **settings))


@pytest.fixture
def zhiku(tmp_path: Path) -> Iterator[Zhiku]:
    app = open_zhiku(tmp_path, database_url=f"sqlite:///{tmp_path / 'zhiku.db'}", ocr_pages_per_turn=1)
    yield app
    app.close()


def run_jobs(zhiku: Zhiku, workers: int = 1) -> None:
    with zhiku.db.session() as session:
        ids = list(session.scalars(select(Job.id).where(Job.status.in_(["queued", "running"]))))
    with job_runner(zhiku, workers=workers, poll_interval=0.05) as runner:
        runner.wait_for(ids, timeout=600)


def document_of(zhiku: Zhiku, document_id: str | None) -> Document:
    assert document_id is not None
    with zhiku.db.session() as session:
        return session.get_one(Document, document_id)


def test_scanned_pages_are_searchable_and_cited_with_their_page_and_ocr_confidence(
    zhiku: Zhiku, multipage: Path, tmp_path: Path
) -> None:
    """The scan's pages are read by OCR, searchable, and cited with their page number and OCR confidence; a
    document queued after the scan (in another knowledge base, so not in its group) is not held back by it: with
    one worker and a turn of one page, it is done before the scan."""
    scans = create_knowledge_base(zhiku, "scans", chunk_tokens=96, chunk_overlap=0)
    notes = create_knowledge_base(zhiku, "notes")
    scan = register_file(zhiku, scans, multipage)
    note = tmp_path / "note.md"
    note.write_text("# Note\n\nThe meeting moved to Thursday.\n", encoding="utf-8")
    other = register_file(zhiku, notes, note)
    run_jobs(zhiku, workers=1)

    with zhiku.db.session() as session:
        scan_job = session.get_one(Job, scan.job_id)
        note_job = session.get_one(Job, other.job_id)
        assert scan_job.status == note_job.status == "succeeded", (scan_job.error, note_job.error)
        assert note_job.finished_at is not None
        assert scan_job.finished_at is not None
        assert note_job.finished_at < scan_job.finished_at  # the scan gave it a turn
        assert scan_job.payload["ocr_pages"] == scan_job.payload["ocr_pages_done"] == len(SCANNED)
        stored = sorted(session.scalars(select(OcrPage.page)))
    assert stored == SCANNED  # each scanned page read and kept once; the text layer of page 4 is not OCR'd

    document = document_of(zhiku, scan.document_id)
    assert document.status == "ready"
    assert sorted(int(page) for page in document.ocr_pages) == SCANNED
    assert all(0.8 < confidence <= 1 for confidence in document.ocr_pages.values())
    assert not any("needs OCR" in warning for warning in document.warnings), document.warnings

    hits = search(zhiku, scans, "a king with a large jaw and a queen with a fair face on the throne")
    assert hits[0].page_start in (5, 6)
    assert "large jaw" in hits[0].text
    assert hits[0].ocr_confidence is not None
    assert hits[0].ocr_confidence > 0.8
    hits = search(zhiku, scans, "Miss Watson tip-toeing along a path amongst the trees", SearchOptions(top_k=3))
    assert hits[0].page_start == 1
    assert hits[0].ocr_confidence is not None

    sources = retrieve_sources(zhiku, [scans], "the throne of England", SearchOptions(top_k=1))
    assert sources[0].page_start in (5, 6)
    assert cite(sources[0]).endswith(f"(OCR, confidence {sources[0].ocr_confidence:.2f})")

    page = document_page(zhiku, document, 5)
    assert "throne of England" in page.text
    assert page.ocr_confidence is not None
    text_page = document_page(zhiku, document, 4)
    assert "Percentage" in text_page.text
    assert text_page.ocr_confidence is None


@pytest.mark.parametrize("storage", ["sqlite", "postgresql"], indirect=True)
def test_a_scan_resumes_from_the_pages_already_read(tmp_path: Path, multipage: Path, storage: dict[str, Any]) -> None:
    """Pages whose OCR result was kept (by a job that was interrupted, or gave others a turn) are not read again:
    the job reads only the rest, and the document holds the kept text."""
    with open_zhiku(tmp_path, **storage) as zhiku:
        kb = create_knowledge_base(zhiku, "scans")
        scan = register_file(zhiku, kb, multipage)
        document = document_of(zhiku, scan.document_id)
        for page in (1, 2, 3, 5):  # as an interrupted job left them
            store_ocr_page(zhiku.db, document.content_hash, page, (f"kept result of page {page}", 0.5, None))
        run_jobs(zhiku)
        document = document_of(zhiku, scan.document_id)
        assert document.status == "ready", document.error
        assert document.ocr_pages == {"1": 0.5, "2": 0.5, "3": 0.5, "5": 0.5, "6": pytest.approx(0.99, abs=0.05)}
        assert document_page(zhiku, document, 2).text == "kept result of page 2"
        assert "throne of England" in document_page(zhiku, document, 6).text
        hits = search(zhiku, kb, "kept result of page 3")
        assert hits[0].page_start <= 3 <= hits[0].page_end
        assert hits[0].ocr_confidence == 0.5


def test_ocr_off_leaves_scanned_pages_out_with_a_reason(tmp_path: Path, multipage: Path, evaldata: Path) -> None:
    with open_zhiku(tmp_path, database_url=f"sqlite:///{tmp_path / 'z.db'}", ocr_enabled=False) as zhiku:
        kb = create_knowledge_base(zhiku, "scans")
        partly = register_file(zhiku, kb, multipage)
        whole = register_file(zhiku, kb, evaldata / "pdf" / "ocrmypdf" / "linn.pdf")
        run_jobs(zhiku)
        document = document_of(zhiku, partly.document_id)
        assert document.status == "ready"
        assert document.ocr_pages == {}
        assert "page 1 has no text layer (needs OCR)" in document.warnings
        assert search(zhiku, kb, "Percentage support oppose")[0].page_start == 4
        failed = document_of(zhiku, whole.document_id)
        assert failed.status == "failed"
        assert failed.error is not None
        assert "needs OCR, which is off (ZHIKU_OCR_ENABLED)" in failed.error


def test_cancelling_a_job_stops_its_ocr(zhiku: Zhiku, evaldata: Path) -> None:
    kb = create_knowledge_base(zhiku, "scans")
    scan = register_file(zhiku, kb, evaldata / "pdf" / "ocrmypdf" / "linn.pdf")
    assert scan.job_id is not None
    with job_runner(zhiku, workers=1, poll_interval=0.05) as runner:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with zhiku.db.session() as session:
                if session.get_one(Job, scan.job_id).stage == "ocr":
                    break
            time.sleep(0.05)
        cancel_job(zhiku, scan.job_id)
        runner.wait_for([scan.job_id], timeout=120)
    with zhiku.db.session() as session:
        assert session.get_one(Job, scan.job_id).status == "cancelled"
        # the page being read (about 8 s of OCR) was ended, not read to its end and kept
        assert list(session.scalars(select(OcrPage))) == []


def test_a_scan_over_the_page_limit_is_read_up_to_it(tmp_path: Path, multipage: Path) -> None:
    with open_zhiku(tmp_path, database_url=f"sqlite:///{tmp_path / 'z.db'}", ocr_max_pages=1) as zhiku:
        kb = create_knowledge_base(zhiku, "scans")
        scan = register_file(zhiku, kb, multipage)
        run_jobs(zhiku)
        document = document_of(zhiku, scan.document_id)
        assert document.status == "ready", document.error
        assert list(document.ocr_pages) == ["1"]
        assert "4 scanned page(s) from page 2 on were not read by OCR: over the 1 pages of ZHIKU_OCR_MAX_PAGES" in (
            document.warnings
        )


def test_a_chinese_scan_answers_a_chinese_question(tmp_path: Path, evaldata: Path) -> None:
    """Page 23 of the ctex FAQ (the answer to "DVI 文件里为什么不能显示 EPS 图片"), rendered to an image-only PDF
    between two blank scanned pages, is found by the question on its page 2."""
    from PIL import Image

    from zhiku.documents.parsers.pdf import render_page

    answer = render_page(evaldata / "pdf" / "ctex-kit" / "ctex-faq.pdf", "ctex-faq.pdf", 23, 200)
    blank = Image.new("RGB", answer.size, "white")
    scan = tmp_path / "faq-scan.pdf"
    blank.save(scan, resolution=200.0, save_all=True, append_images=[answer, blank])
    with open_zhiku(tmp_path, database_url=f"sqlite:///{tmp_path / 'z.db'}") as zhiku:
        kb = create_knowledge_base(zhiku, "faq")
        registered = register_file(zhiku, kb, scan)
        run_jobs(zhiku)
        document = document_of(zhiku, registered.document_id)
        assert document.status == "ready", document.error
        assert list(document.ocr_pages) == ["2"]  # the blank pages have no text
        hits = search(zhiku, kb, "DVI 文件里为什么不能显示 EPS 图片")
        assert hits[0].page_start == 2
        assert "EPS" in hits[0].text
        assert hits[0].ocr_confidence is not None
        assert hits[0].ocr_confidence > 0.8
