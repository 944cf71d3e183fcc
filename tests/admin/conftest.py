"""Fixtures for the admin panel tests: an organisation with every role, a signed-in HTTP client per
person on the real app, a real server in a thread for the browser, and screenshots of failures."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from core.models import Associate, Client, ClientContact, Connector, Location, Sale, utcnow
from core.plugins import load_plugins
from core.runtime import Runtime, create_runtime
from core.settings import Settings
from core.users import create_user
from core.web import create_app

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "correct-horse-battery"
SCREEN_SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def screenshot_dir() -> Path:
    """docs/screenshots/ with ``CLASP_TEST_SCREENSHOTS=1`` (refreshing the documentation), else
    test-artifacts/screens/."""
    out = ROOT / "docs" / "screenshots" if os.environ.get("CLASP_TEST_SCREENSHOTS") == "1" else ARTIFACTS / "screens"
    out.mkdir(parents=True, exist_ok=True)
    return out


# ------------------------------------------------------------------------------------------ the org


@dataclass
class Org:
    """Who exists: emails per person, ids per location and client, and who may see what."""

    users: dict[str, str] = field(default_factory=dict)  # person → email
    locations: dict[str, int] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)
    connector_id: int = 0


async def build_org(rt_or_db: Any) -> Org:
    db = rt_or_db.db if isinstance(rt_or_db, Runtime) else rt_or_db
    org = Org()
    async with db.transaction() as s:
        downtown = Location(name="Downtown", timezone="America/New_York", outreach_mode="own")
        uptown = Location(name="Uptown", timezone="America/Chicago", outreach_mode="store")
        harbor = Location(name="Harbor", timezone="America/Los_Angeles", outreach_mode="own")
        s.add_all([downtown, uptown, harbor])
        await s.flush()
        org.locations = {"downtown": downtown.id, "uptown": uptown.id, "harbor": harbor.id}  # type: ignore[dict-item]
        ann = Associate(location_id=downtown.id, first_name="Ann", last_name="Lee")
        bob = Associate(location_id=downtown.id, first_name="Bob", last_name="Ray")
        cat = Associate(location_id=uptown.id, first_name="Cat", last_name="Fox")
        s.add_all([ann, bob, cat])
        await s.flush()
        people = {
            "owner": dict(role="owner"),
            "manager": dict(role="manager", location_ids=[downtown.id]),
            "ann": dict(role="associate", location_ids=[downtown.id], associate_id=ann.id),
            "cat": dict(role="associate", location_ids=[uptown.id], associate_id=cat.id),
        }
        for person, kwargs in people.items():
            email = f"{person}@example.com"
            await create_user(s, email=email, password=PASSWORD, name=person.title(), **kwargs)  # type: ignore[arg-type]
            org.users[person] = email
        rows = {
            # Downtown ("own" mode): Ann sees only her clients there; the manager sees all of Downtown.
            "ann_client": Client(
                first_name="Ada", last_name="Ames", home_location_id=downtown.id, owner_associate_id=ann.id
            ),
            "bob_client": Client(
                first_name="Ben", last_name="Bell", home_location_id=downtown.id, owner_associate_id=bob.id
            ),
            # Uptown ("store" mode): the whole store book is Cat's.
            "uptown_client": Client(first_name="Uma", last_name="Urban", home_location_id=uptown.id),
            # Harbor: nobody but the owner.
            "harbor_client": Client(first_name="Hal", last_name="Hart", home_location_id=harbor.id),
            # Lives by Harbor but bought Downtown from Ann: in Downtown's book and Ann's.
            "harbor_bought_downtown": Client(
                first_name="Hope", last_name="Hill", home_location_id=harbor.id, owner_associate_id=ann.id
            ),
        }
        s.add_all(rows.values())
        await s.flush()
        org.clients = {k: v.id for k, v in rows.items()}  # type: ignore[misc]
        s.add(ClientContact(client_id=rows["ann_client"].id, kind="email", value="ada@example.com", is_primary=True))
        s.add(
            Sale(
                location_id=downtown.id,
                associate_id=ann.id,
                client_id=rows["harbor_bought_downtown"].id,
                status="completed",
                currency="USD",
                total_minor=125000,
                occurred_at=utcnow() - timedelta(days=3),
            )
        )
        s.add(
            Sale(
                location_id=harbor.id,
                client_id=rows["harbor_bought_downtown"].id,
                status="completed",
                currency="USD",
                total_minor=99000,
                occurred_at=utcnow() - timedelta(days=30),
            )
        )
        connector = Connector(type="lightspeed_x", kind="pos", name="Downtown POS", settings={"domain_prefix": "dt"})
        s.add(connector)
        await s.flush()
        org.connector_id = connector.id  # type: ignore[assignment]
    return org


@pytest.fixture
async def org(db: Any) -> Org:
    return await build_org(db)


# ---------------------------------------------------------------------------------- HTTP clients


class Panel:
    """One person's browser-like HTTP session against the real app (cookies, CSRF token)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    @property
    def csrf(self) -> str:
        token = self.client.cookies.get("clasp_csrf")
        assert token, "no CSRF cookie yet: GET a page first"
        return token

    async def sign_in(self, email: str, password: str = PASSWORD, next: str = "") -> Any:
        await self.client.get("/admin/sign-in")
        return await self.client.post(
            "/admin/sign-in",
            data={"email": email, "password": password, "next": next, "_csrf_token": self.csrf},
            follow_redirects=False,
        )

    async def get(self, url: str, **kwargs: Any) -> Any:
        return await self.client.get(url, follow_redirects=False, **kwargs)

    async def post(self, url: str, data: dict[str, Any] | None = None, *, htmx: bool = False, **kwargs: Any) -> Any:
        headers = {"x-csrftoken": self.csrf, **({"hx-request": "true"} if htmx else {}), **kwargs.pop("headers", {})}
        return await self.client.post(url, data=data or {}, headers=headers, follow_redirects=False, **kwargs)


