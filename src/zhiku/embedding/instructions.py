"""Query instructions for instruction-aware embedding models (Qwen3-Embedding).

Per the Qwen3-Embedding model card, queries are written as ``Instruct: {task}\\nQuery:{query}`` (no space
after ``Query:``) and documents carry no instruction. Instructions stay in English even for Chinese data.
"""

from __future__ import annotations

from zhiku.errors import InvalidInputError

QWEN3_QUERY_TEMPLATE = "Instruct: {instruction}\nQuery:{text}"

#: Named task descriptions a knowledge base can pick; any custom string works too.
PRESETS: dict[str, str] = {
    "retrieval": "Given a web search query, retrieve relevant passages that answer the query",
    "question-answering": "Given a question, retrieve passages that answer the question",
    "classification": "Classify the given text into one of the predefined categories",
    "clustering": "Identify the main topic or theme of the given text",
    "code-search": "Given a natural language query, retrieve code snippets that implement or answer it",
    "bitext": "Retrieve parallel sentences that are translations of the given sentence",
    "semantic-similarity": "Retrieve semantically similar text",
}

DEFAULT_PRESET = "retrieval"


def resolve_instruction(instruction: str | None) -> str:
    """Turn a preset name or a custom task description into the task text.

    ``None`` gives the default retrieval task. A value matching a preset name is expanded; anything else is
    used verbatim as a custom task description.
    """
    if instruction is None:
        return PRESETS[DEFAULT_PRESET]
    if not isinstance(instruction, str):
        raise InvalidInputError("instruction must be a string", param="instruction")
    text = instruction.strip()
    if not text:
        raise InvalidInputError("instruction must not be empty", param="instruction")
    if "\x00" in text:
        raise InvalidInputError("instruction contains a NUL byte", param="instruction")
    return PRESETS.get(text, text)


def format_query(template: str, instruction: str, text: str) -> str:
    """Apply a query template, e.g. ``Instruct: {instruction}\\nQuery:{text}``."""
    return template.format(instruction=instruction, text=text)
