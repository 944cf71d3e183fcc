"""Turning exceptions into the one line a person reads.

Mistakes someone can fix (a bad setting, an unknown name, an unreachable server, an out-of-date
schema) are shown as ``error: <what and how to fix it>``. Anything else is a bug: one line that
names it and points at ``--debug`` for the traceback.
"""

from __future__ import annotations

import re
from typing import Any


def _known_error_types() -> tuple[type[BaseException], ...]:
    # Imported lazily so `clasp --help` does not pay for modules it does not use.
    from pydantic import ValidationError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from core.connectors import ConnectorError
    from core.migrate import SchemaOutOfDate
    from core.plugins import PluginLoadError
    from core.registry import RegistrationError
    from core.secrets import SecretsError
    from core.users import UserError

    types: list[type[BaseException]] = [
        ConnectorError,
        SchemaOutOfDate,
        PluginLoadError,
        RegistrationError,
        SecretsError,
        UserError,
        ValidationError,
        RedisConnectionError,
        RedisTimeoutError,
        PermissionError,
        FileNotFoundError,
        IsADirectoryError,
    ]
    try:
        from core.plugin import PluginError

        types.append(PluginError)
    except ImportError:  # pragma: no cover
        pass
    for module, names in (("core.sync", ("SyncException",)), ("core.errors", ("ReplayError",))):
        try:
            mod = __import__(module, fromlist=list(names))
        except ImportError:
            continue
        types.extend(t for t in (getattr(mod, n, None) for n in names) if isinstance(t, type))
    return tuple(types)


def describe(exc: BaseException) -> str | None:
    """The one-line message for a mistake a person can fix, or None for an unexpected error."""
    from pydantic import ValidationError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if not isinstance(exc, _known_error_types()):
        return None
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()]
        return f"invalid {exc.title}: " + "; ".join(parts)
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return f"cannot reach Redis ({_redis_where()}): {_first_line(exc)}"
    return _first_line(exc)


def unexpected(exc: BaseException) -> str:
    return f"unexpected {type(exc).__name__}: {_first_line(exc)} (run with --debug for the traceback)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _redis_where() -> Any:
    try:
        from core.redis import describe as describe_redis
        from core.settings import get_settings

        where = describe_redis(get_settings())
    except Exception:
        return "unknown server"
    # A Redis URL may carry a password; never print it.
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", where)
