"""The attribution rules an admin can change: the window, which model the reports show, and the
timezone report dates are read in.

Stored as JSON in ``app_setting`` under the key ``attribution``; a missing or partial row means the
defaults below. Saving a different window asks the worker to recompute every sale's credit
(``recompute_requested_at``), because credit already given may no longer fall inside it.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import app_settings
from core.models import Location, utcnow
from core.timezones import zone

SETTING_KEY = "attribution"
DEFAULT_MODEL = "last_touch"


class AttributionSettings(BaseModel):
    """How sales are credited to outreach, and how the reports read dates."""

    model_config = ConfigDict(extra="ignore")

    window_days: int = Field(
        default=30,
        ge=1,
        le=365,
        title="Attribution window (days)",
        description=(
            "A sale is credited to a delivered text or a completed call/text task to the same client, "
            "from any store, at most this many days before the sale."
        ),
    )
    report_model: str = Field(
        default=DEFAULT_MODEL,
        max_length=100,
        title="Model shown by default",
        description="Every registered model is computed; the reports open on this one.",
    )
    report_timezone: str = Field(
        default="",
        max_length=64,
        title="Report timezone",
        description=(
            "Report dates run midnight to midnight in this timezone (empty: the first store's). The "
            "leaderboard's one point per client per day uses each sale's own store day."
        ),
    )
    # Set when a change needs every sale recomputed; the worker clears it when done.
    recompute_requested_at: datetime | None = None

    @field_validator("report_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        value = value.strip()
        if value and value not in available_timezones():
            raise ValueError(f"unknown timezone {value!r}")
        return value


async def load_attribution_settings(session: AsyncSession) -> AttributionSettings:
    return AttributionSettings.model_validate(await app_settings.read(session, SETTING_KEY))


async def save_attribution_settings(session: AsyncSession, settings: AttributionSettings) -> None:
    """Store the settings (validated); a new window requests a full recompute."""
    before = await load_attribution_settings(session)
    settings = AttributionSettings.model_validate(settings.model_dump())
    if settings.window_days != before.window_days:
        settings.recompute_requested_at = utcnow()
    await app_settings.write(session, SETTING_KEY, settings.model_dump(mode="json"))


async def report_zone(session: AsyncSession, settings: AttributionSettings | None = None) -> ZoneInfo:
    """The timezone report dates are read in: the setting, else the first store's, else UTC."""
    settings = settings or await load_attribution_settings(session)
    if settings.report_timezone:
        return ZoneInfo(settings.report_timezone)
    stmt = select(Location.timezone).order_by(Location.id).limit(1)  # type: ignore[arg-type]
    return zone((await session.exec(stmt)).first())
