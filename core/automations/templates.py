"""Message templates: sandboxed Jinja2, where a missing variable is an error, never an empty gap.

A template sees plain data only (dicts, strings, numbers, dates) — never a database row — so the
sandbox has nothing to reach through. Variables: ``client``, ``associate``, ``location``,
``last_purchase``, ``sale``, ``product``, ``occasion``. Filters: ``money`` (minor units → "$1,250.00"),
``date`` (a date or datetime formatted with strftime codes, default "%B %-d": "May 6"), ``plural``
(``{{ n|plural("day") }}`` → "1 day" / "2 days") and ``possessive`` (Ann → "Ann's", James → "James'").

Good English when data is missing: a missing *value* (a client without a first name, a sale without a
store) renders as nothing rather than "None", and the rendered text is tidied (no doubled spaces, no
space before punctuation), so built-in templates can write ``{{ client.first_name or "there" }}``
and ``{% if location %}``. A missing *variable* is still an error.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

VARIABLES = ("client", "associate", "location", "last_purchase", "sale", "product", "occasion")
# ISO 4217 exponents for the currencies jewelers sell in most; everything else has two decimals.
_EXPONENTS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0, "KWD": 3, "BHD": 3, "OMR": 3, "JOD": 3}
_SYMBOLS = {"USD": "$", "CAD": "$", "AUD": "$", "NZD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CHF": "CHF "}


class TemplateProblem(ValueError):
    """The template does not compile or cannot be rendered for this client (the message says why)."""


def money(minor: int | None, currency: str = "USD") -> str:
    if minor is None:
        return ""
    exp = _EXPONENTS.get(currency.upper(), 2)
    sign = "-" if minor < 0 else ""
    amount = abs(minor) / (10**exp)
    symbol = _SYMBOLS.get(currency.upper())
    number = f"{amount:,.{exp}f}"
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency.upper()}"


def _date(value: date | datetime | None, fmt: str = "%B %-d") -> str:
    if value is None:
        return ""
    return value.strftime(fmt)


def plural(count: int | None, word: str, many: str | None = None) -> str:
    """``3|plural("day")`` → "3 days", ``1|plural("day")`` → "1 day" (``many`` for irregular words)."""
    n = int(count or 0)
    return f"{n} {word if n == 1 else (many or word + 's')}"


def possessive(name: str | None) -> str:
    """"Ann" → "Ann's", "James" → "James'" (nothing for a missing name)."""
    if not name:
        return ""
    name = str(name).strip()
    return f"{name}'" if name.endswith(("s", "S")) else f"{name}'s"


def _finalize(value: Any) -> Any:
    return "" if value is None else value


_SPACES = re.compile(r"[ \t]{2,}")
_BEFORE_PUNCT = re.compile(r"[ \t]+([,.!?;:])")


def tidy(text: str) -> str:
    """What a gap left by a missing value leaves behind: doubled spaces, a space before a comma."""
    return "\n".join(_BEFORE_PUNCT.sub(r"\1", _SPACES.sub(" ", line)).strip() for line in text.split("\n")).strip()


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, finalize=_finalize
    )
    env.filters["money"] = money
    env.filters["date"] = _date
    env.filters["plural"] = plural
    env.filters["possessive"] = possessive
    return env


@lru_cache(maxsize=256)
def compile_template(source: str) -> Any:
    try:
        return environment().from_string(source)
    except TemplateError as exc:
        raise TemplateProblem(_describe(exc)) from None


@lru_cache(maxsize=256)
def variables_used(source: str) -> frozenset[str]:
    """Top-level variables a template reads (so evaluation loads only what is used)."""
    try:
        return frozenset(meta.find_undeclared_variables(environment().parse(source)))
    except TemplateError as exc:
        raise TemplateProblem(_describe(exc)) from None


def render(source: str, context: dict[str, Any]) -> str:
    """Render for one occasion; raise :class:`TemplateProblem` with a readable reason."""
    template = compile_template(source)
    try:
        return tidy(str(template.render(**context)))
    except Exception as exc:  # the sandbox raises SecurityError, StrictUndefined UndefinedError, filters ValueError
        raise TemplateProblem(_describe(exc)) from None


def _describe(exc: Exception) -> str:
    lineno = getattr(exc, "lineno", None)
    where = f" (line {lineno})" if lineno else ""
    return f"{type(exc).__name__}{where}: {exc}"


def sample_context() -> dict[str, Any]:
    """Plausible values for checking a template before any client is at hand."""
    when = datetime(2027, 5, 16, 15, 30)
    purchase = {
        "id": 1,
        "date": when.date(),
        "occurred_at": when,
        "total": "$1,250.00",
        "total_minor": 125000,
        "currency": "USD",
        "location": "Fifth Avenue",
        "items": ["Solitaire ring"],
        "item": "Solitaire ring",
    }
    return {
        "client": {
            "id": 1,
            "first_name": "Ann",
            "last_name": "Lee",
            "full_name": "Ann Lee",
            "birthday": date(1985, 5, 16),
            "anniversary": None,
            "note": None,
        },
        "associate": {"id": 1, "first_name": "Maya", "last_name": "Stone", "full_name": "Maya Stone", "email": None},
        "location": {"id": 1, "name": "Fifth Avenue", "phone": "+12125550100", "timezone": "America/New_York"},
        "last_purchase": purchase,
        "sale": purchase,
        "product": {"name": "Solitaire ring", "category": "Rings", "sku": "R-100", "vendor": None},
        "occasion": {"name": "sample", "key": "sample", "date": when.date(), "due_at": when, "years": 1, "number": 1},
    }
