"""Send rules every messaging plugin obeys: consent, quiet hours, the marketing frequency cap.

Pure functions over an explicit ``now`` (timezone-aware UTC), so they can be tested across timezones
and DST changes without touching a clock. The outbox sender feeds them what it read from the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from core import timezones

DEFAULT_WINDOW = ("09:00", "20:00")
# Smart sending: at most one marketing text per client in this period.
DEFAULT_CAP_PERIOD = timedelta(hours=24)


@dataclass(frozen=True)
class SendWindow:
    """The local hours in which marketing texts may go out (``start`` inclusive, ``end`` exclusive)."""

    start: time
    end: time
    timezone: str = "UTC"

    @classmethod
    def parse(cls, start: str | None, end: str | None, timezone: str | None) -> SendWindow:
        return cls(
            start=parse_hhmm(start or DEFAULT_WINDOW[0]),
            end=parse_hhmm(end or DEFAULT_WINDOW[1]),
            timezone=timezone or "UTC",
        )

    @property
    def zone(self) -> ZoneInfo:
        return timezones.zone(self.timezone)

    def describe(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M} {self.timezone}"


def parse_hhmm(value: str) -> time:
    hours, _, minutes = value.strip().partition(":")
    try:
        return time(int(hours), int(minutes or 0))
    except ValueError:
        raise ValueError(f"not a time of day (HH:MM): {value!r}") from None


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("send rules need a timezone-aware `now`")
    return now


def window_opens_at(now: datetime, window: SendWindow) -> datetime | None:
    """None when ``now`` is inside the window; otherwise the UTC instant it next opens."""
    tz = window.zone
    local = _aware(now).astimezone(tz)
    t = local.time().replace(tzinfo=None)
    start, end = window.start, window.end
    if start == end:
        return None  # an empty quiet period: always open
    if start < end:
        inside = start <= t < end
        day = local.date() if t < start else local.date() + timedelta(days=1)
    else:  # the window runs past midnight, e.g. 18:00–02:00
        inside = t >= start or t < end
        day = local.date()
    if inside:
        return None
    opening = datetime.combine(day, start, tzinfo=tz).astimezone(UTC)
    # A start inside a DST gap resolves to a time after the gap; never answer an instant already past.
    return max(opening, _aware(now).astimezone(UTC))


@dataclass(frozen=True)
class Decision:
    action: Literal["send", "defer", "skip"]
    reason: str | None = None
    until: datetime | None = None
    # A stable name for the reason (``core.outreach.eligibility.REASONS``), for counting.
    code: str | None = None


SEND = Decision("send")


def decide(
    *,
    kind: str,
    consent: str,
    now: datetime,
    window: SendWindow,
    last_marketing_at: datetime | None,
    has_address: bool = True,
    address_problem: str | None = None,
    cap_period: timedelta = DEFAULT_CAP_PERIOD,
) -> Decision:
    """What to do with an outbound text that is due at ``now``.

    - no usable address: skip (``address_problem`` tells ``no_number`` from ``unusable_number``);
    - the client opted out of the channel for this purpose (``consent`` is the status for the
      purpose the kind needs: ``marketing`` or ``transactional``): skip, whatever the kind (after STOP
      only the provider's own confirmation may go out);
    - marketing needs an explicit opt-in, waits for the client's local window (``defer``), and is
      skipped when another marketing text went out within ``cap_period`` — the cap is checked when
      the text would actually go out, after any quiet-hours wait;
    - transactional texts are exempt from the window and the cap.
    """
    _aware(now)
    if not has_address:
        if address_problem == "unusable_number":
            return Decision("skip", "the client's number cannot receive texts", code="unusable_number")
        return Decision("skip", "no usable phone number for this client", code="no_number")
    if consent == "opted_out":
        return Decision("skip", "the client opted out of texts", code="opted_out")
    if kind != "marketing":
        return SEND
    if consent != "opted_in":
        return Decision(
            "skip", "no marketing consent on record (the client has not opted in to texts)", code="no_consent"
        )
    opening = window_opens_at(now, window)
    if opening is not None:
        local = opening.astimezone(window.zone)
        return Decision(
            "defer", f"quiet hours: waits until {local:%Y-%m-%d %H:%M} {window.timezone}", opening, code="quiet_hours"
        )
    if last_marketing_at is not None and now - last_marketing_at < cap_period:
        hours = cap_period.total_seconds() / 3600
        return Decision(
            "skip",
            f"frequency cap: another marketing text went out at {last_marketing_at:%Y-%m-%d %H:%M} UTC "
            f"(at most one per {hours:g} h)",
            code="frequency_cap",
        )
    return SEND


def retry_delay(
    attempt: int, retry_after: float | None = None, *, base: float = 30.0, cap: float = 3600.0
) -> timedelta:
    """Backoff before attempt ``attempt + 1`` of a send the provider refused for now (429, 5xx)."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return timedelta(seconds=delay)
