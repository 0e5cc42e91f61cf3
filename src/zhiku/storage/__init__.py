"""Storage: metadata database, blob store and vector stores."""
