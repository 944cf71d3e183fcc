"""Normalisers for the values identity resolution compares: emails, phones, names, dates, money.

Every function is pure and idempotent (normalising a normalised value returns it unchanged), so a
record can be re-ingested or replayed any number of times with the same result. Functions that can
reject a value raise :class:`NormalisationError` with a message fit for the error queue.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

import phonenumbers
from email_validator import EmailNotValidError, validate_email

__all__ = [
    "CURRENCY_EXPONENTS",
    "NormalisationError",
    "currency_exponent",
    "from_minor_units",
    "is_junk_email",
    "is_junk_phone",
    "is_placeholder",
    "normalise_email",
    "normalise_name",
    "normalise_phone",
    "parse_date",
    "phone_region",
    "to_minor_units",
]


class NormalisationError(ValueError):
    """A value that cannot be normalised (bad syntax, unknown currency, impossible number...)."""


# ------------------------------------------------------------------------------------------ emails


def normalise_email(raw: str) -> str:
    """Syntax-checked, lower-cased email address. Never looks the domain up (no DNS in a sync)."""
    if not isinstance(raw, str):
        raise NormalisationError(f"email must be text, not {type(raw).__name__}")
    value = raw.strip()
    if value.lower().startswith("mailto:"):
        value = value[7:].strip()
    if not value:
        raise NormalisationError("empty email")
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise NormalisationError(f"invalid email {raw!r}: {exc}") from exc
    lowered = result.normalized.lower()
    if lowered != result.normalized:
        # Lower-casing can turn a valid Unicode local part into another string; make sure it still is one.
        try:
            lowered = validate_email(lowered, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise NormalisationError(f"invalid email {raw!r}: {exc}") from exc
    return lowered


# Typed into "email" by staff who had nothing to enter. Real domains such as gmail.com are never
# junk by themselves; only placeholder local parts or placeholder domains are.
_JUNK_EMAIL_TEXT = {
    "",
    "-",
    "--",
    ".",
    "0",
    "n/a",
    "na",
    "none",
    "no",
    "null",
    "nil",
    "unknown",
    "no email",
    "noemail",
    "declined",
    "refused",
    "x",
}
_JUNK_LOCAL_PARTS = {
    "noemail",
    "no-email",
    "no_email",
    "no.email",
    "nomail",
    "no-mail",
    "no",
    "none",
    "noone",
    "nobody",
    "na",
    "n.a",
    "null",
    "nil",
    "unknown",
    "declined",
    "refused",
    "optout",
    "noreply",
    "no-reply",
    "donotreply",
    "do-not-reply",
    "donotemail",
    "dontemail",
    "test",
    "testing",
    "fake",
    "asdf",
    "x",
    "xx",
    "xxx",
    "xxxx",
    "customer",
    "nocustomer",
    "noname",
}
_JUNK_DOMAINS = {
    "none.com",
    "none.net",
    "noemail.com",
    "nomail.com",
    "no-email.com",
    "noemail.net",
    "noname.com",
    "na.com",
    "no.com",
    "test.com",
    "fake.com",
    "donotreply.com",
    "declined.com",
    "unknown.com",
    "null.com",
    "asdf.com",
    "a.com",
    "aa.com",
    "aaa.com",
    "abc.com",
}


def is_placeholder(value: str) -> bool:
    """True for text staff type into a contact field to say there is none ("n/a", "none", "-", "declined")."""
    return value.strip().lower() in _JUNK_EMAIL_TEXT


def is_junk_email(value: str, extra: Collection[str] = ()) -> bool:
    """True for a placeholder rather than somebody's address (``noemail@x.com``, ``n/a``, ``test@test.com``).

    ``value`` may be raw or normalised; ``extra`` holds further normalised junk addresses (settings).
    """
    text = value.strip().lower()
    if text.startswith("mailto:"):
        text = text[7:].strip()
    if text in _JUNK_EMAIL_TEXT or text in extra:
        return True
    if "@" not in text:
        return False
    local, _, domain = text.rpartition("@")
    if domain in _JUNK_DOMAINS or local in _JUNK_LOCAL_PARTS:
        return True
    # "noemail123@", "no.email.given@", "none1@"...
    squashed = re.sub(r"[^a-z]", "", local)
    return squashed.startswith(("noemail", "nomail", "donotreply", "noreply")) or squashed in _JUNK_LOCAL_PARTS


# ------------------------------------------------------------------------------------------ phones


def normalise_phone(raw: str, default_region: str) -> str:
    """E.164 form of a phone number; ``default_region`` (ISO 3166 alpha-2) applies to national numbers.

    Extensions are dropped (E.164 has none). A number that is not valid for its region is refused
    rather than stored half-right.
    """
    if not isinstance(raw, str):
        raise NormalisationError(f"phone must be text, not {type(raw).__name__}")
    value = raw.strip()
    if not value:
        raise NormalisationError("empty phone number")
    region = (default_region or "").upper() or None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise NormalisationError(f"invalid phone {raw!r}: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise NormalisationError(f"invalid phone {raw!r} (region {region or 'none'})")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_region(e164: str) -> str | None:
    """The region (ISO 3166 alpha-2) a normalised number belongs to, if known."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None


