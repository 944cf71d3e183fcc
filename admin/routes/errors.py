"""Placeholder: this page is being built; its module exposes `route_handlers`."""

from __future__ import annotations

from typing import Any

route_handlers: list[Any] = []
