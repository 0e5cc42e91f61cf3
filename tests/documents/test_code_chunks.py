"""Code files chunked on syntax boundaries: tree-sitter definitions as nested sections headed by the file's path."""

from __future__ import annotations

import ast
import json.decoder
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from zhiku.documents.chunking import chunk_document
from zhiku.documents.parsers import parse_file
from zhiku.documents.parsers.code import MAX_PATH_CHARS, _regex_definitions, code_sections, display_path
from zhiku.documents.syntax import MAX_PIECE_BYTES, definitions, grammar_languages
from zhiku.documents.types import ChunkSpan, ParsedDocument, Section

GRAMMARS = ("python", "javascript", "typescript", "go", "rust", "java", "c", "cpp")


@pytest.fixture(scope="module")
def qwen3(qwen3_tokenizer_dir: Path) -> Tokenizer:
    return Tokenizer.from_file(str(qwen3_tokenizer_dir / "tokenizer.json"))


def _parse(tmp_path: Path, filename: str, source: str) -> ParsedDocument:
    """Parse ``source`` stored under a staging name, as uploads are, with ``filename`` as the user's name."""
    path = tmp_path / "upload-1"
    path.write_bytes(source.encode("utf-8"))
    return parse_file(path, filename=filename)


def _paths(doc: ParsedDocument) -> list[tuple[str, ...]]:
    return [section.heading_path for section in doc.sections]


def _section(doc: ParsedDocument, *labels: str) -> Section:
    return next(s for s in doc.sections if s.heading_path[1:] == labels)


def _check_chunks(doc: ParsedDocument, chunks: list[ChunkSpan]) -> None:
    """Exact offsets, nothing lost, every chunk starting at a definition's boundary or inside the one definition
    it continues (a definition too big for one chunk), and no chunk holding the end of a definition (a class's
    closing lines) without its beginning."""
    covered = [False] * len(doc.text)
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.heading_path == doc.heading_path_at(chunk.start)
        for index in range(chunk.start, chunk.end):
            covered[index] = True
    assert all(covered[i] for i, ch in enumerate(doc.text) if not ch.isspace())
    bounds = {bound for section in doc.sections for bound in (section.start, section.end)}
    boundaries = {len(doc.text[:bound]) + len(doc.text[bound:]) - len(doc.text[bound:].lstrip()) for bound in bounds}
    for chunk in chunks:
        innermost = max((s for s in doc.sections if s.start <= chunk.start < s.end), key=lambda s: len(s.heading_path))
        within = innermost.start <= chunk.start and chunk.end <= innermost.end
        assert chunk.start in boundaries or within, (chunk.heading_path, chunk.text[:80])
    for chunk in chunks:  # whole sections: a chunk outside a definition holds its beginning, never only its end
        for section in doc.sections:
            body = doc.text[section.start : section.end]
            first = section.start + len(body) - len(body.lstrip())
            last = section.start + len(body.rstrip())
            if last <= chunk.start or first >= chunk.end:
                continue
            inside = section.start <= chunk.start and chunk.end <= section.end
            assert inside or chunk.start <= first, (section.heading_path, chunk.text[:80])


# --------------------------------------------------------------------------------------------- sections


STORE_PY = '''\
"""A key-value store."""

import os

DEFAULT_PATH = os.path.join("data", "store.json")


# Loads the file once per path.
@functools.cache
def load(path: str) -> dict[str, str]:
    """Read the store from ``path``."""
    with open(path) as handle:
        return json.load(handle)


class Store:
    """Keys to values, saved on demand."""

    limit = 100

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        self.path = path

    @property
    def size(self) -> int:
        return len(self.items)

    def get(self, key: str) -> str | None:
        def fallback() -> None:
            return None

        return self.items.get(key) or fallback()

    class Meta:
        def describe(self) -> str:
            return "meta"


if __name__ == "__main__":
    print(Store().size)
'''


