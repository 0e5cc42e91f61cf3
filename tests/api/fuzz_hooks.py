"""Schemathesis hooks for tests/api/test_openapi_fuzz.py (loaded by the CLI through ``SCHEMATHESIS_HOOKS``).

``positive_data_acceptance`` wants every schema-valid request accepted. A few fields' validity depends on
what the schema cannot state: the embedding model (its dimensions, context, whether it takes instructions,
its vocabulary), the server's settings (a reranker), another field (an overlap below the chunk size), the
filter syntax, or a file's content. This check is that check with one exception: a 4xx for a schema-valid
request passes only when its error names one of those fields of that operation. Any other rejection fails.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

KB = "/api/v1/knowledge-bases/{kb_id}"
BEYOND_THE_SCHEMA: dict[str, set[str]] = {
    "POST /api/v1/knowledge-bases": {
        "dimension",
        "dimensions",
        "index_dimension",
        "chunk_tokens",
        "chunk_overlap",
        "instruction",
    },
    f"POST {KB}/reindex": {"dimension", "dimensions"},
    "POST /v1/embeddings": {"dimensions", "instruction", "input"},  # input: token ids beyond the vocabulary
    f"POST {KB}/search": {"filters", "filter", "rerank"},  # rerank: true needs a reranker configured
    "POST /api/v1/chat/completions": {"filters", "filter", "query"},  # query: the last user message, searched
    f"POST {KB}/documents": {"files", "tags", "metadata"},  # file content (type, damage), tag and key rules
    f"PATCH {KB}/documents/{{document_id}}": {"add_tags", "remove_tags", "tags", "metadata", "set_metadata"},
    f"POST {KB}/sources": {"url", "ref"},  # a URL git can fetch from a public host; a branch name git accepts
    f"PUT {KB}/auto-tags": {"labels"},  # label names are tags (case-folded, printable), each given once
    f"POST {KB}/duplicates/resolve": {"keep"},  # two documents of one near-duplicate group
    f"GET {KB}/topics": {"clusters"},  # at most the number of ready documents
    # logins in any script (Unicode letters), passwords not only spaces
    "POST /api/v1/accounts": {"login", "password"},
    "POST /api/v1/accounts/{account_id}/password": {"password"},
    "POST /api/v1/auth/password": {"new_password"},
}


@schemathesis.check
def positive_data_acceptance_beyond_the_schema(ctx: Any, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance``, except for the fields :data:`BEYOND_THE_SCHEMA` names."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except AssertionError:
        if 400 <= response.status_code < 500:
            try:
                param = response.json()["error"]["param"]
            except (ValueError, KeyError, TypeError):
                param = None
            if param in BEYOND_THE_SCHEMA.get(case.operation.label, set()):
                return None
        raise
