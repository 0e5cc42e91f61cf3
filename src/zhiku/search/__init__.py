"""Search: dense, lexical and hybrid retrieval with citations; rerankers."""
