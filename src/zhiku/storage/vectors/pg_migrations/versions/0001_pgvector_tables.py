"""pgvector store: collections, points (vectors, text, payload) and BM25 postings

Revision ID: v0001
Revises:
Create Date: 2026-11-30 16:30:00
"""

from __future__ import annotations

from alembic import op

revision = "v0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(
        """
        CREATE TABLE zhiku_vector_collections (
            id serial PRIMARY KEY,
            name text NOT NULL UNIQUE,
            dimension integer NOT NULL,
            index_dimension integer,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # one HNSW index per collection is created with the collection (a partial index on its rows)
    op.execute(
        """
        CREATE TABLE zhiku_vector_points (
            collection_id integer NOT NULL REFERENCES zhiku_vector_collections (id) ON DELETE CASCADE,
            id uuid NOT NULL,
            kb_id text,
            document_id text NOT NULL,
            version integer NOT NULL,
            text text NOT NULL,
            payload jsonb NOT NULL DEFAULT '{}'::jsonb,
            embedding vector NOT NULL,
            index_embedding vector,
            PRIMARY KEY (collection_id, id)
        )
        """
    )
    op.execute("CREATE INDEX zhiku_vector_points_document ON zhiku_vector_points (collection_id, document_id, version)")
    op.execute("CREATE INDEX zhiku_vector_points_kb ON zhiku_vector_points (collection_id, kb_id)")
    op.execute("CREATE INDEX zhiku_vector_points_payload ON zhiku_vector_points USING gin (payload jsonb_path_ops)")
    op.execute(
        """
        CREATE TABLE zhiku_vector_terms (
            collection_id integer NOT NULL,
            term integer NOT NULL,
            point_id uuid NOT NULL,
            weight real NOT NULL,
            PRIMARY KEY (collection_id, point_id, term)
        )
        """
    )
    # a term's postings by descending weight, the point in the index too: BM25 reads the best postings of each
    # query term with an index-only scan (the rows of a term are scattered over the heap)
    op.execute(
        "CREATE INDEX zhiku_vector_terms_impact ON zhiku_vector_terms (collection_id, term, weight DESC) "
        "INCLUDE (point_id)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS zhiku_vector_terms")
    op.execute("DROP TABLE IF EXISTS zhiku_vector_points")
    op.execute("DROP TABLE IF EXISTS zhiku_vector_collections")
