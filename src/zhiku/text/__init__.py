"""Text below storage and search: the terms that indexes, lexical search and highlighting share."""
