"""Search over a real knowledge base: modes, Chinese BM25, filters, highlights, neighbours, versions, fusion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.errors import InvalidInputError
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import register_file
from zhiku.pipeline.tasks import job_runner
from zhiku.search.fusion import fuse, lexical_weight, term_coverage
from zhiku.search.highlight import highlight_spans
from zhiku.search.options import SearchOptions
from zhiku.search.retrieve import search
from zhiku.storage.models import KnowledgeBase
from zhiku.text.terms import query_terms

DOCS = {
    "panda.md": "# 大熊猫\n\n大熊猫是中国特有的物种，主要生活在四川的山区竹林中。它们每天要吃大量的竹子。\n\n"
    "## 保护\n\n保护区的建立让野生大熊猫的数量逐渐回升。",
    "trains.md": "# High-speed rail\n\nChina operates the longest high-speed railway network in the world. "
    "Trains between Beijing and Shanghai run at up to 350 km/h.\n\n## Tickets\n\nTickets can be bought online.",
    "coffee.txt": "Brewing coffee: grind the beans, heat water to 94 degrees, and pour slowly over the grounds.",
    "long.md": "\n\n".join(
        f"Section {i}: the lighthouse keeper logged ship number {i} passing the reef." for i in range(30)
    ),
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Zhiku, KnowledgeBase, dict[str, str]]]:
    root = tmp_path_factory.mktemp("search")
    zhiku = Zhiku(Settings(home=root / "home"))
    kb = create_knowledge_base(zhiku, "kb", chunk_tokens=48, chunk_overlap=0)
    ids = {}
    with job_runner(zhiku) as runner:
        for name, text in DOCS.items():
            path = root / name
            path.write_text(text, encoding="utf-8")
            outcome = register_file(zhiku, kb, path)
            assert outcome.job_id is not None
            assert outcome.document_id is not None
            ids[name] = outcome.document_id
            runner.wait_for([outcome.job_id], timeout=120)
    yield zhiku, kb, ids
    zhiku.close()


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_each_mode_finds_the_right_document(indexed: tuple[Zhiku, KnowledgeBase, dict[str, str]], mode: str) -> None:
    zhiku, kb, _ = indexed
    hits = search(zhiku, kb, "大熊猫吃什么？", SearchOptions(mode=mode, top_k=3))  # type: ignore[arg-type]
    assert hits
    assert hits[0].filename == "panda.md"
    assert hits[0].page_start == hits[0].page_end == 1
    assert set(hits[0].scores) >= ({"dense"} if mode == "dense" else {"lexical"} if mode == "lexical" else {"fused"})


def test_chinese_query_scores_above_zero_against_chinese_text(
    indexed: tuple[Zhiku, KnowledgeBase, dict[str, str]],
) -> None:
    zhiku, kb, _ = indexed
    hits = search(zhiku, kb, "竹子", SearchOptions(mode="lexical"))
    assert hits
    assert hits[0].filename == "panda.md"
    assert hits[0].scores["lexical"] > 0


def test_cross_lingual_hybrid_keeps_the_dense_ranking(indexed: tuple[Zhiku, KnowledgeBase, dict[str, str]]) -> None:
    zhiku, kb, _ = indexed
    query = "北京到上海的高铁有多快？"
    dense = search(zhiku, kb, query, SearchOptions(mode="dense", top_k=3))
    hybrid = search(zhiku, kb, query, SearchOptions(mode="hybrid", top_k=3))
    assert dense[0].filename == hybrid[0].filename == "trains.md"


def test_citations_and_highlights(indexed: tuple[Zhiku, KnowledgeBase, dict[str, str]]) -> None:
    zhiku, kb, _ = indexed
    hits = search(zhiku, kb, "coffee water degrees", SearchOptions(mode="hybrid", top_k=1))
    hit = hits[0]
    assert hit.filename == "coffee.txt"
    assert DOCS["coffee.txt"][hit.char_start : hit.char_end] == hit.text
    marked = [hit.text[a:b].lower() for a, b in hit.highlights]
    assert {"coffee", "water", "degrees"} <= set(marked)
    assert "<mark>coffee</mark>" in hit.highlighted.lower()


def test_highlighting_chinese_and_latin_prefixes() -> None:
    terms = query_terms("大熊猫的保护 running")
    assert "大熊猫" in terms
    assert "running" in terms
    text = "野生大熊猫受到保护。Running water."
    spans = highlight_spans(text, terms)
    assert [text[a:b] for a, b in spans] == ["大熊猫", "保护", "Running"]


def test_highlights_never_split_a_word() -> None:
    def marked(query: str, text: str) -> list[str]:
        return [text[a:b] for a, b in highlight_spans(text, query_terms(query))]

    # jieba segments 西文字体 as 西|文字|体: 文字 there cuts across the words 西文 and 字体
    assert marked("中文字体", "中文字体和西文字体的设置") == ["中文字体"]
    assert marked("文字", "使用西文字体，文字") == ["文字"]
    assert marked("熊猫", "野生大熊猫") == ["大熊猫"]  # a query word inside a passage word marks the whole word
    assert marked("run", "running, rerun") == ["running"]  # a word start marks the whole word, not "run"
    # Latin words right after Chinese characters (no space) match, and never stop inside a word
    assert marked("TEX 中文网站", "关于TEX的中文网站，CTEXbook、TeXLive") == ["TEX", "中文网站", "TeXLive"]


def test_document_filter_and_min_score(indexed: tuple[Zhiku, KnowledgeBase, dict[str, str]]) -> None:
    zhiku, kb, ids = indexed
    only = search(zhiku, kb, "大熊猫", SearchOptions(document_ids=[ids["coffee.txt"]]))
    assert {h.filename for h in only} <= {"coffee.txt"}
    assert search(zhiku, kb, "大熊猫", SearchOptions(document_ids=[])) == []
    strict = search(zhiku, kb, "大熊猫", SearchOptions(mode="dense", min_score=0.99))
    assert all(h.score >= 0.99 for h in strict)


def test_neighbours_expansion(indexed: tuple[Zhiku, KnowledgeBase, dict[str, str]]) -> None:
    zhiku, kb, _ = indexed
    hit = search(zhiku, kb, "ship number 15", SearchOptions(mode="lexical", top_k=1, neighbours=1))[0]
    assert hit.filename == "long.md"
    text = DOCS["long.md"]
    assert hit.context_before
    assert hit.context_after
    assert text.find(hit.context_before) + len(hit.context_before) <= hit.char_start
    assert text.find(hit.context_after) >= hit.char_end


def test_only_active_versions_are_returned(tmp_path: Path) -> None:
    zhiku = Zhiku(Settings(home=tmp_path / "home"))
    try:
        kb = create_knowledge_base(zhiku, "kb")
        path = tmp_path / "policy.md"
        path.write_text("The warranty lasts two years.", encoding="utf-8")
        with job_runner(zhiku) as runner:
            first = register_file(zhiku, kb, path)
            runner.wait_for([first.job_id or ""], timeout=60)
            path.write_text("The warranty lasts five years.", encoding="utf-8")
            second = register_file(zhiku, kb, path)
            runner.wait_for([second.job_id or ""], timeout=60)
        hits = search(zhiku, kb, "warranty years", SearchOptions(mode="hybrid"))
        assert [h.text for h in hits] == ["The warranty lasts five years."]
    finally:
        zhiku.close()


@pytest.mark.parametrize(
    ("query", "error"),
    [("", "non-empty"), ("   ", "non-empty"), ("a\x00b", "NUL"), ("x" * 100_000, "100,000 characters")],
)
def test_bad_queries(indexed: tuple[Zhiku, KnowledgeBase, dict[str, str]], query: str, error: str) -> None:
    zhiku, kb, _ = indexed
    with pytest.raises(InvalidInputError, match=error):
        search(zhiku, kb, query)


def test_bad_options(indexed: tuple[Zhiku, KnowledgeBase, dict[str, str]]) -> None:
    zhiku, kb, _ = indexed
    with pytest.raises(InvalidInputError, match="mode must be"):
        search(zhiku, kb, "x", SearchOptions(mode="fuzzy"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="top_k must be"):
        search(zhiku, kb, "x", SearchOptions(top_k=0))


def test_fusion_follows_lexical_evidence() -> None:
    dense = {"a": 0.9, "b": 0.8, "c": 0.1}
    lexical = {"c": 12.0, "b": 3.0, "a": 1.0}
    assert max(fuse(dense, lexical, coverage=0.0), key=fuse(dense, lexical, 0.0).__getitem__) == "a"
    assert max(fuse(dense, lexical, coverage=1.0), key=fuse(dense, lexical, 1.0).__getitem__) == "c"
    assert fuse(dense, {}, coverage=1.0).keys() == dense.keys()
    assert lexical_weight(0.0) == 0.0
    assert lexical_weight(1.0) == 0.95
    assert term_coverage("大熊猫 竹子", "大熊猫爱吃竹子") == 1.0
    assert term_coverage("高铁 速度", "The train is fast") == 0.0


def test_highlighted_passages_are_html_safe() -> None:
    from zhiku.search.highlight import mark

    assert mark("<b>x</b> & y", [(3, 4)]) == "&lt;b&gt;<mark>x</mark>&lt;/b&gt; &amp; y"
    assert mark("[x] y", [(4, 5)], "[b]", "[/]", escape=lambda s: s.replace("[", "\\[")) == "\\[x] [b]y[/]"


RELATED = ["大熊猫吃什么？", "How fast are the trains between Beijing and Shanghai?", "water temperature for coffee"]
UNRELATED = ["quantum chromodynamics on a lattice", "如何申请护照签证", "best chess opening for beginners"]


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_scores_are_relevance_on_one_scale_for_every_query(
    indexed: tuple[Zhiku, KnowledgeBase, dict[str, str]], mode: str
) -> None:
    """0-1, never rising down the list, and comparable across queries: every related query's best hit scores
    above every unrelated query's best hit, so one threshold separates them (raw hybrid scores cannot: they are
    z-scores within one list)."""
    zhiku, kb, _ = indexed
    best: dict[str, float] = {}
    for query in RELATED + UNRELATED:
        hits = search(zhiku, kb, query, SearchOptions(mode=mode, top_k=5))  # type: ignore[arg-type]
        scores = [hit.score for hit in hits]
        assert all(0.0 <= s <= 1.0 for s in scores), scores
        assert scores == sorted(scores, reverse=True)
        best[query] = scores[0] if scores else 0.0
    assert min(best[q] for q in RELATED) > max(best[q] for q in UNRELATED), best
    if mode != "lexical":  # lexical relevance is term coverage: an unrelated query matches few terms, or none
        assert max(best[q] for q in UNRELATED) < 0.3, best
    threshold = (min(best[q] for q in RELATED) + max(best[q] for q in UNRELATED)) / 2
    kept = search(zhiku, kb, RELATED[0], SearchOptions(mode=mode, min_score=threshold))  # type: ignore[arg-type]
    assert kept
    assert kept[0].filename == "panda.md"
    assert all(hit.score >= threshold for hit in kept)
    assert not search(zhiku, kb, UNRELATED[0], SearchOptions(mode=mode, min_score=threshold))  # type: ignore[arg-type]


def test_cosine_scale_is_measured_by_the_model(indexed: tuple[Zhiku, KnowledgeBase, dict[str, str]]) -> None:
    import numpy as np

    from zhiku.search.relevance import cosine_scale, in_rank_order

    zhiku, kb, _ = indexed
    scale = cosine_scale(zhiku.embedder_for(kb), kb.instruction, kb.dimension)
    assert scale.answer - scale.unrelated > 0.2  # the model tells answers from unrelated passages
    cosines = np.asarray([-0.5, scale.unrelated, (scale.unrelated + scale.answer) / 2, 0.99])
    mapped = scale.relevance(cosines)
    assert mapped.tolist()[:3] == pytest.approx([0.0, 0.0, 0.4])
    assert mapped[3] > 0.8
    # among enough candidates, a hit is measured against their median: standing out is what counts
    neighbours = [scale.answer - 0.1] * 20
    assert scale.relevance(np.asarray([scale.answer]), neighbours)[0] == pytest.approx(
        0.08 / (scale.answer - scale.unrelated)
    )
    assert scale.relevance(np.asarray([scale.answer]), neighbours[:5])[0] == pytest.approx(0.8)  # too few to judge
    assert in_rank_order([0.9, 0.95, 0.4, 0.5, -1.0]) == [0.9, 0.9, 0.4, 0.4, 0.0]


def _around_whole_text(tokens: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """The tokens of a whole-text segmentation that ``[start, end)`` touches, with one neighbour each side."""
    first = next(i for i, (_, e) in enumerate(tokens) if e > start)
    last = next(i for i, (_, e) in enumerate(tokens) if e >= end)
    return tokens[max(0, first - 1) : last + 2]


def test_highlights_segment_only_around_matches_as_the_whole_text_would(evaldata: Path) -> None:
    """Highlighting segments only the blocks around a match: the words there are the whole passage's words."""
    import random

    from zhiku.search.highlight import _Blocks, highlight_spans
    from zhiku.text.terms import load_jieba

    jieba = load_jieba()
    rng = random.Random(7)  # noqa: S311 - test positions, not secrets
    texts = [
        json.loads(line)["text"]
        for name in ("xquad-zh", "cmrc2018-trial")
        for line in (evaldata / "retrieval" / name / "corpus.jsonl").read_text("utf-8").splitlines()[:60]
    ]
    texts += [
        "  大熊猫\r\n\r\n吃竹子  ",
        "İstanbul的大熊猫İİ大熊猫",
        "カタカナと大熊猫、한국어와 大熊猫🐼吃竹子",
        "iPhone手机和C++语言的3.5%增长-大熊猫",
        "熊" * 300,
        "大",
    ]
    checked = 0
    for text in texts:
        whole = [(a, b) for _, a, b in jieba.tokenize(text)]  # type: ignore[attr-defined]
        blocks = _Blocks(text, jieba.re_han_default)  # type: ignore[attr-defined]
        matches = [(a, b) for a, b in whole if b - a > 1][:20]
        for _ in range(20):
            start = rng.randrange(len(text))
            matches.append((start, min(len(text), start + rng.randint(1, 4))))
        for start, end in matches:
            expected = _around_whole_text(whole, start, end)
            got = blocks.tokens_around(start, end)
            assert got[0][0] <= expected[0][0], (text, start, end)
            assert got[-1][1] >= expected[-1][1], (text, start, end)
            assert _around_whole_text(got, start, end) == expected, (text, start, end)
            checked += 1
        highlight_spans(text, [text[a:b] for a, b in matches])  # never raises, whatever the text
    assert checked > 2000


