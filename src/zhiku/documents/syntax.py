"""Definitions in source code (functions, classes, methods, …) found with tree-sitter grammars.

:func:`definitions` parses a file's text with the grammar of its language and returns its definitions as a tree
(a class holds its methods), each with its character range: from its leading doc comments, decorators or
attributes to its end. Grammars come from the tree-sitter project's own wheels (``tree-sitter-python`` and so on,
prebuilt, no downloads); a language without one, or a missing package, gives ``None`` and the caller falls back.

Tree-sitter never gives up on a file: source with syntax errors still yields the definitions it recovered.
Definitions inside a function body (closures, local classes) stay part of that function: only containers
(classes, impls, traits, namespaces, modules) have definitions of their own inside.
"""

from __future__ import annotations

import bisect
import importlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from tree_sitter import Language, Node, Parser, Query, QueryCursor

__all__ = ["Definition", "definitions", "grammar_languages"]

#: Files are parsed in pieces of at most this many bytes (cut at top-level boundaries), to bound memory.
MAX_PIECE_BYTES = 512 * 1024
#: Seconds the grammar may take on one file (checked between pieces); then the caller's fallback takes over.
TIME_BUDGET_SECONDS = 20.0
#: Brackets nested deeper than this (no real code does) give up the grammar: querying a tree of n unclosed
#: brackets takes time quadratic in n (minutes for 500,000).
MAX_NESTING = 1000
#: A label longer than this (a Go receiver, a C++ qualified name, …) is cut.
MAX_LABEL_CHARS = 120


@dataclass
class Definition:
    """One definition: ``text[start:end]`` (character offsets), its ``label`` (``"class Foo"``) and what it holds."""

    start: int
    end: int
    label: str
    children: list[Definition] = field(default_factory=list)


@dataclass(frozen=True)
class _Kind:
    keyword: str
    container: bool = False  # definitions inside it get sections of their own (a class's methods)


@dataclass(frozen=True)
class _Grammar:
    module: str
    function: str
    kinds: dict[str, _Kind]
    #: Query patterns beyond one per kind (a kind listed here is matched only by its pattern).
    patterns: dict[str, str] = field(default_factory=dict)
    #: Parent nodes that belong to exactly one definition (decorators, ``export``, ``template<…>``).
    wrappers: frozenset[str] = frozenset()
    #: Nodes just before a definition that belong to it (doc comments, attributes, decorators).
    attached: frozenset[str] = frozenset({"comment"})
    #: Lines that start a top-level definition, where parsing resumes inside a top-level syntax error.
    resync: re.Pattern[bytes] | None = None


#: (start byte, end byte, label, container) of one definition.
_Found = tuple[int, int, str, bool]

_JS_FUNCTION_VALUE = "[(arrow_function) (function_expression) (generator_function)]"
_JS_KINDS = {
    "function_declaration": _Kind("function"),
    "generator_function_declaration": _Kind("function"),
    "class_declaration": _Kind("class", container=True),
    "method_definition": _Kind("method"),
    "variable_declarator": _Kind("function"),
    "field_definition": _Kind("method"),
}
_JS_PATTERNS = {
    # `const handler = (event) => {…}` is how much JavaScript defines its functions.
    "variable_declarator": f"(variable_declarator value: {_JS_FUNCTION_VALUE}) @def",
    "field_definition": f"(field_definition value: {_JS_FUNCTION_VALUE}) @def",
}
_JS_WRAPPERS = frozenset({"export_statement", "lexical_declaration", "variable_declaration", "ambient_declaration"})
_TS_KINDS = {
    **{kind: value for kind, value in _JS_KINDS.items() if kind != "field_definition"},
    "public_field_definition": _Kind("method"),
    "abstract_class_declaration": _Kind("class", container=True),
    "interface_declaration": _Kind("interface"),
    "type_alias_declaration": _Kind("type"),
    "enum_declaration": _Kind("enum"),
    "internal_module": _Kind("namespace", container=True),
    "module": _Kind("module", container=True),
    "function_signature": _Kind("function"),
}
_TS_PATTERNS = {
    "variable_declarator": _JS_PATTERNS["variable_declarator"],
    "public_field_definition": f"(public_field_definition value: {_JS_FUNCTION_VALUE}) @def",
}
_C_KINDS = {
    "function_definition": _Kind("function"),
    "struct_specifier": _Kind("struct", container=True),
    "union_specifier": _Kind("union", container=True),
    "enum_specifier": _Kind("enum"),
}
_C_PATTERNS = {  # a struct with a body is a definition; `struct point p;` is a use
    kind: f"({kind} body: (_)) @def" for kind in ("struct_specifier", "union_specifier", "enum_specifier")
}

