"""Connector settings forms, generated from a connector type's pydantic settings model.

bool → checkbox, Literal/Enum → select, int/float → number, SecretStr → write-only password input,
everything else → text. Titles, descriptions, defaults and required-ness come from the model.
"""

from __future__ import annotations

import enum
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from core.connectors import field_errors

WidgetKind = Literal["checkbox", "select", "number", "secret", "text", "url", "email"]


@dataclass
class FormField:
    name: str
    label: str
    kind: WidgetKind
    help: str = ""
    required: bool = False
    value: Any = None
    default: Any = None
    options: list[str] = field(default_factory=list)
    step: str | None = None
    min: Any = None
    max: Any = None
    secret_set: bool = False  # a secret is stored (shown as "•••• set", never echoed)
    error: str | None = None
    optional_blank: bool = False  # '' means None


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(inner type, accepts None) for ``X | None`` / ``Optional[X]``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], nullable
        return annotation, nullable
    return annotation, False


def _constraint(info: FieldInfo, name: str) -> Any:
    for meta in info.metadata:
        if hasattr(meta, name):
            return getattr(meta, name)
    return None


def _kind(inner: Any, info: FieldInfo, field_name: str) -> tuple[WidgetKind, list[str]]:
    if inner is SecretStr:
        return "secret", []
    if inner is bool:
        return "checkbox", []
    if typing.get_origin(inner) is Literal:
        return "select", [str(v) for v in typing.get_args(inner)]
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        return "select", [str(m.value) for m in inner]
    if inner in (int, float):
        return "number", []
    if field_name.endswith("url"):
        return "url", []
    if field_name.endswith("email"):
        return "email", []
    return "text", []


def humanise(name: str) -> str:
    return name.replace("_", " ").capitalize()


def build_form(
    model: type[BaseModel],
    values: dict[str, Any] | None = None,
    *,
    secrets_set: set[str] | None = None,
    errors: dict[str, str] | None = None,
) -> list[FormField]:
    """Form fields for ``model``; ``values`` are current (or just submitted) plain values."""
    values = values or {}
    errors = errors or {}
    fields: list[FormField] = []
    for name, info in model.model_fields.items():
        inner, nullable = _unwrap(info.annotation)
        kind, options = _kind(inner, info, name)
        default = None if info.default is PydanticUndefined else info.default
        if isinstance(default, enum.Enum):
            default = default.value
        value = values.get(name, default)
        if kind == "secret":
            value = None  # write-only: never rendered back into the page
        if isinstance(value, enum.Enum):
            value = value.value
        if kind == "select" and nullable:
            options = ["", *options]
        fields.append(
            FormField(
                name=name,
                label=info.title or humanise(name),
                kind=kind,
                help=info.description or "",
                required=info.is_required(),
                value=value,
                default=default,
                options=options,
                step=("any" if inner is float else "1") if kind == "number" else None,
                min=_constraint(info, "ge") if _constraint(info, "ge") is not None else _constraint(info, "gt"),
                max=_constraint(info, "le") if _constraint(info, "le") is not None else _constraint(info, "lt"),
                secret_set=name in (secrets_set or set()),
                error=errors.get(name),
                optional_blank=nullable,
            )
        )
    return fields


def parse_form(model: type[BaseModel], form: dict[str, Any]) -> dict[str, Any]:
    """Turn submitted form data into values for the model (validation is pydantic's job).

    A blank secret is left out: it keeps the stored secret. A blank optional field becomes None; a
    blank non-text field is left out so the model's default (or its "required" error) applies.
    """
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        inner, nullable = _unwrap(info.annotation)
        kind, _ = _kind(inner, info, name)
        if kind == "checkbox":
            out[name] = form.get(name) in ("on", "true", "1", True)
            continue
        raw = form.get(name)
        if raw is None:
            continue
        raw = raw.strip() if isinstance(raw, str) else raw
        if raw == "":
            if kind == "secret":
                continue
            if nullable:
                out[name] = None
            elif kind in ("text", "url", "email") and inner is str:
                out[name] = ""
            continue
        out[name] = raw
    return out


def validate(model: type[BaseModel], values: dict[str, Any]) -> tuple[BaseModel | None, dict[str, str]]:
    try:
        return model.model_validate(values), {}
    except ValidationError as exc:
        return None, field_errors(exc)


def submitted_values(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    """What to show back in a form that failed validation: what the person typed, never secrets."""
    secret = getattr(model, "secret_fields", lambda: set())()
    return {k: v for k, v in values.items() if k not in secret}
