"""The SOQL subset the sandbox answers: what the connector's match queries (and a person poking at
the sandbox) need, with Salesforce's semantics where they matter.

``SELECT COUNT() | f1, f2 FROM Obj [WHERE cond] [LIMIT n]``; conditions ``f = v``, ``f != v``,
``f IN (v, ...)``, ``f NOT IN (...)``, ``AND``, ``OR``, ``NOT``, parentheses; values are quoted
strings (backslash escapes), ``null``, ``true``/``false`` and numbers. String comparison is
case-insensitive, as in Salesforce. Anything else is ``MALFORMED_QUERY``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:\\.|[^'\\])*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>!=|<>|=|\(|\)|,)|(?P<word>[A-Za-z_][\w.]*))"
)


class SoqlError(ValueError):
    pass


@dataclass
class Query:
    sobject: str
    fields: list[str]
    count: bool
    where: Any
    limit: int | None


def tokenize(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SoqlError(f"unexpected token at position {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        if m.group("str") is not None:
            raw = m.group("str")[1:-1]
            out.append(("value", re.sub(r"\\(.)", r"\1", raw)))
        elif m.group("num") is not None:
            out.append(("value", float(m.group("num"))))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        else:
            word = m.group("word")
            upper = word.upper()
            if upper in ("SELECT", "FROM", "WHERE", "LIMIT", "AND", "OR", "NOT", "IN", "COUNT"):
                out.append(("kw", upper))
            elif upper in ("NULL", "TRUE", "FALSE"):
                out.append(("value", {"NULL": None, "TRUE": True, "FALSE": False}[upper]))
            else:
                out.append(("name", word))
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str, value: Any = None) -> Any:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            raise SoqlError(f"expected {value or kind}, found {tok[1] if tok else 'end of query'}")
        self.i += 1
        return tok[1]

    def accept(self, kind: str, value: Any = None) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == kind and (value is None or tok[1] == value):
            self.i += 1
            return True
        return False

    def query(self) -> Query:
        self.take("kw", "SELECT")
        count = False
        fields: list[str] = []
        if self.accept("kw", "COUNT"):
            self.take("op", "(")
            self.take("op", ")")
            count = True
        else:
            fields.append(self.take("name"))
            while self.accept("op", ","):
                fields.append(self.take("name"))
        self.take("kw", "FROM")
        sobject = self.take("name")
        where = None
        if self.accept("kw", "WHERE"):
            where = self.expr()
        limit = None
        if self.accept("kw", "LIMIT"):
            limit = int(self.take("value"))
        if self.peek() is not None:
            raise SoqlError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return Query(sobject, fields, count, where, limit)

    def expr(self) -> Any:
        node = self.term()
        while self.accept("kw", "OR"):
            node = ("or", node, self.term())
        return node

    def term(self) -> Any:
        node = self.factor()
        while self.accept("kw", "AND"):
            node = ("and", node, self.factor())
        return node

    def factor(self) -> Any:
        if self.accept("op", "("):
            node = self.expr()
            self.take("op", ")")
            return node
        if self.accept("kw", "NOT"):
            return ("not", self.factor())
        name = self.take("name")
        negate = self.accept("kw", "NOT")
        if self.accept("kw", "IN"):
            self.take("op", "(")
            values = [self.take("value")]
            while self.accept("op", ","):
                values.append(self.take("value"))
            self.take("op", ")")
            node: Any = ("in", name, values)
            return ("not", node) if negate else node
        if negate:
            raise SoqlError("NOT must be followed by IN here")
        op = self.take("op")
        if op not in ("=", "!=", "<>"):
            raise SoqlError(f"unsupported operator {op}")
        value = self.take("value")
        return ("eq", name, value) if op == "=" else ("not", ("eq", name, value))


def parse(text: str) -> Query:
    return _Parser(tokenize(text)).query()


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a).casefold() == str(b).casefold()


def matches(node: Any, record: dict[str, Any]) -> bool:
    if node is None:
        return True
    kind = node[0]
    if kind == "or":
        return matches(node[1], record) or matches(node[2], record)
    if kind == "and":
        return matches(node[1], record) and matches(node[2], record)
    if kind == "not":
        return not matches(node[1], record)
    if kind == "eq":
        return _same(record.get(node[1]), node[2])
    if kind == "in":
        return any(_same(record.get(node[1]), v) for v in node[2])
    raise SoqlError(f"bad node {kind}")


def field_names(node: Any) -> set[str]:
    if node is None:
        return set()
    if node[0] in ("or", "and"):
        return field_names(node[1]) | field_names(node[2])
    if node[0] == "not":
        return field_names(node[1])
    return {node[1]}