def test_python_definitions_nest_under_the_file_path(tmp_path: Path) -> None:
    doc = _parse(tmp_path, "src/pkg/store.py", STORE_PY)
    path = "src/pkg/store.py"
    assert _paths(doc) == [
        (path,),
        (path, "def load"),
        (path, "class Store"),
        (path, "class Store", "def __init__"),
        (path, "class Store", "def size"),
        (path, "class Store", "def get"),  # its inner `fallback` stays part of it
        (path, "class Store", "class Meta"),
        (path, "class Store", "class Meta", "def describe"),
    ]
    assert doc.sections[0].start == 0
    assert doc.sections[0].end == len(doc.text)
    load = doc.text[_section(doc, "def load").start : _section(doc, "def load").end]
    assert load.startswith("# Loads the file once per path.\n@functools.cache\ndef load(")  # comment, decorator
    assert load.endswith("return json.load(handle)")
    size = _section(doc, "class Store", "def size")
    assert doc.text[size.start : size.end].startswith("@property\n    def size")
    assert doc.heading_path_at(doc.text.index("return None")) == (path, "class Store", "def get")
    assert doc.heading_path_at(doc.text.index("limit = 100")) == (path, "class Store")
    assert doc.heading_path_at(doc.text.index("DEFAULT_PATH =")) == (path,)
    assert doc.heading_path_at(doc.text.index('if __name__ == "__main__"')) == (path,)


