"""The demo's orchestration: connectors wired to the running sandboxes, authorized, and backfilled.

``clasp demo`` (core/cli/demo.py) owns sockets, servers and the terminal; this module owns what the
demo does to Clasp's own data, so tests drive it against real sandboxes without the CLI:

- every registered sandbox that names a ``connector_type`` and a way to configure a connector
  (``Sandbox.connector_settings``) gets ONE connector, remembered in the ``app_setting`` row
  ``demo`` (so a renamed connector is still found, and a restart never duplicates it); its URL is
  updated on every start, because a sandbox may come back on another port;
- a connector whose type does OAuth and whose connection check fails is authorized through the
  plugin's real :class:`~core.plugin.OAuthFlow`, headless: the authorize URL (state + PKCE S256) is
  fetched, the sandbox approves and redirects back with code and state, the state is verified and
  the code exchanged with the verifier, and the result stored encrypted like the panel's callback;
- messaging sandboxes are told Clasp's inbound webhook URL, so a text sent from their inbox page
  reaches the connector;
- :func:`sync_now` runs a connector's sync in this process with progress callbacks (the first run
  of a new connector is its backfill; later runs are incremental from the checkpoints).

The sandboxes keep their state in memory: each start is a fresh fake with fresh OAuth grants, which
is why the check-then-authorize step runs on every start.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlmodel import col, select

from core import audit
from core.connectors import ConnectorError, add_connector, context_for, update_settings
from core.models import AppSetting, Checkpoint, Connector, utcnow
from core.plugin import CheckResult, PluginError, Sandbox
from core.runtime import Runtime

log = logging.getLogger(__name__)

SETTING_KEY = "demo"
ACTOR = "demo"
# The panel's OAuth callback (admin.routes.oauth.CALLBACK_PATH): the redirect URI a real authorization
# would come back to. Headless, the demo reads the redirect instead of following it.
OAUTH_CALLBACK_PATH = "/admin/oauth/callback"
# Kinds whose connectors the demo syncs itself at start-up, with progress; others are left to the worker.
FOREGROUND_KINDS = ("pos",)
# While the demo's own first sync is about to start, the scheduler must not start one too.
HOLD_SCHEDULE = timedelta(minutes=10)


class DemoError(Exception):
    """Something the demo cannot set up; the message says what and what to do."""


@dataclass(frozen=True)
class ChainOptions:
    """The generated retailer: handed to sandboxes standing in for point-of-sale systems."""

    shops: int = 3
    clients: int = 2000
    years: int = 5
    seed: int = 7
    sales_per_day: float = 3.0
    # Lightspeed's real drip rate is 1 request unit per second; 10 keeps a 5-year backfill to minutes.
    drip_rate: float = 10.0

    def as_options(self) -> dict[str, Any]:
        return {"shops": self.shops, "clients": self.clients, "years": self.years, "seed": self.seed,
                "sales_per_day": self.sales_per_day, "drip_rate": self.drip_rate}


@dataclass
class RunningSandbox:
    """A registered sandbox being served at ``url``."""

    sandbox: Sandbox
    url: str

    @property
    def name(self) -> str:
        return self.sandbox.name


@dataclass
class DemoConnector:
    sandbox: str
    sandbox_url: str
    connector_id: int
    name: str
    type: str
    kind: str
    created: bool
    authorized: bool = False  # authorized through OAuth during this start
    ready: bool = True
    message: str = ""


@dataclass
class DemoSetup:
    connectors: list[DemoConnector] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (sandbox, why)

    def connector(self, sandbox: str) -> DemoConnector | None:
        return next((c for c in self.connectors if c.sandbox == sandbox), None)


# ----------------------------------------------------------------------------------- configuration

# What to tell people about each sandbox in the banner ({url} is filled in).
HINTS: dict[str, list[str]] = {
    "lightspeed-r": [
        "add a shop (it appears in Clasp after the next sync):\n      curl -X POST {url}/_sandbox/shops"
        " -H 'Content-Type: application/json'"
        " -d '{{\"name\": \"Maison Clasp SoHo\", \"timeZone\": \"America/Denver\"}}'",
        "edit a customer at the till:\n      curl -X PATCH {url}/_sandbox/customers/1"
        " -H 'Content-Type: application/json' -d '{{\"email\": \"new@example.com\"}}'",
        "what a correct sync must find: {url}/_sandbox/truth",
    ],
    "twilio": ["inbox (texts sent, and text in as a client): {url}/"],
    "salesforce": ["what Clasp pushed: {url}/"],
}


def connector_name(sandbox: Sandbox) -> str:
    """'lightspeed-r' → 'Lightspeed R (sandbox)'."""
    words = sandbox.name.replace("_", "-").split("-")
    return " ".join(w[:1].upper() + w[1:] for w in words if w) + " (sandbox)"


# The demo chain's consent policy for a POS connector that has one (Lightspeed R's settings).
DEMO_CONSENT_POLICY: dict[str, Any] = {
    "consent_from_pos": True,
    "consent_read_flags": True,
    "consent_flag_set_means": "no_permission",
    "consent_sms_field": "Text Opt-In",
    "consent_catalog_field": "Wants Catalog",
    "consent_overrides_opt_out": False,
}


def sandbox_options(rt: Runtime, sandbox: Sandbox, chain: ChainOptions) -> dict[str, Any]:
    """Options for ``sandbox.app_factory``: the chain's for point-of-sale sandboxes, none otherwise."""
    ctype = rt.registry.connector_types.get(sandbox.connector_type or "")
    return chain.as_options() if ctype is not None and ctype.kind == "pos" else {}


