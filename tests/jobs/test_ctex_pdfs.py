"""Real Chinese PDFs (ctex-kit manuals): page numbers of every chunk, and a known sentence on a known page."""

from __future__ import annotations

from pathlib import Path

import pypdfium2  # type: ignore[import-untyped, unused-ignore]
from sqlalchemy import select

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.documents.parsers import parse_file
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import register_file
from zhiku.pipeline.tasks import job_runner
from zhiku.storage.models import Chunk, Document

KNOWN_PAGE = 10  # ctex-faq.pdf, page 10 (1-based): the question about LaTeX editors
KNOWN_SENTENCE = "在 Windows 中对 LATEX 支持最好的是 WinEdt"


def test_ctex_kit_chunks_carry_correct_pages(evaldata: Path, tmp_path: Path) -> None:
    folder = evaldata / "pdf" / "ctex-kit"
    # independent check that the sentence really is on that page
    with_pdfium = pypdfium2.PdfDocument(str(folder / "ctex-faq.pdf"))
    assert KNOWN_SENTENCE in with_pdfium[KNOWN_PAGE - 1].get_textpage().get_text_range()
    with_pdfium.close()

    zhiku = Zhiku(Settings(home=tmp_path / "home"))
    try:
        kb = create_knowledge_base(zhiku, "ctex", chunk_tokens=128, chunk_overlap=16)
        jobs = [register_file(zhiku, kb, pdf).job_id for pdf in sorted(folder.glob("*.pdf"))]
        with job_runner(zhiku) as runner:
            runner.wait_for([j for j in jobs if j], timeout=600)
        with zhiku.db.session() as session:
            documents = list(session.scalars(select(Document)))
            chunks = list(session.scalars(select(Chunk)))
    finally:
        zhiku.close()
    assert len(documents) == 3
    assert {d.status for d in documents} == {"ready"}, [(d.filename, d.error) for d in documents]
    faq = next(d for d in documents if d.filename == "ctex-faq.pdf")
    assert faq.pages == 41
    for document in documents:
        parsed = parse_file(folder / document.filename)
        for chunk in (c for c in chunks if c.document_id == document.id):
            assert parsed.text[chunk.char_start : chunk.char_end] == chunk.text
            assert chunk.page_start == parsed.page_at(chunk.char_start)
            assert chunk.page_end == parsed.page_at(chunk.char_end - 1)
            assert 1 <= chunk.page_start <= chunk.page_end <= (document.pages or 0)
            for page in parsed.pages:  # the chunk's text lies on the pages it claims
                if page.start < chunk.char_end and chunk.char_start < page.end:
                    assert chunk.page_start <= page.number <= chunk.page_end
    containing = [c for c in chunks if c.document_id == faq.id and KNOWN_SENTENCE in c.text]
    assert containing, "the known sentence is not in any chunk"
    assert all(c.page_start <= KNOWN_PAGE <= c.page_end for c in containing)