SOURCES: dict[str, tuple[str, list[tuple[str, ...]], dict[tuple[str, ...], str]]] = {
    # filename: (source, expected labels below the path, {labels: what the section's text starts with})
    "web/app.js": (
        """\
import { api } from "./api.js";

/** Formats a price in euros. */
export function formatPrice(cents) {
  return (cents / 100).toFixed(2) + " €";
}

export default class Cart extends Base {
  items = [];
  total = () => this.items.reduce((sum, item) => sum + item.price, 0);

  add(item) {
    this.items.push(item);
  }
}

const fetchCart = async (id) => {
  const helper = () => id;
  return api.get(`/carts/${helper()}`);
};
""",
        [
            ("function formatPrice",),
            ("class Cart",),
            ("class Cart", "method total"),
            ("class Cart", "method add"),
            ("function fetchCart",),
        ],
        {
            ("function formatPrice",): "/** Formats a price in euros. */\nexport function",
            ("function fetchCart",): "const fetchCart = async",
        },
    ),
    "web/models.ts": (
        """\
export interface User {
  id: number;
  name: string;
}

export type UserId = User["id"];

@Injectable()
export class UserService {
  constructor(private readonly http: Http) {}

  @Cached()
  async find(id: UserId): Promise<User> {
    return this.http.get(`/users/${id}`);
  }
}

export namespace Validation {
  export function isUser(value: unknown): value is User {
    return typeof value === "object";
  }
}
""",
        [
            ("interface User",),
            ("type UserId",),
            ("class UserService",),
            ("class UserService", "method constructor"),
            ("class UserService", "method find"),
            ("namespace Validation",),
            ("namespace Validation", "function isUser"),
        ],
        {("class UserService",): "@Injectable()\nexport class", ("class UserService", "method find"): "@Cached()"},
    ),
    "cmd/server/main.go": (
        """\
package main

import "net/http"

// Server answers HTTP requests.
type Server struct {
	mux *http.ServeMux
}

// Run listens on addr until it fails.
func (s *Server) Run(addr string) error {
	return http.ListenAndServe(addr, s.mux)
}

func main() {
	s := &Server{mux: http.NewServeMux()}
	_ = s.Run(":8080")
}
""",
        [("type Server",), ("func (s *Server) Run",), ("func main",)],
        {("type Server",): "// Server answers", ("func (s *Server) Run",): "// Run listens on addr"},
    ),
    "src/cache.rs": (
        """\
use std::collections::HashMap;

/// A bounded cache.
#[derive(Debug, Default)]
pub struct Cache {
    entries: HashMap<String, Vec<u8>>,
}

impl Cache {
    /// Looks a key up.
    pub fn get(&self, key: &str) -> Option<&Vec<u8>> {
        self.entries.get(key)
    }
}

pub trait Evict {
    fn evict(&mut self);
}

mod tests {
    #[test]
    fn empty() {
        assert!(super::Cache::default().get("a").is_none());
    }
}
""",
        [
            ("struct Cache",),
            ("impl Cache",),
            ("impl Cache", "fn get"),
            ("trait Evict",),
            ("trait Evict", "fn evict"),
            ("mod tests",),
            ("mod tests", "fn empty"),
        ],
        {
            ("struct Cache",): "/// A bounded cache.\n#[derive(Debug, Default)]\npub struct",
            ("mod tests", "fn empty"): "#[test]\n    fn empty",
        },
    ),
    "src/main/java/shop/Order.java": (
        """\
package shop;

/** An order of items. */
public class Order {
    private final List<Item> items = new ArrayList<>();

    public Order() {}

    /** The sum of the prices. */
    @Override
    public long total() {
        return items.stream().mapToLong(Item::price).sum();
    }

    enum State { OPEN, PAID }
}
""",
        [
            ("class Order",),
            ("class Order", "constructor Order"),
            ("class Order", "method total"),
            ("class Order", "enum State"),
        ],
        {("class Order",): "/** An order of items. */", ("class Order", "method total"): "/** The sum"},
    ),
    "lib/list.c": (
        """\
#include <stdlib.h>

typedef struct node {
    int value;
    struct node *next;
} node_t;

/* Pushes a value on the front. */
static node_t *push(node_t *head, int value) {
    node_t *n = malloc(sizeof *n);
    n->value = value;
    n->next = head;
    return n;
}

int length(const node_t *head) {
    int n = 0;
    for (; head; head = head->next) n++;
    return n;
}
""",
        [("struct node",), ("function push",), ("function length",)],
        {("struct node",): "typedef struct node {", ("function push",): "/* Pushes a value"},
    ),
    "lib/shapes.cpp": (
        """\
#include <cmath>

namespace geo {

// A circle.
class Circle : public Shape {
 public:
  explicit Circle(double r) : r_(r) {}
  double area() const override { return M_PI * r_ * r_; }

 private:
  double r_;
};

template <typename T>
T clamp(T v, T lo, T hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

}  // namespace geo

double geo::Circle::perimeter() const { return 2 * M_PI * r_; }
""",
        [
            ("namespace geo",),
            ("namespace geo", "class Circle"),
            ("namespace geo", "class Circle", "function Circle"),
            ("namespace geo", "class Circle", "function area"),
            ("namespace geo", "function clamp"),
            ("function geo::Circle::perimeter",),
        ],
        {
            ("namespace geo", "class Circle"): "// A circle.\nclass Circle",
            ("namespace geo", "function clamp"): "template <typename T>\nT clamp",
        },
    ),
}


def test_every_language_has_its_grammar() -> None:
    assert set(grammar_languages()) == set(GRAMMARS)


@pytest.mark.parametrize("filename", SOURCES)
def test_definitions_per_language(tmp_path: Path, filename: str, qwen3: Tokenizer) -> None:
    source, expected, starts = SOURCES[filename]
    doc = _parse(tmp_path, filename, source)
    assert doc.language in GRAMMARS
    assert _paths(doc) == [(filename,), *((filename, *labels) for labels in expected)]
    for labels, start in starts.items():
        section = _section(doc, *labels)
        assert doc.text[section.start : section.end].startswith(start), labels
    for section in doc.sections:  # a definition ends where its last token does
        text = doc.text[section.start : section.end]
        assert text == text.strip(), section.heading_path
        assert text[-1] in "});}", (section.heading_path, text[-20:])
    _check_chunks(doc, chunk_document(doc, qwen3, chunk_tokens=24))


