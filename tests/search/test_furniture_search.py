"""Page furniture out of the index: on the shared ctex-faq.pdf, FAQ questions find their answer page first,
not the table-of-contents line that repeats their title (issue #21)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import register_file
from zhiku.pipeline.tasks import job_runner
from zhiku.search.options import SearchOptions
from zhiku.search.retrieve import search
from zhiku.storage.models import KnowledgeBase

# questions in a reader's words, with the page the FAQ answers them on (from the PDF's table of contents)
QUESTIONS = [
    ("DVI 文件里为什么不能显示 EPS 图片", 23),  # the example: the TOC line on page 3 used to rank first
    ("CTEX 网站有哪几个部分", 5),
    ("怎样升级已经安装的 MiKTEX", 8),
    ("新下载的宏包怎么安装到系统里", 8),
    ("导言区 preamble 是什么", 10),
    ("怎么刷新文件名数据库", 10),
    ("CJK 里怎样让段首缩进两个汉字", 12),
    ("怎样设置双倍行距", 14),
    ("怎么把一大段内容注释掉不编译", 15),
    ("如何让文档中某一页横排", 17),
    ("怎样让文献引用以上标形式出现", 26),
]


@pytest.fixture(scope="module")
def faq(evaldata: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Zhiku, KnowledgeBase]]:
    zhiku = Zhiku(Settings(home=tmp_path_factory.mktemp("faq") / "home"))
    kb = create_knowledge_base(zhiku, "faq")
    with job_runner(zhiku) as runner:
        outcome = register_file(zhiku, kb, evaldata / "pdf" / "ctex-kit" / "ctex-faq.pdf")
        assert outcome.job_id is not None
        runner.wait_for([outcome.job_id], timeout=300)
    yield zhiku, kb
    zhiku.close()


def test_the_answer_page_comes_first(faq: tuple[Zhiku, KnowledgeBase]) -> None:
    """The issue's question, and at least 10 of the 11 (with the furniture indexed: 4 of 11, seven lost to TOC lines;
    the one miss left is a retrieval miss on the neighbouring page, not a table of contents)."""
    zhiku, kb = faq
    misses = []
    for question, page in QUESTIONS:
        best = search(zhiku, kb, question, SearchOptions(top_k=3))[0]
        if not best.page_start <= page <= best.page_end:
            misses.append((question, page, best.page_start, best.text[:80]))
    assert QUESTIONS[0][0] not in {miss[0] for miss in misses}, misses
    assert len(misses) <= 1, misses


def test_no_chunk_is_a_table_of_contents_or_a_footer(faq: tuple[Zhiku, KnowledgeBase]) -> None:
    zhiku, kb = faq
    hits = search(zhiku, kb, "CTEX FAQ 常见问题集 目录 Copyright", SearchOptions(mode="lexical", top_k=100))
    assert hits
    assert not any(". . . . ." in hit.text for hit in hits)  # dot leaders of TOC entries
    assert not any("Copyright ©2003–2009 CTEX.ORG" in hit.text for hit in hits)  # the footer of every page