_GRAMMARS: dict[str, _Grammar] = {
    "python": _Grammar(
        "tree_sitter_python",
        "language",
        {"function_definition": _Kind("def"), "class_definition": _Kind("class", container=True)},
        wrappers=frozenset({"decorated_definition"}),
        resync=re.compile(rb"^(?:@[^\n]*\n)*(?:async[ \t]+)?(?:def|class)[ \t]", re.MULTILINE),
    ),
    "javascript": _Grammar(
        "tree_sitter_javascript",
        "language",
        _JS_KINDS,
        _JS_PATTERNS,
        _JS_WRAPPERS,
        frozenset({"comment", "decorator"}),
        re.compile(rb"^(?:export[ \t]+(?:default[ \t]+)?)?(?:async[ \t]+)?(?:function|class)\b", re.MULTILINE),
    ),
    "typescript": _Grammar(
        "tree_sitter_typescript",
        "language_typescript",
        _TS_KINDS,
        _TS_PATTERNS,
        _JS_WRAPPERS | {"expression_statement"},  # `namespace N {}` is an expression statement
        frozenset({"comment", "decorator"}),
        re.compile(
            rb"^(?:export[ \t]+(?:default[ \t]+)?)?(?:declare[ \t]+)?(?:abstract[ \t]+)?(?:async[ \t]+)?"
            rb"(?:function|class|interface|type|enum|namespace)\b",
            re.MULTILINE,
        ),
    ),
    "go": _Grammar(
        "tree_sitter_go",
        "language",
        {"function_declaration": _Kind("func"), "method_declaration": _Kind("func"), "type_declaration": _Kind("type")},
        resync=re.compile(rb"^(?:func|type)\b", re.MULTILINE),
    ),
    "rust": _Grammar(
        "tree_sitter_rust",
        "language",
        {
            "function_item": _Kind("fn"),
            "function_signature_item": _Kind("fn"),
            "struct_item": _Kind("struct"),
            "enum_item": _Kind("enum"),
            "union_item": _Kind("union"),
            "type_item": _Kind("type"),
            "trait_item": _Kind("trait", container=True),
            "impl_item": _Kind("impl", container=True),
            "mod_item": _Kind("mod", container=True),
            "macro_definition": _Kind("macro_rules!"),
        },
        attached=frozenset({"line_comment", "block_comment", "attribute_item"}),
        resync=re.compile(
            rb"^(?:#\[[^\n]*\n)*(?:pub(?:\([^)\n]*\))?[ \t]+)?(?:async[ \t]+|unsafe[ \t]+|const[ \t]+)*"
            rb"(?:fn|struct|enum|trait|impl|mod|union|type|macro_rules!)\b",
            re.MULTILINE,
        ),
    ),
    "java": _Grammar(
        "tree_sitter_java",
        "language",
        {
            "class_declaration": _Kind("class", container=True),
            "interface_declaration": _Kind("interface", container=True),
            "enum_declaration": _Kind("enum", container=True),
            "record_declaration": _Kind("record", container=True),
            "annotation_type_declaration": _Kind("@interface", container=True),
            "method_declaration": _Kind("method"),
            "constructor_declaration": _Kind("constructor"),
        },
        attached=frozenset({"line_comment", "block_comment"}),
    ),
    "c": _Grammar("tree_sitter_c", "language", _C_KINDS, _C_PATTERNS, frozenset({"type_definition"})),
    "cpp": _Grammar(
        "tree_sitter_cpp",
        "language",
        {
            **_C_KINDS,
            "class_specifier": _Kind("class", container=True),
            "namespace_definition": _Kind("namespace", container=True),
        },
        {**_C_PATTERNS, "class_specifier": "(class_specifier body: (_)) @def"},
        frozenset({"type_definition", "template_declaration"}),
    ),
}