def test_tsx_files_are_parsed_with_the_tsx_grammar(tmp_path: Path) -> None:
    source = 'export function Badge({ label }: Props) {\n  return <span className="badge">{label}</span>;\n}\n'
    doc = _parse(tmp_path, "ui/Badge.tsx", source)
    assert _paths(doc) == [("ui/Badge.tsx",), ("ui/Badge.tsx", "function Badge")]
    assert doc.text[doc.sections[1].start : doc.sections[1].end] == source.strip()


# --------------------------------------------------------------------------------------------- real files


def _ast_definitions(body: list[ast.stmt], parent: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], int, int]]:
    """Python's own parser as the oracle: (labels, first line with decorators, last line) of each definition,
    descending into classes and compound statements but not into function bodies."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            label = (*parent, f"{'class' if isinstance(node, ast.ClassDef) else 'def'} {node.name}")
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            yield label, first, node.end_lineno or node.lineno
            if isinstance(node, ast.ClassDef):
                yield from _ast_definitions(node.body, label)
            continue
        for name in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, name, None)
            if isinstance(inner, list):
                yield from _ast_definitions([s for s in inner if isinstance(s, ast.stmt | ast.excepthandler)], parent)


STDLIB_FILES = [json.decoder.__file__, textwrap.__file__, ast.__file__]


@pytest.mark.parametrize("source_file", STDLIB_FILES, ids=lambda f: Path(f).name)
def test_real_python_files_match_pythons_own_parser(source_file: str, qwen3: Tokenizer) -> None:
    """Every definition Python's ``ast`` sees (classes, methods, functions in ``if`` blocks), with its lines."""
    name = f"lib/{Path(source_file).name}"
    doc = parse_file(Path(source_file), filename=name)
    text = doc.text

    def line(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    ours = sorted((s.heading_path[1:], line(s.start), line(s.end - 1)) for s in doc.sections[1:])
    theirs = sorted(_ast_definitions(ast.parse(Path(source_file).read_text(encoding="utf-8")).body, ()))
    assert [item[0] for item in ours] == [item[0] for item in theirs]
    lines = text.splitlines()
    for (labels, start, end), (_, first, last) in zip(ours, theirs, strict=True):
        # Earlier only by the comment lines directly above; later only by comment lines at the end of its body
        # (tree-sitter keeps them in the indented block, ast ends at the last statement).
        assert start <= first, labels
        assert end >= last, labels
        assert all(lines[i - 1].lstrip().startswith("#") for i in range(start, first)), labels
        assert all(lines[i - 1].lstrip().startswith("#") or not lines[i - 1].strip() for i in range(last + 1, end + 1))

    chunks = chunk_document(doc, qwen3, chunk_tokens=128)
    _check_chunks(doc, chunks)
    leaves = [s for s in doc.sections[1:] if not any(o is not s and s.start <= o.start < s.end for o in doc.sections)]
    big = [s for s in leaves if len(qwen3.encode(text[s.start : s.end], add_special_tokens=False).ids) > 128]
    assert big
    for section in big:
        # A function too big to share a chunk starts one, or (a class's first method) follows its class's
        # header in one, or follows the comment lines above it (say, "# -- Convenience interface --"); that
        # chunk carries the function's or the class's (or the module's) heading path.
        parent = next((s for s in doc.sections if s.heading_path == section.heading_path[:-1]), None)
        first = next(chunk for chunk in chunks if chunk.start <= section.start < chunk.end)
        lead = text[first.start : section.start].splitlines()  # comment lines of the module above it, if any
        assert (
            first.start == section.start
            or (parent is not None and first.start == parent.start)
            or all(not line.strip() or line.lstrip().startswith("#") for line in lead)
        ), section
        assert first.heading_path in (section.heading_path, section.heading_path[:-1])


# --------------------------------------------------------------------------------------------- hard cases


CHINESE_PY = '''\
# 订单模块：计算价格与折扣 😀
"""中文文档字符串。"""


class 购物车:
    """购物车，保存商品。"""

    def 添加(self, 商品: str, 数量: int = 1) -> None:
        # 把商品放进购物车
        self.内容[商品] = self.内容.get(商品, 0) + 数量

    def total(self) -> float:
        return sum(价格 for 价格 in self.内容.values())  # 总价


def 计算折扣(价格: float, 折扣: float = 0.9) -> float:
    """打九折。"""
    return 价格 * 折扣
'''


def test_non_ascii_source_has_exact_character_offsets(tmp_path: Path, qwen3: Tokenizer) -> None:
    doc = _parse(tmp_path, "商店/订单.py", CHINESE_PY)
    path = "商店/订单.py"
    assert _paths(doc) == [
        (path,),
        (path, "class 购物车"),
        (path, "class 购物车", "def 添加"),
        (path, "class 购物车", "def total"),
        (path, "def 计算折扣"),
    ]
    expected = {
        ("class 购物车",): (CHINESE_PY.index("class 购物车"), CHINESE_PY.index("# 总价") + len("# 总价")),
        ("class 购物车", "def 添加"): (CHINESE_PY.index("def 添加"), CHINESE_PY.index("+ 数量") + len("+ 数量")),
        ("def 计算折扣",): (CHINESE_PY.index("def 计算折扣"), len(CHINESE_PY.rstrip())),
    }
    for labels, (start, end) in expected.items():
        section = _section(doc, *labels)
        assert (section.start, section.end) == (start, end), labels
    chunks = chunk_document(doc, qwen3, chunk_tokens=40)
    _check_chunks(doc, chunks)
    discount = next(chunk for chunk in chunks if chunk.text.startswith("def 计算折扣"))
    assert discount.heading_path == (path, "def 计算折扣")
    assert discount.text.endswith("return 价格 * 折扣")


def test_byte_offsets_of_every_width_map_to_characters() -> None:
    # 1-, 2-, 3- and 4-byte UTF-8 characters before, inside and between definitions
    source = "x = 'é中😀'\ndef a():\n    return '😀😀'\n\n\ndef b():\n    return 'ß'\n"
    found = definitions(source, "python")
    assert found is not None
    assert [(d.label, source[d.start : d.end]) for d in found] == [
        ("def a", "def a():\n    return '😀😀'"),
        ("def b", "def b():\n    return 'ß'"),
    ]


BROKEN_PY = """\
def ok_before(x):
    return x + 1


def broken(a, b:
    if a >
        return 1
    return ((b


class StillFound:
    def method(self):
        return "still parsed"
"""


def test_a_file_with_syntax_errors_keeps_what_was_recovered(tmp_path: Path, qwen3: Tokenizer) -> None:
    doc = _parse(tmp_path, "broken.py", BROKEN_PY)
    paths = _paths(doc)
    assert paths[0] == ("broken.py",)
    assert ("broken.py", "def ok_before") in paths
    assert ("broken.py", "class StillFound", "def method") in paths  # after the unclosed bracket: re-parsed
    method = _section(doc, "class StillFound", "def method")
    assert doc.text[method.start : method.end] == 'def method(self):\n        return "still parsed"'
    section = _section(doc, "def ok_before")
    assert doc.text[section.start : section.end] == "def ok_before(x):\n    return x + 1"
    _check_chunks(doc, chunk_document(doc, qwen3, chunk_tokens=16))


@pytest.mark.parametrize("filename", ["noise.py", "noise.ts", "noise.cpp", "noise.rs"])
def test_garbage_in_a_code_file_never_fails_the_document(tmp_path: Path, filename: str, qwen3: Tokenizer) -> None:
    garbage = "}{ ) def ( class :: fn <<>> 函数 @@ #[ */ /* \" ' ` \\\n" * 200 + "((((((((" * 500
    doc = _parse(tmp_path, filename, garbage)
    assert doc.sections[0].heading_path == (filename,)
    for section in doc.sections:
        assert 0 <= section.start < section.end <= len(doc.text)
    _check_chunks(doc, chunk_document(doc, qwen3, chunk_tokens=64))


def test_deeply_nested_source_does_not_overflow(tmp_path: Path) -> None:
    depth = 5000
    source = "def deep():\n    return " + "[" * depth + "]" * depth + "\n"
    assert definitions(source, "python") is None  # past MAX_NESTING: the grammar is not worth it
    doc = _parse(tmp_path, "deep.py", source)
    assert _paths(doc) == [("deep.py",), ("deep.py", "def deep")]  # the regular expressions still find it
    unclosed = "def top():\n    return 1\n\nx = " + "(" * 300_000 + "\n"  # minutes of querying, were it tried
    assert definitions(unclosed, "python") is None
    assert _paths(_parse(tmp_path, "unclosed.py", unclosed)) == [("unclosed.py",), ("unclosed.py", "def top")]


def test_a_huge_function_is_split_but_keeps_its_heading_path(tmp_path: Path, qwen3: Tokenizer) -> None:
    body = "\n".join(f"    total += compute_step({i}, factor={i % 7})  # step {i}" for i in range(400))
    source = f"import math\n\n\nclass Engine:\n    def run(self):\n        total = 0\n{textwrap.indent(body, '    ')}\n"
    source += "        return total\n\n    def stop(self):\n        pass\n"
    doc = _parse(tmp_path, "engine/core.py", source)
    run = _section(doc, "class Engine", "def run")
    chunks = chunk_document(doc, qwen3, chunk_tokens=64)
    _check_chunks(doc, chunks)
    inside = [chunk for chunk in chunks if run.start <= chunk.start and chunk.end <= run.end]
    assert len(inside) > 20
    assert {chunk.heading_path for chunk in inside} == {("engine/core.py", "class Engine", "def run")}
    assert inside[-1].text.endswith("return total")
    assert chunks[-1].heading_path == ("engine/core.py", "class Engine", "def stop")


def test_languages_without_a_grammar_are_headed_by_their_path(tmp_path: Path) -> None:
    doc = _parse(tmp_path, "build/app.kt", 'fun main() {\n    println("hi")\n}\n')
    assert doc.language == "kotlin"
    assert _paths(doc) == [("build/app.kt",)]
    assert code_sections("fun main() {}", "kotlin", "app.kt") == [Section(0, 13, ("app.kt",))]


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("src/pkg/mod.py", "src/pkg/mod.py"),
        ("src\\pkg\\mod.py", "src/pkg/mod.py"),
        ("src//pkg///mod.py", "src/pkg/mod.py"),
        ("evil\x1b[31m\n\r\u202e.py", "evil[31m.py"),  # control and bidi characters go
        ("a\u3000b.py", "a b.py"),
        ("\x00\x01", "unnamed"),
        ("", "unnamed"),
    ],
)
def test_the_path_heading_is_sanitised(given: str, shown: str) -> None:
    assert display_path(given) == shown


