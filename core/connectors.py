"""Configured connectors: create, configure, enable/disable, remove; their settings and secrets.

Settings are validated by the connector type's pydantic model. Secret fields (``SecretStr``) are
split off and stored Fernet-encrypted in ``connector.secrets``; they are never returned in clear
outside the runtime that needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr, ValidationError
from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Connector, ExternalRef, SaleLine, utcnow
from core.plugin import ConnectorSettings, ConnectorType
from core.runtime import Runtime
from core.secrets import decrypt_json, encrypt_json, mask


class ConnectorError(Exception):
    """A user-facing problem with a connector request (unknown name, invalid settings, ...)."""


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Validation errors keyed by field name, for inline form errors."""
    out: dict[str, str] = {}
    for err in exc.errors():
        key = str(err["loc"][0]) if err["loc"] else "__all__"
        out.setdefault(key, err["msg"])
    return out


def coerce_cli_values(model: type[ConnectorSettings], values: dict[str, str]) -> dict[str, Any]:
    """Leave strings to pydantic's lax coercion, but map '' to None for optional fields."""
    unknown = set(values) - set(model.model_fields)
    if unknown:
        raise ConnectorError(
            f"unknown setting(s) {', '.join(sorted(unknown))}; this connector type has: {', '.join(model.model_fields)}"
        )
    out: dict[str, Any] = {}
    for key, value in values.items():
        info = model.model_fields[key]
        out[key] = None if value == "" and not info.is_required() and info.default is None else value
    return out


def split_settings(model_obj: ConnectorSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    plain = model_obj.model_dump(mode="json", exclude=model_obj.secret_fields())
    secret = {}
    for name in model_obj.secret_fields():
        value = getattr(model_obj, name)
        if value is not None:
            secret[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return plain, secret


def load_settings(rt: Runtime, connector: Connector) -> ConnectorSettings:
    ctype = rt.registry.connector_type(connector.type)
    data = dict(connector.settings or {})
    data.update(decrypt_json(rt.secret_key, connector.secrets))
    return ctype.settings_model.model_validate(data)


def masked_settings(rt: Runtime, connector: Connector) -> dict[str, Any]:
    """Settings for display: secrets masked, never in clear."""
    ctype = rt.registry.connector_type(connector.type)
    secrets = decrypt_json(rt.secret_key, connector.secrets)
    shown: dict[str, Any] = dict(connector.settings or {})
    for name in ctype.settings_model.secret_fields():
        shown[name] = mask(secrets.get(name)) if secrets.get(name) else None
    return shown


async def get_connector(session: AsyncSession, name_or_id: str | int) -> Connector:
    if isinstance(name_or_id, int) or (isinstance(name_or_id, str) and name_or_id.isdigit()):
        found = await session.get(Connector, int(name_or_id))
        if found is not None:
            return found
    result = await session.exec(select(Connector).where(Connector.name == str(name_or_id)))
    connector = result.first()
    if connector is None:
        raise ConnectorError(f"no connector named {name_or_id!r} (see `clasp connector list`)")
    return connector


async def add_connector(
    rt: Runtime, session: AsyncSession, *, type_name: str, name: str, values: dict[str, Any]
) -> Connector:
    try:
        ctype = rt.registry.connector_type(type_name)
    except KeyError as exc:
        raise ConnectorError(str(exc.args[0])) from None
    existing = await session.exec(select(Connector).where(Connector.name == name))
    if existing.first() is not None:
        raise ConnectorError(f"a connector named {name!r} already exists")
    try:
        model_obj = ctype.settings_model.model_validate(values)
    except ValidationError as exc:
        raise ConnectorError(f"invalid settings for {type_name}: {format_validation_error(exc)}") from None
    plain, secret = split_settings(model_obj)
    connector = Connector(
        type=ctype.name,
        kind=ctype.kind,
        name=name,
        settings=plain,
        secrets=encrypt_json(rt.secret_key, secret) if secret else None,
    )
    session.add(connector)
    await session.flush()
    return connector


async def remove_connector(session: AsyncSession, connector: Connector) -> None:
    """Delete a connector with its checkpoints, sync history, error queue and external references.

    Unified records stay; they lose their link to this connector (its references, and the POS ids of
    the sale lines it brought). The references have no foreign key
    (see ``core.models.base.ref_id``), so they are deleted here, after the connector's row is locked:
    every sync page renews the lease under that lock before it writes, so none can add a reference
    after this transaction commits.
    """
    await session.exec(select(Connector.id).where(Connector.id == connector.id).with_for_update())  # type: ignore[arg-type]
    await session.exec(delete(ExternalRef).where(col(ExternalRef.connector_id) == connector.id))  # type: ignore[call-overload]
    await session.exec(update(SaleLine).where(col(SaleLine.connector_id) == connector.id)  # type: ignore[call-overload]
                       .values(connector_id=None, external_id=None))
    await session.delete(connector)
    await session.flush()


async def update_settings(
    rt: Runtime, session: AsyncSession, connector: Connector, updates: dict[str, Any]
) -> ConnectorSettings:
    """Merge ``updates`` into the connector's settings, validate, and store (secrets encrypted).

    A secret left out of ``updates`` keeps its stored value: forms never echo secrets back.
    """
    ctype: ConnectorType = rt.registry.connector_type(connector.type)
    current = load_settings(rt, connector)
    merged = {**current.model_dump(), **updates}
    try:
        model_obj = ctype.settings_model.model_validate(merged)
    except ValidationError as exc:
        raise ConnectorError(f"invalid settings for {connector.type}: {format_validation_error(exc)}") from None
    plain, secret = split_settings(model_obj)
    connector.settings = plain
    connector.secrets = encrypt_json(rt.secret_key, secret) if secret else None
    connector.updated_at = utcnow()
    session.add(connector)
    await session.flush()
    return model_obj


@dataclass
class Context:
    """The :class:`core.plugin.ConnectorContext` handed to a connector type's stage objects."""

    rt: Runtime
    connector_id: int
    name: str
    settings: Any

    @property
    def base_url(self) -> str:
        return self.rt.settings.base_url

    async def save_settings(self, **updates: Any) -> None:
        # Own short transaction: rotated OAuth tokens must be durable the moment we have them, so a
        # crash right after a refresh cannot leave only the now-invalid old refresh token stored.
        async with self.rt.db.transaction() as session:
            connector = await session.get(Connector, self.connector_id, with_for_update=True)
            if connector is None:
                raise ConnectorError(f"connector {self.connector_id} no longer exists")
            self.settings = await update_settings(self.rt, session, connector, updates)


def context_for(rt: Runtime, connector: Connector) -> Context:
    assert connector.id is not None
    return Context(rt=rt, connector_id=connector.id, name=connector.name, settings=load_settings(rt, connector))
