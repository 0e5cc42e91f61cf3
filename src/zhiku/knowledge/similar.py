"""Similar documents ("more like this"): the documents of a knowledge base nearest to one of its documents by the
cosine of their document vectors (:mod:`zhiku.pipeline.document_vectors`), which works across languages as far
as the embedding model does."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zhiku.core import Zhiku
from zhiku.errors import ConflictError
from zhiku.knowledge.documents import documents_by_id
from zhiku.pipeline.document_vectors import document_vectors
from zhiku.storage.models import Document, KnowledgeBase


@dataclass(frozen=True)
class SimilarDocument:
    """A document and its similarity to the one asked about (cosine of document vectors, -1 to 1)."""

    document: Document
    score: float


def similar_documents(zhiku: Zhiku, kb: KnowledgeBase, document: Document, top_k: int) -> list[SimilarDocument]:
    """The ``top_k`` ready documents of ``kb`` most similar to ``document``, most similar first (itself left out).

    ``ConflictError`` when ``document`` has no searchable version yet.
    """
    ids, matrix = document_vectors(zhiku, kb)
    if document.id not in ids:
        raise ConflictError(
            f"{document.filename} has no searchable version yet (status {document.status}); "
            "similar documents are found once it is ingested"
        )
    scores = matrix @ matrix[ids.index(document.id)]
    order = [int(i) for i in np.argsort(-scores, kind="stable") if ids[int(i)] != document.id][:top_k]
    found = documents_by_id(zhiku, [ids[i] for i in order])
    return [SimilarDocument(found[ids[i]], float(scores[i])) for i in order if ids[i] in found]