def test_a_long_path_keeps_its_root_and_file_name() -> None:
    given = "src/" + "very-long-folder-name/" * 40 + "module.py"
    shown = display_path(given)
    assert len(shown) == MAX_PATH_CHARS
    assert shown.startswith("src/very-long")
    assert shown.endswith("/module.py")
    assert "…" in shown


def test_labels_from_hostile_source_are_one_bounded_line() -> None:
    name = "f" + "x" * 500
    source = f"func (r *T /* a\ncomment */) {name}() {{}}\n"
    found = definitions(source, "go")
    assert found is not None
    assert len(found) == 1
    label = found[0].label
    assert "\n" not in label
    assert len(label) <= 120
    assert label.startswith("func (r *T /* a comment */) fxxx")


# --------------------------------------------------------------------------------------------- retrieval

UTILS_PY = '''\
"""Small helpers of the billing service."""

import hashlib
import re

_DURATION = re.compile(r"(\\d+)([hms])")


def parse_duration(value: str) -> int:
    """Turn a duration like "1h30m" or "45s" into a number of seconds."""
    seconds = 0
    for amount, unit in _DURATION.findall(value):
        seconds += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return seconds


def send_invoice_email(customer: Customer, invoice: Invoice) -> None:
    """E-mail the invoice as a PDF attachment to the customer's billing address."""
    message = EmailMessage(subject=f"Invoice {invoice.number}", to=customer.billing_email)
    message.attach(invoice.render_pdf(), mimetype="application/pdf")
    mailer.send(message)


def file_checksum(path: str) -> str:
    """The SHA-256 digest of a file's contents, read in blocks of 64 KiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(65536), b""):
            digest.update(block)
    return digest.hexdigest()
'''


