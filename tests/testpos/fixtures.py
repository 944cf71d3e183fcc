"""Fixtures for the sync tests: the fake POS on a real socket, and a runtime that has ``testpos``.

Import them into a test module (``from tests.testpos.fixtures import fake_pos, pos_rt``); the fake
server is started once per session in a background thread and its state is reset for every test.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn

from core.connectors import add_connector
from core.plugins import load_plugins
from core.runtime import Runtime, create_runtime
from core.settings import Settings
from tests.testpos import plugin as testpos_plugin
from tests.testpos.fake import FakePOS, create_app

PLUGIN_MODULE = "tests.testpos.plugin"


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test process keeps its own handlers
        pass


@pytest.fixture(scope="session")
def fake_pos_server() -> Iterator[FakePOS]:
    pos = FakePOS()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(create_app(pos), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-pos")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the fake POS did not start")
        time.sleep(0.01)
    pos.url = f"http://127.0.0.1:{port}"
    yield pos
    server.should_exit = True
    thread.join(timeout=5)


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
