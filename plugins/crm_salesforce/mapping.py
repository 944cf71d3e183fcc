"""Unified records (the ``PushItem.data`` core hands over) → Salesforce field values.

Values Clasp does not know are left out rather than sent as null: a field a Salesforce user filled in
(a birthdate on an adopted Contact) is never blanked by a push. Money goes as a decimal string in
the currency's own exponent (JPY 0, USD 2, KWD 3), never through a float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

# ISO 4217 currencies whose minor unit is not 1/100.
EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
                     "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    "UYW": 4,
    "CLF": 4,
}
NOT_PROVIDED = "[not provided]"  # what Salesforce itself writes into a required field it was not given
STATUS_LABELS = {
    "completed": "Completed",
    "voided": "Voided",
    "layaway": "Layaway",
    "quote": "Quote",
    "open": "Open",
    "refund": "Refund",
}


def money(minor: int | None, currency: str | None) -> Decimal | None:
    if minor is None:
        return None
    exponent = EXPONENTS.get((currency or "").upper(), 2)
    return Decimal(int(minor)).scaleb(-exponent)


def jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """JSON has no decimals: amounts go as numbers, whose shortest repr is the decimal itself."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Decimal):
            out[key] = int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 \
                else float(value)
        elif isinstance(value, dict):
            out[key] = jsonable(value)
        else:
            out[key] = value
    return out


def relationship(field: str) -> str:
    """The relationship name of a lookup field: ``Contact__c`` → ``Contact__r``, ``ContactId`` → ``Contact``."""
    if field.endswith("__c"):
        return field[:-3] + "__r"
    if field.endswith("Id"):
        return field[:-2]
    return field


def reference(field: str, ext_field: str, value: str) -> dict[str, Any]:
    return {relationship(field): {ext_field: value}}


def product_key(product: dict[str, Any]) -> str:
    # A product without a SKU still needs a stable external ID: Clasp's own id, marked as such.
    sku = (product.get("sku") or "").strip()
    return sku or f"clasp:{product['id']}"


def receipt_status(sale: dict[str, Any]) -> str:
    status = sale.get("status") or "completed"
    if status == "completed" and _is_refund(sale):
        return STATUS_LABELS["refund"]
    return STATUS_LABELS.get(status, status.title())


def _is_refund(sale: dict[str, Any]) -> bool:
    lines = sale.get("lines") or []
    if lines and all(int(ln.get("quantity") or 0) < 0 for ln in lines):
        return True
    return int(sale.get("total_minor") or 0) < 0


def _address(address: dict[str, Any]) -> dict[str, Any]:
    def first(*keys: str) -> Any:
        for key in keys:
            if address.get(key):
                return address[key]
        return None

    street = first("street")
    if street is None:
        parts = [first("line1", "address1", "address_1"), first("line2", "address2", "address_2")]
        street = "\n".join(p for p in parts if p) or None
    return {
        "street": street,
        "city": first("city", "locality"),
        "region": first("region", "state", "province"),
        "postal_code": first("postal_code", "zip", "postcode"),
        "country": first("country", "country_code"),
    }


def client_values(client: dict[str, Any]) -> dict[str, Any]:
    """Clasp-side values of a client, keyed by the names the client field mapping uses."""
    emails, phones = client.get("emails") or [], client.get("phones") or []
    first, last = client.get("first_name") or "", client.get("last_name") or ""
    values: dict[str, Any] = {
        "first_name": first or None,
        # LastName is required on Contact and Lead: a client known only by a first name keeps it there.
        "last_name": last or first or NOT_PROVIDED,
        "email": emails[0] if emails else None,
        "phone": phones[0] if phones else None,
        "birthday": client.get("birthday"),
        "anniversary": client.get("anniversary"),
        "company": NOT_PROVIDED,
        "home_store": client.get("home_location"),
        **_address(client.get("address") or {}),
    }
    if not last and first:
        values["first_name"] = None
    return values


def client_record(client: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    values = client_values(client)
    return {sf: values[key] for key, sf in mapping.items() if values.get(key) is not None}


def product_record(product: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    values = {
        "name": product.get("name") or product_key(product),
        "description": product.get("description"),
        "category": product.get("category"),
        "vendor": product.get("vendor"),
        "active": not product.get("archived", False),
        "price": money(product.get("price_minor"), product.get("currency")),
        "sku": product.get("sku"),
    }
    return {sf: values[key] for key, sf in mapping.items() if values.get(key) is not None}


def receipt_record(
    sale: dict[str, Any], mapping: dict[str, str], client_object_ext: str
) -> dict[str, Any]:
    currency = sale.get("currency")
    associate = sale.get("associate") or {}
    location = sale.get("location") or {}
    values: dict[str, Any] = {
        "store": location.get("name"),
        "associate": associate.get("name") or None,
        "occurred_at": sale.get("occurred_at"),
        "total": money(sale.get("total_minor"), currency),
        "subtotal": money(sale.get("subtotal_minor"), currency),
        "tax": money(sale.get("tax_minor"), currency),
        "currency": currency,
        "status": receipt_status(sale),
        "channel": sale.get("channel"),
    }
    out = {sf: values[key] for key, sf in mapping.items() if key in values and values[key] is not None}
    if "client" in mapping and sale.get("client_id") is not None:
        out.update(reference(mapping["client"], client_object_ext, str(sale["client_id"])))
    return out


def line_record(
    sale: dict[str, Any], line: dict[str, Any], mapping: dict[str, str], receipt_ext: str, product_ext: str
) -> dict[str, Any]:
    currency = sale.get("currency")
    values: dict[str, Any] = {
        "quantity": int(line.get("quantity") or 0),
        "unit_price": money(line.get("unit_price_minor"), currency),
        "total": money(line.get("total_minor"), currency),
        "name": line.get("name") or None,
        "sku": line.get("sku") or None,
    }
    out = {sf: values[key] for key, sf in mapping.items() if key in values and values[key] is not None}
    if "receipt" in mapping:
        out.update(reference(mapping["receipt"], receipt_ext, str(sale["id"])))
    product = line.get("product")
    if "product" in mapping and product:
        out.update(reference(mapping["product"], product_ext, product_key(product)))
    return out


def flatten(record: dict[str, Any]) -> dict[str, str]:
    """A record as one CSV row for Bulk API 2.0: relationship objects become ``Rel__r.Field`` columns."""
    row: dict[str, str] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                row[f"{key}.{sub}"] = "" if subvalue is None else str(subvalue)
        elif isinstance(value, bool):
            row[key] = "true" if value else "false"
        else:
            row[key] = "" if value is None else str(value)
    return row