def grammar_languages() -> list[str]:
    """The languages that have a grammar here whose package is installed."""
    return [language for language in _GRAMMARS if _language(language, None) is not None]


def definitions(
    text: str, language: str | None, filename: str = "", *, budget: float = TIME_BUDGET_SECONDS
) -> list[Definition] | None:
    """The top-level definitions of ``text`` (with their nested ones), in order; ``None`` without a grammar,
    when finding them took more than ``budget`` seconds, or for brackets nested over :data:`MAX_NESTING` deep.

    ``filename`` picks a dialect (``.tsx`` files are parsed with the TSX grammar).
    """
    grammar = _GRAMMARS.get(language or "")
    loaded = _language(language or "", _dialect(filename)) if grammar else None
    if grammar is None or loaded is None:
        return None
    ts_language, query = loaded
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not source tree-sitter can read
        return None
    parser = Parser(ts_language)
    deadline = time.monotonic() + budget
    found: list[_Found] = []
    try:
        for lo, hi in _pieces(data, grammar.resync, MAX_PIECE_BYTES):
            piece = data if (lo, hi) == (0, len(data)) else data[lo:hi]
            if _nesting(piece) > MAX_NESTING:
                raise _GiveUpError
            root = parser.parse(piece).root_node
            found_here = _collect(root, grammar, query, piece, lo, deadline)
            if grammar.resync is not None and root.has_error:
                found_here = _recover(root, found_here, grammar, parser, query, piece, lo, deadline)
            found += found_here
            del root  # the tree's memory goes before the next piece is parsed
    except _GiveUpError:
        return None
    return _nest(found, _CharOffsets(text, data))


class _GiveUpError(Exception):
    """The file is beyond what the grammar is worth: out of time, or brackets nested too deep."""


def _nesting(data: bytes) -> int:
    """The deepest nesting of ``( [ {`` in ``data``, counted naively (brackets in strings count too)."""
    codes = np.frombuffer(data, dtype=np.uint8)
    steps = np.isin(codes, _OPENING).astype(np.int32) - np.isin(codes, _CLOSING).astype(np.int32)
    if not steps.size:
        return 0
    depth = np.cumsum(steps)
    floor = np.minimum(np.minimum.accumulate(depth), 0)  # a stray closing bracket does not make room
    return int((depth - floor).max())


_OPENING = np.frombuffer(b"([{", dtype=np.uint8)
_CLOSING = np.frombuffer(b")]}", dtype=np.uint8)


_LINE_AFTER_CLOSING_BRACE = re.compile(rb"^\}[^\n]*\n", re.MULTILINE)


def _pieces(data: bytes, resync: re.Pattern[bytes] | None, limit: int) -> list[tuple[int, int]]:
    """``data`` cut into byte ranges of at most ``limit`` bytes, at top-level boundaries where there are some.

    A tree takes up to ~300 bytes of memory per byte of source (a long list of numbers, deep brackets), so a big
    file is parsed piece by piece within the parsing process's memory cap. Pieces end before a line starting a
    top-level definition (``resync``) or after a line starting with ``}`` (the end of a top-level block in the
    brace languages); without either within reach, at a line end, or anywhere.
    """
    if len(data) <= limit:
        return [(0, len(data))]
    cuts = sorted(
        {match.end() for match in _LINE_AFTER_CLOSING_BRACE.finditer(data)}
        | ({match.start() for match in resync.finditer(data)} if resync is not None else set())
    )
    pieces: list[tuple[int, int]] = []
    start = 0
    while len(data) - start > limit:
        index = bisect.bisect_right(cuts, start + limit) - 1
        end = cuts[index] if index >= 0 and cuts[index] > start else data.rfind(b"\n", start, start + limit) + 1
        if end <= start:
            end = start + limit
            while end > start and data[end] & 0xC0 == 0x80:
                end -= 1  # not inside a character
        pieces.append((start, end))
        start = end
    pieces.append((start, len(data)))
    return pieces


