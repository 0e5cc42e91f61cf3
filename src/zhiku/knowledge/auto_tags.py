"""The auto-tag labels of a knowledge base (set and read them) and auto-tagging on demand; ingestion tags each new
document version itself (:mod:`zhiku.pipeline.auto_tags` has the method)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete

from zhiku.core import Zhiku
from zhiku.errors import InvalidInputError
from zhiku.pipeline.auto_tags import Label, TagRun, kb_labels, tag_documents
from zhiku.search.filters import normalize_tag
from zhiku.storage.models import AutoTagLabel, KnowledgeBase

MAX_LABELS = 100
"""Labels of one knowledge base (each is one embedded query per run)."""
MAX_DESCRIPTION_CHARS = 1000
"""A label's description is a phrase or two, embedded with its name."""


def get_labels(zhiku: Zhiku, kb: KnowledgeBase) -> list[Label]:
    """The knowledge base's auto-tag labels, in the order they were given."""
    return kb_labels(zhiku, kb)


def set_labels(zhiku: Zhiku, kb: KnowledgeBase, labels: Sequence[Label]) -> list[Label]:
    """Replace the knowledge base's labels (an empty list turns auto-tagging off; tags already given stay until the
    next run). Names are normalised like every tag; ``InvalidInputError`` for a bad or repeated one."""
    if len(labels) > MAX_LABELS:
        raise InvalidInputError(f"at most {MAX_LABELS} labels per knowledge base", param="labels")
    checked: list[Label] = []
    for label in labels:
        try:
            name = normalize_tag(label.name)
        except InvalidInputError as exc:
            raise InvalidInputError(f"label: {exc}", param="labels") from None
        description = label.description.strip()
        if len(description) > MAX_DESCRIPTION_CHARS or any(
            not ch.isprintable() and ch not in "\n\t" for ch in description
        ):
            raise InvalidInputError(
                f"the description of label {name!r}: at most {MAX_DESCRIPTION_CHARS} printable characters",
                param="labels",
            )
        if any(name == other.name for other in checked):
            raise InvalidInputError(f"label {name!r} is given twice", param="labels")
        checked.append(Label(name, description))
    with zhiku.db.session() as session:
        session.execute(delete(AutoTagLabel).where(AutoTagLabel.kb_id == kb.id))
        session.add_all(
            AutoTagLabel(kb_id=kb.id, name=label.name, description=label.description, position=position)
            for position, label in enumerate(checked)
        )
    return checked


def run_auto_tags(zhiku: Zhiku, kb: KnowledgeBase, *, min_confidence: float | None = None) -> TagRun:
    """Tag every ready document of ``kb`` again with its labels (replacing earlier auto-tags, never a person's)."""
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise InvalidInputError("min_confidence must be between 0 and 1", param="min_confidence")
    return tag_documents(zhiku, kb, min_confidence=min_confidence)
