"""V3 query semantics: field filters with operators, ``archived``, whitelisted sorts and keyset cursors.

``next``/``previous`` are complete URLs carrying every original parameter plus ``after``/``before``
— a base64 JSON array of the boundary row's sort key and primary key, as the real API's are.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

RESERVED = {"limit", "sort", "after", "before", "load_relations", "archived", "count", "offset", "or"}
PRIMARY_KEYS = {
    "Shop": "shopID", "Employee": "employeeID", "Customer": "customerID", "Item": "itemID",
    "ItemMatrix": "itemMatrixID", "Sale": "saleID", "Manufacturer": "manufacturerID", "Category": "categoryID",
}
SORTABLE = {
    "Shop": ["shopID"],
    "Employee": ["employeeID", "timeStamp"],
    "Customer": ["customerID", "timeStamp", "firstName", "lastName"],
    "Item": ["itemID", "timeStamp", "description"],
    "ItemMatrix": ["itemMatrixID", "timeStamp", "description"],
    "Sale": ["saleID", "timeStamp", "completeTime", "updatetime"],
    "Manufacturer": ["manufacturerID", "timeStamp", "name"],
    "Category": ["categoryID", "timeStamp", "leftNode", "rightNode"],
}
OPERATORS = ("><", ">=", "<=", "!=", "!~", "=", ">", "<", "~", "IN")


class QueryError(ValueError):
    """A query the real API would refuse with a 400."""


def parse_datetime(raw: str) -> datetime:
    value = raw.strip().replace(" ", "+")  # an unescaped "+" in the query string arrives as a space
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    if len(value) >= 5 and value[-5] in "+-" and value[-3] != ":" and "T" in value:
        value = value[:-2] + ":" + value[-2:]  # "+0400" -> "+04:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(f"Invalid date: {raw}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def coerce(sample: Any, raw: str) -> Any:
    """The filter value as the type of the stored field, for comparisons."""
    if isinstance(sample, bool):
        return raw.strip().lower() in ("true", "1")
    if isinstance(sample, datetime):
        return parse_datetime(raw)
    if isinstance(sample, int | Decimal):
        try:
            return Decimal(raw.strip())
        except InvalidOperation:
            raise QueryError(f"Invalid number: {raw}") from None
    return raw


def comparable(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return Decimal(value)
    return value


def parse_filter(raw: str) -> tuple[str, str]:
    for op in OPERATORS:
        if raw.startswith(op + ","):
            return op, raw[len(op) + 1 :]
    return "=", raw


def _like(pattern: str, value: str) -> bool:
    import re

    regex = "^" + ".*".join(re.escape(part) for part in pattern.lower().split("%")) + "$"
    return re.match(regex, value.lower()) is not None


class Filter:
    """One ``field=op,value`` filter, parsed once per request (its operand coerced on first use)."""

    def __init__(self, field: str, raw: str) -> None:
        self.field = field
        self.op, self.operand = parse_filter(raw)
        self._coerced: Any = None
        self._ready = False

    def _value(self, sample: Any) -> Any:
        if not self._ready:
            if self.op == "IN":
                items = self.operand.strip()
                if items.startswith("[") and items.endswith("]"):
                    items = items[1:-1]
                values = [v.strip().strip('"') for v in items.split(",") if v.strip()]
                if len(values) > 100:
                    raise QueryError("IN accepts at most 100 values")
                self._coerced = {comparable(coerce(sample, v)) for v in values}
            elif self.op == "><":
                low, _, high = self.operand.partition(",")
                self._coerced = (comparable(coerce(sample, low)), comparable(coerce(sample, high)))
            elif self.op not in ("~", "!~"):
                self._coerced = comparable(coerce(sample, self.operand))
            self._ready = True
        return self._coerced

    def __call__(self, row: dict[str, Any]) -> bool:
        if self.field not in row:
            raise QueryError(f"Invalid field for filtering: {self.field}")
        value = row[self.field]
        op = self.op
        if value is None:
            return op in ("!=", "!~")
        if op in ("~", "!~"):
            hit = _like(self.operand, str(value))
            return hit if op == "~" else not hit
        other = self._value(value)
        mine = comparable(value)
        if op == "IN":
            return mine in other
        if op == "><":
            return other[0] <= mine <= other[1]
        return {
            "=": mine == other, "!=": mine != other, ">": mine > other, ">=": mine >= other,
            "<": mine < other, "<=": mine <= other,
        }[op]


def matches(row: dict[str, Any], field: str, raw: str) -> bool:
    return Filter(field, raw)(row)


def archived_filter(rows: Iterable[dict[str, Any]], mode: str) -> Iterable[dict[str, Any]]:
    mode = (mode or "false").lower()
    if mode in ("true", "1", "all"):
        return rows
    if mode == "only":
        return (r for r in rows if r.get("archived"))
    return (r for r in rows if not r.get("archived"))


def sort_spec(resource: str, raw: str | None) -> tuple[str, bool]:
    pk = PRIMARY_KEYS[resource]
    if not raw:
        return pk, False
    descending = raw.startswith("-")
    field = raw.lstrip("-")
    allowed = SORTABLE.get(resource, [pk])
    if field not in allowed:
        raise QueryError(f"Sort field '{field}' is not supported. Sortable fields: {', '.join(allowed)}")
    return field, descending


def key_of(row: dict[str, Any], field: str, pk: str) -> tuple[Any, int]:
    value = row.get(field)
    if isinstance(value, datetime):
        value = value.astimezone(UTC).isoformat(timespec="seconds")
    elif isinstance(value, Decimal):
        value = float(value)
    elif value is None:
        value = ""
    return value, int(row[pk])


def encode_cursor(key: tuple[Any, int], by_primary_key: bool) -> str:
    # Sorted by the primary key the cursor is just [id] (``WzEwMF0=``); otherwise [sort value, id].
    payload = [key[1]] if by_primary_key else list(key)
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def decode_cursor(raw: str) -> tuple[Any, int]:
    try:
        value = json.loads(base64.b64decode(raw.encode(), validate=False))
        return value[0], int(value[-1])
    except (ValueError, IndexError, TypeError):
        raise QueryError("Invalid pagination cursor") from None
