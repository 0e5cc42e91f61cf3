"""The PostgreSQL + pgvector store: the :class:`VectorStore` contract in tables that many processes share.

Tables (created and upgraded by Alembic, :mod:`zhiku.storage.vectors.pg_migrations`, with their own version table
``zhiku_vectors_alembic_version`` so that they can live in the metadata database or in another one):

- ``zhiku_vector_collections``: one row per collection (name, dimension, Matryoshka index dimension).
- ``zhiku_vector_points``: one row per point: id, ``kb_id``, ``document_id``, ``version``, the text, the rest of
  the payload as JSONB (GIN-indexed for equality filters), the normalised vector (``embedding``) and, in a
  Matryoshka collection, its re-normalised prefix (``index_embedding``).
- ``zhiku_vector_terms``: BM25 postings, one row per (collection, term, point) with the term's BM25 weight.

Dense search: each collection gets its own partial HNSW index (``vector_ip_ops`` on the vectors cast to the
collection's dimension, ``WHERE collection_id = <id>``), created by :meth:`PgVectorStore.ensure_collection`; a
query orders by the same expression so PostgreSQL walks that index. In a Matryoshka collection the index is on
the prefix column and the candidates are rescored by the full vector in the same statement (pgvector 0.6 has no
``subvector``, so the prefix is a stored column). pgvector before 0.8 filters *after* walking the graph, so a
selective filter can leave fewer than ``top_k`` hits: then the query is answered again exactly (a scan of the
filtered rows), so a filter never loses results.

Lexical search is BM25 with zhiku's own terms (:func:`zhiku.text.terms.index_terms`: jieba words, English stems),
the same weights as the Qdrant server adapter (:mod:`zhiku.storage.vectors.bm25`) and Qdrant's IDF
``ln(1 + (N - df + 0.5) / (df + 0.5))`` over the collection, from the postings: each term's postings are indexed by
descending weight with the point id (index-only reads), and a query sums the best :data:`POSTINGS_PER_TERM` of
each of its terms. PostgreSQL's own
full-text ranking (``ts_rank``) is not BM25 and has no Chinese words, so it is not used.

Hybrid search fuses the dense and BM25 candidates by reciprocal rank fusion, as the Qdrant stores do.
``vector_quantization`` does not apply: pgvector 0.6 has neither ``halfvec`` nor binary quantization.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from zhiku.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError, VectorStoreError
from zhiku.storage.vectors.base import (
    DOCUMENT_FIELD,
    KB_FIELD,
    TEXT_FIELD,
    VERSION_FIELD,
    PayloadValue,
    SearchFilter,
    VectorHit,
    VectorPoint,
    check_collection_name,
    check_dimensions,
    check_top_k,
    normalized_vectors,
    point_uuid,
    prefix_vector,
    stored_payload,
)
from zhiku.storage.vectors.bm25 import document_vector, query_vector

MAX_INDEX_DIMENSION = 2000
"""pgvector's HNSW index takes vectors of up to 2,000 dimensions."""
MAX_EF_SEARCH = 1000
"""pgvector's largest ``hnsw.ef_search``."""
STATS_SECONDS = 5.0
"""How long a process reuses a collection's point count and a term's document frequency (BM25's IDF) before
counting again."""
MAX_CACHED_FREQUENCIES = 200_000
"""Document frequencies a process keeps (the cache is emptied when it grows past this)."""
POSTINGS_PER_TERM = 2000
"""BM25 reads at most this many postings of a query term, those of highest weight. Rarer terms are read whole, so
only the smallest contributions of very common terms (whose IDF is low) are left out; it bounds a query's cost
when a term is in most chunks (a 的 or a "the": 40-60% of 100,000 chunks)."""
PAYLOAD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def _sql_url(url: str) -> str:
    """A libpq connection string from a SQLAlchemy-style URL (``postgresql+psycopg://`` -> ``postgresql://``)."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)


def _sqlalchemy_url(url: str) -> str:
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql+psycopg://", url)


class PgVectorStore:
    """A :class:`~zhiku.storage.vectors.base.VectorStore` in PostgreSQL with pgvector, shared by processes."""

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 256,
        rrf_k: int = 60,
        prefetch_factor: int = 4,
        rescore_factor: int = 10,
        min_rescore_candidates: int = 100,
        hnsw_ef: int | None = None,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        pool_size: int = 8,
        migrate: bool = True,
    ) -> None:
        """Connect to ``url`` (a PostgreSQL URL; ``postgresql+psycopg://`` is accepted) and bring the tables up to
        date. Hybrid search fuses ``max(50, prefetch_factor * top_k)`` candidates of each side by RRF (constant
        ``rrf_k``); a Matryoshka collection rescores ``max(min_rescore_candidates, rescore_factor * top_k)``
        prefix candidates. ``hnsw_ef`` is the HNSW search beam (``hnsw.ef_search``, at least the candidates
        asked for, at most 1,000); ``hnsw_m`` and ``hnsw_ef_construction`` shape new collections' indexes.
        """
        if not re.match(r"^postgres(?:ql)?(?:\+\w+)?://", url or ""):
            raise ConfigError(f"the pgvector store needs a PostgreSQL URL (postgresql://...), got {_redacted(url)!r}")
        self.url = url
        self.batch_size, self.rrf_k, self.prefetch_factor = batch_size, rrf_k, prefetch_factor
        self.rescore_factor, self.min_rescore_candidates = rescore_factor, min_rescore_candidates
        self.hnsw_ef, self.hnsw_m, self.hnsw_ef_construction = hnsw_ef, hnsw_m, hnsw_ef_construction
        self.pool_size = pool_size
        if migrate:
            migrate_vector_tables(url)
        self._pool_lock = threading.Lock()
        self._pool: Any = None
        self._connected_pool()  # fail now, not at the first search, when the database cannot be reached
        self._lock = threading.Lock()
        self._layouts: dict[str, tuple[int, int, int | None]] = {}
        self._counts: dict[int, tuple[float, int]] = {}
        self._frequencies: dict[tuple[int, int], tuple[float, int]] = {}

    # ------------------------------------------------------------------ collections

    def ensure_collection(self, name: str, dimension: int, *, index_dimension: int | None = None) -> None:
        """Create the collection and its HNSW index if missing; ``ConflictError`` if it exists with another layout.

        Several processes may ensure the same collection at once: a transaction-scoped advisory lock makes one of
        them create it and the others find it.
        """
        check_collection_name(name)
        check_dimensions(dimension, index_dimension)
        indexed = index_dimension or dimension
        if indexed > MAX_INDEX_DIMENSION:
            raise InvalidInputError(
                f"pgvector indexes vectors of up to {MAX_INDEX_DIMENSION} dimensions, not {indexed}: "
                "use a Matryoshka index dimension (--index-dim) or a smaller --dim",
                param="dimension",
            )
        with self._transaction(f"create vector collection {name!r}") as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"zhiku-vectors:{name}",))
            cursor.execute(
                "SELECT id, dimension, index_dimension FROM zhiku_vector_collections WHERE name = %s", (name,)
            )
            row = cursor.fetchone()
            if row is not None:
                _check_layout(name, (row[1], row[2]), (dimension, index_dimension))
                return
            cursor.execute(
                "INSERT INTO zhiku_vector_collections (name, dimension, index_dimension) VALUES (%s, %s, %s) "
                "RETURNING id",
                (name, dimension, index_dimension),
            )
            collection_id = int(cursor.fetchone()[0])
            # DDL takes no parameters: the values are composed in as literals
            cursor.execute(
                sql.SQL(
                    "CREATE INDEX {index} ON zhiku_vector_points USING hnsw (({column}::vector({dimension})) "
                    "vector_ip_ops) WITH (m = {m}, ef_construction = {ef}) WHERE collection_id = {collection}"
                ).format(
                    index=_index_name(collection_id),
                    column=sql.Identifier("index_embedding" if index_dimension else "embedding"),
                    dimension=sql.Literal(indexed),
                    m=sql.Literal(int(self.hnsw_m)),
                    ef=sql.Literal(int(self.hnsw_ef_construction)),
                    collection=sql.Literal(collection_id),
                )
            )
        with self._lock:
            self._layouts[name] = (collection_id, dimension, index_dimension)

    def has_collection(self, name: str) -> bool:
        """Whether the collection exists (asked of the database: another process may have dropped it)."""
        check_collection_name(name)
        with self._transaction(f"look up {name!r}") as cursor:
            cursor.execute("SELECT 1 FROM zhiku_vector_collections WHERE name = %s", (name,))
            found = cursor.fetchone() is not None
        if not found:
            with self._lock:
                self._layouts.pop(name, None)
        return found

    def delete_collection(self, name: str) -> None:
        """Drop the collection, its points, postings and index; a missing collection is not an error."""
        check_collection_name(name)
        with self._lock:
            self._layouts.pop(name, None)
        with self._transaction(f"delete vector collection {name!r}") as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"zhiku-vectors:{name}",))
            cursor.execute("DELETE FROM zhiku_vector_collections WHERE name = %s RETURNING id", (name,))
            row = cursor.fetchone()
            if row is not None:
                collection_id = int(row[0])
                cursor.execute("DELETE FROM zhiku_vector_terms WHERE collection_id = %s", (collection_id,))
                cursor.execute("DELETE FROM zhiku_vector_points WHERE collection_id = %s", (collection_id,))
                cursor.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(_index_name(collection_id)))

    def collections(self) -> Iterator[str]:
        """Names of the collections."""
        with self._transaction("list collections") as cursor:
            cursor.execute("SELECT name FROM zhiku_vector_collections ORDER BY name")
            return iter([str(row[0]) for row in cursor.fetchall()])

    def dimension(self, name: str) -> int:
        """The collection's vector dimension (``NotFoundError`` if it does not exist)."""
        return self._layout(name)[1]  # type: ignore[index]

    def index_dimension(self, name: str) -> int | None:
        """The indexed prefix dimension of a Matryoshka collection; ``None`` for a plain one."""
        return self._layout(name)[2]  # type: ignore[index]

    # ------------------------------------------------------------------ writes

    def upsert(self, name: str, points: Sequence[VectorPoint]) -> None:
        """Insert or replace points by id, ``batch_size`` per transaction, with their BM25 postings."""
        if not points:
            return
        collection_id, dimension, index_dimension = self._layout(name)  # type: ignore[misc]
        by_id = {point_uuid(p.id): p for p in points}  # the last of several points with one id wins
        ordered = sorted(by_id.items())  # one lock order for concurrent writers of the same points
        for start in range(0, len(ordered), self.batch_size):
            batch = ordered[start : start + self.batch_size]
            vectors = normalized_vectors([p.vector for _, p in batch], dimension)
            rows = []
            postings: list[tuple[int, int, str, float]] = []
            for (point_id, point), vector in zip(batch, vectors, strict=True):
                payload = stored_payload(point)
                extra = {
                    k: v for k, v in payload.items() if k not in (TEXT_FIELD, KB_FIELD, DOCUMENT_FIELD, VERSION_FIELD)
                }
                prefix = prefix_vector(vector, index_dimension) if index_dimension else None
                rows.append(
                    (
                        collection_id,
                        point_id,
                        payload.get(KB_FIELD),
                        payload[DOCUMENT_FIELD],
                        int(payload[VERSION_FIELD]),
                        _clean_text(point.text),
                        json.dumps(_clean_payload(extra), ensure_ascii=False),
                        vector,
                        prefix,
                    )
                )
                terms, weights = document_vector(point.text)
                postings.extend(
                    (collection_id, _signed(term), point_id, weight)
                    for term, weight in zip(terms, weights, strict=True)
                )
            with self._transaction(f"upsert into {name!r}") as cursor:
                # the row locks taken here serialise concurrent writers of the same points until commit
                cursor.executemany(
                    "INSERT INTO zhiku_vector_points (collection_id, id, kb_id, document_id, version, text, payload, "
                    "embedding, index_embedding) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s) "
                    "ON CONFLICT (collection_id, id) DO UPDATE SET kb_id = excluded.kb_id, "
                    "document_id = excluded.document_id, version = excluded.version, text = excluded.text, "
                    "payload = excluded.payload, embedding = excluded.embedding, "
                    "index_embedding = excluded.index_embedding",
                    rows,
                )
                cursor.execute(
                    "DELETE FROM zhiku_vector_terms WHERE collection_id = %s AND point_id = ANY(%s::uuid[])",
                    (collection_id, [point_id for point_id, _ in batch]),
                )
                with cursor.copy("COPY zhiku_vector_terms (collection_id, term, point_id, weight) FROM STDIN") as copy:
                    for posting in postings:
                        copy.write_row(posting)
            self._counts.pop(collection_id, None)

    def delete(self, name: str, *, document_id: str, version: int | None = None) -> int:
        """Delete a document's points (only of ``version`` if given) and their postings; return how many."""
        layout = self._layout(name, missing_ok=True)
        if layout is None:
            return 0
        collection_id = layout[0]
        statement = "DELETE FROM zhiku_vector_points WHERE collection_id = %s AND document_id = %s"
        params: tuple[Any, ...] = (collection_id, str(document_id))
        if version is not None:
            statement += " AND version = %s"
            params += (int(version),)
        with self._transaction(f"delete points in {name!r}") as cursor:
            cursor.execute(statement + " RETURNING id", params)
            deleted = [row[0] for row in cursor.fetchall()]
            if deleted:
                cursor.execute(
                    "DELETE FROM zhiku_vector_terms WHERE collection_id = %s AND point_id = ANY(%s::uuid[])",
                    (collection_id, deleted),
                )
        self._counts.pop(collection_id, None)
        return len(deleted)

    # ------------------------------------------------------------------ reads

    def search_dense(
        self,
        name: str,
        vector: np.ndarray,
        *,
        top_k: int = 10,
        filter: SearchFilter | None = None,
        with_payload: bool = True,
    ) -> list[VectorHit]:
        """Nearest points by cosine similarity (Matryoshka: prefix candidates rescored by the full vector)."""
        collection_id, dimension, index_dimension = self._layout(name)  # type: ignore[misc]
        check_top_k(top_k)
        if filter is not None and filter.matches_nothing:
            return []
        query = normalized_vectors([vector], dimension)[0]
        where, params = _where(collection_id, filter)
        with self._transaction(f"search {name!r}") as cursor:
            hits = self._dense(cursor, collection_id, dimension, index_dimension, query, top_k, where, params)
            if len(hits) < top_k and filter is not None:  # the graph walk may have missed filtered points
                hits = self._dense(cursor, collection_id, dimension, None, query, top_k, where, params, exact=True)
        return hits if with_payload else [VectorHit(id=hit.id, score=hit.score, payload={}) for hit in hits]

    def search_text(
        self, name: str, query: str, *, top_k: int = 10, filter: SearchFilter | None = None
    ) -> list[VectorHit]:
        """BM25 over the chunk text (zhiku's terms, Qdrant's IDF); a query without terms returns no hits."""
        collection_id = self._layout(name)[0]  # type: ignore[index]
        check_top_k(top_k)
        terms, _ = query_vector(query)
        if not terms or (filter is not None and filter.matches_nothing):
            return []
        where, params = _where(collection_id, filter, alias="p")
        with self._transaction(f"search {name!r}") as cursor:
            return self._text(cursor, collection_id, [_signed(t) for t in terms], top_k, where, params)

    def search_hybrid(
        self, name: str, vector: np.ndarray, query: str, *, top_k: int = 10, filter: SearchFilter | None = None
    ) -> list[VectorHit]:
        """Dense and BM25 candidates fused by reciprocal rank fusion; scores are fusion scores."""
        check_top_k(top_k)
        candidates = max(50, self.prefetch_factor * top_k)
        dense = self.search_dense(name, vector, top_k=candidates, filter=filter)
        text = self.search_text(name, query, top_k=candidates, filter=filter)
        scores: dict[str, float] = {}
        payloads: dict[str, dict[str, Any]] = {}
        for hits in (dense, text):
            for rank, hit in enumerate(hits):
                scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (self.rrf_k + rank + 1)
                payloads[hit.id] = hit.payload
        best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:top_k]
        return [VectorHit(id=point_id, score=score, payload=payloads[point_id]) for point_id, score in best]

    def count(self, name: str, filter: SearchFilter | None = None) -> int:
        """Exact number of points matching ``filter``."""
        collection_id = self._layout(name)[0]  # type: ignore[index]
        if filter is not None and filter.matches_nothing:
            return 0
        where, params = _where(collection_id, filter)
        with self._transaction(f"count in {name!r}") as cursor:
            cursor.execute(sql.SQL("SELECT count(*) FROM zhiku_vector_points WHERE {}").format(where), params)
            return int(cursor.fetchone()[0])

    def optimize(self, name: str) -> None:
        """Vacuum and analyse the tables: the visibility map lets BM25 read postings from the index alone, and the
        planner gets fresh statistics (the HNSW index is maintained on every write)."""
        self._layout(name)
        with self._connected_pool().connection() as connection:
            connection.autocommit = True
            try:
                for table in ("zhiku_vector_points", "zhiku_vector_terms"):
                    connection.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
            except Exception as exc:
                raise VectorStoreError(f"cannot analyse the vector tables: {_one_line(exc)}") from exc
            finally:
                connection.autocommit = False

    def close(self) -> None:
        """Close the connection pool (the store opens a new one on its next use)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    # ------------------------------------------------------------------ internals

    def _dense(
        self,
        cursor: Any,
        collection_id: int,
        dimension: int,
        index_dimension: int | None,
        query: np.ndarray,
        top_k: int,
        where: sql.Composable,
        params: tuple[Any, ...],
        *,
        exact: bool = False,
    ) -> list[VectorHit]:
        from pgvector import Vector

        if exact:  # no cast: the expression matches no index, so PostgreSQL scans the filtered rows
            cursor.execute(
                sql.SQL(
                    "SELECT id, kb_id, document_id, version, text, payload, -(embedding <#> %s) "
                    "FROM zhiku_vector_points WHERE {where} ORDER BY embedding <#> %s LIMIT %s"
                ).format(where=where),
                (Vector(query), *params, Vector(query), top_k),
            )
            return _hits(cursor.fetchall())
        if index_dimension is None:
            self._set_ef(cursor, top_k)
            cursor.execute(
                sql.SQL(
                    "SELECT id, kb_id, document_id, version, text, payload, -(embedding::vector({dim}) <#> %s) "
                    "FROM zhiku_vector_points WHERE {where} ORDER BY embedding::vector({dim}) <#> %s LIMIT %s"
                ).format(dim=sql.Literal(dimension), where=where),
                (Vector(query), *params, Vector(query), top_k),
            )
            return _hits(cursor.fetchall())
        candidates = max(self.min_rescore_candidates, self.rescore_factor * top_k)
        self._set_ef(cursor, candidates)
        cursor.execute(
            sql.SQL(
                "SELECT id, kb_id, document_id, version, text, payload, -(embedding <#> %s) AS score FROM ("
                "SELECT * FROM zhiku_vector_points WHERE {where} "
                "ORDER BY index_embedding::vector({dim}) <#> %s LIMIT %s) AS stage_one ORDER BY score DESC LIMIT %s"
            ).format(where=where, dim=sql.Literal(index_dimension)),
            (Vector(query), *params, Vector(prefix_vector(query, index_dimension)), candidates, top_k),
        )
        return _hits(cursor.fetchall())

    def _text(
        self,
        cursor: Any,
        collection_id: int,
        terms: list[int],
        top_k: int,
        where: sql.Composable,
        params: tuple[Any, ...],
    ) -> list[VectorHit]:
        """BM25 from the postings: each query term's IDF from its document frequency, then the best
        :data:`POSTINGS_PER_TERM` postings of each term (index-only, by descending weight) summed per point. The
        filter is applied to the best ``max(1000, 10 * top_k)`` points; when it leaves fewer than ``top_k``, to all
        scored points."""
        total = self._point_count(cursor, collection_id)
        frequencies = self._document_frequencies(cursor, collection_id, terms)
        if not frequencies:
            return []
        present = list(frequencies)
        idf = [math.log(1 + (total - df + 0.5) / (df + 0.5)) for df in frequencies.values()]
        statement = sql.SQL(
            "WITH scored AS MATERIALIZED (SELECT t.point_id, sum(t.weight * w.idf) AS score "
            "FROM unnest(%s::int[], %s::float8[]) AS w (term, idf) CROSS JOIN LATERAL ("
            "SELECT point_id, weight FROM zhiku_vector_terms WHERE collection_id = %s AND term = w.term "
            "ORDER BY weight DESC LIMIT %s) AS t GROUP BY t.point_id ORDER BY score DESC {limit}) "
            "SELECT p.id, p.kb_id, p.document_id, p.version, p.text, p.payload, scored.score FROM scored "
            "JOIN zhiku_vector_points p ON p.collection_id = %s AND p.id = scored.point_id WHERE {where} "
            "ORDER BY scored.score DESC, p.id LIMIT %s"
        )
        arguments = (present, idf, collection_id, POSTINGS_PER_TERM, collection_id, *params, top_k)
        candidates = sql.SQL("LIMIT {}").format(sql.Literal(max(1000, 10 * top_k)))
        cursor.execute(statement.format(limit=candidates, where=where), arguments)
        hits = _hits(cursor.fetchall())
        if len(hits) < top_k and params:  # the filter kept too few of the best points: filter them all
            cursor.execute(statement.format(limit=sql.SQL(""), where=where), arguments)
            hits = _hits(cursor.fetchall())
        return hits

    def _document_frequencies(self, cursor: Any, collection_id: int, terms: list[int]) -> dict[int, int]:
        """How many points of the collection hold each term (terms held by none are left out); a process reuses
        a term's count for :data:`STATS_SECONDS`, as it does the collection's size."""
        now = time.monotonic()
        known = {t: self._frequencies.get((collection_id, t)) for t in terms}
        fresh = {t: hit[1] for t, hit in known.items() if hit is not None and now - hit[0] < STATS_SECONDS}
        missing = [t for t in terms if t not in fresh]
        if missing:
            cursor.execute(
                "SELECT term, count(*) FROM zhiku_vector_terms WHERE collection_id = %s AND term = ANY(%s) "
                "GROUP BY term",
                (collection_id, missing),
            )
            counted = {int(term): int(df) for term, df in cursor.fetchall()}
            if len(self._frequencies) > MAX_CACHED_FREQUENCIES:
                self._frequencies.clear()
            for term in missing:
                self._frequencies[(collection_id, term)] = (now, counted.get(term, 0))
                fresh[term] = counted.get(term, 0)
        return {t: df for t, df in fresh.items() if df > 0}

    def _point_count(self, cursor: Any, collection_id: int) -> int:
        cached = self._counts.get(collection_id)
        if cached is not None and time.monotonic() - cached[0] < STATS_SECONDS:
            return cached[1]
        cursor.execute("SELECT count(*) FROM zhiku_vector_points WHERE collection_id = %s", (collection_id,))
        total = int(cursor.fetchone()[0])
        self._counts[collection_id] = (time.monotonic(), total)
        return total

    def _set_ef(self, cursor: Any, candidates: int) -> None:
        ef = min(MAX_EF_SEARCH, max(candidates, self.hnsw_ef or 40))
        cursor.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(int(ef))))

    def _layout(self, name: str, *, missing_ok: bool = False) -> tuple[int, int, int | None] | None:
        """``(id, dimension, index_dimension)`` of a collection, read once and remembered."""
        check_collection_name(name)
        with self._lock:
            if name in self._layouts:
                return self._layouts[name]
        with self._transaction(f"look up {name!r}") as cursor:
            cursor.execute(
                "SELECT id, dimension, index_dimension FROM zhiku_vector_collections WHERE name = %s", (name,)
            )
            row = cursor.fetchone()
        if row is None:
            if missing_ok:
                return None
            raise NotFoundError(f"vector collection {name!r} does not exist", param="name")
        layout = (int(row[0]), int(row[1]), None if row[2] is None else int(row[2]))
        with self._lock:
            self._layouts[name] = layout
        return layout

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[Any]:
        """A cursor of a pooled connection inside one transaction; database errors become ``VectorStoreError``."""
        try:
            with (
                self._connected_pool().connection() as connection,
                connection.transaction(),
                connection.cursor() as cursor,
            ):
                yield cursor
        except psycopg.Error as exc:
            raise VectorStoreError(f"cannot {what}: {_one_line(exc)}") from exc

    def _connected_pool(self) -> Any:
        """The connection pool, opened on first use and again after :meth:`close`."""
        from pgvector.psycopg import register_vector
        from psycopg_pool import ConnectionPool

        with self._pool_lock:
            if self._pool is None:
                pool = ConnectionPool(
                    _sql_url(self.url),
                    min_size=1,
                    max_size=self.pool_size,
                    configure=register_vector,
                    open=False,
                    name="zhiku-pgvector",
                )
                try:
                    pool.open(wait=True, timeout=30)
                except Exception as exc:
                    pool.close()
                    raise VectorStoreError(
                        f"cannot connect to the pgvector database at {_redacted(self.url)}: {_one_line(exc)}"
                    ) from exc
                self._pool = pool
            return self._pool


def migrate_vector_tables(url: str) -> None:
    """Create or upgrade the pgvector tables with Alembic (idempotent; safe when several processes start)."""
    from pathlib import Path

    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, pool, text

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "pg_migrations"))
    engine = create_engine(_sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(7262532)"))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except Exception as exc:
        raise VectorStoreError(f"cannot prepare the pgvector tables at {_redacted(url)}: {_one_line(exc)}") from exc
    finally:
        engine.dispose()


def _one_line(exc: BaseException) -> str:
    """A database error as one line (the driver's message, without SQLAlchemy's "Background on this error")."""
    original = getattr(exc, "orig", None) or exc
    return " ".join(line.strip() for line in str(original).splitlines() if line.strip())


def _redacted(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", name) or ".." in name:
        raise InvalidInputError(
            f"invalid vector collection name {name!r}: use 1-128 letters, digits, '_', '-' or '.'", param="name"
        )


def _check_layout(name: str, stored: tuple[int, int | None], wanted: tuple[int, int | None]) -> None:
    if stored[0] != wanted[0]:
        raise ConflictError(
            f"vector collection {name!r} already exists with dimension {stored[0]}, not {wanted[0]}: "
            "drop it and re-index (zhiku reindex) to change the embedding model or dimension",
            param="dimension",
        )
    if stored[1] != wanted[1]:
        raise ConflictError(
            f"vector collection {name!r} already exists with another index dimension", param="index_dimension"
        )


def _index_name(collection_id: int) -> sql.Identifier:
    """The name of a collection's partial HNSW index."""
    return sql.Identifier(f"zhiku_vectors_hnsw_{int(collection_id)}")


