"""Application settings changed at run time (identity rules, report options, ...), as key → JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from core.models.base import json_field, ts


class AppSetting(SQLModel, table=True):
    __tablename__ = "app_setting"

    key: str = Field(sa_column=Column(String(200), primary_key=True))
    value: Any = json_field(default_factory=dict)
    updated_at: datetime = ts()
