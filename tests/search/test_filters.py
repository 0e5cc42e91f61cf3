"""Search filters on tags, metadata, dates, documents and types, on SQLite and PostgreSQL, end to end."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.errors import InvalidInputError
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import Labels, get_document, label_document, register_file
from zhiku.pipeline.tasks import job_runner
from zhiku.search.filters import DocumentFilter, parse_filters
from zhiku.search.options import SearchOptions
from zhiku.search.retrieve import search
from zhiku.storage.models import KnowledgeBase

UTC = dt.UTC
# every document mentions the query's subject, so only the filter decides which ones come back
DOCS: dict[str, tuple[str, Labels]] = {
    "policy-2023.md": (
        "# Travel policy 2023\n\nTravel expenses are reimbursed within thirty days of the trip.",
        Labels(tags=["Policy", "finance"], metadata={"team": "hr", "lang": "en"},
               document_date=dt.datetime(2023, 3, 1, tzinfo=UTC)),
    ),
    "policy-2024.md": (
        "# Travel policy 2024\n\nTravel expenses are reimbursed within fourteen days of the trip.",
        Labels(tags=["policy"], metadata={"team": "hr", "lang": "en"},
               document_date=dt.datetime(2024, 6, 30, 23, 0, tzinfo=UTC)),
    ),
    "差旅.txt": (
        "差旅费用报销：出差结束后三十天内提交发票即可报销 travel expenses。",
        Labels(tags=["finance"], metadata={"team": "财务", "lang": "zh"},
               document_date=dt.datetime(2025, 1, 15, tzinfo=UTC)),
    ),
}  # fmt: skip


@pytest.fixture
def labelled(tmp_path: Path, storage: dict[str, Any]) -> Iterator[tuple[Zhiku, KnowledgeBase, dict[str, str]]]:
    zhiku = Zhiku(Settings(home=tmp_path / "home", **storage))
    kb = create_knowledge_base(zhiku, "kb", chunk_tokens=64, chunk_overlap=0)
    ids: dict[str, str] = {}
    with job_runner(zhiku) as runner:
        for name, (text, labels) in DOCS.items():
            path = tmp_path / name
            path.write_text(text, encoding="utf-8")
            outcome = register_file(zhiku, kb, path, labels=labels)
            assert outcome.job_id is not None
            assert outcome.document_id is not None
            ids[name] = outcome.document_id
            runner.wait_for([outcome.job_id], timeout=120)
    yield zhiku, kb, ids
    zhiku.close()


def _found(zhiku: Zhiku, kb: KnowledgeBase, *expressions: str, mode: str = "hybrid") -> set[str]:
    options = SearchOptions(mode=mode, top_k=10, filter=parse_filters(expressions))  # type: ignore[arg-type]
    return {hit.filename for hit in search(zhiku, kb, "travel expenses reimbursed", options)}


def test_filters_select_documents_by_tags_metadata_dates_names_and_types(
    labelled: tuple[Zhiku, KnowledgeBase, dict[str, str]],
) -> None:
    zhiku, kb, ids = labelled
    assert _found(zhiku, kb) == set(DOCS)
    assert _found(zhiku, kb, "tag=policy") == {"policy-2023.md", "policy-2024.md"}  # tags are case-folded
    assert _found(zhiku, kb, "tag=policy", "tag=finance") == {"policy-2023.md"}  # all of
    assert _found(zhiku, kb, "tag=policy|finance") == set(DOCS)  # any of
    assert _found(zhiku, kb, "tag=nothing") == set()
    assert _found(zhiku, kb, "team=财务") == {"差旅.txt"}
    assert _found(zhiku, kb, "team=hr", "lang=en", mode="lexical") == {"policy-2023.md", "policy-2024.md"}
    assert _found(zhiku, kb, "date>=2024-01-01") == {"policy-2024.md", "差旅.txt"}
    assert _found(zhiku, kb, "date<2024-06-30") == {"policy-2023.md"}
    assert _found(zhiku, kb, "date<=2024-06-30", mode="dense") == {"policy-2023.md", "policy-2024.md"}
    assert _found(zhiku, kb, "date>=2024-07-01T07:00:00+08:00") == {"policy-2024.md", "差旅.txt"}  # = 23:00 UTC
    assert _found(zhiku, kb, "date>2024-06-30") == {"差旅.txt"}
    assert _found(zhiku, kb, "document=差旅.txt") == {"差旅.txt"}
    assert _found(zhiku, kb, f"document={ids['policy-2024.md'][:10]}") == {"policy-2024.md"}
    assert _found(zhiku, kb, "type=markdown") == {"policy-2023.md", "policy-2024.md"}
    assert _found(zhiku, kb, "type=txt") == {"差旅.txt"}
    # the filter and an explicit document list intersect
    options = SearchOptions(filter=parse_filters(["tag=finance"]), document_ids=[ids["policy-2024.md"]])
    assert search(zhiku, kb, "travel", options) == []


def test_hits_carry_labels_and_relabelling_takes_effect_without_reindexing(
    labelled: tuple[Zhiku, KnowledgeBase, dict[str, str]],
) -> None:
    zhiku, kb, ids = labelled
    hit = search(zhiku, kb, "差旅费用报销", SearchOptions(top_k=1))[0]
    assert hit.tags == ["finance"]
    assert hit.metadata == {"team": "财务", "lang": "zh"}

    document = get_document(zhiku, kb, ids["policy-2023.md"])
    changed = label_document(
        zhiku, document, add_tags=["Archived"], remove_tags=["policy"], set_metadata={"team": "legal"},
        unset_metadata=["lang"],
    )  # fmt: skip
    assert changed.tags == ["archived", "finance"]
    assert changed.meta == {"team": "legal"}
    assert _found(zhiku, kb, "tag=policy") == {"policy-2024.md"}
    assert _found(zhiku, kb, "tag=archived", "team=legal") == {"policy-2023.md"}
    assert _found(zhiku, kb, "lang=en") == {"policy-2024.md"}


def test_reregistering_a_file_updates_its_labels(
    labelled: tuple[Zhiku, KnowledgeBase, dict[str, str]], tmp_path: Path
) -> None:
    zhiku, kb, _ = labelled
    outcome = register_file(zhiku, kb, tmp_path / "差旅.txt", labels=Labels(tags=["travel"]))
    assert outcome.outcome == "unchanged"
    assert _found(zhiku, kb, "tag=travel") == {"差旅.txt"}
    assert _found(zhiku, kb, "team=财务") == {"差旅.txt"}  # metadata not given: kept


def test_file_modification_time_is_the_default_document_date(tmp_path: Path) -> None:
    zhiku = Zhiku(Settings(home=tmp_path / "home"))
    try:
        kb = create_knowledge_base(zhiku, "kb")
        path = tmp_path / "old.txt"
        path.write_text("an old note", encoding="utf-8")
        stamp = dt.datetime(2020, 5, 4, 3, 2, 1, tzinfo=UTC).timestamp()
        import os

        os.utime(path, (stamp, stamp))
        outcome = register_file(zhiku, kb, path)
        assert outcome.document_id is not None
        document = get_document(zhiku, kb, outcome.document_id)
        assert document.document_date is not None
        assert document.document_date.replace(tzinfo=UTC) == dt.datetime(2020, 5, 4, 3, 2, 1, tzinfo=UTC)
    finally:
        zhiku.close()


def test_parse_filters() -> None:
    parsed = parse_filters(["tag=A", "tag=b|C", "author = Li Wei", "date>=2024-01-01", "date<2024-02-01",
                            "document=x.pdf", "type=PDF"])  # fmt: skip
    assert parsed == DocumentFilter(
        tags=("a",),
        any_tags=("b", "c"),
        metadata={"author": "Li Wei"},
        date_from=dt.datetime(2024, 1, 1, tzinfo=UTC),
        date_to=dt.datetime(2024, 2, 1, tzinfo=UTC),
        documents=("x.pdf",),
        types=("pdf",),
    )
    assert parse_filters([]).is_empty


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("tag", "cannot read filter"),
        ("tag=", "cannot read filter"),
        ("date>=yesterday", "not a date"),
        ("date=2024-01-01", "date filters use"),
        ("tag>=x", "only support '='"),
        ("9lives=x", "cannot read filter"),
        ("tag=" + "x" * 101, "invalid tag"),
    ],
)
def test_bad_filters_are_refused_with_a_clear_message(expression: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_filters([expression])


def test_bad_labels_are_refused(tmp_path: Path) -> None:
    zhiku = Zhiku(Settings(home=tmp_path / "home"))
    try:
        kb = create_knowledge_base(zhiku, "kb")
        path = tmp_path / "a.txt"
        path.write_text("text", encoding="utf-8")
        with pytest.raises(InvalidInputError, match="invalid metadata key"):
            register_file(zhiku, kb, path, labels=Labels(metadata={"tag": "x"}))
        with pytest.raises(InvalidInputError, match="invalid tag"):
            register_file(zhiku, kb, path, labels=Labels(tags=["  "]))
    finally:
        zhiku.close()
