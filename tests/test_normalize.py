"""The normalisers: examples that matter to retailers, and properties checked with hypothesis."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import phonenumbers
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from core.normalize import (
    CURRENCY_EXPONENTS,
    NormalisationError,
    from_minor_units,
    is_junk_email,
    is_junk_phone,
    normalise_email,
    normalise_name,
    normalise_phone,
    parse_date,
    to_minor_units,
)

# ------------------------------------------------------------------------------------------ emails


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Jane.Doe@Example.com ", "jane.doe@example.com"),
        ("  JANE.DOE@EXAMPLE.COM", "jane.doe@example.com"),
        ("mailto:jane@example.org", "jane@example.org"),
        ("jürgen@Bücher.de", "jürgen@bücher.de"),
    ],
)
def test_email_examples(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "jane",
        "jane@",
        "@example.com",
        "jane@@example.com",
        "jane@localhost",
        "jane doe@example.com",
        "jane@example..com",
    ],
)
def test_invalid_emails_are_refused(raw: str) -> None:
    with pytest.raises(NormalisationError):
        normalise_email(raw)


def test_email_is_not_deliverability_checked() -> None:
    # A domain with no mail server is still a syntactically good address: no DNS during a sync.
    assert normalise_email("someone@no-such-domain-for-clasp-tests.com") == "someone@no-such-domain-for-clasp-tests.com"


@given(st.emails())
@example("Jane.Doe@Example.com")
def test_email_normalisation_is_idempotent(email: str) -> None:
    try:
        once = normalise_email(email)
    except NormalisationError:
        assume(False)
        return
    assert normalise_email(once) == once
    assert once == once.strip().lower()


ascii_local = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._+-]{0,20}[A-Za-z0-9])?", fullmatch=True)
ascii_domain = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}[A-Za-z0-9]\.(com|org|net|co\.uk|de)", fullmatch=True)


@given(ascii_local, ascii_domain, st.text(" \t", max_size=3), st.text(" \t\n", max_size=3))
def test_email_case_and_spacing_do_not_matter(local: str, domain: str, before: str, after: str) -> None:
    assume(".." not in local)
    email = f"{local}@{domain}"
    expected = normalise_email(email)
    assert normalise_email(before + email.upper() + after) == expected
    assert normalise_email(email.swapcase()) == expected


@pytest.mark.parametrize(
    "value",
    [
        "noemail@none.com",
        "NoEmail@gmail.com",
        "none@none.com",
        "test@test.com",
        "n/a",
        "N/A",
        "none",
        "no.email@store.com",
        "noemail123@yahoo.com",
        "donotreply@store.com",
        "x@x.com",
    ],
)
def test_junk_emails(value: str) -> None:
    assert is_junk_email(value)


@pytest.mark.parametrize("value", ["jane.doe@example.com", "info@jeweler.com", "nora@gmail.com", "test.pilot@navy.mil"])
def test_real_emails_are_not_junk(value: str) -> None:
    assert not is_junk_email(value)


def test_extra_junk_emails() -> None:
    assert is_junk_email("frontdesk@jeweler.com", {"frontdesk@jeweler.com"})


# ------------------------------------------------------------------------------------------ phones


@pytest.mark.parametrize(
    "raw",
    [
        "(212) 555-0134",
        "+1 212-555-0134",
        "2125550134",
        "212.555.0134",
        "1-212-555-0134",
        "tel:+1-212-555-0134",
        "212 555 0134 ext. 12",
    ],
)
def test_us_phone_formats(raw: str) -> None:
    assert normalise_phone(raw, "US") == "+12125550134"


def test_default_region_applies_to_national_numbers_only() -> None:
    assert normalise_phone("020 7946 0018", "GB") == "+442079460018"
    assert normalise_phone("+1 212 555 0134", "GB") == "+12125550134"
    assert normalise_phone("06 12 34 56 78", "FR") == "+33612345678"


@pytest.mark.parametrize("raw", ["", "call her husband", "12", "000-000-0000", "+999 123"])
def test_invalid_phones_are_refused(raw: str) -> None:
    with pytest.raises(NormalisationError):
        normalise_phone(raw, "US")


REGIONS = sorted(r for r in phonenumbers.SUPPORTED_REGIONS if phonenumbers.example_number(r) is not None)
FORMATS = [
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.RFC3966,
]
NUMBER_TYPES = [phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE]


@given(st.sampled_from(REGIONS), st.sampled_from(NUMBER_TYPES), st.sampled_from(FORMATS), st.sampled_from(REGIONS))
def test_phone_e164_round_trip(region: str, kind: int, fmt: int, other_region: str) -> None:
    number = phonenumbers.example_number_for_type(region, kind)
    assume(number is not None and phonenumbers.is_valid_number(number))
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    written = phonenumbers.format_number(number, fmt)
    assert normalise_phone(written, region) == e164
    # E.164 is already normal, whatever the default region: idempotent.
    assert normalise_phone(e164, other_region) == e164
    assert phonenumbers.parse(e164, None) == phonenumbers.parse(normalise_phone(e164, region), None)


@given(st.integers(min_value=2_000_000_000, max_value=9_999_999_999), st.sampled_from(["-", " ", ".", ""]))
def test_us_numbers_any_punctuation(digits: int, sep: str) -> None:
    text = str(digits)
    try:
        expected = normalise_phone(text, "US")
    except NormalisationError:
        assume(False)
        return
    assert expected == "+1" + text
    assert normalise_phone(f"({text[:3]}){sep}{text[3:6]}{sep}{text[6:]}", "US") == expected
    assert normalise_phone(f"+1{sep}{text[:3]}{sep}{text[3:6]}{sep}{text[6:]}", "CA") == expected


@pytest.mark.parametrize(
    "value",
    [
        "000-000-0000",
        "555-555-5555",
        "123-456-7890",
        "(999) 999-9999",
        "+11111111111",
        "212-000-0000",
        "(212) 555-1212",
        "555-1212",
        "0",
        "n/a",
    ],
)
def test_junk_phones(value: str) -> None:
    assert is_junk_phone(value)


def test_store_phones_are_junk_in_any_format() -> None:
    store = {"+12125550199"}
    assert is_junk_phone("+12125550199", store)
    assert is_junk_phone("(212) 555-0199", store)
    assert not is_junk_phone("+12125550134", store)
    assert not is_junk_phone("+12125550134")


# ------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Jane   Mary  ", "Jane Mary"),
        ("McDonald", "McDonald"),
        ("de la\tCruz", "de la Cruz"),
        (None, ""),
        ("Zoe\u0308", "Zoë"),
        ("Ann\u200b", "Ann"),
    ],
)
def test_name_examples(raw: str | None, expected: str) -> None:
    assert normalise_name(raw) == expected


@given(st.text())
def test_name_normalisation_is_idempotent_and_tidy(raw: str) -> None:
    once = normalise_name(raw)
    assert normalise_name(once) == once
    assert once == once.strip()
    assert "  " not in once


@given(
    st.lists(st.from_regex(r"[A-Za-z'\-]{1,12}", fullmatch=True), min_size=1, max_size=4),
    st.lists(st.text(" \t\n", min_size=1, max_size=3), min_size=5, max_size=5),
)
def test_name_spacing_does_not_matter_and_case_is_kept(words: list[str], gaps: list[str]) -> None:
    spaced = gaps[0] + "".join(w + gaps[i + 1] for i, w in enumerate(words))
    assert normalise_name(spaced) == " ".join(words)


# ------------------------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    "value",
    [
        "1980-05-17",
        "1980-05-17T00:00:00Z",
        "1980-05-17T00:00:00-05:00",
        "1980-05-17T00:00:00+09:00",
        "1980-05-16T20:00:00-04:00",
        "1980-05-17T09:00:00+09:00",
        "1980/05/17",
        "19800517",
        date(1980, 5, 17),
        datetime(1980, 5, 17),
        datetime(1980, 5, 17, tzinfo=UTC),
    ],
)
def test_birthdays_are_never_shifted(value: object) -> None:
    assert parse_date(value) == date(1980, 5, 17)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [None, "", "  "])
def test_missing_dates(value: str | None) -> None:
    assert parse_date(value) is None


@pytest.mark.parametrize("value", ["17/05/1980", "May 17", "1980-13-01", "yesterday"])
def test_unparseable_dates_are_refused(value: str) -> None:
    with pytest.raises(NormalisationError):
        parse_date(value)


offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(st.dates(min_value=date(1900, 1, 2), max_value=date(2100, 12, 30)), offsets)
def test_dates_round_trip_through_datetimes_in_any_zone(day: date, tz: timezone) -> None:
    local_midnight = datetime.combine(day, time(0), tz)
    utc_midnight_shown_locally = datetime.combine(day, time(0), UTC).astimezone(tz)
    assert parse_date(local_midnight.isoformat()) == day
    assert parse_date(utc_midnight_shown_locally.isoformat()) == day
    assert parse_date(utc_midnight_shown_locally) == day
    assert parse_date(day.isoformat()) == day
    assert parse_date(parse_date(day)) == day


# ------------------------------------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("12.34", "USD", 1234),
        (12.34, "USD", 1234),
        (12, "USD", 1200),
        ("1,299.99", "usd", 129999),
        (Decimal("0.125"), "USD", 12),
        ("0.135", "USD", 14),
        ("2.5", "JPY", 2),
        ("3.5", "JPY", 4),
        (1500, "JPY", 1500),
        ("1.2345", "KWD", 1234),
        ("1.2355", "KWD", 1236),
        (0.1 + 0.2, "USD", 30),
        ("-19.99", "EUR", -1999),
    ],
)
def test_minor_units(amount: object, currency: str, minor: int) -> None:
    assert to_minor_units(amount, currency) == minor  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency"), [("12.34", "XYZ"), ("abc", "USD"), ("NaN", "USD"), (True, "USD"), (float("inf"), "USD")]
)
def test_bad_money_is_refused(amount: object, currency: str) -> None:
    with pytest.raises(NormalisationError):
        to_minor_units(amount, currency)  # type: ignore[arg-type]


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(sorted(CURRENCY_EXPONENTS)))
def test_minor_units_round_trip(minor: int, currency: str) -> None:
    major = from_minor_units(minor, currency)
    assert to_minor_units(major, currency) == minor
    assert to_minor_units(str(major), currency) == minor
    assert to_minor_units(format(major, "f"), currency.lower()) == minor


@given(
    st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, allow_infinity=False, places=6),
    st.sampled_from(["USD", "JPY", "KWD"]),
)
def test_minor_units_round_half_even(amount: Decimal, currency: str) -> None:
    minor = to_minor_units(amount, currency)
    exact = amount.scaleb(CURRENCY_EXPONENTS[currency])
    assert abs(Decimal(minor) - exact) <= Decimal("0.5")
    if abs(Decimal(minor) - exact) == Decimal("0.5"):
        assert minor % 2 == 0


@given(st.sampled_from(REGIONS), st.sampled_from(NUMBER_TYPES))
def test_real_numbers_are_not_junk(region: str, kind: int) -> None:
    number = phonenumbers.example_number_for_type(region, kind)
    assume(number is not None and phonenumbers.is_valid_number(number))
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert not is_junk_phone(e164)
    assert is_junk_phone(e164, {e164})  # ...unless it is the store's own