def _collect(root: Node, grammar: _Grammar, query: Query, data: bytes, offset: int, deadline: float) -> list[_Found]:
    """The definitions under ``root`` (parsed from ``data``) as byte ranges shifted by ``offset``.

    Raises:
        _GiveUpError: past ``deadline``.
    """
    if time.monotonic() >= deadline:
        raise _GiveUpError
    found: list[_Found] = []
    for node in QueryCursor(query).captures(root).get("def", []):
        kind = grammar.kinds.get(node.type)
        name = _name(node)
        if kind is None or name is None:
            continue
        start, end = _extent(node, grammar, data)
        found.append((offset + start, offset + end, _clean(f"{kind.keyword} {name}"), kind.container))
    return found


def _recover(
    root: Node,
    found: list[_Found],
    grammar: _Grammar,
    parser: Parser,
    query: Query,
    data: bytes,
    offset: int,
    deadline: float,
) -> list[_Found]:
    """Definitions lost in top-level error regions, re-parsed piece by piece.

    Tree-sitter may swallow the rest of a file into one error after an unclosed bracket. Inside such a region,
    each line starting a top-level definition (``grammar.resync``) starts a piece parsed on its own; what the
    first parse found there is replaced. Each byte is parsed at most twice.
    """
    assert grammar.resync is not None
    for error in (child for child in root.children if child.type == "ERROR"):
        lo, hi = error.start_byte, error.end_byte
        starts = [match.start() for match in grammar.resync.finditer(data, lo, hi)]
        if not starts:
            continue
        found = [item for item in found if not (offset + starts[0] <= item[0] < offset + hi)]
        for start, end in zip(starts, [*starts[1:], hi], strict=True):
            piece = data[start:end]
            found += _collect(parser.parse(piece).root_node, grammar, query, piece, offset + start, deadline)
    return found


def _dialect(filename: str) -> str | None:
    return "tsx" if filename.lower().endswith(".tsx") else None


@cache
def _language(language: str, dialect: str | None) -> tuple[Language, Query] | None:
    """The grammar of ``language`` and its definitions query, or ``None`` when its package is missing."""
    grammar = _GRAMMARS.get(language)
    if grammar is None:
        return None
    try:
        module = importlib.import_module(grammar.module)
    except ImportError:
        return None
    function = "language_tsx" if dialect == "tsx" and language == "typescript" else grammar.function
    ts_language = Language(getattr(module, function)())
    alternatives = " ".join(f"({kind})" for kind in grammar.kinds if kind not in grammar.patterns)
    source = f"[{alternatives}] @def\n" + "\n".join(grammar.patterns.values())
    return ts_language, Query(ts_language, source)


# --------------------------------------------------------------------------------------------- names


def _text(node: Node | None) -> str | None:
    if node is None or node.text is None:
        return None
    return node.text.decode("utf-8", "replace")


def _field_name(node: Node) -> str | None:
    return _text(node.child_by_field_name("name"))


def _go_method(node: Node) -> str | None:
    name = _field_name(node)
    receiver = _text(node.child_by_field_name("receiver"))
    return f"{receiver} {name}" if receiver and name else name


def _go_type(node: Node) -> str | None:
    names = [_field_name(spec) for spec in node.named_children if spec.type in ("type_spec", "type_alias")]
    return ", ".join(name for name in names if name) or None


def _rust_impl(node: Node) -> str | None:
    kind = _text(node.child_by_field_name("type"))
    trait = _text(node.child_by_field_name("trait"))
    return f"{trait} for {kind}" if trait and kind else kind


_DECLARATOR_NAMES = frozenset(
    {"identifier", "field_identifier", "qualified_identifier", "destructor_name", "operator_name", "type_identifier"}
)


def _c_declarator(node: Node) -> str | None:
    """The declared name of a C/C++ function: down the ``declarator`` fields (pointers, references, …)."""
    current = node.child_by_field_name("declarator")
    for _ in range(16):
        if current is None:
            return None
        if current.type in _DECLARATOR_NAMES:
            return _text(current)
        current = current.child_by_field_name("declarator") or next(
            (child for child in current.named_children if child.type in _DECLARATOR_NAMES), None
        )
    return None


def _c_struct(node: Node) -> str | None:
    """A struct's tag, or for ``typedef struct {…} Name;`` the typedef's name."""
    name = _field_name(node)
    parent = node.parent
    if name is None and parent is not None and parent.type == "type_definition":
        return _text(parent.child_by_field_name("declarator"))
    return name


