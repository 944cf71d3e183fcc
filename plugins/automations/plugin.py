"""Built-in automations: birthday, anniversary, post-purchase thank-you, clean-and-check, dormant client.

Each is an :class:`AutomationType` describing its occasions with the building blocks core passes in
(:class:`OccasionQuery`); nothing here touches the database. Like any third-party plugin, this module
imports only ``core.plugin``.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from pydantic import Field, field_validator

from core.plugin import AutomationSettings, AutomationType, OccasionQuery, Occasions, hookimpl


class DateSettings(AutomationSettings):
    send_time: time = Field(
        default=time(10, 0),
        title="Local time",
        description="When the occasion fires on the day, in the client's local time (their home location).",
    )
    catch_up_hours: int = Field(
        default=0,
        ge=0,
        le=72,
        title="Catch up",
        description="If evaluation was down, still fire this many hours after the day ended (0: that day only).",
    )


class Birthday(AutomationType):
    name = "birthday"
    title = "Birthday"
    description = "On the client's birthday, in their local time. Feb 29 birthdays fall on Feb 28 in other years."
    settings_model = DateSettings
    default_action = "send"
    default_template = (
        "Happy birthday{% if client.first_name %}, {{ client.first_name }}{% endif %}! Wishing you a wonderful "
        "year from all of us{% if location and location.name %} at {{ location.name }}{% endif %}."
        "{% if associate and associate.first_name %} — {{ associate.first_name }}{% endif %}"
    )
    task_title = "Birthday: {{ client.full_name or 'a client' }}"

    def occasions(self, query: OccasionQuery, settings: Any) -> Occasions:
        return query.client_date(
            "birthday", at=settings.send_time, occasion=self.name, catch_up=timedelta(hours=settings.catch_up_hours)
        )


class Anniversary(AutomationType):
    name = "anniversary"
    title = "Anniversary"
    description = "On the client's wedding anniversary, in their local time."
    settings_model = DateSettings
    default_action = "send"
    default_template = (
        "Happy anniversary{% if client.first_name %}, {{ client.first_name }}{% endif %}!"
        "{% if occasion.years %} {{ occasion.years|plural('year') }} together — congratulations.{% endif %}"
        "{% if associate and associate.first_name %} — {{ associate.first_name }}{% endif %}"
    )
    task_title = (
        "Anniversary: {{ client.full_name or 'a client' }}"
        "{% if occasion.years %} ({{ occasion.years|plural('year') }}){% endif %}"
    )

    def occasions(self, query: OccasionQuery, settings: Any) -> Occasions:
        return query.client_date(
            "anniversary", at=settings.send_time, occasion=self.name, catch_up=timedelta(hours=settings.catch_up_hours)
        )


class ThankYouSettings(AutomationSettings):
    delay_hours: int = Field(
        default=24, ge=0, le=24 * 30, title="Delay", description="Hours after a completed sale."
    )
    catch_up_hours: int = Field(
        default=72,
        ge=1,
        le=24 * 30,
        title="Catch up",
        description="How long after it fell due a thank-you may still go out (after downtime, or when enabled).",
    )


class ThankYou(AutomationType):
    name = "thank_you"
    title = "Post-purchase thank-you"
    description = "A thank-you some hours after a completed sale; never for walk-ins, refunds or returns."
    settings_model = ThankYouSettings
    default_action = "task"
    task_kind = "text"
    default_template = (
        "Hi {{ client.first_name or 'there' }}, thank you for visiting {{ sale.location or 'us' }}"
        "{% if sale.item %} and choosing the {{ sale.item }}{% endif %}. "
        "If there is anything I can do for you, just reply here."
        "{% if associate and associate.first_name %} — {{ associate.first_name }}{% endif %}"
    )
    task_title = "Thank {{ client.full_name or 'the client' }} for their purchase"

    def occasions(self, query: OccasionQuery, settings: Any) -> Occasions:
        return query.after_sale(
            delay=timedelta(hours=settings.delay_hours),
            catch_up=timedelta(hours=settings.catch_up_hours),
            occasion=self.name,
        )


class CleanCheckSettings(AutomationSettings):
    every_months: dict[str, int] = Field(
        default_factory=lambda: {"rings": 6, "engagement rings": 6, "bracelets": 12, "necklaces": 12, "watches": 12},
        title="Cadence per product category",
        description="Product category (any case) → months between clean-and-check reminders, counted from purchase.",
    )
    catch_up_days: int = Field(default=14, ge=1, le=28, title="Catch up", description="Days a reminder stays due.")
    max_years: int = Field(default=10, ge=1, le=50, title="For how long", description="Years after the purchase.")

    @field_validator("every_months")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [k for k, v in value.items() if int(v) < 1 or int(v) > 120]
        if bad:
            raise ValueError(f"months must be between 1 and 120 (check {', '.join(bad)})")
        return {str(k).strip().lower(): int(v) for k, v in value.items() if str(k).strip()}


class CleanAndCheck(AutomationType):
    name = "clean_check"
    title = "Clean-and-check reminder"
    description = "Per piece bought: invite the client in for a free clean and prong check, on a cadence per category."
    settings_model = CleanCheckSettings
    default_action = "task"
    task_kind = "call"
    default_template = (
        "Hi {{ client.first_name or 'there' }}, your {{ product.name or 'piece' }} is due for its complimentary "
        "clean and check. Stop by any time — it takes about 15 minutes."
        "{% if associate and associate.first_name %} — {{ associate.first_name }}{% endif %}"
    )
    task_title = "Clean & check: {{ client.full_name or 'a client' }} — {{ product.name or 'a piece' }}"

    def occasions(self, query: OccasionQuery, settings: Any) -> Occasions:
        if not settings.every_months:
            return query.nothing()
        return query.piece_anniversaries(
            every_months=settings.every_months,
            catch_up=timedelta(days=settings.catch_up_days),
            occasion=self.name,
            max_years=settings.max_years,
        )


class DormantSettings(AutomationSettings):
    days: int = Field(default=180, ge=7, le=3650, title="Dormant after", description="Days without a purchase.")
    catch_up_days: int = Field(
        default=30,
        ge=1,
        le=365,
        title="Catch up",
        description="Days after turning dormant a client is still reached (enabling never reaches years-old clients).",
    )


class Dormant(AutomationType):
    name = "dormant"
    title = "Dormant client"
    description = "A client with no purchase in N days at any location (their last purchase may be at another store)."
    settings_model = DormantSettings
    default_action = "task"
    task_kind = "call"
    default_template = (
        "Hi {{ client.first_name or 'there' }}, it has been a while! We have new pieces"
        "{% if location and location.name %} at {{ location.name }}{% endif %} I think you would love. "
        "Shall I set some aside for you?"
        "{% if associate and associate.first_name %} — {{ associate.first_name }}{% endif %}"
    )
    task_title = (
        "Reach out to {{ client.full_name or 'a client' }}"
        "{% if sale and sale.date %} (no purchase since {{ sale.date|date('%B %-d, %Y') }}){% endif %}"
    )

    def occasions(self, query: OccasionQuery, settings: Any) -> Occasions:
        return query.dormant(days=settings.days, catch_up=timedelta(days=settings.catch_up_days), occasion=self.name)


@hookimpl
def clasp_register_automation_types(register: Any) -> None:
    for atype in (Birthday(), Anniversary(), ThankYou(), CleanAndCheck(), Dormant()):
        register(atype)