def build_sandbox_app(rt: Runtime, sandbox: Sandbox, chain: ChainOptions) -> Any:
    """The sandbox's ASGI app (generating its data may take seconds: call it off the event loop)."""
    options = sandbox_options(rt, sandbox, chain)
    if not options:
        return sandbox.app_factory()
    try:
        return sandbox.app_factory(**options)
    except TypeError as exc:
        # A third-party POS fake without generator options still runs, with its own data.
        log.warning("sandbox %s does not take the demo chain options (%s); using its defaults", sandbox.name, exc)
        return sandbox.app_factory()


async def load_state(rt: Runtime) -> dict[str, Any]:
    async with rt.db.session() as session:
        row = await session.get(AppSetting, SETTING_KEY)
        return dict(row.value or {}) if row is not None else {}


async def remembered_ports(rt: Runtime) -> dict[str, int]:
    """Ports the sandboxes had last time: reusing them keeps URLs (and bookmarks) stable."""
    state = await load_state(rt)
    return {name: int(s["port"]) for name, s in state.get("sandboxes", {}).items() if s.get("port")}


async def _save_sandbox_state(rt: Runtime, name: str, values: dict[str, Any]) -> None:
    async with rt.db.transaction() as session:
        row = await session.get(AppSetting, SETTING_KEY, with_for_update=True)
        if row is None:
            row = AppSetting(key=SETTING_KEY, value={})
        value = dict(row.value or {})
        sandboxes = dict(value.get("sandboxes", {}))
        sandboxes[name] = {**sandboxes.get(name, {}), **values}
        value["sandboxes"] = sandboxes
        row.value, row.updated_at = value, utcnow()
        session.add(row)


def _port_of(url: str) -> int | None:
    return urlsplit(url).port


async def setup(rt: Runtime, sandboxes: list[RunningSandbox], *, chain: ChainOptions | None = None) -> DemoSetup:
    """Wire every running sandbox that can be wired; safe to run on every start."""
    chain = chain or ChainOptions()
    out = DemoSetup()
    for running in sandboxes:
        sb = running.sandbox
        factory = sb.connector_settings
        if not sb.connector_type or sb.connector_type not in rt.registry.connector_types:
            out.skipped.append((sb.name, "it names no installed connector type"))
            continue
        if factory is None:
            out.skipped.append((sb.name, "its plugin does not say how to configure a connector against it "
                                         "(Sandbox.connector_settings)"))
            continue
        try:
            demo = await ensure_connector(rt, running, factory(running.url), chain=chain)
        except (ConnectorError, PluginError, DemoError, httpx.HTTPError) as exc:
            out.skipped.append((sb.name, f"{type(exc).__name__}: {exc}"))
            continue
        out.connectors.append(demo)
        try:
            await after_connect(rt, running, demo)
        except (ConnectorError, PluginError, DemoError, httpx.HTTPError) as exc:
            demo.ready, demo.message = False, f"{type(exc).__name__}: {exc}"
    return out