def test_latin_highlights_are_whole_words_from_a_word_start(evaldata: Path) -> None:
    """Latin terms mark whole words they start, exactly as one regex with a CJK-free letter class would."""
    import random
    import re

    from zhiku.search.highlight import _latin_spans
    from zhiku.text.terms import CJK

    letter = rf"(?:(?!{CJK.pattern})[^\W_])"

    def by_one_regex(text: str, terms: list[str]) -> list[tuple[int, int]]:
        alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
        pattern = re.compile(rf"(?<!{letter})(?:{alternatives}){letter}*", re.IGNORECASE)
        return [(m.start(), m.end()) for m in pattern.finditer(text)]

    rng = random.Random(11)  # noqa: S311 - test data
    texts = [
        json.loads(line)["text"]
        for name in ("xquad-en", "xquad-zh")
        for line in (evaldata / "retrieval" / name / "corpus.jsonl").read_text("utf-8").splitlines()[:40]
    ]
    texts += ["C++ and c++11, a.b.c a.b", "ÉCOLE école_école 3rd 3RD", "TEX的TeXLive，CTEXbook", "İstanbul ıi", "aaaa"]
    for text in texts:
        words = re.findall(r"\w+|[^\w\s]+", text)
        for _ in range(10):
            terms = [w[: rng.randint(1, len(w))] for w in rng.sample(words, min(3, len(words)))]
            terms += rng.sample(["c++", "a.b", "aa", "école", "tex", "3rd", "the"], 2)
            assert _latin_spans(text, terms) == by_one_regex(text, terms), (text, terms)
