"""The job kinds, in one place: the ``kind`` of a job row (their tasks: :mod:`zhiku.pipeline.tasks`)."""

from __future__ import annotations

INGEST_KIND = "ingest_document"
"""Ingest one uploaded version of a document (run in groups of one knowledge base)."""

REINDEX_KIND = "reindex_kb"
"""Re-embed a knowledge base into a new collection and switch to it (run alone)."""
