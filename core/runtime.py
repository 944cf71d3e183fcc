"""The per-process runtime: settings, database, loaded plugins. Passed explicitly, never global."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core import gc_policy
from core.db import Database
from core.plugins import Plugins, load_plugins
from core.registry import Registry
from core.settings import Settings, get_settings


@dataclass
class Runtime:
    settings: Settings
    db: Database
    plugins: Plugins
    # Filled by whoever owns a Redis connection (web app, worker, CLI) — an arq ArqRedis pool.
    redis: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def registry(self) -> Registry:
        return self.plugins.registry

    @property
    def secret_key(self) -> str:
        key = self.extras.get("secret_key")
        if key is None:
            key = self.extras["secret_key"] = self.settings.resolved_secret_key()
        return key

    async def close(self) -> None:
        await self.db.dispose()


def create_runtime(settings: Settings | None = None, plugins: Plugins | None = None) -> Runtime:
    gc_policy.apply()
    settings = settings or get_settings()
    return Runtime(settings=settings, db=Database(settings), plugins=plugins or load_plugins(settings))