@pytest.mark.slow
def test_a_query_describing_a_function_finds_its_chunk(tmp_path: Path) -> None:
    """End to end with the default offline model: ingest a code file, ask for what a function does."""
    from zhiku.config import Settings
    from zhiku.core import Zhiku
    from zhiku.knowledge.bases import create_knowledge_base
    from zhiku.knowledge.documents import register_file
    from zhiku.pipeline.tasks import job_runner
    from zhiku.search.options import SearchOptions
    from zhiku.search.retrieve import search

    path = tmp_path / "utils.py"
    path.write_text(UTILS_PY, encoding="utf-8")
    zhiku = Zhiku(Settings(home=tmp_path / "home"))
    try:
        kb = create_knowledge_base(zhiku, "code", chunk_tokens=128, chunk_overlap=0)
        with job_runner(zhiku) as runner:
            outcome = register_file(zhiku, kb, path, filename="utils.py")
            assert outcome.job_id is not None
            runner.wait_for([outcome.job_id], timeout=300)
        queries = {
            "convert a time span such as 2h15m to seconds": "def parse_duration",
            "mail the bill to the client": "def send_invoice_email",
            "compute a hash of a file": "def file_checksum",
        }
        for query, label in queries.items():
            hits = search(zhiku, kb, query, SearchOptions(mode="dense", top_k=3))
            assert hits, query
            assert hits[0].heading_path == ["utils.py", label], (query, [h.heading_path for h in hits])
            assert hits[0].text.startswith(label), query
    finally:
        zhiku.close()


