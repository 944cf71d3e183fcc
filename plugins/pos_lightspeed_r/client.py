"""HTTP for the R-Series API: auth headers, leaky-bucket pacing, retries, errors and V3 paging.

Lightspeed meters each (account, OAuth client) connection with a leaky bucket (``X-LS-Api-Bucket-Level:
level/size``, ``X-LS-Api-Drip-Rate``, ``X-LS-Api-Request-Cost``) and a per-second burst limiter
(``X-LS-API-Burst-Level``). The client keeps a model of both, updated from every response, and
waits *before* a request just long enough for it to fit, so a backfill runs at the drip rate
without 429s. A 429 that still comes is obeyed (``Retry-After``); 5xx, timeouts and dropped
connections are retried with jittered backoff; a 401 refreshes the access token once.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from core.plugin import ConnectorContext, PermanentError, TransientError, http_client

from .auth import TokenManager
from .quirks import next_url, resource_rows, text

API_PREFIX = "/API/V3"
PAGE_LIMIT = 100  # the V3 maximum
# Before the first response tells us the real numbers: the documented defaults for one register.
DEFAULT_BUCKET_SIZE = 90.0
DEFAULT_DRIP_RATE = 1.0
DEFAULT_BURST_LIMIT = 20
MAX_ATTEMPTS = 8


class NotFound(PermanentError):
    """The object does not exist (404)."""


@dataclass
class ApiStats:
    requests: int = 0
    cost: float = 0.0
    throttled: int = 0  # 429 responses
    retries: int = 0
    refreshes: int = 0
    waited: float = 0.0  # seconds spent pacing before requests


@dataclass
class LeakyBucket:
    """Our model of the server's bucket for one connection, from the headers of every response."""

    size: float = DEFAULT_BUCKET_SIZE
    drip: float = DEFAULT_DRIP_RATE
    level: float = 0.0
    observed_at: float = field(default_factory=time.monotonic)
    burst_limit: int = DEFAULT_BURST_LIMIT
    sent: deque[float] = field(default_factory=deque)
    # Serialises requests per connection (SkuVault and the SDKs do the same): concurrent requests
    # would all see the same headroom and overrun it together.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    blocked_until: float = 0.0

    def level_at(self, now: float) -> float:
        return max(0.0, self.level - self.drip * (now - self.observed_at))

    def delay_for(self, cost: float, now: float) -> float:
        """Seconds to wait before a request of ``cost`` fits in the bucket and the burst window."""
        wait = max(0.0, self.blocked_until - now)
        overflow = self.level_at(now) + cost - self.size
        if overflow > 0:
            wait = max(wait, overflow / self.drip)
        # Keep strictly fewer than the burst limit in any sliding second: the server counts fixed
        # one-second windows, and any fixed window lies inside some sliding one.
        while self.sent and self.sent[0] <= now - 1.0:
            self.sent.popleft()
        allowed = max(1, self.burst_limit - 1)
        if len(self.sent) >= allowed:
            wait = max(wait, self.sent[-allowed] + 1.0 - now)
        return wait

    def note_sent(self, now: float) -> None:
        self.sent.append(now)

    def observe(self, headers: httpx.Headers, now: float) -> None:
        level = _ratio(headers.get("x-ls-api-bucket-level"))
        if level is not None:
            self.level, self.size = level
            self.observed_at = now
        drip = _number(headers.get("x-ls-api-drip-rate"))
        if drip and drip > 0:
            self.drip = drip
        burst = _ratio(headers.get("x-ls-api-burst-level"))
        if burst is not None and burst[1] >= 1:
            self.burst_limit = int(burst[1])

    def throttled(self, retry_after: float, now: float) -> None:
        self.blocked_until = max(self.blocked_until, now + retry_after)


def _number(value: str | None) -> float | None:
    if not value:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _ratio(value: str | None) -> tuple[float, float] | None:
    if not value or "/" not in value:
        return None
    left, _, right = value.partition("/")
    level, size = _number(left), _number(right)
    if level is None or size is None or size <= 0:
        return None
    return level, size


# One bucket model per connection and event loop, shared by every stream, writer and check of it.
_BUCKETS: dict[tuple[int, str, str, str], LeakyBucket] = {}


