"""Every Lightspeed R-Series JSON quirk, handled in one place.

R-Series renders every scalar as a string (``"12"``, ``"317.1"``, ``"true"``), uses ``"0"`` for "no
foreign key", renders an empty relation as ``""``, omits keys instead of sending null, and collapses
any collection with exactly one element into a bare object (``{"SaleLine": {...}}`` instead of a
list). Mapping code reads payloads only through these helpers so no field access trips on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

# ISO 4217 minor-unit exponents that differ from 2 (the default for every other code).
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
                     "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}


def one_or_many(value: Any) -> list[Any]:
    """A collection as a list whatever shape it came in: list, single object, ``""`` or absent."""
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, list):
        return [v for v in value if v not in (None, "")]
    return [value]


def nested(payload: Mapping[str, Any], wrapper: str, key: str) -> list[dict[str, Any]]:
    """Children of a plural wrapper, e.g. ``nested(sale, "SaleLines", "SaleLine")``."""
    outer = payload.get(wrapper)
    if not isinstance(outer, Mapping):
        return []  # absent, or "" for an empty relation
    return [v for v in one_or_many(outer.get(key)) if isinstance(v, Mapping)]


def relation(payload: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A to-one relation as a dict; ``{}`` when absent or rendered as ``""``."""
    value = payload.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def text(payload: Mapping[str, Any], key: str) -> str:
    """A string field, stripped; ``""`` when absent or null."""
    value = payload.get(key)
    if value is None or isinstance(value, Mapping | list):
        return ""
    return str(value).strip()


def opt_text(payload: Mapping[str, Any], key: str) -> str | None:
    return text(payload, key) or None


def ref(payload: Mapping[str, Any], key: str) -> str | None:
    """A foreign-key id as a string, or None for R-Series' ``"0"`` / empty "no reference"."""
    if isinstance(payload.get(key), bool):
        raise ValueError(f"{key}={payload.get(key)!r} is a boolean, expected an id")
    value = text(payload, key)
    if value in ("", "0", "0.0"):
        return None
    return value


def flag(payload: Mapping[str, Any], key: str, default: bool = False) -> bool:
    """A boolean sent as ``"true"``/``"false"`` (or ``"1"``/``"0"``, or a real JSON boolean)."""
    value = payload.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{key}={value!r} is not a boolean")


def integer(payload: Mapping[str, Any], key: str, default: int = 0) -> int:
    """An integer sent as a string; ``"2.0"`` is accepted, ``"2.5"`` is not."""
    value = payload.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValueError(f"{key}={value!r} is a boolean, expected an integer")
    number = decimal(payload, key)
    if number != number.to_integral_value():
        raise ValueError(f"{key}={value!r} is not a whole number")
    return int(number)


def decimal(payload: Mapping[str, Any], key: str, default: Decimal | None = None) -> Decimal:
    """A number sent as a string, exactly (floats are read through ``str`` so no binary noise)."""
    value = payload.get(key)
    if value is None or value == "":
        if default is None:
            return Decimal(0)
        return default
    if isinstance(value, bool):
        raise ValueError(f"{key}={value!r} is a boolean, expected a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{key}={value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{key}={value!r} is not a finite number")
    return number


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def minor_units(amount: Decimal, currency: str) -> int:
    """Decimal amount → integer minor units of ``currency`` (ISO exponent, round half-even)."""
    scaled = amount.scaleb(exponent(currency))
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def money(payload: Mapping[str, Any], key: str, currency: str) -> int:
    return minor_units(decimal(payload, key), currency)


def timestamp(payload: Mapping[str, Any], key: str) -> datetime | None:
    """An ISO-8601 datetime as an aware UTC datetime; None when absent or empty."""
    value = text(payload, key)
    if not value:
        return None
    return parse_datetime(value, key)


def parse_datetime(value: str, key: str = "value") -> datetime:
    raw = value.strip()
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{key}={value!r} is not an ISO-8601 datetime") from None
    if parsed.tzinfo is None:
        # R-Series always sends an offset; a bare value is read as UTC, which is what the API stores.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def calendar_date(value: Any, key: str = "date") -> date | None:
    """The calendar date a date-ish R-Series value names.

    Date fields such as ``dob`` are stored as the shop's local midnight expressed in UTC
    (``"1981-04-09T08:00:00+00:00"`` for US/Pacific; ``"...T23:00:00+00:00"`` the day before for a
    shop at UTC+1). Rounding to the nearest UTC midnight recovers the intended date for every
    offset within ±12 h without knowing which shop's timezone was used (the notes mark the
    convention as inferred, so this does not depend on it: a plain ``YYYY-MM-DD`` works too).
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        return value
    else:
        raw = str(value).strip()
        if not raw or raw.startswith("0000-00-00"):
            return None  # MySQL's "no date" leaks through some R-Series fields
        if len(raw) == 10:
            try:
                return date.fromisoformat(raw)
            except ValueError:
                raise ValueError(f"{key}={value!r} is not a date") from None
        moment = parse_datetime(raw, key)
    moment = moment.astimezone(UTC)
    return (moment + timedelta(hours=12)).date()


def latest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return max(present) if present else None


def format_filter_time(moment: datetime) -> str:
    """A datetime as R-Series query filters want it: UTC with ``-00:00`` (a ``+`` would need escaping)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def resource_rows(body: Mapping[str, Any], resource: str) -> list[dict[str, Any]]:
    """The rows of a list response: absent key for zero rows, an object for one, a list for more."""
    return [row for row in one_or_many(body.get(resource)) if isinstance(row, Mapping)]


def next_url(body: Mapping[str, Any]) -> str | None:
    attributes = body.get("@attributes")
    if not isinstance(attributes, Mapping):
        return None
    value = attributes.get("next")
    return str(value) if value else None