def test_a_big_file_is_parsed_in_pieces_with_the_same_definitions() -> None:
    one = Path(ast.__file__).read_text(encoding="utf-8")
    copies = 12  # ~740 KB: more than one piece
    assert len(one.encode()) * copies > MAX_PIECE_BYTES
    single = definitions(one, "python")
    many = definitions(one * copies, "python")
    assert single is not None
    assert many is not None
    assert [d.label for d in many] == [d.label for d in single] * copies
    assert [(d.start, d.end) for d in many[len(single) :][: len(single)]] == [
        (d.start + len(one), d.end + len(one)) for d in single
    ]


def test_out_of_time_gives_none_and_the_caller_falls_back() -> None:
    assert definitions(STORE_PY, "python", budget=0.0) is None
    found = _regex_definitions(STORE_PY, "python")
    assert [label for _, _, label in found] == ["def load", "class Store"]


@pytest.mark.parametrize(
    ("filename", "source", "recovered"),
    [
        (
            "main.go",
            "package main\n\nfunc broken() {\n\tx := foo(\n}\n\nfunc later() int {\n\treturn 1\n}\n",
            ("func later",),
        ),
        (
            "api.ts",
            "export function broken(a: number {\n  return [a;\n}\n\nexport class Later {\n  run(): void {}\n}\n",
            ("class Later", "method run"),
        ),
        (
            "lib.rs",
            "fn broken() {\n    let x = vec![1, 2;\n}\n\n/// Still here.\npub fn later() -> u8 {\n    1\n}\n",
            ("fn later",),
        ),
    ],
)
def test_definitions_after_a_syntax_error_are_recovered(
    tmp_path: Path, filename: str, source: str, recovered: tuple[str, ...]
) -> None:
    doc = _parse(tmp_path, filename, source)
    assert (filename, *recovered) in _paths(doc)
    section = _section(doc, *recovered)
    assert doc.text[section.end - 1] == "}"
