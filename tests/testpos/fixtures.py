"""Fixtures for the sync tests: the fake POS on a real socket, and a runtime that has ``testpos``.

Import them into a test module (``from tests.testpos.fixtures import fake_pos, pos_rt``); the fake
server is started once per session in a background thread and its state is reset for every test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from core.connectors import add_connector
from core.plugins import load_plugins
from core.runtime import Runtime, create_runtime
from core.settings import Settings
from tests.servers import ThreadServer, plain
from tests.testpos import plugin as testpos_plugin
from tests.testpos.fake import FakePOS, create_app

PLUGIN_MODULE = "tests.testpos.plugin"


@pytest.fixture(scope="session")
def fake_pos_server() -> Iterator[FakePOS]:
    pos = FakePOS()
    server = ThreadServer(plain(create_app(pos)), name="fake-pos", lifespan="off").start(timeout=10)
    pos.url = server.url
    yield pos
    server.stop()


@pytest.fixture
def fake_pos(fake_pos_server: FakePOS) -> FakePOS:
    """The fake POS, emptied for this test."""
    fake_pos_server.reset()
    return fake_pos_server


@pytest.fixture
async def pos_rt(settings: Settings, db: Any) -> AsyncIterator[Runtime]:
    """A runtime on the emptied test database with the ``testpos`` connector type loaded."""
    runtime = create_runtime(settings, plugins=load_plugins(settings, extra=[testpos_plugin]))
    yield runtime
    await runtime.close()


async def add_testpos(rt: Runtime, pos: FakePOS, name: str = "Test POS", **values: Any) -> int:
    settings = {"base_url": pos.url, "api_key": pos.api_key, "page_size": 10, **values}
    async with rt.db.transaction() as session:
        connector = await add_connector(rt, session, type_name="testpos", name=name, values=settings)
        assert connector.id is not None
        return connector.id
