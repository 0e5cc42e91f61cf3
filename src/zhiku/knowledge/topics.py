"""A topic map of a knowledge base: its documents clustered by their vectors, each cluster named by its distinctive
terms, and a 2-D position for every document and cluster centre (for the web UI's map).

- **Vectors**: the pooled document vectors (:mod:`zhiku.pipeline.document_vectors`). For instruction-aware
  models (Qwen3) documents are embedded without instruction, and the clustering instruction applies to the query
  side only; so each document's leading text is embedded once more *as a query* with the ``clustering`` preset
  ("Identify the main topic or theme of the given text"), cached in the embedding cache under its own key.
- **Clusters**: average-linkage agglomerative clustering on the cosine distance of the document vectors. Without a
  number of clusters the tree is cut at :data:`DISTANCE_THRESHOLD`: groups merge while their mean cosine stays
  above 0.3. Measured on XQuAD with the default model (48 articles × 5 paragraphs; subsets of 1 to 48 articles in
  en, zh and en+zh): mean NMI 0.907 against the articles (worst 0.845); 1 to 3 articles give 0.6 clusters too
  many on average. Centring the vectors first scored a little higher on the large subsets (0.917) but split a
  one-article knowledge base into its translation pairs; choosing k by the silhouette picks the translation pairs
  outright (30 clusters for 6 articles in en+zh); a Ward tree cut at a fixed height does not transfer between
  corpus sizes (``docs/topics.md``). A number of clusters asked for cuts a Ward tree instead (on the normalised
  vectors): at 48 clusters for the 48 articles it scored NMI 0.899 / 0.864 / 0.889 (en / zh / en+zh) against
  average linkage's 0.868 / 0.838 / 0.847, and k-means 0.856 / 0.819 / 0.855.
- **Names**: class-based TF-IDF over the clusters' chunk texts, Chinese words from jieba, stop words of both
  languages dropped; a cluster with text in both scripts is named with terms of both.
- **Layout**: cluster centres from the principal components of the cluster centroids; documents around their
  centre by their own offset on the same axes (PCA, no extra dependency).

Maps are cached per knowledge base, keyed by its ready documents and their versions, so the UI is fast and a new,
changed or deleted document gives a new map.
"""

from __future__ import annotations

import hashlib
import math
import threading
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from zhiku.core import Zhiku
from zhiku.embedding.models import resolve_model
from zhiku.errors import InvalidInputError
from zhiku.pipeline.document_vectors import document_vectors
from zhiku.pipeline.embed import model_key, text_hash
from zhiku.storage.models import Chunk, Document, DocumentStatus, EmbeddingCacheEntry, KnowledgeBase, utcnow
from zhiku.text.terms import STOPWORDS, WORD, is_cjk, load_jieba

MIN_CLUSTERS = 2
MAX_CLUSTERS = 100
"""The range of a requested number of clusters (the API, the CLI and the UI use these); an automatic cut that
gives more clusters than :data:`MAX_CLUSTERS` is replaced by a cut into that many."""
DISTANCE_THRESHOLD = 0.7
"""Average-linkage cut on the cosine distance of document vectors (measured on XQuAD; module doc)."""
MAX_TREE_DOCUMENTS = 3000
"""Above this many documents the tree is built on an even sample and the others join their nearest cluster
(the tree needs the n² pairwise distances: about 100 MB for 3,000 documents while it is built, 1 GB for
10,000)."""
NAME_TERMS = 4
"""Terms in a cluster's name."""
NAMING_CHARS = 300_000
"""Characters of text the names of one map are computed from, at most (see :func:`naming_sample`)."""
NAMING_MIN_CHARS = 400
"""The leading characters of a document that name its cluster, at least."""
CLUSTERING_INSTRUCTION = "clustering"
"""The instruction preset of the vectors of instruction-aware models."""
LEADING_CHARS = 2000
"""The leading text of a document embedded with the clustering instruction."""
_CACHE_SIZE = 16