def http_client(app: Any, base_url: str = "http://testserver.local") -> httpx.AsyncClient:
    """An HTTP client calling the app in this event loop (the database engine's loop).

    Litestar's test clients run the app in a portal thread with an event loop of its own, which an
    asyncpg pool shared with the test cannot follow.
    """
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 50000))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


@pytest.fixture
async def panels(rt: Runtime) -> AsyncIterator[Callable[..., Any]]:
    """``await panels(email)`` → a fresh :class:`Panel` (own cookie jar) on one app over ``rt``."""
    app = create_app(rt)
    clients: list[httpx.AsyncClient] = []

    async def make(signed_in_as: str | None = None) -> Panel:
        client = http_client(app)
        clients.append(client)
        panel = Panel(client)
        if signed_in_as:
            resp = await panel.sign_in(signed_in_as)
            assert resp.status_code == 303, resp.text
        return panel

    try:
        yield make
    finally:
        for client in clients:
            await client.aclose()


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# ------------------------------------------------------------------------- runtimes with test plugins


def runtime_with(settings: Settings, *modules: Any) -> Runtime:
    """A runtime with every installed plugin plus the given test plugin modules."""
    return create_runtime(settings, plugins=load_plugins(settings, extra=list(modules)))


# ------------------------------------------------------------------------------- servers in threads


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ServedApp:
    """An ASGI app served by uvicorn over a real socket, in a thread with its own event loop.

    ``build(url)`` runs in that thread and returns the app; it learns the URL it will be served at.
    """

    def __init__(self, build: Callable[[str], Any], *, on_stop: Callable[[], Any] | None = None) -> None:
        self.sock = free_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._build, self._on_stop = build, on_stop
        self._server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            app = self._build(self.url)
            config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
            self._server = uvicorn.Server(config)
            serving = asyncio.create_task(self._server.serve(sockets=[self.sock]))
            while not self._server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has no event)
                await asyncio.sleep(0.02)
            self._ready.set()
            await serving
            if self._on_stop is not None:
                result = self._on_stop()
                if asyncio.iscoroutine(result):
                    await result

        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def start(self) -> ServedApp:
        self._thread.start()
        assert self._ready.wait(30), "server did not start"
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(30)
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., ServedApp]]:
    started: list[ServedApp] = []

    def start(build: Callable[[str], Any], **kwargs: Any) -> ServedApp:
        served = ServedApp(build, **kwargs).start()
        started.append(served)
        return served

    yield start
    for served in reversed(started):
        served.stop()


# ------------------------------------------------------------------------ screenshots of failures


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


# ----------------------------------------------------------------------------------- the browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HAVE_CHROMIUM = Path(CHROMIUM).exists()


@pytest.fixture
async def browser(settings: Settings) -> AsyncIterator[Any]:
    """Debian's headless Chromium driven by Playwright. Browser tests run on the SQLite backend only."""
    if settings.database_url:
        pytest.skip("browser tests run on one backend (sqlite) only: they are slow")
    if not HAVE_CHROMIUM:
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(browser: Any, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A fresh desktop-sized page; a screenshot lands in test-artifacts/ when the test fails."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = await context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
            await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        await context.close()
