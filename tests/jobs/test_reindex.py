"""`zhiku reindex`: re-embed a live knowledge base with another model; searches keep answering during the
rebuild and answer from the new model after the switch; uploads made meanwhile wait and use the new model."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.errors import ConflictError
from zhiku.jobs.runner import FINISHED
from zhiku.knowledge.bases import create_knowledge_base, get_knowledge_base
from zhiku.knowledge.documents import list_documents, register_file
from zhiku.pipeline.reindex import start_reindex
from zhiku.pipeline.tasks import job_runner
from zhiku.search.options import SearchOptions
from zhiku.search.retrieve import search
from zhiku.storage.models import Job, JobStatus
from zhiku.storage.vectors.base import SearchFilter

TEXTS = {
    f"doc{i}.md": f"# Topic {i}\n\n" + " ".join(
        f"Sentence {j} about the lighthouse number {i} and its keeper, who logs ships passing the reef."
        for j in range(30))
    for i in range(6)
}  # fmt: skip


def test_reindex_switches_models_while_searches_keep_answering(tmp_path: Path) -> None:
    zhiku = Zhiku(Settings(home=tmp_path / "home"))
    try:
        kb = create_knowledge_base(zhiku, "kb", chunk_tokens=64, chunk_overlap=0)
        with job_runner(zhiku) as runner:
            jobs = []
            for name, text in TEXTS.items():
                path = tmp_path / name
                path.write_text(text, encoding="utf-8")
                jobs.append(register_file(zhiku, kb, path).job_id)
            runner.wait_for([j for j in jobs if j], timeout=300)
        before = search(zhiku, kb, "lighthouse number 3 keeper", SearchOptions(mode="dense", top_k=3))
        assert before[0].filename == "doc3.md"
        old_collection = kb.collection

        job = start_reindex(zhiku, kb, model="all-minilm-l6-v2")
        with pytest.raises(ConflictError, match="already being re-indexed"):
            start_reindex(zhiku, kb)
        late = tmp_path / "late.md"
        late.write_text("# Late\n\nA note about the harbour crane, uploaded during the re-index.", encoding="utf-8")
        late_job = register_file(zhiku, kb, late).job_id
        assert late_job is not None

        answers: list[str] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def keep_searching() -> None:
            while not stop.is_set():
                try:
                    current = get_knowledge_base(zhiku, kb.id)
                    hits = search(zhiku, current, "lighthouse number 3 keeper", SearchOptions(mode="dense", top_k=1))
                    answers.append(f"{current.embedding_model}:{hits[0].filename}")
                except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                    failures.append(exc)

        searcher = threading.Thread(target=keep_searching)
        searcher.start()
        with job_runner(zhiku) as runner:
            runner.wait_for([job.id, late_job], timeout=600)
        stop.set()
        searcher.join()

        assert failures == []
        models = [a.split(":")[0] for a in answers]
        assert "use-multilingual-v3" in models  # searches answered during the rebuild, from the old model
        assert models == sorted(models, key=lambda m: m != "use-multilingual-v3")  # then switched, never back
        assert all(a.endswith(":doc3.md") for a in answers)

        with zhiku.db.session() as session:
            statuses = {j.id: j.status for j in session.query(Job).filter(Job.id.in_([job.id, late_job]))}
        assert set(statuses.values()) == {JobStatus.succeeded}
        assert statuses[job.id] in FINISHED
        kb = get_knowledge_base(zhiku, kb.id)
        assert (kb.embedding_model, kb.dimension) == ("all-minilm-l6-v2", 384)
        assert kb.collection != old_collection
        assert not zhiku.vectors.has_collection(old_collection)
        after = search(zhiku, kb, "lighthouse number 3 keeper", SearchOptions(mode="hybrid", top_k=3))
        assert after[0].filename == "doc3.md"
        crane = search(zhiku, kb, "harbour crane", SearchOptions(mode="dense", top_k=1))
        assert crane[0].filename == "late.md"  # ingested after the switch, with the new model
        total_chunks = zhiku.vectors.count(kb.collection, SearchFilter())
        assert total_chunks == sum(d.chunk_count for d in list_documents(zhiku, kb))
    finally:
        zhiku.close()