# Function words that c-TF-IDF would otherwise rank for small clusters (English: scikit-learn's list is not used
# to keep this module light; these are the frequent ones in prose).
_EN_STOP: frozenset[str] = frozenset(
    """about above after again against all also although among another any because been before being below between
    both but can could did does doing down during each either even ever every few first further had has have
    having he her here hers him his however i if into its itself just last later least less many may me more
    most much must my near neither never new no nor not now often once one only other others our out over own
    per same several she should since so some still such than that their them then there these they this
    those though through thus too two under until up upon us very we were whether while whom whose will within
    without would yet you your also later known called used use using made make well including include
    includes first second third three four five six seven eight nine ten""".split()
)
_ZH_STOP = frozenset(
    """我们 你们 他们 她们 它们 这个 那个 这些 那些 这样 那样 因为 所以 但是 而且 并且 或者 以及 以后 之后 之前 以前
    可以 没有 已经 一个 一些 一种 其中 其他 其它 由于 对于 关于 通过 根据 进行 成为 作为 包括 以来 为了 不过 然而
    同时 此外 而是 就是 也是 还是 只是 不是 这是 那是 自己 如果 虽然 其实 以上 以下 之间 之一 当时 目前 现在 许多
    大量 很多 主要 以及 随着 开始 使用 位于 称为 被称为 最终 并不 并非 这种 那种 每个 各种 来自 上述 该 此 将 被 把
    从 对 也 都 而 但 并 或 等 又 就 与 向 至 于 中 上 下 为 以 之 其 所 这 那 他 她 它 有 个 年 月 日""".split()
)

_STOP = _EN_STOP | _ZH_STOP | STOPWORDS


@dataclass(frozen=True)
class TopicDocument:
    """A document on the map: its cluster and 2-D position."""

    id: str
    filename: str
    title: str | None
    cluster: int
    x: float
    y: float


@dataclass(frozen=True)
class Topic:
    """One cluster: its name (its most distinctive terms, joined), size, centre on the map and documents (the most
    typical first)."""

    id: int
    name: str
    terms: list[str]
    size: int
    x: float
    y: float
    document_ids: list[str]


@dataclass(frozen=True)
class TopicMap:
    """The clusters of a knowledge base's ready documents and their 2-D layout."""

    kb_id: str
    clusters: list[Topic]
    documents: list[TopicDocument]
    automatic: bool
    """Whether the number of clusters was chosen by the distance cut (not requested)."""
    vectors: str
    """``document`` (the pooled document vectors) or ``clustering-instruction`` (instruction-aware models)."""


