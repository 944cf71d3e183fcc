"""Automation rows and settings: one automation per registered type, created on first use, disabled.

An automation row holds what every automation shares (action, location scope, template, enabled);
``settings`` holds the type's own settings model as JSON. Organisation-wide settings (who owns a
client, the timezone for clients without a home location) live in ``app_setting`` under
``automations``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import app_settings
from core.models import AppSetting, Automation, Location, utcnow
from core.models.outreach import AUTOMATION_ACTIONS
from core.plugin import AutomationType
from core.registry import Registry

SETTING_KEY = "automations"


async def conn(session: AsyncSession) -> AsyncConnection:
    """The session's connection, for Core statements (rows, not ORM objects) in its transaction."""
    return await session.connection()


class AutomationError(ValueError):
    """A request about automations that cannot be carried out as given (shown to people as-is)."""


class OrgAutomationSettings(BaseModel):
    """Settings that apply to every automation."""

    model_config = ConfigDict(extra="ignore")

    owner_rule: Literal["last_seller", "first_seller"] = Field(
        default="last_seller",
        title="Client owner",
        description=(
            "Who owns a client (their tasks, their texts' signature): the associate who last sold to "
            "them, or the one who first did. When that associate leaves (inactive), their clients go "
            "to the most recent active seller of the associate's location, or stay unassigned."
        ),
    )
    default_timezone: str | None = Field(
        default=None,
        title="Timezone for clients without a home location",
        description="IANA name (e.g. America/New_York). Empty: the first location's timezone, else UTC.",
    )

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if not value:
            return None
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except Exception:
            raise ValueError(f"unknown timezone {value!r}") from None
        return value


async def load_org_settings(session: AsyncSession) -> OrgAutomationSettings:
    return OrgAutomationSettings.model_validate(await app_settings.read(session, SETTING_KEY))


async def save_org_settings(session: AsyncSession, values: Mapping[str, Any]) -> OrgAutomationSettings:
    current = (await load_org_settings(session)).model_dump()
    try:
        settings = OrgAutomationSettings.model_validate({**current, **values})
    except ValidationError as exc:
        raise AutomationError(_first_error(exc)) from None
    await app_settings.write(session, SETTING_KEY, settings.model_dump(mode="json"))
    return settings


async def default_timezone(session: AsyncSession, org: OrgAutomationSettings | None = None) -> str:
    org = org or await load_org_settings(session)
    if org.default_timezone:
        return org.default_timezone
    first = (await session.exec(select(Location.timezone).order_by(col(Location.id)).limit(1))).first()
    return first or "UTC"


def _watermark_key(automation_id: int) -> str:
    return f"{SETTING_KEY}.watermark.{automation_id}"


async def load_watermark(session: AsyncSession, automation_id: int) -> datetime | None:
    """When the automation's last complete, error-free evaluation ran (its ``now``)."""
    row = await session.get(AppSetting, _watermark_key(automation_id))
    value = row.value.get("at") if row is not None and isinstance(row.value, dict) else None
    return datetime.fromisoformat(value) if value else None


async def save_watermark(session: AsyncSession, automation_id: int, at: datetime) -> None:
    key = _watermark_key(automation_id)
    table = AppSetting.__table__  # type: ignore[attr-defined]
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # Two workers finishing together both get here: the first row wins, the second updates it.
    stmt = insert(table).values(key=key, value={"at": at.isoformat()}, updated_at=utcnow())
    created = await (await conn(session)).execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
    if created.rowcount:
        return
    row = await session.get(AppSetting, key, with_for_update=True, populate_existing=True)
    assert row is not None
    current = row.value.get("at") if isinstance(row.value, dict) else None
    if current and datetime.fromisoformat(current) >= at:
        return  # never move backwards (a re-run of an earlier instant)
    row.value = {"at": at.isoformat()}
    row.updated_at = utcnow()
    session.add(row)
    await session.flush()


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "settings"
    return f"{where}: {err.get('msg', 'invalid')}"


def type_of(registry: Registry, automation: Automation) -> AutomationType:
    try:
        return registry.automation_types[automation.type]
    except KeyError:
        raise AutomationError(
            f"automation {automation.name!r} is of type {automation.type!r}, which no installed plugin provides"
        ) from None


