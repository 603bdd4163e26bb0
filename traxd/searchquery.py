"""Pure: the search query language, parsed once and rendered for SQLite FTS5 and PostgreSQL tsquery.

The syntax (the same on both engines): words are ANDed; `"a phrase"`; `budg*` (prefix); `OR`; `-word` or
`NOT word`; parentheses. A malformed query raises QueryError with one line that says what is wrong; nothing
the user types reaches the SQL text (words are reduced to letters and digits and quoted).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from traxd.errors import UsageError
from traxd.typedtime import parse_moment
from traxd.types import SearchFilters

# A word is a run of letters and digits (underscore and punctuation separate words, as in FTS5's unicode61).
_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r'\s*(?:(?P<quote>")|(?P<open>\()|(?P<close>\))|(?P<neg>-(?=[^\s)]))|(?P<term>[^\s()"]+))')
MAX_QUERY_CHARS = 1000
MAX_LIMIT = 1000


class QueryError(UsageError):
    """A search query that cannot be understood (one line, shown to the user as is)."""


@dataclass(frozen=True)
class Term:
    """One word or phrase (several words in order); `prefix` matches words starting with the last one."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True)
class Not:
    """A negated expression (only valid beside a positive one)."""

    node: Node


@dataclass(frozen=True)
class And:
    """Every part must match."""

    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """Any part may match."""

    parts: tuple[Node, ...]


Node = Term | Not | And | Or


def parse(text: str) -> Node:
    """The query's tree; QueryError for an empty or malformed query."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is too long ({len(text)} characters; at most {MAX_QUERY_CHARS})")
    parser = _Parser(_tokens(text))
    node = parser.expression()
    if parser.peek() is not None:
        raise QueryError('unexpected ")" in the query: a closing parenthesis has no opening one')
    if node is None:
        raise QueryError("the query has no words to search for")
    _check_positive(node)
    return node


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, value) tokens: quote-delimited phrases, parentheses, negation, OR/AND/NOT keywords and words."""
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:  # pragma: no cover - the pattern matches any non-space character
            raise QueryError(f"cannot read the query at {text[pos:pos + 20]!r}")
        pos = m.end()
        if m.group("quote"):
            end = text.find('"', pos)
            if end < 0:
                raise QueryError('the query opens a quote (") that is never closed')
            out.append(("phrase", text[pos:end]))
            pos = end + 1
            if text[pos : pos + 1] == "*":
                raise QueryError('a prefix (*) applies to a single word, not to a "phrase"')
        elif m.group("open") or m.group("close"):
            out.append(("open" if m.group("open") else "close", ""))
        elif m.group("neg"):
            out.append(("not", "-"))
        else:
            term = m.group("term")
            out.append((term, term) if term in ("OR", "AND", "NOT") else ("word", term))
    return out


