"""Document filters for search: tags, metadata fields, dates and documents, resolved in the metadata database.

Filters are answered by SQL over the documents table and handed to the vector store as a set of document
ids. That keeps tags and metadata editable at once (no payload rewrite of every chunk), keeps the filter
language identical across vector stores, and costs one indexed query per search.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from zhiku.errors import AmbiguousIdError, InvalidInputError, NotFoundError
from zhiku.storage.lookup import find_by_id
from zhiku.storage.models import Document, DocumentTag

MAX_TAG_CHARS = 100
MAX_META_KEY_CHARS = 100
MAX_META_VALUE_CHARS = 1000
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_EXPRESSION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(>=|<=|!=|=|>|<)\s*(.*?)\s*$", re.DOTALL)
RESERVED_KEYS = frozenset({"tag", "date", "document", "type"})


@dataclass(frozen=True)
class DocumentFilter:
    """Which documents a search may return; every given condition must hold.

    ``tags``: the document has all of them. ``any_tags``: it has at least one. ``metadata``: each key has
    exactly that value. ``date_from`` (inclusive) / ``date_to`` (exclusive) bound the document's date (its
    ``document_date``, else when it was added). ``documents``: ids, id prefixes or file names. ``types``: file
    kinds by MIME subtype or extension (``pdf``, ``markdown``, ``text/html``).
    """

    tags: tuple[str, ...] = ()
    any_tags: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    date_from: dt.datetime | None = None
    date_to: dt.datetime | None = None
    documents: tuple[str, ...] = ()
    types: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when the filter has no condition at all."""
        return not (
            self.tags
            or self.any_tags
            or self.metadata
            or self.date_from
            or self.date_to
            or self.documents
            or self.types
        )


