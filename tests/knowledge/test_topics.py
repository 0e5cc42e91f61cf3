"""The topic map on the real stack (the default multilingual model, SQLite, Qdrant Edge, the job runner): six
XQuAD articles, five paragraphs each, in English and in Chinese (a paragraph and its translation share an id).
The API and the CLI run against a real `zhiku serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score
from sqlalchemy import select

from tests.knowledge.helpers import run_queued_jobs, xquad_rows
from tests.servers import zhiku_server
from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.errors import InvalidInputError
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import delete_document, get_document, register_file
from zhiku.knowledge.topics import MAX_CLUSTERS, cluster_terms, name_terms, topic_map
from zhiku.pipeline.document_vectors import document_vectors
from zhiku.storage.models import KnowledgeBase

ARTICLES = {
    "xq-00": "Super_Bowl_50",
    "xq-03": "Nikola_Tesla",
    "xq-12": "Oxygen",
    "xq-14": "Apollo_program",
    "xq-25": "Genghis_Khan",
    "xq-41": "Rhine",
}
NMI_FLOOR = 0.80
"""Measured on this subset: 0.896 with the clusters chosen automatically (11 for the 6 articles: five translation
pairs apart from their article), 0.901 with 6 clusters asked for; every translation pair shares its cluster."""


def paragraphs(evaldata: Path, language: str) -> dict[str, str]:
    """The five paragraphs of each article of ``ARTICLES``, by id."""
    return {row["_id"]: row["text"] for row in xquad_rows(evaldata, language) if row["_id"][:5] in ARTICLES}


class Built:
    """The ingested knowledge base: the app, the knowledge base, document ids by file stem, the input folder."""

    def __init__(self, zhiku: Zhiku, kb: KnowledgeBase, ids: dict[str, str], folder: Path) -> None:
        self.zhiku, self.kb, self.ids, self.folder = zhiku, kb, ids, folder
        self.name_of = {document_id: name for name, document_id in ids.items()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, evaldata: Path) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("topics")
    zhiku = Zhiku(Settings(home=root / "home", database_url=f"sqlite:///{root / 'zhiku.db'}", job_retry_backoff=0.05))
    kb = create_knowledge_base(zhiku, "xquad", chunk_tokens=128, chunk_overlap=0)
    folder = root / "in"
    folder.mkdir()
    ids: dict[str, str] = {}
    for language in ("en", "zh"):
        for paragraph_id, text in paragraphs(evaldata, language).items():
            path = folder / f"{language}-{paragraph_id}.txt"
            path.write_text(text, encoding="utf-8")
            registration = register_file(zhiku, kb, path)
            assert registration.document_id is not None
            ids[path.stem] = registration.document_id
    run_queued_jobs(zhiku)
    yield Built(zhiku, kb, ids, folder)
    zhiku.close()


def article(name: str) -> str:
    return ARTICLES[name.split("-", 1)[1][:5]]


def test_clusters_follow_the_articles_across_languages_and_are_named_by_their_terms(built: Built) -> None:
    found = topic_map(built.zhiku, built.kb)
    assert found.automatic
    assert found.vectors == "document"
    assert len(found.documents) == 60
    assert sorted(i for c in found.clusters for i in c.document_ids) == sorted(built.ids.values())
    assert sum(c.size for c in found.clusters) == 60
    assert [c.size for c in found.clusters] == sorted((c.size for c in found.clusters), reverse=True)
    label = {d.id: d.cluster for d in found.documents}
    truth = [article(built.name_of[i]) for i in label]
    nmi = normalized_mutual_info_score(truth, list(label.values()))
    assert nmi >= NMI_FLOOR, (nmi, [(c.name, c.size) for c in found.clusters])
    assert 5 <= len(found.clusters) <= 12, [(c.name, c.size) for c in found.clusters]
    # a paragraph and its translation share a cluster
    together = [label[built.ids[f"en-{p}"]] == label[built.ids[f"zh-{p}"]] for p in paragraphs_ids(built)]
    assert sum(together) / len(together) >= 0.9, sum(together)
    # the cluster holding most Tesla paragraphs is named by Tesla, in both languages (its text is in both)
    by_cluster = {c.id: c for c in found.clusters}
    tesla = Counter(label[i] for name, i in built.ids.items() if article(name) == "Nikola_Tesla").most_common(1)[0][0]
    terms = by_cluster[tesla].terms
    assert "tesla" in terms, terms
    assert "特斯拉" in terms, terms
    assert by_cluster[tesla].name == " · ".join(terms)
    khan = Counter(label[i] for name, i in built.ids.items() if article(name) == "Genghis_Khan").most_common(1)[0][0]
    assert {"khan", "成吉思汗", "temüjin", "铁木真", "mongol", "蒙古"} & set(by_cluster[khan].terms), by_cluster[khan]
    # each cluster's documents: the most typical (nearest its mean vector) first
    ids, vectors = document_vectors(built.zhiku, built.kb)
    row = {i: n for n, i in enumerate(ids)}
    for cluster in found.clusters:
        members = vectors[[row[i] for i in cluster.document_ids]]
        scores = members @ members.mean(axis=0)
        assert np.all(np.diff(scores) <= 1e-5), scores
    # positions: within the square; documents closer to their own centre than to the others' on average
    points = np.array([[d.x, d.y] for d in found.documents])
    centres = np.array([[c.x, c.y] for c in found.clusters])
    assert np.abs(points).max() <= 1
    assert np.abs(centres).max() <= 1
    nearest = np.argmin(np.linalg.norm(points[:, None, :] - centres[None, :, :], axis=2), axis=1)
    assert np.mean(nearest == np.array([d.cluster for d in found.documents])) >= 0.8


def paragraphs_ids(built: Built) -> list[str]:
    return sorted(name[3:] for name in built.ids if name.startswith("en-"))


def test_a_requested_number_of_clusters_and_the_bounds(built: Built) -> None:
    six = topic_map(built.zhiku, built.kb, clusters=6)
    assert len(six.clusters) == 6
    assert not six.automatic
    label = {d.id: d.cluster for d in six.documents}
    truth = [article(built.name_of[i]) for i in label]
    assert normalized_mutual_info_score(truth, list(label.values())) >= NMI_FLOOR
    for bad in (0, 1, MAX_CLUSTERS + 1, -3):
        with pytest.raises(InvalidInputError, match="between 2 and 100") as caught:
            topic_map(built.zhiku, built.kb, clusters=bad)
        assert caught.value.param == "clusters"
    with pytest.raises(InvalidInputError, match=r"at most the number of ready documents \(60\), got 61"):
        topic_map(built.zhiku, built.kb, clusters=61)


def test_the_map_is_cached_until_the_documents_change(built: Built, evaldata: Path) -> None:
    first = topic_map(built.zhiku, built.kb)
    started = time.perf_counter()
    assert topic_map(built.zhiku, built.kb) is first  # cached
    assert time.perf_counter() - started < 0.5
    # a new document: another Tesla paragraph (the sixth-article text is not in the corpus subset: a copy of one)
    newcomer = built.folder / "newcomer.txt"
    newcomer.write_text(paragraphs(evaldata, "en")["xq-03-00"] + "\n\nTesla coils and alternating current.")
    registration = register_file(built.zhiku, built.kb, newcomer)
    assert registration.document_id is not None
    assert topic_map(built.zhiku, built.kb) is first  # not ready yet: the same documents, the same map
    run_queued_jobs(built.zhiku)
    second = topic_map(built.zhiku, built.kb)
    assert second is not first
    assert len(second.documents) == 61
    placed = {d.id: d.cluster for d in second.documents}
    assert placed[registration.document_id] == placed[built.ids["en-xq-03-00"]]
    delete_document(built.zhiku, built.kb, get_document(built.zhiku, built.kb, registration.document_id))
    third = topic_map(built.zhiku, built.kb)
    assert len(third.documents) == 60
    assert registration.document_id not in {d.id for d in third.documents}


def test_names_segment_chinese_and_drop_stop_words() -> None:
    assert name_terms("The Rhine flows through Switzerland and the Netherlands in 1815.") == [
        "rhine",
        "flows",
        "switzerland",
        "netherlands",
    ]
    assert name_terms("莱茵河流经瑞士和荷兰的城市") == ["莱茵河", "流经", "瑞士", "荷兰", "城市"]
    # distinctive, not frequent: 'river' is in both clusters and names neither first
    names = cluster_terms(
        [
            ["The Rhine river and the Rhine delta.", "莱茵河 莱茵河 river"],
            ["The Amazon river, the Amazon rainforest.", "The Amazon basin."],
        ]
    )
    assert names[0][:2] == ["rhine", "莱茵河"]  # both scripts
    assert names[1][0] == "amazon"
    assert all(not any("\u4e00" <= ch <= "\u9fff" for ch in t) for t in names[1])


ADMIN = "topics-admin-key-0123456789abcdef01234567"


def test_the_api_and_the_cli_and_hostile_inputs(tmp_path: Path, evaldata: Path) -> None:
    texts = paragraphs(evaldata, "en")
    with zhiku_server(tmp_path, auth="on", admin_api_key=ADMIN) as (url, _):
        headers = {"Authorization": f"Bearer {ADMIN}"}
        with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
            kb = client.post("/api/v1/knowledge-bases", json={"name": "topics"}).json()["id"]
            chosen = [f"xq-{a}-0{p}" for a in ("03", "41") for p in range(5)]
            files = [("files", (f"{i}.txt", texts[i].encode(), "text/plain")) for i in chosen]
            uploaded = client.post(f"/api/v1/knowledge-bases/{kb}/documents", files=files)
            assert uploaded.status_code == 201, uploaded.text
            deadline = time.monotonic() + 300
            while any(d["status"] != "ready" for d in client.get(f"/api/v1/knowledge-bases/{kb}/documents").json()):
                assert time.monotonic() < deadline
                time.sleep(0.5)
            found = client.get(f"/api/v1/knowledge-bases/{kb}/topics")
            assert found.status_code == 200, found.text
            body = found.json()
            assert body["automatic"]
            assert len(body["documents"]) == 10
            two = client.get(f"/api/v1/knowledge-bases/{kb}/topics", params={"clusters": 2}).json()
            names = {frozenset(d["filename"][:5] for d in two["documents"] if d["cluster"] == c["id"]): c["terms"]
                     for c in two["clusters"]}  # fmt: skip
            assert set(names) == {frozenset({"xq-03"}), frozenset({"xq-41"})}, names
            assert "tesla" in names[frozenset({"xq-03"})]
            assert "rhine" in names[frozenset({"xq-41"})]
            for value, expected in (
                ("1", "greater than or equal to 2"),
                ("101", "less than or equal to 100"),
                ("abc", "valid integer"),
                ("2.5", "valid integer"),
                ("", "valid integer"),
                ("11", "at most the number of ready documents (10), got 11"),
            ):
                refused = client.get(f"/api/v1/knowledge-bases/{kb}/topics", params={"clusters": value})
                assert refused.status_code == 400, (value, refused.text)
                error = refused.json()["error"]
                assert expected in error["message"], (value, error)
                assert error["param"] in ("query.clusters", "clusters"), (value, error)
            assert client.get("/api/v1/knowledge-bases/nope/topics").status_code == 404
            assert httpx.get(f"{url}/api/v1/knowledge-bases/{kb}/topics").status_code == 401
        # the CLI goes through the server
        env = {**os.environ, "ZHIKU_URL": url, "ZHIKU_API_KEY": ADMIN, "ZHIKU_HOME": str(tmp_path / "cli-home")}
        zhiku_cli = str(Path(sys.executable).parent / "zhiku")
        shown = subprocess.run([zhiku_cli, "topics", "--kb", "topics", "--clusters", "2"], env=env,
                               capture_output=True, text=True, timeout=300)  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert "2 topics (as asked) of 10 documents" in shown.stdout
        assert "tesla" in shown.stdout
        as_json = subprocess.run([zhiku_cli, "topics", "--kb", "topics", "--json"], env=env,
                                 capture_output=True, text=True, timeout=300)  # fmt: skip
        assert json.loads(as_json.stdout)["kb_id"] == kb
        refused = subprocess.run([zhiku_cli, "topics", "--kb", "topics", "--clusters", "1"], env=env,
                                 capture_output=True, text=True, timeout=300)  # fmt: skip
        assert refused.returncode == 2
        assert "clusters must be between 2 and 100" in refused.stderr
    # without a server, the CLI opens the stores itself (the server's home, now free)
    env = {key: value for key, value in env.items() if key not in ("ZHIKU_URL", "ZHIKU_API_KEY")}
    env["ZHIKU_HOME"] = str(tmp_path / "home")
    embedded = subprocess.run([zhiku_cli, "topics", "--kb", "topics", "-k", "2"], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert embedded.returncode == 0, embedded.stderr
    assert "2 topics (as asked) of 10 documents" in embedded.stdout
    assert "rhine" in embedded.stdout


def test_an_instruction_aware_model_clusters_query_vectors_of_the_clustering_instruction(
    tiny_qwen3: Path, tmp_path: Path
) -> None:
    """Qwen3 documents carry no instruction; the map embeds their leading text as queries with the clustering
    instruction, once (cached). The tiny model is random: this checks the mechanics, not the clusters."""
    from sqlalchemy import func

    from zhiku.knowledge.topics import clustering_vectors
    from zhiku.storage.models import EmbeddingCacheEntry

    zhiku = Zhiku(Settings(home=tmp_path / "home"))
    try:
        kb = create_knowledge_base(zhiku, "qwen", model=str(tiny_qwen3))
        texts = [f"Document {i} is about topic {i % 3}." for i in range(9)]
        for index, text in enumerate(texts):
            path = tmp_path / f"{index}.txt"
            path.write_text(text, encoding="utf-8")
            register_file(zhiku, kb, path)
        run_queued_jobs(zhiku)
        found = topic_map(zhiku, kb, clusters=3)
        assert found.vectors == "clustering-instruction"
        assert len(found.clusters) == 3
        ids, pooled = document_vectors(zhiku, kb)
        vectors = clustering_vectors(zhiku, kb, ids)
        embedder = zhiku.embedder_for(kb)
        with zhiku.db.session() as session:
            key = f"{kb.embedding_model}|{kb.dimension}|clustering"
            assert session.scalar(select(func.count()).where(EmbeddingCacheEntry.model_key == key)) == 9
        order = {d.id: d.filename for d in found.documents}
        expected = embedder.embed(
            [texts[int(order[i].split(".")[0])] for i in ids], input_type="query", instruction="clustering"
        ).vectors
        np.testing.assert_allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-4)
        assert not np.allclose(vectors, pooled, atol=1e-3)  # not the documents' own (instruction-less) vectors
    finally:
        zhiku.close()


def test_the_cut_without_topics_the_cap_and_the_sampled_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    from zhiku.knowledge import topics

    rng = np.random.default_rng(0)
    noise = rng.standard_normal((300, 64))  # nothing in common: the cut would leave 300 clusters of one
    labels = topics.cluster_labels(noise)
    assert int(labels.max()) + 1 == topics.MAX_CLUSTERS
    # three topics of 100 documents each, the tree built on a sample of 50: every document joins its topic
    centres = rng.standard_normal((3, 64)) * 3
    truth = np.repeat(np.arange(3), 100)
    blobs = centres[truth] + rng.standard_normal((300, 64)) * 0.5
    monkeypatch.setattr(topics, "MAX_TREE_DOCUMENTS", 50)
    labels = topics.cluster_labels(blobs)
    assert normalized_mutual_info_score(truth, labels) == pytest.approx(1.0)
    assert normalized_mutual_info_score(truth, topics.cluster_labels(blobs, clusters=3)) == pytest.approx(1.0)