def validate_settings(atype: AutomationType, values: Mapping[str, Any]) -> dict[str, Any]:
    """The type's settings model applied to ``values``; returned as JSON-ready defaults-filled data."""
    try:
        return atype.settings_model.model_validate(dict(values)).model_dump(mode="json")
    except ValidationError as exc:
        raise AutomationError(_first_error(exc)) from None


def settings_of(atype: AutomationType, automation: Automation) -> Any:
    try:
        return atype.settings_model.model_validate(automation.settings or {})
    except ValidationError as exc:
        raise AutomationError(f"automation {automation.name!r} has invalid settings: {_first_error(exc)}") from None


async def ensure_automations(session: AsyncSession, registry: Registry) -> list[Automation]:
    """Create a (disabled) automation for every registered type that has none; return them all."""
    existing = {a.type for a in (await session.exec(select(Automation))).all()}
    names = {a.name for a in (await session.exec(select(Automation))).all()}
    for name, atype in sorted(registry.automation_types.items()):
        if name in existing or name in names:
            continue
        try:
            settings = atype.settings_model().model_dump(mode="json")
        except ValidationError:
            settings = {}
        action = getattr(atype, "default_action", "task")
        session.add(
            Automation(
                type=name,
                name=name,
                scope={"location_ids": None},
                settings=settings,
                template=atype.default_template or "",
                action=action if action in AUTOMATION_ACTIONS else "task",
                enabled=False,
            )
        )
    await session.flush()
    return list((await session.exec(select(Automation).order_by(col(Automation.id)))).all())


async def get_automation(session: AsyncSession, name: str, *, for_update: bool = False) -> Automation:
    stmt = select(Automation).where(col(Automation.name) == name)
    if for_update:
        stmt = stmt.with_for_update()
    found = (await session.exec(stmt)).first()
    if found is None:
        known = ", ".join(sorted(a.name for a in (await session.exec(select(Automation))).all())) or "none"
        raise AutomationError(f"no automation named {name!r} (known: {known})")
    return found


def scope_ids(automation: Automation) -> list[int] | None:
    ids = (automation.scope or {}).get("location_ids")
    return None if ids is None else [int(i) for i in ids]


async def configure(
    session: AsyncSession,
    registry: Registry,
    name: str,
    *,
    settings: Mapping[str, Any] | None = None,
    template: str | None = None,
    action: str | None = None,
    location_ids: list[int] | Literal["keep"] | None = "keep",
    enabled: bool | None = None,
) -> Automation:
    """Change an automation; everything is validated before anything is stored.

    ``settings`` are merged into the current ones (dotted keys reach into dict settings:
    ``{"every_months.rings": 6}``); a template that does not compile is refused.
    """
    from core.automations.templates import TemplateProblem, compile_template

    automation = await get_automation(session, name, for_update=True)
    atype = type_of(registry, automation)
    if settings:
        merged = dict(automation.settings or {})
        for key, value in settings.items():
            _set_dotted(merged, key, value)
        automation.settings = validate_settings(atype, merged)
    if template is not None:
        try:
            compile_template(template)
        except TemplateProblem as exc:
            raise AutomationError(f"template: {exc}") from None
        if not template.strip():
            raise AutomationError("template: a message needs some text")
        automation.template = template
    if action is not None:
        if action not in AUTOMATION_ACTIONS:
            raise AutomationError(f"action must be one of {', '.join(AUTOMATION_ACTIONS)}")
        automation.action = action
    if location_ids != "keep":
        if location_ids is not None:
            known = set((await session.exec(select(Location.id))).all())
            unknown = sorted(set(location_ids) - known)
            if unknown:
                raise AutomationError(f"unknown location id(s): {', '.join(map(str, unknown))}")
            location_ids = sorted(set(location_ids))
        automation.scope = {"location_ids": location_ids}
    if enabled is not None:
        if enabled:
            settings_of(atype, automation)
            if not automation.template.strip():
                raise AutomationError(f"automation {name!r} has no template; configure one before enabling it")
        automation.enabled = enabled
    automation.updated_at = utcnow()
    session.add(automation)
    await session.flush()
    return automation


def _set_dotted(target: dict[str, Any], key: str, value: Any) -> None:
    head, dot, rest = key.partition(".")
    if not dot:
        target[key] = value
        return
    inner = target.get(head)
    if not isinstance(inner, dict):
        inner = {}
    inner = dict(inner)
    _set_dotted(inner, rest, value)
    target[head] = inner
