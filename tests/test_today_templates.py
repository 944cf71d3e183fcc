"""The built-in automations' texts and Today task titles read as good English in the edge cases real
data has: a client without a first (or last) name, a store without a name, one year or many, no
associate, a piece without a name."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from core.automations.templates import TemplateProblem, plural, possessive, render, sample_context
from plugins.automations.plugin import Anniversary, Birthday, CleanAndCheck, Dormant, ThankYou

TYPES = [Birthday(), Anniversary(), ThankYou(), CleanAndCheck(), Dormant()]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(ctx: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = ctx
        for p in parents:
            target = target[p]
        target[last] = value

    return apply


EDGE_CASES: dict[str, list[Callable[[dict[str, Any]], None]]] = {
    "as sampled": [],
    "no first name": [_set("client.first_name", None), _set("client.full_name", "Lee")],
    "no names at all": [_set("client.first_name", None), _set("client.last_name", None), _set("client.full_name", "")],
    "no last name": [_set("client.last_name", None), _set("client.full_name", "Ann")],
    "no store": [_set("location", None), _set("sale.location", None), _set("last_purchase.location", None)],
    "a store without a name": [_set("location.name", None), _set("sale.location", None)],
    "no associate": [_set("associate", None)],
    "an associate without a first name": [_set("associate.first_name", None)],
    "one year": [_set("occasion.years", 1)],
    "two years": [_set("occasion.years", 2)],
    "no years": [_set("occasion.years", None)],
    "a piece without a name": [_set("product.name", None), _set("sale.item", None)],
    "a name ending in s": [_set("client.first_name", "James"), _set("client.full_name", "James Ross")],
}

# What a gap or a grammar slip leaves behind.
BAD = [
    (re.compile(r"\bNone\b"), "a missing value printed as None"),
    (re.compile(r"  "), "a doubled space"),
    (re.compile(r" [,.!?;:]"), "a space before punctuation"),
    (re.compile(r"\b1 years\b|\b1 days\b"), "a plural after 1"),
    (re.compile(r"\b([02-9]|\d\d+) (year|day)\b"), "a singular after a number other than 1"),
    (re.compile(r"\b(at|in|for|to|visiting|your|the) ?[,.!?)]"), "a preposition or article with nothing after it"),
    (re.compile(r"\bin at\b"), '"in at"'),
    (re.compile(r"^[,.!?]|[,:] *$|— *$|\(\s*\)"), "dangling punctuation"),
    (re.compile(r"\b(Hi|Hello|Dear|Happy birthday|Happy anniversary), [a-z]|\bThank for\b"), "a missing name"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "an ISO date in a sentence"),
    (re.compile(r"\b[A-Z][a-z]+ 0\d\b"), "a zero-padded day"),
]


def problems(text: str) -> list[str]:
    return [why for pattern, why in BAD if pattern.search(text)]


@pytest.mark.parametrize("case", list(EDGE_CASES))
@pytest.mark.parametrize("atype", TYPES, ids=lambda t: t.name)
def test_built_in_texts_and_titles_read_well(atype: Any, case: str) -> None:
    ctx = copy.deepcopy(sample_context())
    for change in EDGE_CASES[case]:
        change(ctx)
    for source in (atype.default_template, atype.task_title):
        if not source:
            continue
        try:
            text = render(source, ctx)
        except TemplateProblem as exc:  # a missing value must never make the occasion fail
            pytest.fail(f"{atype.name} ({case}): {exc}")
        assert text, f"{atype.name} ({case}) rendered nothing"
        assert not problems(text), f"{atype.name} ({case}): {problems(text)} in {text!r}"


def test_years_are_counted_in_good_english() -> None:
    ctx = sample_context()
    ctx["occasion"] = {**ctx["occasion"], "years": 1}
    assert "1 year together" in render(Anniversary.default_template, ctx)
    ctx["occasion"] = {**ctx["occasion"], "years": 25}
    assert "25 years together" in render(Anniversary.default_template, ctx)


def test_the_grammar_helpers() -> None:
    assert (plural(1, "day"), plural(2, "day"), plural(0, "day")) == ("1 day", "2 days", "0 days")
    assert plural(3, "piece of jewelry", "pieces of jewelry") == "3 pieces of jewelry"
    assert (possessive("Ann"), possessive("James"), possessive(None)) == ("Ann's", "James'", "")
    assert render("{{ n|plural('day') }} left for {{ name|possessive }} ring", {"n": 1, "name": "Ann"}) == (
        "1 day left for Ann's ring"
    )
    # A missing value leaves no "None" and no gap; a missing variable is still an error.
    assert render("Hi {{ first }} {{ last }}, welcome.", {"first": "Ann", "last": None}) == "Hi Ann, welcome."
    with pytest.raises(TemplateProblem):
        render("Hi {{ nobody }}", {})
    assert render("{{ when|date }}", {"when": sample_context()["sale"]["date"]}) == "May 16"
