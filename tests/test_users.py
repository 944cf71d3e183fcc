"""The one email rule for sign-in names (CLI and panel), and finding a POS associate by what people type."""

from __future__ import annotations

import pytest

from core.users import UserError, validate_user_email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("manager@clasp.local", "manager@clasp.local"),
        ("  Demo@Clasp.LOCAL ", "demo@clasp.local"),
        ("someone@shop.test", "someone@shop.test"),
        ("owner@example.com", "owner@example.com"),
        ("Renée@Bijoux.example", "renée@bijoux.example"),
        ("a.b+tag@Sub.Example.co.uk", "a.b+tag@sub.example.co.uk"),
    ],
)
def test_sign_in_emails_accepted(raw: str, expected: str) -> None:
    assert validate_user_email(raw) == expected
    assert validate_user_email(expected) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not-an-email",
        "a@@clasp.local",
        "a b@clasp.local",
        "a@.local",
        "a@-x.local",
        "a@local",
        "a@test",
        "a@localhost",
        "a@shop.invalid",
        "a@x.onion",
        "a@x..local",
        "@clasp.local",
    ],
)
def test_garbage_and_unusable_domains_refused(raw: str) -> None:
    with pytest.raises(UserError, match=r"invalid email|required"):
        validate_user_email(raw)
