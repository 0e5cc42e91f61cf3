"""zhiku (智库): self-hosted knowledge-base semantic search built around Qwen3-Embedding."""

import os

# zhiku runs the model's threads next to parsing, database and HTTP threads. OpenMP's default is to spin while
# waiting for work, which on a small CPU burns the cores those threads need: ingestion measured 0.79 x the bare
# model with spinning and 0.85 x without (BENCHMARKS.md). Must be set before PyTorch loads; an explicit value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Hugging Face tokenizers spread a batch over a thread pool. zhiku's batches are small (one document's chunks,
# one request's texts) and the cores are busy with the model: parsing and chunking the ingestion benchmark's
# documents took 2.5 ms each with the pool and 1.4 ms without, with both cores busy (2-core machine).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