def parse_date(text: str, *, param: str = "filter") -> dt.datetime:
    """An ISO date or date-time; naive values are UTC."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"{text!r} is not a date: use ISO 8601, e.g. 2024-05-01 or 2024-05-01T12:00:00+08:00", param=param
        ) from None
    # stored dates are UTC (SQLite keeps them as naive text), so compare in UTC
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_filters(expressions: Sequence[str]) -> DocumentFilter:
    """Parse CLI/API filter expressions into a :class:`DocumentFilter`.

    ``tag=NAME`` (repeat for all-of; ``tag=a|b`` for any-of), ``date>=2024-01-01`` / ``date<2025-01-01``
    (also ``>`` and ``<=``), ``document=ID-OR-FILENAME``, ``type=pdf``, and ``KEY=VALUE`` for metadata.
    """
    tags: list[str] = []
    any_tags: list[str] = []
    metadata: dict[str, str] = {}
    documents: list[str] = []
    types: list[str] = []
    date_from: dt.datetime | None = None
    date_to: dt.datetime | None = None
    for expression in expressions:
        match = _EXPRESSION.match(expression)
        if match is None or not match.group(3):
            raise InvalidInputError(
                f"cannot read filter {expression!r}: expected tag=NAME, date>=YYYY-MM-DD, document=ID, type=pdf "
                "or KEY=VALUE",
                param="filter",
            )
        key, op, value = match.groups()
        if key == "date":
            when = parse_date(value)
            if op in (">=", ">"):
                when = when + dt.timedelta(days=1) if op == ">" and len(value.strip()) == 10 else when
                date_from = when if date_from is None else max(date_from, when)
            elif op in ("<", "<="):
                when = when + dt.timedelta(days=1) if op == "<=" and len(value.strip()) == 10 else when
                date_to = when if date_to is None else min(date_to, when)
            else:
                raise InvalidInputError("date filters use >=, >, < or <=", param="filter")
            continue
        if op != "=":
            raise InvalidInputError(f"{key} filters only support '=' (got {op!r})", param="filter")
        if key == "tag":
            options = [normalize_tag(t) for t in value.split("|")]
            (tags if len(options) == 1 else any_tags).extend(options)
        elif key == "document":
            documents.append(value)
        elif key == "type":
            types.append(value.lower())
        else:
            metadata[check_meta_key(key)] = value
    return DocumentFilter(
        tags=tuple(dict.fromkeys(tags)),
        any_tags=tuple(dict.fromkeys(any_tags)),
        metadata=metadata,
        date_from=date_from,
        date_to=date_to,
        documents=tuple(documents),
        types=tuple(types),
    )


def normalize_tag(tag: str) -> str:
    """A tag as stored: trimmed, case-folded; refuses empty or over-long tags."""
    value = tag.strip().casefold()
    if not value or len(value) > MAX_TAG_CHARS or any(not ch.isprintable() for ch in value):
        raise InvalidInputError(f"invalid tag {tag!r}: 1-{MAX_TAG_CHARS} printable characters", param="tags")
    return value


def check_meta_key(key: str) -> str:
    """A metadata key, or ``InvalidInputError`` (letters, digits, ``_ . -``; not a reserved filter word)."""
    if not _KEY.match(key) or len(key) > MAX_META_KEY_CHARS or key in RESERVED_KEYS:
        raise InvalidInputError(
            f"invalid metadata key {key!r}: letters, digits, '_', '.', '-' (starting with a letter or '_'), "
            f"at most {MAX_META_KEY_CHARS} characters, not one of {sorted(RESERVED_KEYS)}",
            param="metadata",
        )
    return key


def check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """Validated user metadata (string keys and values)."""
    for key, value in metadata.items():
        check_meta_key(key)
        if not isinstance(value, str) or len(value) > MAX_META_VALUE_CHARS:
            raise InvalidInputError(
                f"metadata {key!r}: values are strings of at most {MAX_META_VALUE_CHARS} characters",
                param="metadata",
            )
    return dict(metadata)


def matching_documents(session: Session, kb_id: str, flt: DocumentFilter) -> list[str]:
    """Ids of the knowledge base's documents that pass ``flt``.

    Raises:
        AmbiguousIdError: a ``document=`` value is an id prefix of several documents and no file's name.
    """
    named: set[str] = set()
    for ref in flt.documents:
        named |= _named_documents(session, kb_id, ref)
    return list(session.scalars(_query(kb_id, flt, named)))


def _named_documents(session: Session, kb_id: str, ref: str) -> set[str]:
    """The documents ``document=ref`` names: those with that file name, and the one with that id (or unique id
    prefix, taken literally: ``%`` and ``_`` are characters, not wildcards)."""
    by_name = set(session.scalars(select(Document.id).where(Document.kb_id == kb_id, Document.filename == ref)))
    query = select(Document.id).where(Document.kb_id == kb_id)
    try:
        by_id = find_by_id(session, query, Document.id, ref, what="document")
    except NotFoundError:
        return by_name
    except AmbiguousIdError:
        if by_name:
            return by_name
        raise
    return by_name | {by_id}


def _query(kb_id: str, flt: DocumentFilter, named: set[str] | None = None) -> Select[str]:
    query = select(Document.id).where(Document.kb_id == kb_id)
    for tag in flt.tags:
        query = query.where(
            select(DocumentTag.document_id)
            .where(DocumentTag.document_id == Document.id, DocumentTag.tag == tag)
            .exists()
        )
    if flt.any_tags:
        query = query.where(
            select(DocumentTag.document_id)
            .where(DocumentTag.document_id == Document.id, DocumentTag.tag.in_(flt.any_tags))
            .exists()
        )
    for key, value in flt.metadata.items():
        query = query.where(Document.meta[key].as_string() == value)
    when = func.coalesce(Document.document_date, Document.created_at)
    if flt.date_from is not None:
        query = query.where(when >= flt.date_from)
    if flt.date_to is not None:
        query = query.where(when < flt.date_to)
    if flt.documents:
        query = query.where(Document.id.in_(sorted(named or ())))
    if flt.types:
        query = query.where(or_(*(_type_condition(kind) for kind in flt.types)))
    return query


def _type_condition(kind: str) -> ColumnElement[bool]:
    if "/" in kind:
        return Document.mime_type == kind
    return or_(
        Document.mime_type.endswith("/" + kind),
        Document.mime_type.endswith("/x-" + kind),
        Document.filename.endswith("." + kind),
    )
