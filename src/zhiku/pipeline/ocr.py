"""The OCR stage of ingestion: read the scanned pages of a PDF (pages without a text layer) page by page.

Pages are read in the OCR child process (:attr:`zhiku.core.Zhiku.ocr`: its own memory and time budget, one page at
a time), and each page's result is stored at once (table ``ocr_pages``, by file content hash), so that:

- a job interrupted in the middle of a long scan (a crash, a restart, a cancel) resumes at the next page;
- a job gives the queue a turn: when other jobs are waiting, it stops after ``ocr_pages_per_turn`` pages and is
  queued again (:class:`~zhiku.jobs.runner.JobDeferredError`, which uses up no attempt), so a 200-page scan does
  not hold the other documents back;
- the same file uploaded again, to another knowledge base or as a new version, is not read twice; the document
  viewer shows the OCR text from the stored results (:mod:`zhiku.knowledge.pages`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sqlalchemy import func, select

from zhiku.core import Zhiku
from zhiku.documents.parsers.pdf import needs_ocr_message, with_ocr_text
from zhiku.documents.types import ParsedDocument
from zhiku.errors import DocumentError, EmptyDocumentError, ModelLoadError
from zhiku.jobs.runner import JobDeferredError
from zhiku.storage.models import Job, JobStatus, utcnow
from zhiku.storage.ocr_pages import PageResult, store_ocr_page, stored_ocr

log = logging.getLogger(__name__)

TURN_DELAY_SECONDS = 0.5
"""How long a job that gave the queue a turn waits before it may be taken again."""


def read_scanned_pages(
    zhiku: Zhiku,
    job_id: str,
    blob: Path,
    filename: str,
    content_hash: str,
    parsed: ParsedDocument,
    report: Callable[[int, int], bool],
) -> ParsedDocument:
    """``parsed`` with its scanned pages read by OCR (when OCR is on), reading the pages not stored yet.

    ``report(done, total)`` is called before each page with the pages read so far; it returns true when the job
    should stop (it was cancelled), which ends the page being read.

    Raises:
        JobDeferredError: other jobs are waiting and this job read its turn of pages; it continues when queued
            again, from the stored pages.
        EmptyDocumentError: no page has text, even after OCR (or OCR is off or unavailable).
        ParseInterruptedError: ``report`` asked to stop.
    """
    needed = list(parsed.pages_needing_ocr)
    if not needed:
        return parsed
    settings = zhiku.settings
    if not settings.ocr_enabled:
        return _without_ocr(parsed, filename)
    skipped = needed[settings.ocr_max_pages :]
    if skipped:
        needed = needed[: settings.ocr_max_pages]
        parsed = replace(
            parsed,
            warnings=[
                *parsed.warnings,
                f"{len(skipped)} scanned page(s) from page {skipped[0]} on were not read by OCR: over the "
                f"{settings.ocr_max_pages} pages of ZHIKU_OCR_MAX_PAGES",
            ],
        )
    results = {page: result for page, result in stored_ocr(zhiku.db, content_hash).items() if page in needed}
    missing = [page for page in needed if page not in results]
    try:
        _read_pages(zhiku, job_id, blob, filename, content_hash, needed, missing, results, report)
    except ModelLoadError as exc:  # OCR is not installed: the pages stay unread, as with OCR off
        log.warning("OCR is unavailable, %s is indexed without its scanned pages: %s", filename, exc.message)
        return _without_ocr(parsed, filename)
    # the OCR models hold about 1 GiB: not kept once the scan is read (but kept while it only gives others a turn)
    zhiku.ocr.end_idle()
    report(len(results), len(needed))
    document = with_ocr_text(parsed, results)
    zhiku.parsers.limits.check_document(document, filename, paged=True)
    if not document.text.strip():
        raise EmptyDocumentError(f"{filename} contains no text: its {len(needed)} scanned page(s) yielded none by OCR")
    return document


def _read_pages(
    zhiku: Zhiku,
    job_id: str,
    blob: Path,
    filename: str,
    content_hash: str,
    needed: list[int],
    missing: list[int],
    results: dict[int, PageResult],
    report: Callable[[int, int], bool],
) -> None:
    """Read the ``missing`` pages into ``results`` (and the database), giving waiting jobs a turn."""
    settings = zhiku.settings
    for read_now, page in enumerate(missing):
        if read_now >= settings.ocr_pages_per_turn and _others_waiting(zhiku, job_id):
            raise JobDeferredError(
                f"read {len(results)} of {len(needed)} scanned pages with OCR; giving other jobs a turn",
                delay=TURN_DELAY_SECONDS,
            )
        try:
            result = zhiku.ocr.ocr(
                blob, filename, page, settings.ocr_dpi, should_stop=lambda: report(len(results), len(needed))
            )
            outcome: PageResult = (result.text, result.confidence, None)
        except DocumentError as exc:  # this page is too large, too slow or damaged: the others are still read
            outcome = ("", 0.0, exc.message)
        store_ocr_page(zhiku.db, content_hash, page, outcome)
        results[page] = outcome


def _without_ocr(parsed: ParsedDocument, filename: str) -> ParsedDocument:
    """``parsed`` as it is (its scanned pages left out, with their warnings); an error when that leaves nothing."""
    if not parsed.text.strip():
        raise EmptyDocumentError(needs_ocr_message(filename, len(parsed.pages)))
    return parsed


def _others_waiting(zhiku: Zhiku, job_id: str) -> bool:
    """Whether another job is queued and runnable now (then a long OCR job gives it a turn)."""
    with zhiku.db.session() as session:
        waiting = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.status == JobStatus.queued, Job.run_after <= utcnow(), Job.id != job_id)
        )
    return bool(waiting)
