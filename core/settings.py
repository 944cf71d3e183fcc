"""Process-wide settings, read from ``CLASP_*`` environment variables (and an optional ``.env``).

With nothing configured Clasp runs on the embedded defaults: a SQLite file and an embedded Redis
server, both inside the data directory. Setting ``CLASP_DATABASE_URL`` / ``CLASP_REDIS_URL``
switches to real servers shared by any number of web and worker processes.
"""

from __future__ import annotations

import logging
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)


def _default_data_dir() -> Path:
    # XDG location rather than the working directory, so `clasp serve` and `clasp worker` started
    # from different folders still find the same database and embedded Redis.
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "clasp"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLASP_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    redis_url: str | None = None
    secret_key: SecretStr | None = None
    base_url: str = "http://127.0.0.1:8000"
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    # Comma-separated entry-point names (or module paths) to load instead of every installed plugin.
    plugins: str | None = None
    # arq queue name; separate deployments (or test runs) can share one Redis server by using their own.
    queue_name: str = "clasp:queue"
    # How often the scheduler re-derives due work from the database (seconds).
    tick_seconds: int = 30

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def effective_database_url(self) -> str:
        if not self.database_url:
            return f"sqlite+aiosqlite:///{self.data_dir / 'clasp.db'}"
        url = self.database_url
        # Accept the URLs people paste from their hosting provider and pick the async drivers.
        for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://", "postgresql+psycopg://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix) :]
        if url.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def uses_embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def embedded_redis_file(self) -> Path:
        return self.data_dir / "redis.db"

    @property
    def plugin_allowlist(self) -> list[str] | None:
        if self.plugins is None:
            return None
        return [p.strip() for p in self.plugins.split(",") if p.strip()]

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def resolved_secret_key(self) -> str:
        """The configured secret key, or one generated once and kept in the data directory."""
        if self.secret_key is not None and self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        path = self.ensure_data_dir() / "secret_key"
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(48)
        # O_EXCL: two processes starting together must not each write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        log.warning(
            "CLASP_SECRET_KEY is not set; generated one and stored it in %s. "
            "Back it up: connector secrets are encrypted with it.",
            path,
        )
        return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    """Forget cached settings (tests and the CLI change the environment between runs)."""
    get_settings.cache_clear()