_cache: OrderedDict[tuple[str, ...], TopicMap] = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every cached map (the next ones are computed again)."""
    with _cache_lock:
        _cache.clear()


def check_clusters(clusters: int | None) -> int | None:
    """``clusters`` if it is ``None`` or within :data:`MIN_CLUSTERS`..:data:`MAX_CLUSTERS`, else
    ``InvalidInputError``."""
    if clusters is None:
        return None
    if isinstance(clusters, bool) or not isinstance(clusters, int):
        raise InvalidInputError("clusters must be an integer", param="clusters")
    if not MIN_CLUSTERS <= clusters <= MAX_CLUSTERS:
        raise InvalidInputError(
            f"clusters must be between {MIN_CLUSTERS} and {MAX_CLUSTERS}, got {clusters}", param="clusters"
        )
    return clusters


def topic_map(zhiku: Zhiku, kb: KnowledgeBase, *, clusters: int | None = None) -> TopicMap:
    """The topic map of ``kb``'s ready documents: ``clusters`` clusters, or as many as the distance cut gives.

    ``InvalidInputError`` (``param="clusters"``) when ``clusters`` is out of range or above the number of
    documents. Cached per knowledge base until a document is added, changed or deleted.
    """
    check_clusters(clusters)
    with zhiku.db.session() as session:
        versions = sorted(
            session.execute(
                select(Document.id, Document.version).where(
                    Document.kb_id == kb.id, Document.status == DocumentStatus.ready, Document.version > 0
                )
            ).all()
        )
    if clusters is not None and clusters > max(len(versions), 1):
        raise InvalidInputError(
            f"clusters must be at most the number of ready documents ({len(versions)}), got {clusters}",
            param="clusters",
        )
    fingerprint = hashlib.sha256(repr(versions).encode()).hexdigest()
    key = (kb.id, model_key(kb), str(clusters), fingerprint)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    found = _build(zhiku, kb, clusters)
    with _cache_lock:
        _cache[key] = found
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return found


def _build(zhiku: Zhiku, kb: KnowledgeBase, clusters: int | None) -> TopicMap:
    ids, matrix = document_vectors(zhiku, kb)
    kind = "document"
    if ids and resolve_model(kb.embedding_model).instruction_aware:  # (no model is loaded to know)
        matrix, kind = clustering_vectors(zhiku, kb, ids), "clustering-instruction"
    if clusters is not None and clusters > len(ids):
        raise InvalidInputError(
            f"clusters must be at most the number of documents with vectors ({len(ids)}), got {clusters}",
            param="clusters",
        )
    labels = cluster_labels(matrix, clusters)
    texts, documents = _texts(zhiku, ids)
    counts = np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)
    groups = sorted((c for c in range(len(counts)) if counts[c]), key=lambda c: (-int(counts[c]), c))
    renumber = {old: new for new, old in enumerate(groups)}
    labels = np.array([renumber[int(label)] for label in labels], dtype=np.int64)
    members: list[list[str]] = [[] for _ in groups]
    for document_id, label in zip(ids, labels, strict=True):
        members[int(label)].append(document_id)
    names = cluster_terms(naming_sample(members, texts))
    centres, points = layout(matrix, labels)
    topics = [
        Topic(
            id=c,
            name=" · ".join(names[c]) or f"#{c + 1}",
            terms=names[c],
            size=len(members[c]),
            x=float(centres[c, 0]),
            y=float(centres[c, 1]),
            document_ids=typical_first(ids, matrix, labels, c),
        )
        for c in range(len(groups))
    ]
    placed = [
        TopicDocument(
            id=i,
            filename=documents[i].filename if i in documents else i,
            title=documents[i].title if i in documents else None,
            cluster=int(labels[n]),
            x=float(points[n, 0]),
            y=float(points[n, 1]),
        )
        for n, i in enumerate(ids)
    ]
    return TopicMap(kb.id, topics, placed, clusters is None, kind)


def typical_first(ids: Sequence[str], matrix: np.ndarray, labels: np.ndarray, cluster: int) -> list[str]:
    """The ids of ``cluster``'s documents, the most typical first (by cosine to the cluster's mean vector)."""
    rows = np.flatnonzero(labels == cluster)
    unit = _unit(matrix[rows])
    scores = unit @ unit.mean(axis=0)
    return [ids[int(rows[j])] for j in np.argsort(-scores, kind="stable")]


def cluster_labels(matrix: np.ndarray, clusters: int | None = None) -> np.ndarray:
    """A cluster number for each row of ``matrix``: average linkage on the cosine distance of the rows cut at
    :data:`DISTANCE_THRESHOLD`, or Ward's method on the L2-normalised rows cut into ``clusters`` groups. Above
    :data:`MAX_TREE_DOCUMENTS` rows the tree is built on an even sample and every row joins the cluster of the
    nearest sample centroid."""
    from sklearn.cluster import AgglomerativeClustering

    n = len(matrix)
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    unit = _unit(matrix)
    sample = np.arange(n) if n <= MAX_TREE_DOCUMENTS else np.linspace(0, n - 1, MAX_TREE_DOCUMENTS).astype(int)
    if clusters is not None:  # Ward on the unit vectors: at a given number it beat average linkage (module doc)
        labels = AgglomerativeClustering(n_clusters=clusters, linkage="ward").fit_predict(unit[sample])
        labels = np.asarray(labels, dtype=np.int64)
    else:
        # the cosine distances by one matrix product (scipy's pdist computes them pair by pair, 20x slower)
        chosen = unit[sample]
        distances = np.clip(1.0 - chosen @ chosen.T, 0.0, 2.0)
        np.fill_diagonal(distances, 0.0)
        distances = (distances + distances.T) / 2  # exactly symmetric, as the tree needs
        model = AgglomerativeClustering(
            n_clusters=None, distance_threshold=DISTANCE_THRESHOLD, metric="precomputed", linkage="average"
        )
        labels = np.asarray(model.fit_predict(distances), dtype=np.int64)
        if int(labels.max()) + 1 > MAX_CLUSTERS:
            # documents without common topics (the cut leaves most alone): the tree cut at the most a map shows
            model = AgglomerativeClustering(n_clusters=MAX_CLUSTERS, metric="precomputed", linkage="average")
            labels = np.asarray(model.fit_predict(distances), dtype=np.int64)
    if len(sample) == n:
        return labels
    centroids = _unit(np.stack([unit[sample][labels == c].mean(axis=0) for c in range(int(labels.max()) + 1)]))
    return np.asarray(np.argmax(unit @ centroids.T, axis=1), dtype=np.int64)


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    result: np.ndarray = (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)
    return result


def layout(matrix: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D positions (in -1..1) of the cluster centres and of the documents: the centres on the two principal axes
    of the centroids, each document beside its centre by its offset on those axes, scaled to stay in its area."""
    n = len(matrix)
    k = int(labels.max()) + 1 if n else 0
    if n == 0:
        return np.zeros((0, 2)), np.zeros((0, 2))
    unit = _unit(matrix)
    centroids = np.stack([unit[labels == c].mean(axis=0) for c in range(k)])
    mean = centroids.mean(axis=0)
    if k >= 2:
        _, _, vt = np.linalg.svd(centroids - mean, full_matrices=False)
        axes = vt[:2] if len(vt) >= 2 else np.vstack([vt[:1], np.zeros_like(vt[:1])])
    else:  # one cluster: the documents' own principal axes
        _, _, vt = np.linalg.svd(unit - mean, full_matrices=False)
        axes = vt[:2] if len(vt) >= 2 else np.vstack([vt[:1], np.zeros_like(vt[:1])])
    centres = (centroids - mean) @ axes.T
    centres = _spread(centres)
    offsets = (unit - centroids[labels]) @ axes.T
    if k >= 2:
        gaps = [np.delete(np.linalg.norm(centres - centres[c], axis=1), c).min() for c in range(k)]
        room = max(float(np.median(gaps)) * 0.6, 0.03)
    else:
        room = 0.9
    # most documents sit well inside their cluster's room; a few far ones are pulled in (clipped at the room)
    scale = float(np.quantile(np.linalg.norm(offsets, axis=1), 0.9)) or 1.0
    lengths = np.linalg.norm(offsets, axis=1, keepdims=True) / scale
    offsets = offsets / scale / np.maximum(lengths, 1.0)
    points = centres[labels] + offsets * room
    return np.clip(centres, -1, 1), np.clip(points, -1, 1)


