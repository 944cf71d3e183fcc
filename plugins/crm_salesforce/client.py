"""Salesforce REST calls: authentication on demand, one replay after an expired session, retries of
what is safe to retry, and the org's API usage read from every answer.

- 401 ``INVALID_SESSION_ID``: re-authenticate once and replay the request; a second 401 is an error.
- 503 / 502 / 504 / 500, ``UNABLE_TO_LOCK_ROW``, ``ConcurrentPerOrgLongTxn`` limit, timeouts and
  dropped connections: retried with jittered exponential backoff (``Retry-After`` obeyed). The
  upserts this plugin sends are keyed by external ID, so repeating one never duplicates a record.
  Callers pass ``retry=False`` for requests that must not be replayed blindly (a Bulk CSV upload).
- 403 ``REQUEST_LIMIT_EXCEEDED`` (TotalRequests): the daily allocation is spent. Never hot-retried:
  :class:`DailyLimitExceeded` (a TransientError with an hour's ``retry_after``) stops the push.
- ``Sforce-Limit-Info: api-usage=N/M`` (on every REST answer) is kept as the latest reading.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

import httpx

from core.plugin import ConnectorContext, PermanentError, TransientError, http_client

from .auth import Session, authenticate

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
ATTEMPTS = 6


class DailyLimitExceeded(TransientError):
    """The org's rolling 24-hour API allocation is used up; retry after the window moves."""


class SalesforceError(PermanentError):
    """Salesforce refused a request; ``status`` and ``errors`` hold its answer."""

    def __init__(self, message: str, status: int, errors: Any) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors


def error_codes(body: Any) -> list[str]:
    if isinstance(body, list):
        return [str(e.get("errorCode") or e.get("statusCode") or "") for e in body if isinstance(e, dict)]
    if isinstance(body, dict):
        return [str(body.get("errorCode") or body.get("statusCode") or "")]
    return []


def error_text(body: Any) -> str:
    if isinstance(body, list):
        parts = [f"{e.get('errorCode') or e.get('statusCode')}: {e.get('message')}"
                 for e in body if isinstance(e, dict)]
        return "; ".join(parts) or str(body)[:300]
    if isinstance(body, dict):
        return f"{body.get('errorCode') or body.get('statusCode')}: {body.get('message')}"
    return str(body)[:300]


class SalesforceClient:
    """One connector's REST session. Not safe for concurrent use from several tasks."""

    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        self.http = http_client(timeout=float(ctx.settings.request_timeout_seconds))
        self.session: Session | None = None
        self.calls = 0  # REST calls to the instance (what counts against the org's API allocation)
        self.auth_calls = 0
        self.api_usage: tuple[int, int] | None = None

    @property
    def instance_url(self) -> str:
        return self.session.instance_url if self.session else ""

    def data_url(self, path: str) -> str:
        assert self.session is not None
        if path.startswith("/"):
            return f"{self.session.instance_url}{path}"
        return f"{self.session.instance_url}/services/data/{self.ctx.settings.api_version}/{path}"

    def usage(self) -> dict[str, Any]:
        out: dict[str, Any] = {"api_calls": self.calls, "auth_calls": self.auth_calls}
        if self.api_usage is not None:
            used, limit = self.api_usage
            out.update(api_usage=used, api_limit=limit, api_usage_share=round(used / limit, 4) if limit else None)
        return out

    def near_limit(self) -> bool:
        if self.api_usage is None or not self.api_usage[1]:
            return False
        used, limit = self.api_usage
        return used / limit >= float(self.ctx.settings.daily_limit_threshold)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _authenticate(self) -> None:
        self.auth_calls += 1
        self.session = await authenticate(self.ctx, self.http)

    async def request(
        self,
        method: str,
        path: str,
        *,
        retry: bool = True,
        ok: tuple[int, ...] = (200, 201, 204),
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one API request; return the response when its status is in ``ok`` (or 300)."""
        if self.session is None:
            await self._authenticate()
        replayed = False
        attempt = 0
        extra_headers = dict(kwargs.pop("headers", {}) or {})
        while True:
            attempt += 1
            assert self.session is not None
            kwargs["headers"] = {**extra_headers, "Authorization": f"Bearer {self.session.access_token}"}
            self.calls += 1
            try:
                response = await self.http.request(method, self.data_url(path), **kwargs)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                if not retry or attempt >= ATTEMPTS:
                    raise TransientError(f"Salesforce did not answer {method} {path}: {exc!r}") from None
                await asyncio.sleep(_backoff(attempt))
                continue
            self._read_usage(response)
            if response.status_code in ok or response.status_code == 300:
                return response
            body = _json(response)
            codes = error_codes(body)
            if response.status_code == 401 and "INVALID_SESSION_ID" in codes and not replayed:
                # Sessions end after inactivity or when an admin revokes them: get a new one, replay once.
                replayed = True
                await self._authenticate()
                continue
            if response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
                text = error_text(body)
                if "ConcurrentPerOrgLongTxn" in text and attempt < ATTEMPTS:
                    await asyncio.sleep(_backoff(attempt, base=2.0))
                    continue
                raise DailyLimitExceeded(f"Salesforce API limit exceeded ({text})", retry_after=3600)
            transient = response.status_code in RETRY_STATUS or "UNABLE_TO_LOCK_ROW" in codes
            if transient and retry and attempt < ATTEMPTS:
                await asyncio.sleep(_retry_after(response) or _backoff(attempt))
                continue
            if transient:
                raise TransientError(
                    f"Salesforce answered {response.status_code} to {method} {path}: {error_text(body)}",
                    retry_after=_retry_after(response),
                )
            raise SalesforceError(
                f"Salesforce answered {response.status_code} to {method} {path}: {error_text(body)}",
                response.status_code,
                body,
            )

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        return _json(response)

    def _read_usage(self, response: httpx.Response) -> None:
        match = USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if match:
            self.api_usage = (int(match.group(1)), int(match.group(2)))


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _backoff(attempt: int, base: float = 0.25, cap: float = 20.0) -> float:
    return random.uniform(base / 2, min(cap, base * 2 ** (attempt - 1)))


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None