def bucket_for(api_base_url: str, account_id: str, client_id: str) -> LeakyBucket:
    key = (id(asyncio.get_running_loop()), api_base_url, account_id, client_id)
    bucket = _BUCKETS.get(key)
    if bucket is None:
        if len(_BUCKETS) > 256:
            _BUCKETS.clear()
        bucket = _BUCKETS[key] = LeakyBucket()
    return bucket


def estimate_cost(method: str, params: Mapping[str, Any] | None, body: Any = None) -> float:
    """Request cost per the 2026 model: 1, plus relation surcharges on reads, 0.5 per nested write entity.

    Only a first guess: once a response carries ``X-LS-Api-Request-Cost`` the client uses the
    measured cost of the same kind of request instead.
    """
    cost = 1.0
    if method == "GET" and params:
        if str(params.get("count", "")) == "1":
            return 10.0
        relations = params.get("load_relations")
        names = _relations(relations)
        cost += 0.4 * len(names)  # to-many surcharge (0.2) doubled on list reads; conservative for to-one
    if method in ("PUT", "POST") and isinstance(body, Mapping):
        cost += 0.5 * sum(1 for v in body.values() if isinstance(v, Mapping))
    return cost


def _relations(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        parsed = json.loads(str(value))
    except ValueError:
        return [str(value)]
    return [str(v) for v in parsed] if isinstance(parsed, list) else [str(parsed)]


def _shape(method: str, url: str, params: Mapping[str, Any] | None) -> str:
    """A key for "the same kind of request", to reuse its measured cost."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update({k: str(v) for k, v in (params or {}).items()})
    resource = parts.path.rsplit("/Account/", 1)[-1].split("/", 1)[-1]
    resource = "/".join(p for p in resource.split("/") if not p.split(".")[0].isdigit())
    return f"{method} {resource} {query.get('load_relations', '')} {query.get('count', '')}"


def _backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    # Full jitter: many workers retrying at once spread out instead of synchronising.
    return random.uniform(base / 2, min(cap, base * 2 ** (attempt - 1)))


def _error_message(response: httpx.Response) -> str:
    # R-Series error bodies are JSON even when labelled text/html: {httpCode, message, errorClass}
    # for API errors, {error, error_description, hint} from the OAuth layer.
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, Mapping):
        for key in ("message", "error_description", "hint", "error"):
            if body.get(key):
                return str(body[key])
    return response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    value = _number(response.headers.get("retry-after"))
    return None if value is None else max(0.0, value)


class LightspeedApi:
    """One open HTTP session to an R-Series account. Use as ``async with LightspeedApi(ctx) as api``."""

    def __init__(self, ctx: ConnectorContext, *, stats: ApiStats | None = None) -> None:
        self.ctx = ctx
        self.tokens = TokenManager(ctx)
        self.stats = stats or ApiStats()
        self._http: httpx.AsyncClient | None = None
        self._costs: dict[str, float] = {}

    @property
    def settings(self) -> Any:
        return self.ctx.settings

    @property
    def base_url(self) -> str:
        return str(self.settings.api_base_url).rstrip("/")

    async def __aenter__(self) -> LightspeedApi:
        self._http = http_client(timeout=60.0, headers={"Accept": "application/json"})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("LightspeedApi used outside `async with`")
        return self._http

    # ------------------------------------------------------------------------------- account

    def account_url(self, path: str) -> str:
        account = self.settings.account_id
        if not account:
            raise PermanentError("the Lightspeed account id is not known yet; authorize the connector first")
        return f"{self.base_url}{API_PREFIX}/Account/{account}/{path.lstrip('/')}"

    async def ensure_account(self) -> str:
        """The account id, discovered from ``Account.json`` (and its currency) when not yet stored."""
        settings = self.settings
        if settings.account_id and settings.currency:
            return str(settings.account_id)
        if not settings.account_id:
            body = await self.get_json(f"{self.base_url}{API_PREFIX}/Account.json")
            accounts = resource_rows(body, "Account")
            if not accounts:
                raise PermanentError("Lightspeed returned no account for this authorization")
            if len(accounts) > 1:
                names = ", ".join(f"{text(a, 'accountID')} ({text(a, 'name')})" for a in accounts)
                raise PermanentError(f"this authorization reaches several accounts ({names}); set account_id")
            await self.ctx.save_settings(account_id=text(accounts[0], "accountID"))
        if not self.settings.currency:
            body = await self.get_json(self.account_url("").rstrip("/") + ".json")
            account = next(iter(resource_rows(body, "Account")), {})
            currency = account.get("defaultCurrency")
            code = text(currency, "code") if isinstance(currency, Mapping) else ""
            # An account that does not say keeps the connector default rather than guessing per shop.
            await self.ctx.save_settings(currency=(code or "USD").upper())
        return str(self.settings.account_id)

    # ------------------------------------------------------------------------------- requests

    def _bucket(self) -> LeakyBucket:
        return bucket_for(self.base_url, str(self.settings.account_id or ""), str(self.settings.client_id))

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> httpx.Response:
        """Send one API request, paced and retried; returns a 2xx response or raises a PluginError."""
        shape = _shape(method, url, params)
        refreshed = False
        last_problem = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            token = await self.tokens.access_token()
            bucket = self._bucket()
            cost = self._costs.get(shape) or estimate_cost(method, params, json_body)
            async with bucket.lock:
                now = time.monotonic()
                wait = bucket.delay_for(cost, now)
                if wait > 0:
                    self.stats.waited += wait
                    await asyncio.sleep(wait)
                bucket.note_sent(time.monotonic())
                try:
                    response = await self.http.request(
                        method,
                        url,
                        params=params,
                        json=json_body,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                    last_problem = f"{type(exc).__name__}: {exc}"
                    response = None
                else:
                    bucket.observe(response.headers, time.monotonic())
            if response is None:
                self.stats.retries += 1
                await asyncio.sleep(_backoff(attempt))
                continue
            self.stats.requests += 1
            measured = _number(response.headers.get("x-ls-api-request-cost"))
            if measured is not None:
                self._costs[shape] = measured
                self.stats.cost += measured
            status = response.status_code
            if status < 300:
                return response
            last_problem = f"HTTP {status}: {_error_message(response)}"
            if status == 401 and not refreshed:
                # Expired or revoked early: refresh once (only if nobody else already did) and retry.
                refreshed = True
                self.stats.refreshes += 1
                await self.tokens.refresh(stale=token)
                continue
            if status == 429:
                self.stats.throttled += 1
                delay = _retry_after(response)
                if delay is None:
                    delay = _backoff(attempt, base=1.0)
                bucket.throttled(delay, time.monotonic())
                continue
            if status in (408, 425, 500, 502, 503, 504) or (
                status == 400 and "try again later" in last_problem.lower()
            ):
                self.stats.retries += 1
                await asyncio.sleep(_retry_after(response) or _backoff(attempt))
                continue
            if status == 401:
                raise PermanentError(f"Lightspeed rejected the access token after a refresh ({last_problem}); "
                                     "authorize the connector again")
            if status == 403:
                raise PermanentError(f"Lightspeed denied access ({last_problem}); the authorization lacks a "
                                     "scope or the employee who granted it lost the right")
            if status == 404:
                raise NotFound(last_problem)
            raise PermanentError(f"Lightspeed {method} {urlsplit(url).path} failed: {last_problem}")
        raise TransientError(f"Lightspeed kept failing after {MAX_ATTEMPTS} attempts: {last_problem}")

    async def get_json(self, url: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = await self.request("GET", url, params=params)
        return _json(response)

    async def write_json(self, method: str, url: str, body: Any) -> dict[str, Any]:
        response = await self.request(method, url, json_body=body)
        return _json(response)

    async def pages(
        self, resource: str, params: Mapping[str, Any] | None = None, *, start_url: str | None = None
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str | None]]:
        """Yield ``(rows, next_url)`` for each page, following the complete ``next`` URLs V3 hands out."""
        if start_url:
            url, query = start_url, None
        else:
            url = self.account_url(f"{resource}.json")
            query = {"limit": PAGE_LIMIT, **(params or {})}
        seen: set[str] = set()
        while True:
            body = await self.get_json(url, query)
            rows = resource_rows(body, resource)
            following = next_url(body)
            if following is not None and following in seen:
                raise PermanentError(f"Lightspeed paging looped on {resource} at {following}")
            yield rows, following
            if not following:
                return
            seen.add(following)
            url, query = following, None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        raise TransientError(f"Lightspeed sent a body that is not JSON: {response.text[:200]!r}") from None
    if not isinstance(body, dict):
        raise PermanentError(f"Lightspeed sent unexpected JSON: {str(body)[:200]}")
    return body

