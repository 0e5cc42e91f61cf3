"""End-to-end ingestion on the real stack: SQLite or PostgreSQL, blob store, Qdrant Edge, the default model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.errors import VectorStoreError
from zhiku.jobs.runner import cancel_job, retry_job
from zhiku.knowledge.bases import create_knowledge_base, get_knowledge_base, knowledge_base_stats
from zhiku.knowledge.documents import NewFile, delete_document, register_file, register_files
from zhiku.pipeline.tasks import job_runner
from zhiku.storage.models import Chunk, Document, Job, KnowledgeBase
from zhiku.storage.vectors.base import SearchFilter, VectorPoint

ENGLISH = (
    "# Refund policy\n\nCustomers may return any item within thirty days of delivery. Refunds are paid to the "
    "original card within five business days.\n\n## Exceptions\n\nGift cards and opened software cannot be "
    "returned.\n"
)
CHINESE = "退货政策\n\n顾客可以在收货后三十天内退回任何商品。退款将在五个工作日内退回原银行卡。礼品卡不能退货。\n" * 3


@pytest.fixture
def zhiku(tmp_path: Path, storage: dict[str, Any]) -> Iterator[Zhiku]:
    app = Zhiku(Settings(home=tmp_path / "home", job_retry_backoff=0.05, **storage))
    yield app
    app.close()


def run_all(zhiku: Zhiku) -> None:
    runner = job_runner(zhiku, workers=2, poll_interval=0.05)
    with runner:
        with zhiku.db.session() as session:
            ids = list(session.scalars(select(Job.id).where(Job.status.in_(["queued", "running"]))))
        runner.wait_for(ids, timeout=300)


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_ingest_makes_documents_searchable_with_exact_spans(zhiku: Zhiku, tmp_path: Path) -> None:
    kb = create_knowledge_base(zhiku, "handbook", chunk_tokens=32, chunk_overlap=4)
    files = [write(tmp_path / "in", "refunds.md", ENGLISH), write(tmp_path / "in", "退货.txt", CHINESE)]
    outcomes = [register_file(zhiku, kb, f) for f in files]
    assert [o.outcome for o in outcomes] == ["queued", "queued"]
    run_all(zhiku)
    with zhiku.db.session() as session:
        documents = list(session.scalars(select(Document)))
        chunks = list(session.scalars(select(Chunk)))
    assert {d.status for d in documents} == {"ready"}
    assert all(d.version == 1 and d.chunk_count > 1 for d in documents)
    assert len(chunks) == sum(d.chunk_count for d in documents)
    assert zhiku.vectors.count(kb.collection) == len(chunks)
    by_name = {f.name: f.read_text(encoding="utf-8") for f in files}
    originals = {d.id: by_name[d.filename] for d in documents}
    for chunk in chunks:
        assert originals[chunk.document_id][chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.tokens <= 32
    markdown = next(d for d in documents if d.filename == "refunds.md")
    assert any(c.heading_path == ["Refund policy", "Exceptions"] for c in chunks if c.document_id == markdown.id)
    query = zhiku.embedder_for(kb).embed("可以退礼品卡吗？", input_type="query").vectors[0]
    hits = zhiku.vectors.search_dense(kb.collection, query, top_k=3, filter=SearchFilter(kb_id=kb.id))
    assert hits
    assert "gift" in hits[0].payload["text"].lower() or "礼品卡" in hits[0].payload["text"]
    assert hits[0].payload["version"] == 1
    text_hits = zhiku.vectors.search_text(kb.collection, "礼品卡", top_k=3)
    assert any("礼品卡" in h.payload["text"] for h in text_hits)
    stats = knowledge_base_stats(zhiku, get_knowledge_base(zhiku, "handbook"))
    assert stats.documents == {"ready": 2}
    assert stats.chunks == len(chunks)


def test_duplicates_unchanged_and_new_versions(zhiku: Zhiku, tmp_path: Path) -> None:
    kb = create_knowledge_base(zhiku, "kb", chunk_tokens=32, chunk_overlap=0)
    original = write(tmp_path, "a/policy.md", ENGLISH)
    assert register_file(zhiku, kb, original).outcome == "queued"
    copy = write(tmp_path, "b/copy-of-policy.md", ENGLISH)
    duplicate = register_file(zhiku, kb, copy)
    assert duplicate.outcome == "duplicate"
    assert duplicate.job_id is None
    assert "policy.md" in duplicate.message
    run_all(zhiku)
    assert register_file(zhiku, kb, original).outcome == "unchanged"
    with zhiku.db.session() as session:
        first = session.scalar(select(Document).where(Document.filename == "policy.md"))
        assert first is not None
        old_chunks = set(session.scalars(select(Chunk.id).where(Chunk.document_id == first.id)))
    original.write_text(ENGLISH + "\n## Shipping\n\nOrders ship within two days from our warehouse.\n")
    update = register_file(zhiku, kb, original)
    assert update.outcome == "queued"
    assert update.document_id == first.id
    run_all(zhiku)
    with zhiku.db.session() as session:
        document = session.get_one(Document, first.id)
        versions = set(session.scalars(select(Chunk.version).where(Chunk.document_id == first.id)))
        new_chunks = set(session.scalars(select(Chunk.id).where(Chunk.document_id == first.id)))
    assert document.version == 2
    assert document.status == "ready"
    assert versions == {2}
    assert not old_chunks & new_chunks
    assert zhiku.vectors.count(kb.collection, SearchFilter(document_ids=[first.id])) == len(new_chunks)
    payload_versions = {
        h.payload["version"]
        for h in zhiku.vectors.search_text(kb.collection, "refund shipping", top_k=50)
        if h.payload["document_id"] == first.id
    }
    assert payload_versions == {2}


def test_register_files_registers_a_batch_in_order(zhiku: Zhiku, tmp_path: Path) -> None:
    kb = create_knowledge_base(zhiku, "batch")
    policy = write(tmp_path / "in", "policy.md", ENGLISH)
    chinese = write(tmp_path / "in", "退货.txt", CHINESE)
    copy = write(tmp_path / "in", "copy.md", ENGLISH)
    files = [policy, chinese, copy, tmp_path / "in" / "missing.md", NewFile(chinese, "upload:7", "../renamed.txt")]
    outcomes = register_files(zhiku, kb, files)
    assert [r.outcome for r in outcomes] == ["queued", "queued", "duplicate", "failed", "duplicate"]
    assert outcomes[2].message.startswith("same content as policy.md")  # a twin registered earlier in the batch
    assert "missing.md" in outcomes[3].message
    assert outcomes[4].source == "upload:7"
    assert [r.outcome for r in register_files(zhiku, kb, [policy, chinese])] == ["unchanged", "unchanged"]
    run_all(zhiku)
    with zhiku.db.session() as session:
        rows = dict(session.execute(select(Document.filename, Document.status).where(Document.kb_id == kb.id)).all())
    assert rows == {"policy.md": "ready", "退货.txt": "ready", "copy.md": "duplicate", "renamed.txt": "duplicate"}


def test_one_source_twice_in_a_batch_keeps_the_last_version(zhiku: Zhiku, tmp_path: Path) -> None:
    """Registration looks rows up once per batch: a file must still see the ones registered before it."""
    kb = create_knowledge_base(zhiku, "twice")
    first = write(tmp_path / "a", "policy.md", ENGLISH)
    second = write(tmp_path / "b", "policy.md", ENGLISH + "\nReturns need a receipt.\n")
    again = write(tmp_path / "c", "policy.md", ENGLISH + "\nReturns need a receipt.\n")
    outcomes = register_files(zhiku, kb, [NewFile(first, "doc:1"), NewFile(second, "doc:1"), NewFile(again, "doc:1")])
    assert [r.outcome for r in outcomes] == ["queued", "queued", "unchanged"]
    assert outcomes[0].document_id == outcomes[1].document_id == outcomes[2].document_id
    with zhiku.db.session() as session:
        jobs = {j.id: (j.status, j.payload["version"]) for j in session.scalars(select(Job))}
    assert jobs == {outcomes[0].job_id: ("cancelled", 1), outcomes[1].job_id: ("queued", 2)}
    run_all(zhiku)
    with zhiku.db.session() as session:
        document = session.get_one(Document, outcomes[0].document_id)
        texts = " ".join(session.scalars(select(Chunk.text).where(Chunk.document_id == document.id)))
    assert (document.status, document.version) == ("ready", 2)
    assert "receipt" in texts


def test_identical_chunks_are_embedded_once(zhiku: Zhiku, tmp_path: Path) -> None:
    kb = create_knowledge_base(zhiku, "kb", chunk_tokens=32, chunk_overlap=0)
    register_file(zhiku, kb, write(tmp_path, "one.md", ENGLISH + "\nOne.\n"))
    register_file(zhiku, kb, write(tmp_path, "two.md", ENGLISH + "\nTwo.\n"))
    run_all(zhiku)
    from zhiku.storage.models import EmbeddingCacheEntry

    with zhiku.db.session() as session:
        cached = session.scalar(select(func.count()).select_from(EmbeddingCacheEntry))
        distinct_texts = session.scalar(select(func.count(func.distinct(Chunk.text_hash))))
        total = session.scalar(select(func.count()).select_from(Chunk))
    assert cached == distinct_texts < total


def test_bad_inputs_fail_precisely_while_the_rest_succeeds(
    zhiku: Zhiku, tmp_path: Path, evaldata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb = create_knowledge_base(zhiku, "kb", chunk_tokens=64, chunk_overlap=0)
    good = register_file(zhiku, kb, write(tmp_path, "good.md", ENGLISH))
    pdfs = evaldata / "pdf"
    encrypted = next((pdfs / "py-pdf-sample-files" / "005-libreoffice-writer-password").glob("*.pdf"))
    image_only = pdfs / "ocrmypdf" / "skew.pdf"
    loop = tmp_path / "loop.txt"
    os.symlink(loop, loop)
    cases = {
        "corrupt.pdf": (write(tmp_path, "corrupt.pdf", b"%PDF-1.7\n" + os.urandom(3000)), "corrupt"),
        "encrypted.pdf": (encrypted, "password"),
        "empty.txt": (write(tmp_path, "empty.txt", b""), "empty"),
        "image-only.pdf": (image_only, "OCR"),
        "binary.txt": (write(tmp_path, "binary.txt", bytes(range(256)) * 40), "binary"),
        "huge.txt": (write(tmp_path, "huge.txt", "x" * 300_000), "over the limit"),
        "loop.txt": (loop, "loop.txt"),
    }
    monkeypatch.setattr(zhiku.settings, "max_file_bytes", 200_000)
    monkeypatch.setattr(zhiku.settings, "ocr_enabled", False)  # OCR on: tests/jobs/test_ocr_ingest.py
    outcomes = {name: register_file(zhiku, kb, path) for name, (path, _) in cases.items()}
    run_all(zhiku)
    with zhiku.db.session() as session:
        for name, (_, expected) in cases.items():
            outcome = outcomes[name]
            if outcome.document_id is None:
                assert outcome.outcome == "failed", name
                message = outcome.message
            else:
                document = session.get_one(Document, outcome.document_id)
                assert document.status == "failed", (name, document.status)
                message = document.error or ""
            assert expected.lower() in message.lower(), (name, message)
        assert good.document_id is not None
        assert session.get_one(Document, good.document_id).status == "ready"
        failed_jobs = list(session.scalars(select(Job).where(Job.status == "failed")))
        assert all(job.attempts == 1 for job in failed_jobs)  # a bad document is not retried
    assert zhiku.vectors.count(kb.collection) == session_chunk_count(zhiku)


def session_chunk_count(zhiku: Zhiku) -> int:
    with zhiku.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Chunk)) or 0)


def test_unreadable_file(zhiku: Zhiku, tmp_path: Path) -> None:
    kb = create_knowledge_base(zhiku, "kb")
    secret = write(tmp_path, "secret.txt", "top secret")
    secret.chmod(0)
    if os.geteuid() == 0:  # root reads anything: drop to nobody for the read, as a real unprivileged user would
        os.seteuid(65534)
        try:
            outcome = register_file(zhiku, kb, secret)
        finally:
            os.seteuid(0)
    else:
        outcome = register_file(zhiku, kb, secret)
    assert outcome.outcome == "failed"
    assert "secret.txt" in outcome.message
    assert "ermission denied" in outcome.message


def test_file_name_with_path_traversal_is_sanitised(zhiku: Zhiku, tmp_path: Path) -> None:
    kb = create_knowledge_base(zhiku, "kb")
    path = write(tmp_path, "plain.txt", "hello world, a normal document")
    outcome = register_file(zhiku, kb, path, source="upload:../../etc/passwd", filename="../../etc/passwd")
    with zhiku.db.session() as session:
        document = session.get_one(Document, outcome.document_id)
    assert document.filename == "passwd"
    assert zhiku.blobs.path_for(document.pending_hash or "").is_relative_to(zhiku.settings.home / "blobs")


def test_transient_failures_are_retried_with_backoff_then_marked_failed(zhiku: Zhiku, tmp_path: Path) -> None:
    """A transient failure (the vector store refuses writes for a while) is retried with backoff up to
    max_attempts, then the job and document are marked failed; a manual retry then succeeds."""
    kb = create_knowledge_base(zhiku, "kb")
    outcome = register_file(zhiku, kb, write(tmp_path, "a.md", ENGLISH))
    real_upsert = zhiku.vectors.upsert

    def unavailable(name: str, points: list[VectorPoint]) -> None:  # fault injection in front of the real store
        raise VectorStoreError("the store is unavailable")

    zhiku.vectors.upsert = unavailable  # type: ignore[method-assign]
    run_all_until_settled(zhiku)
    with zhiku.db.session() as session:
        job = session.get_one(Job, outcome.job_id)
        document = session.get_one(Document, outcome.document_id)
    assert job.status == "failed"
    assert job.attempts == zhiku.settings.job_max_attempts
    assert document.status == "failed"
    assert "gave up after 3 attempts" in (document.error or "")
    zhiku.vectors.upsert = real_upsert  # type: ignore[method-assign]
    retry_job(zhiku, job.id)
    run_all(zhiku)
    with zhiku.db.session() as session:
        assert session.get_one(Document, outcome.document_id).status == "ready"


def test_a_failure_that_is_not_transient_fails_the_job_at_once(zhiku: Zhiku, tmp_path: Path) -> None:
    """A failure that retrying cannot mend (here the knowledge base's vector collection is gone) fails the job on
    its first attempt with the reason; a manual retry after the repair succeeds."""
    kb = create_knowledge_base(zhiku, "kb")
    outcome = register_file(zhiku, kb, write(tmp_path, "a.md", ENGLISH))
    zhiku.vectors.delete_collection(kb.collection)
    run_all_until_settled(zhiku)
    with zhiku.db.session() as session:
        job = session.get_one(Job, outcome.job_id)
        document = session.get_one(Document, outcome.document_id)
    assert job.status == "failed"
    assert job.attempts == 1
    assert "does not exist" in (job.error or "")
    assert document.status == "failed"
    zhiku.vectors.ensure_collection(kb.collection, kb.dimension)
    retry_job(zhiku, job.id)
    run_all(zhiku)
    with zhiku.db.session() as session:
        assert session.get_one(Document, outcome.document_id).status == "ready"


def run_all_until_settled(zhiku: Zhiku) -> None:
    runner = job_runner(zhiku, workers=1, poll_interval=0.05)
    with runner:
        with zhiku.db.session() as session:
            ids = list(session.scalars(select(Job.id)))
        runner.wait_for(ids, timeout=120)


def test_cancel_queued_job_and_delete_document(zhiku: Zhiku, tmp_path: Path) -> None:
    kb = create_knowledge_base(zhiku, "kb")
    outcome = register_file(zhiku, kb, write(tmp_path, "a.md", ENGLISH))
    assert outcome.job_id is not None
    cancel_job(zhiku, outcome.job_id)
    with zhiku.db.session() as session:
        assert session.get_one(Job, outcome.job_id).status == "cancelled"
        document = session.get_one(Document, outcome.document_id)
        assert document.status == "failed"
        assert document.error == "cancelled"
    retry_job(zhiku, outcome.job_id)
    run_all(zhiku)
    with zhiku.db.session() as session:
        document = session.get_one(Document, outcome.document_id)
    assert document.status == "ready"
    kb_row = get_knowledge_base(zhiku, "kb")
    delete_document(zhiku, kb_row, document)
    assert zhiku.vectors.count(kb.collection) == 0
    assert session_chunk_count(zhiku) == 0
    assert not zhiku.blobs.exists(document.content_hash)


def test_kb_model_and_dimension_are_validated(zhiku: Zhiku) -> None:
    from zhiku.errors import ConflictError, DimensionError, InvalidInputError, UnknownModelError

    create_knowledge_base(zhiku, "kb")
    with pytest.raises(ConflictError, match="already exists"):
        create_knowledge_base(zhiku, "kb")
    with pytest.raises(UnknownModelError):
        create_knowledge_base(zhiku, "x", model="nope")
    with pytest.raises(DimensionError):
        create_knowledge_base(zhiku, "y", dimension=128)
    with pytest.raises(InvalidInputError, match="names are"):
        create_knowledge_base(zhiku, "../etc")
    with pytest.raises(InvalidInputError, match="does not take instructions"):
        create_knowledge_base(zhiku, "z", instruction="retrieval")
    assert isinstance(get_knowledge_base(zhiku, "kb"), KnowledgeBase)


def test_cancel_running_job_stops_at_next_progress_report(zhiku: Zhiku, tmp_path: Path) -> None:
    from zhiku.jobs.runner import JobCancelledError, JobContext

    kb = create_knowledge_base(zhiku, "kb")
    outcome = register_file(zhiku, kb, write(tmp_path, "a.md", ENGLISH))
    runner = job_runner(zhiku)
    assert runner.claim() == outcome.job_id
    assert outcome.job_id is not None
    cancelled = cancel_job(zhiku, outcome.job_id)
    assert cancelled.status == "running"
    assert cancelled.cancel_requested
    with pytest.raises(JobCancelledError):
        JobContext(zhiku, outcome.job_id).progress("embedding", 0.5, force=True)
    runner._execute(outcome.job_id)  # the task itself hits the cancel at its first progress report
    with zhiku.db.session() as session:
        assert session.get_one(Job, outcome.job_id).status == "cancelled"
        document = session.get_one(Document, outcome.document_id)
    assert document.status == "failed"
    assert document.error == "cancelled"
    assert zhiku.vectors.count(kb.collection) == 0


def test_queued_documents_are_ingested_together_and_fail_alone(zhiku: Zhiku, tmp_path: Path) -> None:
    """One claim takes the queued documents of a knowledge base as a group: they share model calls, while a
    corrupt member fails alone and a cancelled member drops out without touching the others."""
    kb = create_knowledge_base(zhiku, "kb", chunk_tokens=32, chunk_overlap=4)
    good = [register_file(zhiku, kb, write(tmp_path, f"doc-{i}.md", f"# Note {i}\n\n{ENGLISH}")) for i in range(6)]
    corrupt = register_file(zhiku, kb, write(tmp_path, "broken.pdf", b"%PDF-1.7\n" + os.urandom(2000)))
    cancelled = register_file(zhiku, kb, write(tmp_path, "cancel-me.md", "# Cancel\n\nThis one is cancelled."))
    other_kb = create_knowledge_base(zhiku, "other")
    elsewhere = register_file(zhiku, other_kb, write(tmp_path, "elsewhere.md", ENGLISH))
    embedder = zhiku.embedder_for(kb)
    calls: list[int] = []
    original = embedder.embed

    def counting_embed(texts: object, **options: object) -> object:  # the real model, calls counted
        calls.append(len(texts) if isinstance(texts, list) else 1)
        return original(texts, **options)  # type: ignore[arg-type]

    embedder.embed = counting_embed  # type: ignore[method-assign,assignment]
    runner = job_runner(zhiku)
    lead = runner.claim()
    assert lead == good[0].job_id
    companions = runner.claim_companions(lead)
    assert set(companions) == {o.job_id for o in [*good[1:], corrupt, cancelled]}  # not the other kb's job
    assert cancelled.job_id is not None
    cancel_job(zhiku, cancelled.job_id)
    runner._execute(lead, companions)

    with zhiku.db.session() as session:
        status = {o.document_id: session.get_one(Document, o.document_id).status for o in [*good, corrupt]}
        jobs = {o.job_id: session.get_one(Job, o.job_id) for o in [*good, corrupt, cancelled, elsewhere]}
        chunk_count = session.scalar(select(func.count()).select_from(Chunk).where(Chunk.version == 1))
    assert [status[o.document_id] for o in good] == ["ready"] * 6
    assert status[corrupt.document_id] == "failed"
    assert jobs[corrupt.job_id].status == "failed"
    assert jobs[cancelled.job_id].status == "cancelled"
    assert jobs[elsewhere.job_id].status == "queued"
    assert len(calls) == 1  # the six documents' distinct chunk texts in one model call
    assert chunk_count is not None
    assert chunk_count >= 12
    assert zhiku.vectors.count(kb.collection, SearchFilter(kb_id=kb.id)) == chunk_count


def test_group_size_is_bounded_by_the_setting(tmp_path: Path, database_url: str) -> None:
    settings = Settings(home=tmp_path / "home", database_url=database_url, ingest_batch_documents=2)
    app = Zhiku(settings)
    try:
        kb = create_knowledge_base(app, "kb")
        for i in range(3):
            register_file(app, kb, write(tmp_path, f"d{i}.md", f"# {i}\n\n{ENGLISH}"))
        runner = job_runner(app)
        assert runner.run_one()  # the first two documents, together
        with app.db.session() as session:
            states = sorted(session.scalars(select(Job.status)))
        assert states == ["queued", "succeeded", "succeeded"]
    finally:
        app.close()


def test_a_failing_shared_stage_is_retried_document_by_document(zhiku: Zhiku, tmp_path: Path) -> None:
    """When writing a group's vectors fails, each document is indexed alone: only the culprit fails."""
    kb = create_knowledge_base(zhiku, "kb", chunk_tokens=32, chunk_overlap=4)
    outcomes = [register_file(zhiku, kb, write(tmp_path, f"d{i}.md", f"# Doc {i}\n\n{ENGLISH}")) for i in range(3)]
    culprit = outcomes[1].document_id
    real_upsert = zhiku.vectors.upsert

    def refusing_upsert(name: str, points: list[VectorPoint]) -> None:  # fault injection in front of the real store
        if any(p.payload["document_id"] == culprit for p in points):
            raise VectorStoreError("the store refused a point")  # what a store raises: transient, retried
        real_upsert(name, points)

    zhiku.vectors.upsert = refusing_upsert  # type: ignore[method-assign]
    runner = job_runner(zhiku)
    assert runner.run_one()
    with zhiku.db.session() as session:
        jobs = [session.get_one(Job, o.job_id) for o in outcomes]
        documents = [session.get_one(Document, o.document_id) for o in outcomes]
    assert [j.status for j in jobs] == ["succeeded", "queued", "succeeded"]  # the culprit waits for its retry
    assert jobs[1].error == "VectorStoreError: the store refused a point"
    assert [d.status for d in documents] == ["ready", "embedding", "ready"]
    assert zhiku.vectors.count(kb.collection) == documents[0].chunk_count + documents[2].chunk_count
