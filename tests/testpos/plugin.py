"""The ``testpos`` connector type: reads the fake POS in ``tests/testpos/fake.py`` over HTTP.

Written the way a third-party POS plugin would be: it imports only ``core.plugin`` from Clasp.
Streams page with the API's cursor and keep ``{"since": <newest updated_at seen>}`` as their
checkpoint; an incremental read asks for ``updated_since >= since - lookback`` so late edits are
picked up (the engine skips the unchanged records at the boundary).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, ClassVar

from pydantic import Field

from core.plugin import (
    RETRYABLE_STATUS,
    AssociateRecord,
    CheckResult,
    ClientRecord,
    ConnectorContext,
    ConnectorSettings,
    ConnectorType,
    ContactRecord,
    LocationRecord,
    Page,
    PermanentError,
    ProductRecord,
    SaleLineRecord,
    SaleRecord,
    SecretStr,
    Stream,
    TransientError,
    hookimpl,
    http_client,
    request_with_retries,
)

EXPONENTS = {"JPY": 0, "KRW": 0, "KWD": 3, "BHD": 3}
AMOUNT = re.compile(r"^-?\d+(\.\d+)?$")


class TestPOSSettings(ConnectorSettings):
    base_url: str = Field(title="API base URL")
    api_key: SecretStr = Field(title="API key")
    history_years: int = Field(5, ge=0, le=30, title="History to backfill (years)")
    poll_interval_seconds: int = Field(300, ge=10, title="Sync interval (seconds)")
    page_size: int = Field(50, ge=1, le=500, title="Records per page")
    lookback_seconds: int = Field(300, ge=0, title="Look-back window for late edits (seconds)")
    lenient_amounts: bool = Field(False, title="Accept amounts with thousands separators")
    http_attempts: int = Field(2, ge=1, le=10, title="HTTP attempts per request")


def parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO time, got {value!r}")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} has no timezone")
    return parsed.astimezone(UTC)


class _Stream(Stream):
    resource: ClassVar[str]
    primary_key: ClassVar[str] = "id"
    # Only sales are limited to the history window: a client untouched for years is still a client.
    windowed: ClassVar[bool] = False

    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        self.settings: TestPOSSettings = ctx.settings

    def since(self, state: Mapping[str, Any], full: bool) -> datetime | None:
        if full or not state.get("since"):
            if self.windowed:
                return datetime.now(UTC) - timedelta(days=round(365.25 * self.settings.history_years))
            return None
        return parse_time(state["since"]) - timedelta(seconds=self.settings.lookback_seconds)

    async def read(self, state: Mapping[str, Any], *, full: bool = False) -> AsyncIterator[Page]:
        s = self.settings
        since = self.since(state, full)
        newest = state.get("since")
        cursor: str | None = None
        fetched = 0
        headers = {"Authorization": f"Bearer {s.api_key.get_secret_value()}"}
        async with http_client(s.base_url, headers=headers, timeout=10) as client:
            while True:
                params: dict[str, Any] = {"limit": s.page_size}
                if since is not None:
                    params["updated_since"] = since.isoformat()
                if cursor:
                    params["cursor"] = cursor
                response = await request_with_retries(client, "GET", f"/api/{self.resource}", params=params,
                                                      attempts=s.http_attempts, base_delay=0.05, max_delay=0.2)
                body = _body(response)
                records = body["data"]
                fetched += len(records)
                for record in records:
                    try:
                        stamp = parse_time(record.get("updated_at"))
                    except ValueError:
                        continue
                    if newest is None or stamp > parse_time(newest):
                        newest = stamp.isoformat()
                remaining = int(body.get("remaining") or 0)
                progress = fetched / (fetched + remaining) if fetched + remaining else 1.0
                yield Page(records=records, state={"since": newest} if newest else {}, progress=progress)
                cursor = body.get("next_cursor")
                if not cursor:
                    return

    def money(self, value: Any, currency: str) -> int:
        text = str(value).strip()
        if self.settings.lenient_amounts:
            text = text.replace(",", "")
        if not AMOUNT.match(text):
            raise ValueError(f"amount {value!r} is not a decimal number")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"amount {value!r} is not a decimal number") from None
        exponent = EXPONENTS.get(currency.upper(), 2)
        return int((amount * (10**exponent)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _id(payload: Mapping[str, Any]) -> str:
    value = payload.get("id")
    if value is None or str(value).strip() == "":
        raise ValueError("record has no id")
    return str(value)


def _body(response: Any) -> dict[str, Any]:
    if response.status_code in RETRYABLE_STATUS:
        retry = response.headers.get("Retry-After")
        raise TransientError(f"POS API answered {response.status_code}", float(retry) if retry else None)
    if response.status_code in (401, 403):
        raise PermanentError("the POS refused the API key (check the connector settings)")
    if response.status_code >= 400:
        raise PermanentError(f"POS API answered {response.status_code}: {response.text[:200]}")
    return response.json()


class ShopsStream(_Stream):
    name = "shops"
    object_type = "location"
    resource = "shops"

    def decode(self, payload: Mapping[str, Any]) -> LocationRecord:
        return LocationRecord(
            external_id=_id(payload), name=payload["name"], timezone=payload.get("tz") or "UTC",
            currency=payload.get("currency") or "USD", country=payload.get("country") or "US",
            phone=payload.get("phone"), updated_at=parse_time(payload["updated_at"]),
        )


class EmployeesStream(_Stream):
    name = "employees"
    object_type = "associate"
    resource = "employees"

    def decode(self, payload: Mapping[str, Any]) -> AssociateRecord:
        return AssociateRecord(
            external_id=_id(payload), first_name=payload.get("first") or "", last_name=payload.get("last") or "",
            email=payload.get("email"), location_external_id=payload.get("shop_id"),
            active=bool(payload.get("active", True)), updated_at=parse_time(payload["updated_at"]),
        )


class CustomersStream(_Stream):
    name = "customers"
    object_type = "client"
    resource = "customers"

    def decode(self, payload: Mapping[str, Any]) -> ClientRecord:
        contacts = [ContactRecord(kind="email", value=e["address"], is_primary=bool(e.get("primary")))
                    for e in payload.get("emails") or []]
        contacts += [ContactRecord(kind="phone", value=p["number"], label=p.get("type"))
                     for p in payload.get("phones") or []]
        return ClientRecord(
            external_id=_id(payload), first_name=payload.get("first_name") or "",
            last_name=payload.get("last_name") or "", contacts=contacts,
            birthday=date.fromisoformat(payload["dob"]) if payload.get("dob") else None,
            anniversary=date.fromisoformat(payload["anniversary"]) if payload.get("anniversary") else None,
            note=payload.get("note"), home_location_external_id=payload.get("shop_id"),
            archived=bool(payload.get("archived", False)), updated_at=parse_time(payload["updated_at"]),
        )


class ItemsStream(_Stream):
    name = "items"
    object_type = "product"
    resource = "items"

    def decode(self, payload: Mapping[str, Any]) -> ProductRecord:
        currency = payload.get("currency") or "USD"
        return ProductRecord(
            external_id=_id(payload), sku=payload.get("sku"), name=payload.get("description") or "",
            vendor=payload.get("brand"), category=payload.get("category"),
            price_minor=self.money(payload["price"], currency) if payload.get("price") is not None else None,
            currency=currency, image_urls=list(payload.get("images") or []),
            archived=bool(payload.get("archived", False)), updated_at=parse_time(payload["updated_at"]),
        )


class SalesStream(_Stream):
    name = "sales"
    object_type = "sale"
    resource = "sales"
    windowed = True

    def decode(self, payload: Mapping[str, Any]) -> SaleRecord:
        currency = payload["currency"]
        lines = [
            SaleLineRecord(
                external_id=str(line["id"]), product_external_id=line.get("item_id"), sku=line.get("sku"),
                name=line.get("description") or "", quantity=int(line.get("qty", 1)),
                unit_price_minor=self.money(line["unit_price"], currency),
                total_minor=self.money(line["total"], currency), parent_line_external_id=line.get("refund_of"),
            )
            for line in payload.get("lines") or []
        ]
        return SaleRecord(
            external_id=_id(payload), location_external_id=str(payload["shop_id"]),
            associate_external_id=payload.get("employee_id"), client_external_id=payload.get("customer_id"),
            status=payload.get("status", "completed"), currency=currency,
            subtotal_minor=self.money(payload.get("subtotal", "0"), currency),
            tax_minor=self.money(payload.get("tax", "0"), currency),
            total_minor=self.money(payload["total"], currency), occurred_at=parse_time(payload["completed_at"]),
            lines=lines, updated_at=parse_time(payload["updated_at"]),
        )


class TestPOS(ConnectorType):
    name = "testpos"
    kind = "pos"
    title = "Test POS"
    description = "The fake POS of Clasp's own test suite."
    settings_model = TestPOSSettings
    capabilities = frozenset({"sync"})

    async def check(self, ctx: ConnectorContext) -> CheckResult:
        s: TestPOSSettings = ctx.settings
        headers = {"Authorization": f"Bearer {s.api_key.get_secret_value()}"}
        async with http_client(s.base_url, headers=headers, timeout=5) as client:
            response = await client.get("/api/shops", params={"limit": 1})
        if response.status_code == 200:
            return CheckResult(ok=True, message="connected")
        return CheckResult(ok=False, message=f"POS answered {response.status_code}")

    def streams(self, ctx: ConnectorContext) -> list[Stream]:
        return [ShopsStream(ctx), EmployeesStream(ctx), CustomersStream(ctx), ItemsStream(ctx), SalesStream(ctx)]


@hookimpl
def clasp_register_connector_types(register):  # type: ignore[no-untyped-def]
    register(TestPOS())
