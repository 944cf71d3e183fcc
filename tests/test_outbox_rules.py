"""The send rules as pure functions over a frozen `now`, across timezones and DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from core.outreach.inbound import keyword
from core.outreach.rules import SendWindow, decide, retry_delay, window_opens_at

NY = SendWindow(time(9), time(20), "America/New_York")
TOKYO = SendWindow(time(9), time(20), "Asia/Tokyo")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "window", "opens"),
    [
        # 12:00 UTC = 08:00 in New York (EDT): waits until 09:00 EDT = 13:00 UTC the same day.
        ("2026-07-01T12:00", NY, "2026-07-01T13:00"),
        ("2026-07-01T13:00", NY, None),  # 09:00 exactly: open
        ("2026-07-01T23:59", NY, None),  # 19:59 EDT
        ("2026-07-02T00:00", NY, "2026-07-02T13:00"),  # 20:00 EDT: closed until tomorrow 09:00
        # Winter: EST is UTC-5, so 09:00 local is 14:00 UTC.
        ("2026-01-15T13:30", NY, "2026-01-15T14:00"),
        # The same instant is evening in Tokyo (UTC+9): 12:00 UTC = 21:00 JST → next 09:00 JST = 00:00 UTC.
        ("2026-07-01T12:00", TOKYO, "2026-07-02T00:00"),
        ("2026-07-01T01:00", TOKYO, None),  # 10:00 JST
        # DST starts in New York on 2026-03-08: 06:00 UTC is 01:00 EST; the window opens 09:00 EDT = 13:00 UTC.
        ("2026-03-08T06:00", NY, "2026-03-08T13:00"),
    ],
)
def test_window_opens_in_the_clients_local_time(now: str, window: SendWindow, opens: str | None) -> None:
    assert window_opens_at(utc(now), window) == (utc(opens) if opens else None)


def test_a_window_past_midnight_and_an_empty_quiet_period() -> None:
    late = SendWindow(time(18), time(2), "UTC")
    assert window_opens_at(utc("2026-07-01T23:00"), late) is None
    assert window_opens_at(utc("2026-07-01T01:59"), late) is None
    assert window_opens_at(utc("2026-07-01T02:00"), late) == utc("2026-07-01T18:00")
    assert window_opens_at(utc("2026-07-01T03:00"), SendWindow(time(0), time(0), "UTC")) is None


def test_a_bad_timezone_falls_back_to_utc() -> None:
    assert window_opens_at(utc("2026-07-01T08:00"), SendWindow(time(9), time(20), "Mars/Olympus")) == utc(
        "2026-07-01T09:00"
    )


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        window_opens_at(datetime(2026, 7, 1, 12), NY)


NOON_NY = utc("2026-07-01T16:00")


def test_marketing_needs_opt_in_and_opt_out_blocks_everything() -> None:
    base = {"now": NOON_NY, "window": NY, "last_marketing_at": None}
    assert decide(kind="marketing", consent="opted_in", **base).action == "send"
    unknown = decide(kind="marketing", consent="unknown", **base)
    assert unknown.action == "skip" and "consent" in (unknown.reason or "")
    assert decide(kind="transactional", consent="unknown", **base).action == "send"
    for kind in ("marketing", "transactional"):
        out = decide(kind=kind, consent="opted_out", **base)
        assert out.action == "skip" and "opted out" in (out.reason or "")
    assert decide(kind="transactional", consent="opted_in", has_address=False, **base).action == "skip"


def test_quiet_hours_defer_marketing_only() -> None:
    night = utc("2026-07-02T03:00")  # 23:00 in New York
    deferred = decide(kind="marketing", consent="opted_in", now=night, window=NY, last_marketing_at=None)
    assert deferred.action == "defer" and deferred.until == utc("2026-07-02T13:00")
    assert "quiet hours" in (deferred.reason or "") and "America/New_York" in (deferred.reason or "")
    assert (
        decide(kind="transactional", consent="opted_in", now=night, window=NY, last_marketing_at=None).action == "send"
    )


def test_frequency_cap_skips_a_second_marketing_text_within_24_hours() -> None:
    earlier = NOON_NY - timedelta(hours=23, minutes=59)
    capped = decide(kind="marketing", consent="opted_in", now=NOON_NY, window=NY, last_marketing_at=earlier)
    assert capped.action == "skip" and "frequency cap" in (capped.reason or "")
    day_ago = NOON_NY - timedelta(hours=24)
    assert (
        decide(kind="marketing", consent="opted_in", now=NOON_NY, window=NY, last_marketing_at=day_ago).action == "send"
    )
    assert (
        decide(kind="transactional", consent="opted_in", now=NOON_NY, window=NY, last_marketing_at=earlier).action
        == "send"
    )


def test_quiet_hours_are_decided_before_the_cap() -> None:
    # Capped at 23:00, but by 09:00 the previous text is more than 24 h old: wait, do not skip.
    night = utc("2026-07-02T03:00")
    last = night - timedelta(hours=14)
    out = decide(kind="marketing", consent="opted_in", now=night, window=NY, last_marketing_at=last)
    assert out.action == "defer"
    later = decide(kind="marketing", consent="opted_in", now=out.until, window=NY, last_marketing_at=last)  # type: ignore[arg-type]
    assert later.action == "send"


def test_retry_delay_grows_and_obeys_retry_after() -> None:
    assert retry_delay(1) < retry_delay(2) < retry_delay(3)
    assert retry_delay(30) == timedelta(hours=1)
    assert retry_delay(1, retry_after=120) == timedelta(seconds=120)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", "opt_out"),
        ("stop", "opt_out"),
        (" Stop. ", "opt_out"),
        ("unsubscribe", "opt_out"),
        ("StopAll", "opt_out"),
        ("quit", "opt_out"),
        ("END", "opt_out"),
        ("cancel", "opt_out"),
        ("START", "opt_in"),
        ("yes", "opt_in"),
        ("unstop", "opt_in"),
        ("HELP", "help"),
        ("info", "help"),
        ("STOP PLEASE", None),
        ("please stop", None),
        ("yes please", None),
        ("", None),
    ],
)
def test_keywords_are_whole_message_and_case_insensitive(body: str, expected: str | None) -> None:
    assert keyword(body) == expected