def _spread(points: np.ndarray) -> np.ndarray:
    """Scale to -0.9..0.9 on the larger axis (the aspect kept), centred; rank-evened so that one far cluster does
    not squeeze the others into a corner."""
    if len(points) == 1:
        return np.zeros((1, 2))
    out = np.zeros_like(points, dtype=np.float64)
    for axis in range(2):
        values = points[:, axis]
        if np.ptp(values) == 0:
            continue
        ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable") / (len(values) - 1)
        linear = (values - values.min()) / np.ptp(values)
        out[:, axis] = (0.5 * ranks + 0.5 * linear) * 1.8 - 0.9
    return out


def clustering_vectors(zhiku: Zhiku, kb: KnowledgeBase, ids: Sequence[str]) -> np.ndarray:
    """The vectors of ``ids`` for clustering with an instruction-aware model: each document's leading text
    (:data:`LEADING_CHARS` of its first chunks) embedded as a query with the clustering instruction, through the
    embedding cache (namespace ``<model>|<dimension>|clustering``), so each text is embedded once."""
    texts, _ = _texts(zhiku, ids, limit=LEADING_CHARS)
    key = f"{model_key(kb)}|{CLUSTERING_INSTRUCTION}"
    wanted = [texts.get(i, "") or " " for i in ids]
    hashes = [text_hash(t) for t in wanted]
    found: dict[str, np.ndarray] = {}
    with zhiku.db.session() as session:
        unique = sorted(set(hashes))
        for start in range(0, len(unique), 500):
            rows = session.execute(
                select(EmbeddingCacheEntry.text_hash, EmbeddingCacheEntry.vector).where(
                    EmbeddingCacheEntry.model_key == key, EmbeddingCacheEntry.text_hash.in_(unique[start : start + 500])
                )
            )
            found.update((h, np.frombuffer(v, dtype="<f4")) for h, v in rows)
    missing = list(dict.fromkeys(h for h in hashes if h not in found))
    if missing:
        text_of = dict(zip(hashes, wanted, strict=True))
        embedder = zhiku.embedder_for(kb)
        for start in range(0, len(missing), 32):
            batch = missing[start : start + 32]
            result = embedder.embed(
                [text_of[h] for h in batch],
                input_type="query",
                instruction=CLUSTERING_INSTRUCTION,
                dimensions=kb.dimension,
                truncate="end",
            )
            vectors = np.asarray(result.vectors, dtype=np.float32)
            found.update(zip(batch, vectors, strict=True))
            with zhiku.db.session() as session:
                for h, v in zip(batch, vectors, strict=True):
                    session.merge(
                        EmbeddingCacheEntry(
                            model_key=key, text_hash=h, vector=v.astype("<f4").tobytes(), created_at=utcnow()
                        )
                    )
    return _unit(np.stack([found[h] for h in hashes]))


