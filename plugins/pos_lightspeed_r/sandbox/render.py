"""Native rows → R-Series JSON: every scalar a string, one-vs-many collections, ``""`` for empty ones.

Relations are kept on the stored rows and rendered only when ``load_relations`` names them
(``Item.Prices`` always, as on the real API). Keys starting with ``_`` are the generator's private
bookkeeping and never leave the sandbox.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

# Plural wrapper -> singular key, for every nested collection the sandbox serves.
WRAPPERS = {
    "Phones": "ContactPhone",
    "Emails": "ContactEmail",
    "Addresses": "ContactAddress",
    "Websites": "ContactWebsite",
    "SaleLines": "SaleLine",
    "SalePayments": "SalePayment",
    "Images": "Image",
    "Prices": "ItemPrice",
    "CustomFieldValues": "CustomFieldValue",
    "Registers": "Register",
}

# Loadable relations per resource: name -> "one" | "many" (for request costs).
RELATIONS: dict[str, dict[str, str]] = {
    "Shop": {"Contact": "one", "Registers": "many"},
    "Employee": {"Contact": "one"},
    "Customer": {"Contact": "one", "Note": "one", "CustomFieldValues": "many", "CustomFieldValues.value": "one"},
    "Item": {"Images": "many", "Manufacturer": "one", "Category": "one", "Note": "one"},
    "ItemMatrix": {"Images": "many"},
    "Sale": {"SaleLines": "many", "Customer": "one"},
    "Manufacturer": {},
    "Category": {},
}
# Not part of load_relations=all (DOC): custom field values must be asked for by name.
NOT_IN_ALL = {"CustomFieldValues", "CustomFieldValues.value"}
ALWAYS = {"Item": {"Prices"}}


def scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "0") else text
    return str(value)


def render(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key.startswith("_") or item is None:
                continue  # R-Series omits absent values rather than sending null
            if key in WRAPPERS and isinstance(item, list):
                out[key] = collection(WRAPPERS[key], item)
            else:
                out[key] = render(item)
        return out
    if isinstance(value, list):
        return [render(v) for v in value]
    return scalar(value)


def collection(singular: str, items: list[Any]) -> Any:
    """The one-vs-many quirk: ``""`` for none, an object for one, a list for several."""
    if not items:
        return ""
    if len(items) == 1:
        return {singular: render(items[0])}
    return {singular: [render(i) for i in items]}


def select_relations(resource: str, row: dict[str, Any], wanted: set[str], extra: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` with only the relations asked for (plus those always present)."""
    known = RELATIONS.get(resource, {})
    keep = wanted | ALWAYS.get(resource, set())
    out = {k: v for k, v in row.items() if k.split(".")[0] not in known or k in keep}
    for name, value in extra.items():
        if name in keep:
            out[name] = value
    return out