def _signed(term: int) -> int:
    """A CRC-32 term id as PostgreSQL's signed ``integer``."""
    return term - (1 << 32) if term >= 1 << 31 else term


def _clean_text(text: str) -> str:
    """PostgreSQL text (and JSONB) cannot hold NUL characters."""
    return text.replace("\x00", "\ufffd")


def _clean_payload(value: Any) -> Any:
    """A payload with NUL characters replaced in every string, keys included."""
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_clean_text(str(k)): _clean_payload(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_payload(v) for v in value]
    return value


def _where(
    collection_id: int, search_filter: SearchFilter | None, *, alias: str = ""
) -> tuple[sql.Composable, tuple[Any, ...]]:
    """The SQL condition (with parameters) of a collection and a filter on the points table."""

    def column(name: str) -> sql.Composable:
        return sql.Identifier(alias, name) if alias else sql.Identifier(name)

    # the collection is a literal, not a parameter, so that the planner can use the collection's partial index
    clauses: list[sql.Composable] = [sql.SQL("{} = {}").format(column("collection_id"), sql.Literal(collection_id))]
    params: list[Any] = []
    if search_filter is not None:
        if search_filter.kb_id is not None:
            clauses.append(sql.SQL("{} = %s").format(column(KB_FIELD)))
            params.append(str(search_filter.kb_id))
        if search_filter.document_ids is not None:
            clauses.append(sql.SQL("{} = ANY(%s)").format(column(DOCUMENT_FIELD)))
            params.append([str(d) for d in search_filter.document_ids])
        for key, value in (search_filter.payload or {}).items():
            clause, values = _payload_condition(column, key, value)
            clauses.append(clause)
            params.extend(values)
    return sql.SQL(" AND ").join(clauses), tuple(params)