_NAMERS: dict[str, Callable[[Node], str | None]] = {
    "method_declaration": lambda node: _go_method(node) if node.child_by_field_name("receiver") else _field_name(node),
    "type_declaration": _go_type,
    "impl_item": _rust_impl,
    "function_definition": lambda node: _field_name(node) or _c_declarator(node),
    "struct_specifier": _c_struct,
    "union_specifier": _c_struct,
    "enum_specifier": _c_struct,
    "field_definition": lambda node: _text(node.child_by_field_name("property")),
    "namespace_definition": lambda node: _field_name(node) or "(anonymous)",
}


def _name(node: Node) -> str | None:
    namer = _NAMERS.get(node.type, _field_name)
    return namer(node)


_SPACE = re.compile(r"\s+")


def _clean(label: str) -> str:
    """One line of printable text, bounded (names come from the file, which may be hostile)."""
    label = "".join(ch for ch in _SPACE.sub(" ", label) if ch.isprintable()).strip()
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


# --------------------------------------------------------------------------------------------- ranges


def _extent(node: Node, grammar: _Grammar, data: bytes) -> tuple[int, int]:
    """Byte range of a definition with what belongs to it: wrappers, then doc comments and attributes above."""
    outer = node
    parent = node.parent
    while parent is not None and parent.type in grammar.wrappers and _sole_definition(parent, outer):
        outer, parent = parent, parent.parent
    start = outer.start_byte
    previous = outer.prev_named_sibling
    while previous is not None and previous.type in grammar.attached:
        # Attached only when it is on the line(s) directly above and starts its own line.
        if data.count(b"\n", previous.end_byte, start) > 1:
            break
        line_start = data.rfind(b"\n", 0, previous.start_byte) + 1
        if data[line_start : previous.start_byte].strip():
            break
        start = previous.start_byte
        previous = previous.prev_named_sibling
    return start, outer.end_byte


def _sole_definition(wrapper: Node, inner: Node) -> bool:
    """Whether ``wrapper`` is about ``inner`` alone (not ``const a = () => 1, b = 2``)."""
    if wrapper.type in ("lexical_declaration", "variable_declaration"):
        return sum(child.type == "variable_declarator" for child in wrapper.named_children) == 1
    if wrapper.type == "expression_statement":
        return wrapper.named_child_count == 1
    return True


class _CharOffsets:
    """UTF-8 byte offsets to character offsets (tree-sitter counts bytes; Python strings count code points)."""

    def __init__(self, text: str, data: bytes) -> None:
        self._data = data
        self._ascii = len(data) == len(text)
        self._byte = 0
        self._char = 0

    def __call__(self, offset: int) -> int:
        """Character offset of byte ``offset``; calls must come in non-decreasing order."""
        if self._ascii:
            return offset
        while offset > 0 and offset < len(self._data) and self._data[offset] & 0xC0 == 0x80:
            offset -= 1  # inside a character: its start (node bounds never are, but keep the map total)
        if offset < self._byte:
            self._byte, self._char = 0, 0
        self._char += len(self._data[self._byte : offset].decode("utf-8"))
        self._byte = offset
        return self._char


def _nest(found: list[tuple[int, int, str, bool]], to_chars: _CharOffsets) -> list[Definition]:
    """Definitions (byte ranges) as a tree of character ranges; ones inside a non-container are dropped."""
    found.sort(key=lambda item: (item[0], -item[1]))
    # Convert offsets in ascending order, once each (the converter walks forward).
    bounds = sorted({offset for start, end, _, _ in found for offset in (start, end)})
    chars = {offset: to_chars(offset) for offset in bounds}
    roots: list[Definition] = []
    stack: list[tuple[int, bool, Definition]] = []  # (byte end, container, definition)
    for start, end, label, container in found:
        while stack and stack[-1][0] <= start:
            stack.pop()
        if stack and (not stack[-1][1] or end > stack[-1][0]):
            continue  # inside a function body (or overlapping its parent oddly): part of its parent
        definition = Definition(chars[start], chars[end], label)
        (stack[-1][2].children if stack else roots).append(definition)
        stack.append((end, container, definition))
    return roots