def _texts(zhiku: Zhiku, ids: Sequence[str], limit: int | None = None) -> tuple[dict[str, str], dict[str, Document]]:
    """The active version's chunk texts of each document, in order (the first ``limit`` characters when given),
    and the documents."""
    parts: dict[str, list[tuple[int, str]]] = {}
    documents: dict[str, Document] = {}
    with zhiku.db.session() as session:
        for start in range(0, len(ids), 500):
            batch = list(ids[start : start + 500])
            for document in session.scalars(select(Document).where(Document.id.in_(batch))):
                documents[document.id] = document
            rows = session.execute(
                select(Chunk.document_id, Chunk.version, Chunk.ordinal, Chunk.text).where(Chunk.document_id.in_(batch))
            )
            for document_id, version, ordinal, text in rows:
                if document_id in documents and version == documents[document_id].version:
                    parts.setdefault(document_id, []).append((ordinal, text))
    texts = {}
    for document_id, pieces in parts.items():
        joined = "\n".join(text for _, text in sorted(pieces))
        texts[document_id] = joined[:limit] if limit is not None else joined
    return texts, documents


def naming_sample(members: Sequence[Sequence[str]], texts: dict[str, str]) -> list[list[str]]:
    """The text each cluster is named from, within :data:`NAMING_CHARS` in all (segmenting Chinese is the slow part
    of a map: about 0.1 MB/s on a busy 2-core machine): each document's leading :data:`NAMING_CHARS` / n
    characters, at least :data:`NAMING_MIN_CHARS`; when that is still too much, an even sample of each cluster's
    documents."""
    n = sum(len(ids) for ids in members) or 1
    allowance = max(NAMING_MIN_CHARS, NAMING_CHARS // n)
    share = min(1.0, NAMING_CHARS / (n * allowance))
    sample: list[list[str]] = []
    for ids in members:
        keep = max(min(len(ids), 3), math.ceil(len(ids) * share))
        chosen = [ids[int(j)] for j in np.linspace(0, len(ids) - 1, keep).round().astype(int)] if ids else []
        sample.append([texts.get(i, "")[:allowance] for i in dict.fromkeys(chosen)])
    return sample


def name_terms(text: str) -> list[str]:
    """The words of ``text`` that may name a topic: jieba words of 2+ characters for CJK runs, other words of 3+
    letters lower-cased (not numbers), stop words of both languages dropped."""
    out: list[str] = []
    jieba = load_jieba()
    for word in WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        if is_cjk(word):
            for piece in jieba.cut(word):  # type: ignore[attr-defined]
                if len(piece) >= 2 and is_cjk(piece) and piece not in _STOP:
                    out.append(piece)
        elif len(word) >= 3 and not any(ch.isdigit() for ch in word) and word not in _STOP:
            out.append(word)
    return out


def cluster_terms(cluster_texts: Sequence[Sequence[str]], top: int = NAME_TERMS) -> list[list[str]]:
    """The ``top`` most distinctive terms of each cluster (class-based TF-IDF: a term's frequency in the cluster
    times ``log(1 + A / f)``, A the mean term count of a cluster, f the term's count in all clusters). A cluster
    whose text is in both scripts (CJK and other) gets terms of both, alternating."""
    counts = [Counter(term for text in texts for term in name_terms(text)) for texts in cluster_texts]
    total = Counter[str]()
    for count in counts:
        total.update(count)
    if not counts:
        return []
    average = sum(sum(c.values()) for c in counts) / len(counts) or 1.0
    names: list[list[str]] = []
    for count in counts:
        size = sum(count.values()) or 1
        # a term seen once names nothing in a cluster of several documents
        scored = sorted(
            ((c / size * math.log(1 + average / total[t]), t) for t, c in count.items() if c > 1 or size < 50),
            key=lambda pair: (-pair[0], pair[1]),
        )
        cjk = [t for _, t in scored if is_cjk(t)]
        other = [t for _, t in scored if not is_cjk(t)]
        cjk_share = sum(count[t] for t in cjk) / size
        if 0.2 <= cjk_share <= 0.8 and cjk and other:
            mixed = [t for pair in zip(other, cjk, strict=False) for t in pair]
            names.append(mixed[:top])
        else:
            names.append([t for _, t in scored[:top]])
    return names
