"""Checks that values fit their columns *before* writing, so one bad record cannot abort a page.

PostgreSQL rejects an over-long string or an out-of-range integer by failing the statement (and the
transaction with it); SQLite silently stores it. Checking against the table definition gives both
backends the same behaviour: the record goes to the error queue with a reason a person understands.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Integer, SmallInteger, String, Table, TypeDecorator

INT_RANGES = {
    SmallInteger: (-(2**15), 2**15 - 1),
    BigInteger: (-(2**63), 2**63 - 1),
    Integer: (-(2**31), 2**31 - 1),
}


@cache
def _limits(table: Table) -> dict[str, tuple[str, Any]]:
    limits: dict[str, tuple[str, Any]] = {}
    for column in table.columns:
        ctype = column.type
        # SQLModel's AutoString is a TypeDecorator over VARCHAR(n): look through decorators.
        if isinstance(ctype, TypeDecorator):
            ctype = ctype.impl_instance
        if isinstance(ctype, String) and ctype.length:
            limits[column.name] = ("len", ctype.length)
        else:
            for kind, bounds in INT_RANGES.items():
                if type(ctype) is kind or (isinstance(ctype, kind) and kind is not Integer):
                    limits[column.name] = ("int", bounds)
                    break
            else:
                if isinstance(ctype, Integer):
                    limits[column.name] = ("int", INT_RANGES[Integer])
    return limits


def problems(table: Table, values: dict[str, Any], what: str) -> list[str]:
    """Human-readable reasons why ``values`` do not fit ``table`` (empty when they do).

    Values come from typed records (str, int), so only lengths and ranges need checking. This runs
    for every sale and line of every page: keep it lean.
    """
    out: list[str] = []
    strings, ints = _checks(table)
    for name, bound in strings:
        value = values.get(name)
        if value is not None and len(value) > bound:
            out.append(f"{what} {name} is {len(value)} characters long (at most {bound})")
    for name, low, high in ints:
        value = values.get(name)
        if value is not None and not low <= value <= high:
            out.append(f"{what} {name} {value} is out of range")
    return out


@cache
def _checks(table: Table) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int, int], ...]]:
    # Ids are assigned by the engine, never taken from a record: no need to check them.
    limits = {n: v for n, v in _limits(table).items() if n != "id" and not n.endswith("_id")}
    strings = tuple((n, bound) for n, (kind, bound) in limits.items() if kind == "len")
    ints = tuple((n, bound[0], bound[1]) for n, (kind, bound) in limits.items() if kind == "int")
    return strings, ints
