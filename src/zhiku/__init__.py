"""zhiku (智库): self-hosted knowledge-base semantic search built around Qwen3-Embedding."""

__version__ = "0.1.0"
