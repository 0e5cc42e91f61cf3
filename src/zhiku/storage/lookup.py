"""Rows by id or by a unique id prefix: the one lookup every id-taking route and command uses.

Ids are 32 lowercase hex digits (:func:`zhiku.storage.models.new_id`; upper case is accepted too).
:func:`find_by_id` tries the exact id first; otherwise a prefix of at least :data:`MIN_PREFIX` hex digits that
matches exactly one row. Anything that is not hex (``%``, ``_``, ``*``, ``\\``, spaces, other scripts) can never
name a row and is "not found" without a prefix query, so SQL ``LIKE`` wildcards never reach the database; the
prefix is escaped all the same. A prefix that matches several rows is refused with 409 ``ambiguous_id``
(:class:`~zhiku.errors.AmbiguousIdError`), never resolved to one of them.
"""

from __future__ import annotations

import re
from typing import TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from zhiku.errors import AmbiguousIdError, NotFoundError

T = TypeVar("T")

ID_LENGTH = 32
MIN_PREFIX = 6
"""The fewest hex digits an id prefix must have (16.7 million values: unambiguous in practice)."""
_HEX = re.compile(r"[0-9a-f]+")


def shown(text: str, limit: int = 80) -> str:
    """``text`` for an error message: repr-quoted, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def is_id_prefix(text: str) -> bool:
    """True when ``text`` could be an id or a usable id prefix (:data:`MIN_PREFIX` to 32 hex digits)."""
    return MIN_PREFIX <= len(text) <= ID_LENGTH and _HEX.fullmatch(text) is not None


def find_by_id(session: Session, query: Select[T], column: InstrumentedAttribute[str], ident: str, *, what: str) -> T:
    """The one row of ``query`` whose ``column`` is ``ident`` or starts with it.

    Raises:
        NotFoundError: no row, or ``ident`` is not 6-32 hex digits (``what`` names the kind, e.g. "document").
        AmbiguousIdError: the prefix matches several rows (409); the message says how many.
    """
    ident = ident if isinstance(ident, str) else ""
    if _HEX.fullmatch(ident.lower()):
        ident = ident.lower()  # hex digits in either case
    if _HEX.fullmatch(ident) and len(ident) == ID_LENGTH:
        exact = session.scalar(query.where(column == ident))
        if exact is not None:
            return exact
    elif is_id_prefix(ident):
        rows = list(session.scalars(query.where(column.startswith(ident, autoescape=True)).limit(2)))
        if len(rows) == 1:
            return rows[0]
        if rows:
            count = session.scalar(
                select(func.count()).select_from(query.where(column.startswith(ident, autoescape=True)).subquery())
            )
            raise AmbiguousIdError(
                f"ambiguous {what} id prefix {ident!r}: it matches {count} {what}s; give more characters",
                param="id",
            )
    raise NotFoundError(
        f"no {what} {shown(ident)} (ids are {ID_LENGTH} hex digits; a unique prefix of at least {MIN_PREFIX} "
        "digits also works)"
    )