async def ensure_connector(
    rt: Runtime, running: RunningSandbox, values: dict[str, Any], *, chain: ChainOptions
) -> DemoConnector:
    """Create the sandbox's connector, or point the existing one at the sandbox's current URL."""
    sb = running.sandbox
    assert sb.connector_type is not None
    ctype = rt.registry.connector_type(sb.connector_type)
    if "history_years" in ctype.settings_model.model_fields:
        values = {**values, "history_years": max(1, chain.years)}
    remembered = (await load_state(rt)).get("sandboxes", {}).get(sb.name, {})
    hold = ctype.kind in FOREGROUND_KINDS
    async with rt.db.transaction() as session:
        connector = None
        if remembered.get("connector_id"):
            connector = await session.get(Connector, int(remembered["connector_id"]), with_for_update=True)
            if connector is not None and connector.type != ctype.name:
                connector = None
        if connector is None:  # state lost (or first start): adopt a connector of the demo's name
            stmt = select(Connector).where(col(Connector.name) == connector_name(sb), col(Connector.type) == ctype.name)
            connector = (await session.exec(stmt)).first()
        created = connector is None
        if connector is None:
            # The demo states its POS consent policy explicitly (the generated shops tick a "Text
            # Opt-In" field at the till): later starts leave whatever the owner changes in the panel.
            policy = {k: v for k, v in DEMO_CONSENT_POLICY.items() if k in ctype.settings_model.model_fields}
            connector = await add_connector(rt, session, type_name=ctype.name, name=connector_name(sb),
                                            values={**policy, **values})
            action, details = "connector.create", {"type": ctype.name, "sandbox": sb.name}
        else:
            # Only what the sandbox dictates (URLs, fixed credentials): tokens and settings changed
            # in the panel stay.
            await update_settings(rt, session, connector, values)
            action, details = "connector.update", {"fields": sorted(values), "sandbox": sb.name}
        if hold:
            connector.next_sync_at = utcnow() + HOLD_SCHEDULE
        session.add(connector)
        await session.flush()
        assert connector.id is not None
        await audit.record(session, action, actor=ACTOR, target_type="connector", target_id=connector.id,
                           details=details)
        old_url = remembered.get("url")
        if old_url and old_url.rstrip("/") != running.url.rstrip("/"):
            await _move_checkpoints(session, connector.id, old_url.rstrip("/"), running.url.rstrip("/"))
        demo = DemoConnector(sandbox=sb.name, sandbox_url=running.url, connector_id=connector.id,
                             name=connector.name, type=ctype.name, kind=ctype.kind, created=created)
    await _save_sandbox_state(rt, sb.name, {"connector_id": demo.connector_id, "url": running.url,
                                            "port": _port_of(running.url)})
    return demo


async def _move_checkpoints(session: Any, connector_id: int, old: str, new: str) -> None:
    """Checkpoints of a pass in progress keep the provider's complete ``next`` URL; the sandbox now
    answers elsewhere, so those URLs move with it (a real provider's host never changes)."""
    rows = (await session.exec(select(Checkpoint).where(col(Checkpoint.connector_id) == connector_id))).all()
    for row in rows:
        state = dict(row.state or {})
        nxt = state.get("next")
        if isinstance(nxt, str) and nxt.startswith(old):
            state["next"] = new + nxt[len(old):]
            row.state = state
            session.add(row)


async def after_connect(rt: Runtime, running: RunningSandbox, demo: DemoConnector) -> None:
    """Authorize (when needed) and point the sandbox's webhooks at Clasp."""
    async with rt.db.session() as session:
        connector = await session.get(Connector, demo.connector_id)
    assert connector is not None
    ctype = rt.registry.connector_type(connector.type)
    if "oauth" in ctype.capabilities:
        try:
            result = await ctype.check(context_for(rt, connector))
        except Exception as exc:  # a check should report, not raise; either way: not connected
            result = CheckResult(ok=False, message=f"{type(exc).__name__}: {exc}")
        if not result.ok:
            await authorize_headless(rt, demo.connector_id)
            demo.authorized = True
            result = await ctype.check(await _fresh_context(rt, demo.connector_id))
        demo.ready, demo.message = result.ok, result.message
    if ctype.kind == "messaging":
        await point_inbound_webhook(rt, running, demo)