def _payload_condition(
    column: Callable[[str], sql.Composable], key: str, value: PayloadValue | Sequence[PayloadValue]
) -> tuple[sql.Composable, list[Any]]:
    """Equality with one value or any of several, on a reserved column or in the JSONB payload."""
    if not isinstance(key, str) or not PAYLOAD_KEY.match(key):
        raise InvalidInputError(f"invalid payload filter field {key!r}", param="filter")
    values: list[PayloadValue] = [value] if isinstance(value, str | int | bool) else list(value)
    if not values or not (
        all(isinstance(v, str) for v in values)
        or all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        or all(isinstance(v, bool) for v in values)
    ):
        raise InvalidInputError(f"filter values must be all strings or all integers, got {values!r}", param="filter")
    if key in (KB_FIELD, DOCUMENT_FIELD, VERSION_FIELD):
        return sql.SQL("{} = ANY(%s)").format(column(key)), [values]
    # containment (@>) of {"key": value} for each value: answered from the GIN index on the payload
    alternatives = sql.SQL(" OR ").join([sql.SQL("{} @> %s::jsonb").format(column("payload"))] * len(values))
    return sql.SQL("({})").format(alternatives), [json.dumps({key: v}, ensure_ascii=False) for v in values]


def _hits(rows: Sequence[tuple[Any, ...]]) -> list[VectorHit]:
    hits = []
    for point_id, kb_id, document_id, version, text, payload, score in rows:
        merged = dict(payload or {})
        if kb_id is not None:
            merged[KB_FIELD] = kb_id
        merged[DOCUMENT_FIELD] = document_id
        merged[VERSION_FIELD] = int(version)
        merged[TEXT_FIELD] = text
        value = float(score)
        hits.append(
            VectorHit(id=str(uuid.UUID(str(point_id))), score=value if math.isfinite(value) else 0.0, payload=merged)
        )
    return hits
