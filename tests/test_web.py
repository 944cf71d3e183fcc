"""The web app: health over real database and Redis connections, OpenAPI, JSON logs."""

from __future__ import annotations

import json
import logging

from litestar.testing import AsyncTestClient

from core.logging import configure_logging
from core.runtime import Runtime
from core.settings import Settings
from core.web import create_app


async def test_healthz_is_green_on_the_backend(rt: Runtime) -> None:
    app = create_app(rt)
    async with AsyncTestClient(app) as client:
        resp = await client.get("/healthz")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["ok"] is True
    assert body["database"]["ok"] is True
    assert body["database"]["backend"] == ("postgresql" if rt.settings.database_url else "sqlite")
    assert body["redis"]["ok"] is True
    expected = rt.settings.redis_url or "embedded"
    assert body["redis"]["server"].startswith(expected)


async def test_healthz_reports_unreachable_redis(rt: Runtime) -> None:
    from redis.asyncio import Redis

    # A port nothing listens on: health must say which part is down, with a 503.
    rt.redis = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    app = create_app(rt, connect_redis=False)
    async with AsyncTestClient(app) as client:
        resp = await client.get("/healthz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["ok"] is False
    assert body["database"]["ok"] is True
    assert body["redis"]["ok"] is False


async def test_openapi_schema_is_served(rt: Runtime) -> None:
    app = create_app(rt, connect_redis=False)
    async with AsyncTestClient(app) as client:
        resp = await client.get("/schema/openapi.json")
    assert resp.status_code == 200
    schema = resp.json()
    assert schema["info"]["title"] == "Clasp"
    assert "/healthz" in schema["paths"]


def test_json_logs_are_one_object_per_line(settings: Settings, capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging(settings.model_copy(update={"log_format": "json"}))
    logging.getLogger("clasp.test").warning("sync finished", extra={"connector": "downtown", "records": 12})
    err = capsys.readouterr().err.strip().splitlines()
    record = json.loads(err[-1])
    assert record["event"] == "sync finished"
    assert record["level"] == "warning"
    assert record["connector"] == "downtown"
    assert record["records"] == 12
    assert record["timestamp"].endswith("Z")
    configure_logging(settings)
