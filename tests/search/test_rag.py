"""The text of chat replies made without a chat model: labelled passages with their citations."""

from __future__ import annotations

from zhiku.search.rag import Source, cite, passages_answer, sources_footer


def source(index: int, filename: str, text: str, score: float, pages: tuple[int, int] = (1, 1)) -> Source:
    return Source(index, "kb", f"doc{index}", f"chunk{index}", filename, pages[0], pages[1], text, score)


def test_passages_reply_is_labelled_cites_and_leaves_out_non_matches() -> None:
    sources = [
        source(1, "refund.md", "# 退款政策\n\n购买后三十天内可以申请退款。", 0.9),
        source(2, "manual.pdf", "Returns are accepted within 30 days. " * 40, 0.45, (3, 4)),
        source(3, "README.md", "unrelated text about servers", 0.004),
    ]
    chinese = passages_answer("怎么退款？", sources)
    assert chinese.startswith("**未配置对话模型")
    assert "**[1] refund.md, page 1**\n\n> # 退款政策 购买后三十天内可以申请退款。" in chinese  # one line, quoted
    assert "**[2] manual.pdf, pages 3-4**" in chinese
    assert "README.md" not in chinese  # 0.004: the closest the knowledge base has, not a match
    english = passages_answer("How do returns work?", sources)
    assert english.startswith("**No chat model is configured, so this is not a written answer")
    assert "…" in english  # a long passage is cut
    assert "ZHIKU_CHAT_URL" in english


def test_nothing_relevant_says_so() -> None:
    assert "No passage in the knowledge base matches" in passages_answer("chess?", [source(1, "a.md", "x", 0.01)])
    assert "没有与问题匹配的段落" in passages_answer("象棋？", [])


def test_citations_and_footer() -> None:
    assert cite(source(4, "a.pdf", "x", 1.0, (2, 2))) == "[4] a.pdf, page 2"
    assert sources_footer([]) == ""
    assert sources_footer([source(1, "a.pdf", "x", 1.0)]) == "\n\n---\n**Sources**\n\n- [1] a.pdf, page 1"
