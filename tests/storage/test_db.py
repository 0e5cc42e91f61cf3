"""Metadata DB on SQLite (WAL) and PostgreSQL: migrations, constraints, cascades."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from zhiku.storage.db import Database
from zhiku.storage.models import Chunk, Document, Job, KnowledgeBase


def make_kb(db: Database, name: str = "kb") -> str:
    with db.session() as session:
        kb = KnowledgeBase(
            name=name, embedding_model="m", dimension=8, chunk_tokens=64, chunk_overlap=8, collection=f"c_{name}"
        )
        session.add(kb)
        session.flush()
        return kb.id


def test_migrate_creates_tables_idempotently(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    db.migrate()
    tables = set(inspect(db.engine).get_table_names())
    assert {"knowledge_bases", "documents", "chunks", "jobs", "embedding_cache", "alembic_version"} <= tables
    if database_url.startswith("sqlite"):
        with db.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    db.dispose()


def test_migrations_match_the_models(database_url: str) -> None:
    """Alembic's autogenerate finds nothing to add: the migrations build exactly the schema the models declare."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from zhiku.storage.models import Base

    db = Database(database_url)
    db.migrate()
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, Base.metadata)
    db.dispose()
    assert differences == []


def test_unique_constraints(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    kb_id = make_kb(db)
    with pytest.raises(IntegrityError):
        make_kb(db)  # same tenant and name
    with db.session() as session:
        session.add(Document(id="d1", kb_id=kb_id, source="a.txt", filename="a.txt", content_hash="h", size_bytes=1))
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(Document(id="d2", kb_id=kb_id, source="a.txt", filename="a.txt", content_hash="h", size_bytes=1))
    chunk = {"document_id": "d1", "version": 1, "ordinal": 0, "text": "x", "tokens": 1, "page_start": 1,
             "page_end": 1, "char_start": 0, "char_end": 1, "text_hash": "h"}  # fmt: skip
    with db.session() as session:
        session.add(Chunk(id="c1", **chunk))
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(Chunk(id="c2", **chunk))
    db.dispose()


def test_document_delete_cascades_to_chunks_and_jobs(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    kb_id = make_kb(db)
    with db.session() as session:
        session.add(Document(id="d1", kb_id=kb_id, source="a", filename="a", content_hash="h", size_bytes=1))
        session.flush()
        session.add(Job(kind="ingest_document", kb_id=kb_id, document_id="d1"))
        session.add(Chunk(id="c1", document_id="d1", version=1, ordinal=0, text="x", tokens=1, page_start=1,
                          page_end=1, char_start=0, char_end=1, text_hash="h"))  # fmt: skip
    with db.session() as session:
        session.execute(Document.__table__.delete().where(Document.id == "d1"))
    with db.session() as session:
        assert session.scalars(select(Chunk)).all() == []
        assert session.scalars(select(Job)).all() == []
    db.dispose()


def test_json_and_timestamps_round_trip(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    kb_id = make_kb(db)
    with db.session() as session:
        session.add(Job(id="j1", kind="k", kb_id=kb_id, payload={"version": 2, "sha256": "ab", "中文": [1, 2]}))
    with db.session() as session:
        job = session.get_one(Job, "j1")
        assert job.payload == {"version": 2, "sha256": "ab", "中文": [1, 2]}
        assert job.created_at.tzinfo is not None or database_url.startswith("sqlite")
    db.dispose()
