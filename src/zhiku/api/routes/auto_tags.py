"""Auto-tags of a knowledge base: its labels (read, replace) and a run that tags every document again."""

from __future__ import annotations

from fastapi import APIRouter

from zhiku.api.auth import Reader, Writer
from zhiku.api.deps import State
from zhiku.api.schemas import AutoTagLabelBody, AutoTagLabels, AutoTagRunBody, AutoTagRunOut
from zhiku.knowledge.auto_tags import get_labels, run_auto_tags, set_labels
from zhiku.knowledge.bases import get_knowledge_base
from zhiku.pipeline.auto_tags import Label, TagRun

router = APIRouter(prefix="/api/v1/knowledge-bases/{kb_id}/auto-tags", tags=["auto-tags"])


def _labels_out(labels: list[Label]) -> AutoTagLabels:
    return AutoTagLabels(labels=[AutoTagLabelBody(name=label.name, description=label.description) for label in labels])


@router.get("")
def read_labels(kb_id: str, state: State, principal: Reader) -> AutoTagLabels:
    """The labels documents are tagged with, zero-shot, at ingestion and on each run."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    return _labels_out(get_labels(state.zhiku, kb))


@router.put("")
def replace_labels(kb_id: str, body: AutoTagLabels, state: State, principal: Writer) -> AutoTagLabels:
    """Replace the labels (names are normalised like tags). New documents are tagged with them as they are
    ingested; `POST .../auto-tags/run` tags the existing ones."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    labels = [Label(label.name, label.description) for label in body.labels]
    return _labels_out(set_labels(state.zhiku, kb, labels))


@router.post("/run")
def run(kb_id: str, state: State, principal: Writer, body: AutoTagRunBody | None = None) -> AutoTagRunOut:
    """Tag every ready document again with the labels: earlier auto-tags are replaced, tags people gave stay."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    done: TagRun = run_auto_tags(state.zhiku, kb, min_confidence=body.min_confidence if body else None)
    return AutoTagRunOut(documents=done.documents, tagged=done.tagged, by_label=done.by_label)