_JUNK_NATIONAL = {
    "1234567890",
    "0123456789",
    "9876543210",
    "1234567",
    "5551212",  # directory assistance
    "5555551212",
}


def is_junk_phone(value: str, store_phones: Collection[str] = ()) -> bool:
    """True for a placeholder number (000-000-0000, 555-555-5555, 123-456-7890 ...) or a store's own phone.

    ``value`` may be raw or E.164; ``store_phones`` are E.164 numbers (the locations' phones and any
    configured in the identity settings).
    """
    digits = re.sub(r"\D", "", value)
    if len(digits) < 7:
        return True
    if value.strip().startswith("+") and value.strip() in store_phones:
        return True
    nanp = len(digits) == 10 or (len(digits) == 11 and digits.startswith("1"))
    national = digits[-10:] if nanp else digits
    if len(set(national)) == 1 or national in _JUNK_NATIONAL:
        return True
    if nanp and (national[3:] == "5551212" or national.startswith("555") or len(set(national[3:])) == 1):
        return True  # directory assistance, a 555 area code, 212-000-0000 style fillers
    for store in store_phones:
        store_digits = re.sub(r"\D", "", store)
        # A raw national number matches a store's E.164 number by its trailing digits.
        if len(store_digits) >= 7 and (store_digits.endswith(digits) or digits.endswith(store_digits)):
            return True
    return False


# ------------------------------------------------------------------------------------------- names

_SPACE = re.compile(r"\s+")


def normalise_name(raw: str | None) -> str:
    """Trimmed, inner whitespace collapsed to one space, Unicode NFC; case is preserved (McDonald, de la Cruz)."""
    if raw is None:
        return ""
    cleaned = "".join(ch if unicodedata.category(ch) not in ("Cc", "Cf") else " " for ch in str(raw))
    return _SPACE.sub(" ", unicodedata.normalize("NFC", cleaned)).strip()


# ------------------------------------------------------------------------------------------- dates

_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d")


def parse_date(value: date | datetime | str | None) -> date | None:
    """The calendar date a birthday or anniversary names.

    Dates have no time zone, but many POS APIs serialise them as datetimes. The date is the one the
    value *names*: "1980-05-17T00:00:00Z" and "1980-05-17T00:00:00-05:00" are both May 17. A value
    that is exactly UTC midnight rendered in another zone ("1980-05-16T20:00:00-04:00") is a UTC
    date shifted for display, so it is taken as its UTC date (May 17), never a day early.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return _date_of_datetime(value)
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise NormalisationError(f"not a date: {value!r}")
    text = value.strip()
    if not text:
        return None
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise NormalisationError(f"not a date: {value!r}") from exc
    return _date_of_datetime(parsed)


def _date_of_datetime(value: datetime) -> date:
    if value.tzinfo is None or value.timetz().replace(tzinfo=None) == time(0):
        return value.date()
    in_utc = value.astimezone(UTC)
    if in_utc.time() == time(0):
        return in_utc.date()
    return value.date()


# ------------------------------------------------------------------------------------------- money

# ISO 4217 active codes whose minor unit is not 2 (the rest of the list below has 2).
_EXPONENT_NOT_2 = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}  # fmt: skip
_EXPONENT_2 = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF
CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ
GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK
MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB
SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD
USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL
"""
CURRENCY_EXPONENTS: dict[str, int] = {code: 2 for code in _EXPONENT_2.split()} | _EXPONENT_NOT_2


def currency_exponent(currency: str) -> int:
    """Digits after the decimal point for an ISO 4217 currency (JPY 0, USD 2, KWD 3)."""
    code = (currency or "").strip().upper()
    try:
        return CURRENCY_EXPONENTS[code]
    except KeyError:
        raise NormalisationError(f"unknown currency {currency!r}") from None


def to_minor_units(amount: str | int | float | Decimal, currency: str) -> int:
    """An amount in major units ("12.34", 12.34, 12) as integer minor units, rounded half-even.

    Floats go through their shortest decimal repr, so 0.1 + 0.2 style noise never moves a cent.
    """
    exponent = currency_exponent(currency)
    if isinstance(amount, bool):
        raise NormalisationError(f"not an amount: {amount!r}")
    try:
        if isinstance(amount, float):
            value = Decimal(repr(amount))
        elif isinstance(amount, str):
            value = Decimal(amount.strip().replace(",", "").replace("_", ""))
        else:
            value = Decimal(amount)
    except (InvalidOperation, ValueError) as exc:
        raise NormalisationError(f"not an amount: {amount!r}") from exc
    if not value.is_finite():
        raise NormalisationError(f"not an amount: {amount!r}")
    return int(value.scaleb(exponent).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def from_minor_units(minor: int, currency: str) -> Decimal:
    """Integer minor units back to a Decimal amount in major units (exact)."""
    return Decimal(minor).scaleb(-currency_exponent(currency))
