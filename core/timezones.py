"""A location's timezone by name, with the one fallback every part of Clasp uses."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone(name: str | None) -> ZoneInfo:
    """``ZoneInfo(name)``; UTC when the name is empty or unknown. A typo in a location's timezone
    must not stop its texts, automations or reports: UTC is the documented fallback."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
