"""The ingestion pipeline: parse → chunk → embed (cached) → index, and the re-index; the job tasks that run it."""