class _Parser:
    """Recursive descent: expression := and (OR and)*; and := unary+; unary := [NOT|-] atom."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expression(self) -> Node | None:
        parts = [self.conjunction()]
        while self.peek() == "OR":
            self.take()
            if self.peek() in (None, "close", "OR"):
                raise QueryError("OR needs a word on both sides")
            parts.append(self.conjunction())
        if parts[0] is None and len(parts) > 1:
            raise QueryError("OR needs a word on both sides")
        kept = [p for p in parts if p is not None]
        return None if not kept else kept[0] if len(kept) == 1 else Or(tuple(kept))

    def conjunction(self) -> Node | None:
        parts: list[Node] = []
        while self.peek() not in (None, "close", "OR"):
            if self.peek() == "AND":
                self.take()
                if self.peek() in (None, "close", "OR", "AND") or not parts:
                    raise QueryError("AND needs a word on both sides")
                continue
            node = self.unary()
            if node is not None:
                parts.append(node)
        return None if not parts else parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self) -> Node | None:
        if self.peek() in ("not", "NOT"):
            self.take()
            if self.peek() in (None, "close", "OR", "AND"):
                raise QueryError("NOT (or -) must be followed by a word, a phrase or a group")
            inner = self.unary()
            return None if inner is None else Not(inner)
        return self.atom()

    def atom(self) -> Node | None:
        kind, value = self.take()
        if kind == "open":
            inner = self.expression()
            if self.peek() != "close":
                raise QueryError('the query opens a parenthesis "(" that is never closed')
            self.take()
            if inner is None:
                raise QueryError("an empty group () in the query")
            return inner
        if kind == "close":  # pragma: no cover - callers stop at ")"
            raise QueryError('unexpected ")" in the query')
        return _term(value, phrase=kind == "phrase")


def _term(value: str, phrase: bool) -> Term | None:
    """A Term from a word or phrase (None when it holds no letters or digits)."""
    prefix = not phrase and value.endswith("*")
    words = tuple(w.lower() for w in _WORD.findall(value))
    if not words:
        return None
    if prefix and len(words) > 1:
        raise QueryError(f"a prefix (*) applies to a single word: {value!r} holds several")
    return Term(words, prefix)


def _check_positive(node: Node) -> None:
    """Every AND group (and the whole query) needs something to find: `-word` alone cannot be searched."""
    if isinstance(node, Not):
        raise QueryError("the query only excludes words: add a word to find (e.g. budget -draft)")
    if isinstance(node, Or | And):
        if isinstance(node, And) and all(isinstance(p, Not) for p in node.parts):
            raise QueryError("the query only excludes words: add a word to find (e.g. budget -draft)")
        for part in node.parts:
            _check_positive(part.node if isinstance(node, And) and isinstance(part, Not) else part)


def to_fts5(node: Node) -> str:
    """An FTS5 MATCH expression (every word double-quoted, so no FTS5 syntax can leak in)."""
    if isinstance(node, Term):
        if len(node.words) == 1:
            return f'"{node.words[0]}"' + ("*" if node.prefix else "")
        return '"' + " ".join(node.words) + '"'
    if isinstance(node, Or):
        return "(" + " OR ".join(to_fts5(p) for p in node.parts) + ")"
    if isinstance(node, Not):  # only reached inside an And (see _check_positive)
        return to_fts5(node.node)
    pos = [to_fts5(p) for p in node.parts if not isinstance(p, Not)]
    neg = [to_fts5(p) for p in node.parts if isinstance(p, Not)]
    text = "(" + " AND ".join(pos) + ")"
    return text + "".join(f" NOT {n}" for n in neg)


def to_tsquery(node: Node) -> str:
    """A PostgreSQL to_tsquery() string (words single-quoted; phrases with <->; prefixes with :*)."""
    if isinstance(node, Term):
        words = [f"'{w}'" for w in node.words]
        if node.prefix:
            words[-1] += ":*"
        return words[0] if len(words) == 1 else "(" + " <-> ".join(words) + ")"
    if isinstance(node, Not):
        return "!" + to_tsquery(node.node)
    joiner = " | " if isinstance(node, Or) else " & "
    return "(" + joiner.join(to_tsquery(p) for p in node.parts) + ")"


def _since(value: str | float | None) -> float | None:
    """`since` as epoch seconds: a typed moment (see typedtime), or a number of seconds back from now."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return time.time() - float(value)
    try:
        return parse_moment(value, time.time())
    except UsageError as exc:  # the dashboard and the API catch a query's own error class
        raise QueryError(str(exc)) from None


def make_filters(
    since: str | float | None, inbox: str | os.PathLike[str] | None, speaker: str | None, language: str | None,
    limit: int,
) -> SearchFilters:  # fmt: skip
    """Validated filters (QueryError names the bad one)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"--limit must be between 1 and {MAX_LIMIT} (got {limit})")
    folder = os.path.realpath(os.path.expanduser(os.fspath(inbox))) if inbox else None
    return SearchFilters(_since(since), folder, speaker or None, (language or "").strip().lower() or None, limit)
