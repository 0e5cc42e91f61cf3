"""Retrieval quality evaluation (nDCG, recall, MRR) on BEIR-format sets."""