async def _fresh_context(rt: Runtime, connector_id: int) -> Any:
    async with rt.db.session() as session:
        connector = await session.get(Connector, connector_id)
    assert connector is not None
    return context_for(rt, connector)


def inbound_webhook_url(rt: Runtime, demo: DemoConnector) -> str:
    return f"{rt.settings.base_url}/webhooks/{demo.type}/{demo.connector_id}/inbound"


async def point_inbound_webhook(rt: Runtime, running: RunningSandbox, demo: DemoConnector) -> None:
    """Tell a messaging sandbox where a person's texts go (its ``/_sandbox/config`` ``inbound_url``)."""
    url = inbound_webhook_url(rt, demo)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(running.url.rstrip("/") + "/_sandbox/config", json={"inbound_url": url})
    if response.status_code >= 300:
        raise DemoError(f"sandbox {running.name} did not take the inbound webhook URL (HTTP {response.status_code}); "
                        f"configure it to POST to {url}")
    demo.message = (demo.message + "; " if demo.message else "") + f"replies go to {url}"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def authorize_headless(rt: Runtime, connector_id: int) -> list[str]:
    """The panel's one-click authorization without a browser; returns the names of the stored fields.

    Only works against a provider that approves without asking (the sandboxes do): a consent page
    needs a person, in the panel.
    """
    async with rt.db.session() as session:
        connector = await session.get(Connector, connector_id)
    if connector is None:
        raise DemoError(f"connector {connector_id} does not exist")
    ctype = rt.registry.connector_type(connector.type)
    flow = ctype.oauth(context_for(rt, connector))
    if flow is None:
        raise DemoError(f"{connector.name}: the connector type offers no OAuth flow with these settings")
    state = secrets.token_urlsafe(32)
    verifier, challenge = pkce_pair()
    redirect_uri = rt.settings.base_url + OAUTH_CALLBACK_PATH
    url = flow.authorize_url(state=state, redirect_uri=redirect_uri, code_challenge=challenge)
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(url, follow_redirects=False)
    location = response.headers.get("location", "")
    if response.status_code not in (301, 302, 303, 307, 308) or not location.startswith(redirect_uri):
        raise DemoError(f"{connector.name}: the provider did not approve by itself (HTTP {response.status_code}); "
                        "authorize it in the panel (Connectors → Authorize)")
    query = {k: v[-1] for k, v in parse_qs(urlsplit(location).query).items()}
    if not secrets.compare_digest(query.get("state", ""), state):
        raise DemoError(f"{connector.name}: the provider answered with another state; not exchanging the code")
    if "code" not in query:
        raise DemoError(f"{connector.name}: authorization refused: "
                        f"{query.get('error_description') or query.get('error') or 'no code'}")
    values = await flow.exchange(code=query["code"], redirect_uri=redirect_uri, code_verifier=verifier)
    async with rt.db.transaction() as session:
        connector = await session.get(Connector, connector_id, with_for_update=True)
        assert connector is not None
        await update_settings(rt, session, connector, values)
        if connector.state in ("needs_auth", "error"):
            connector.state, connector.state_message = "new", None
        connector.updated_at = utcnow()
        session.add(connector)
        await audit.record(session, "connector.authorized", actor=ACTOR, target_type="connector",
                           target_id=connector_id, details={"fields": sorted(values), "headless": True})
    return sorted(values)


async def sync_now(rt: Runtime, connector_id: int, *, on_progress: Any = None, full: bool = False) -> Any:
    """Run the connector's sync here (its backfill the first time); returns the finished run.

    Raises what ``core.sync.run_sync`` raises (``SyncBusy`` when a worker already runs it).
    """
    from core.sync import run_sync

    return await run_sync(rt, connector_id, full=full, trigger="demo", on_progress=on_progress)


async def release_schedule(rt: Runtime, connector_id: int) -> None:
    """Hand a held connector back to the scheduler now (when the demo does not sync it itself)."""
    async with rt.db.transaction() as session:
        connector = await session.get(Connector, connector_id, with_for_update=True)
        if connector is not None:
            connector.next_sync_at = utcnow()
            session.add(connector)


def banner_hints(setup_result: DemoSetup) -> list[str]:
    lines = []
    for demo in setup_result.connectors:
        for hint in HINTS.get(demo.sandbox, []):
            lines.append(hint.format(url=demo.sandbox_url.rstrip("/")))
    return lines
