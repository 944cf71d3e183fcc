"""A moment as a person at the store reads it: the store's local time with its zone's label.

"Dec 7, 9:14 AM EST" on the Today page, the Inbox and a conversation's bubbles. The zone comes from
the store (``core.timezones.zone``, with its UTC fallback), so a New York associate and a Tokyo one
each read their own clock, and the label says which clock it is.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from core.timezones import zone as zone_of


def local_label(value: datetime | None, zone: ZoneInfo | str | None, *, with_date: bool = True) -> str:
    """``value`` in ``zone`` (a ZoneInfo or a timezone name) as "Dec 7, 9:14 AM EST"."""
    if value is None:
        return ""
    tz = zone if isinstance(zone, ZoneInfo) else zone_of(zone)
    local = value.astimezone(tz)
    clock = local.strftime("%-I:%M %p")
    label = local.strftime("%Z") or tz.key
    return f"{local.strftime('%b %-d')}, {clock} {label}" if with_date else f"{clock} {label}"


def local_date(value: datetime | None, zone: ZoneInfo | str | None) -> str:
    """The local calendar day of ``value``: "Dec 7"."""
    if value is None:
        return ""
    tz = zone if isinstance(zone, ZoneInfo) else zone_of(zone)
    return value.astimezone(tz).strftime("%b %-d")
