"""Sync streams: Shop, Employee, Customer, Item and Sale, read page by page from a checkpoint.

Shops and employees are few: each run reads them whole (one or two requests), which also catches
archivals and a shop opened since the last run. Customers, items and sales are read incrementally
with ``timeStamp >= cursor`` sorted by ``timeStamp`` (the engine de-duplicates the boundary rows),
``archived=true`` so archivals show up, following V3's complete ``next`` URLs. The checkpoint keeps
the ``next`` URL of a pass in progress, so a killed run resumes where it stopped; if Lightspeed no
longer accepts that URL the pass restarts from the last timestamp seen.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from core.plugin import ConnectorContext, Page, PermanentError, Stream

from .client import ApiStats, LightspeedApi
from .consent import ConsentPolicy
from .mapping import Mapper
from .quirks import format_filter_time, nested, parse_datetime, ref, timestamp

# Re-read this much before the cursor: a row committed late with an earlier timeStamp is not lost.
LOOKBACK = timedelta(minutes=2)
DAYS_PER_YEAR = 365.2425


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _parse(value: Any) -> datetime | None:
    return parse_datetime(str(value)) if value else None


class LightspeedStream(Stream):
    resource: ClassVar[str]
    relations: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: ConnectorContext, stats: ApiStats | None = None) -> None:
        self.ctx = ctx
        self.stats = stats if stats is not None else ApiStats()

    @property
    def mapper(self) -> Mapper:
        settings = self.ctx.settings
        return Mapper(currency=(settings.currency or "USD").upper(), anniversary_field=settings.anniversary_field,
                      consent=ConsentPolicy.from_settings(settings))

    def base_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"archived": "true"}
        if self.relations:
            params["load_relations"] = json.dumps(list(self.relations))
        return params

    async def read(self, state: Mapping[str, Any], *, full: bool = False) -> AsyncIterator[Page]:
        async with LightspeedApi(self.ctx, stats=self.stats) as api:
            await api.ensure_account()
            async for page in self._read(api, dict(state or {}), full=full):
                yield page

    def _read(self, api: LightspeedApi, state: dict[str, Any], *, full: bool) -> AsyncIterator[Page]:
        raise NotImplementedError


class SnapshotStream(LightspeedStream):
    """Read every row each run (for small resources)."""

    sort: ClassVar[str]

    async def _read(self, api: LightspeedApi, state: dict[str, Any], *, full: bool) -> AsyncIterator[Page]:
        start_url = state.get("next") if state.get("pass") == "snapshot" else None
        params = {**self.base_params(), "sort": self.sort}
        yielded = False
        try:
            async for page in self._pages(api, params, start_url):
                yielded = True
                yield page
        except PermanentError:
            if not start_url or yielded:
                raise
            async for page in self._pages(api, params, None):  # the saved next URL went stale
                yield page

    async def _pages(self, api: LightspeedApi, params: dict[str, Any], start_url: str | None) -> AsyncIterator[Page]:
        async for rows, following in api.pages(self.resource, params, start_url=start_url):
            if following:
                yield Page(records=rows, state={"pass": "snapshot", "next": following})
            else:
                yield Page(records=rows, state={"pass": None, "next": None, "synced_at": _iso(_now())}, progress=1.0)


class ShopStream(SnapshotStream):
    name = "shops"
    object_type = "location"
    resource = "Shop"
    relations = ("Contact",)
    sort = "shopID"

    def decode(self, payload: Mapping[str, Any]) -> Any:
        return self.mapper.location(payload)


class EmployeeStream(SnapshotStream):
    name = "employees"
    object_type = "associate"
    resource = "Employee"
    relations = ("Contact",)
    sort = "employeeID"

    def decode(self, payload: Mapping[str, Any]) -> Any:
        return self.mapper.associate(payload)


class TimestampStream(LightspeedStream):
    """Incremental by ``timeStamp``. State: pass, since, first, cursor, next (+ swept_at)."""

    bounded_by_history: ClassVar[bool] = False  # only sales are limited to history_years

    def window_start(self) -> datetime | None:
        if not self.bounded_by_history:
            return None
        years = int(self.ctx.settings.history_years)
        return _now() - timedelta(days=DAYS_PER_YEAR * years)

    def sweep_due(self, state: Mapping[str, Any]) -> bool:
        return False

    def plan(self, state: Mapping[str, Any], full: bool) -> tuple[str, datetime | None]:
        """Which pass to start (when not resuming one) and its lower timeStamp bound."""
        cursor = _parse(state.get("cursor"))
        if full or cursor is None:
            return "backfill", self.window_start()
        if self.sweep_due(state):
            return "sweep", None
        return "incremental", cursor - LOOKBACK

    async def _read(self, api: LightspeedApi, state: dict[str, Any], *, full: bool) -> AsyncIterator[Page]:
        resuming = bool(state.get("next")) and (not full or state.get("pass") == "backfill")
        if resuming:
            kind = str(state.get("pass") or "incremental")
            since = _parse(state.get("since"))
            yielded = False
            try:
                async for page in self._pass(api, state, kind, since, start_url=str(state["next"])):
                    yielded = True
                    yield page
                return
            except PermanentError:
                if yielded:
                    raise
                # Lightspeed refused the saved cursor URL: restart the pass from the last timestamp seen.
                cursor = _parse(state.get("cursor"))
                since = cursor - LOOKBACK if cursor else since
        else:
            kind, since = self.plan(state, full)
        async for page in self._pass(api, state, kind, since, start_url=None):
            yield page

    async def prepare(self, api: LightspeedApi, kind: str) -> None:
        """Hook run before a fresh pass."""

    async def augment(self, api: LightspeedApi, rows: list[dict[str, Any]]) -> None:
        """Hook to complete a page's payloads before they are handed over."""

    async def _pass(
        self, api: LightspeedApi, state: dict[str, Any], kind: str, since: datetime | None, *, start_url: str | None
    ) -> AsyncIterator[Page]:
        params = {**self.base_params(), "sort": "timeStamp"}
        if since is not None:
            params["timeStamp"] = ">=," + format_filter_time(since)
        if start_url is None:
            await self.prepare(api, kind)
        cursor = _parse(state.get("cursor"))
        first = _parse(state.get("first")) if start_url else None
        started = _parse(state.get("started")) if start_url else None
        started = started or _now()
        async for rows, following in api.pages(self.resource, params, start_url=start_url):
            await self.augment(api, rows)
            stamps = [t for t in (self._stamp(row) for row in rows) if t is not None]
            if stamps:
                first = first or min(stamps)
                cursor = max([*stamps, *([cursor] if cursor else [])])
            lower = since or first
            progress = None
            if lower is not None and cursor is not None and started > lower:
                progress = min(1.0, max(0.0, (cursor - lower) / (started - lower)))
            out: dict[str, Any] = {
                "pass": kind if following else None,
                "since": _iso(since),
                "first": _iso(first),
                "started": _iso(started),
                "cursor": _iso(cursor),
                "next": following,
            }
            for key in ("swept_at",):
                if key in state:
                    out[key] = state[key]
            if not following:
                if kind in ("backfill", "sweep"):
                    out["swept_at"] = _iso(started)
                progress = 1.0
            yield Page(records=rows, state=out, progress=progress)

    @staticmethod
    def _stamp(row: Mapping[str, Any]) -> datetime | None:
        try:
            return timestamp(row, "timeStamp")
        except ValueError:
            return None  # the engine reports the bad payload when it decodes it


class CustomerStream(TimestampStream):
    name = "customers"
    object_type = "client"
    resource = "Customer"
    # CustomFieldValues are not part of load_relations=all and must be named, with their values.
    relations = ("Contact", "Note", "CustomFieldValues", "CustomFieldValues.value")

    def sweep_due(self, state: Mapping[str, Any]) -> bool:
        # Whether a Contact-only edit bumps Customer.timeStamp is undocumented: a periodic full pass
        # (cheap: one request per 100 customers) catches edits the timeStamp filter would miss.
        hours = int(self.ctx.settings.customer_resweep_hours)
        if hours <= 0:
            return False
        swept = _parse(state.get("swept_at"))
        return swept is None or _now() - swept >= timedelta(hours=hours)

    def decode(self, payload: Mapping[str, Any]) -> Any:
        return self.mapper.client(payload)


class ItemStream(TimestampStream):
    name = "items"
    object_type = "product"
    resource = "Item"
    relations = ("Images", "Manufacturer", "Category")

    def __init__(self, ctx: ConnectorContext, stats: ApiStats | None = None) -> None:
        super().__init__(ctx, stats)
        self._matrix_images: dict[str, Any] = {}

    async def prepare(self, api: LightspeedApi, kind: str) -> None:
        if kind != "backfill":
            return
        # A backfill sees most matrices: reading them all (100 per request) beats asking per page.
        params = {"load_relations": json.dumps(["Images"]), "archived": "true", "sort": "itemMatrixID"}
        async for rows, _ in api.pages("ItemMatrix", params):
            for matrix in rows:
                if ref(matrix, "itemMatrixID"):
                    self._matrix_images[str(ref(matrix, "itemMatrixID"))] = matrix.get("Images", "")

    async def augment(self, api: LightspeedApi, rows: list[dict[str, Any]]) -> None:
        wanted = {
            str(ref(row, "itemMatrixID"))
            for row in rows
            if not nested(row, "Images", "Image") and ref(row, "itemMatrixID")
        }
        missing = sorted(wanted - self._matrix_images.keys(), key=lambda v: (len(v), v))
        if missing:
            params = {
                "itemMatrixID": "IN,[" + ",".join(missing) + "]",  # at most 100 values; a page has ≤100 rows
                "load_relations": json.dumps(["Images"]),
                "archived": "true",
            }
            async for found, _ in api.pages("ItemMatrix", params):
                for matrix in found:
                    if ref(matrix, "itemMatrixID"):
                        self._matrix_images[str(ref(matrix, "itemMatrixID"))] = matrix.get("Images", "")
            for matrix_id in missing:
                self._matrix_images.setdefault(matrix_id, "")
        for row in rows:
            matrix_id = ref(row, "itemMatrixID")
            if matrix_id and not nested(row, "Images", "Image"):
                # Embedded like a relation, so the payload alone decodes the same on replay.
                row["ItemMatrix"] = {"itemMatrixID": matrix_id, "Images": self._matrix_images.get(matrix_id, "")}

    def decode(self, payload: Mapping[str, Any]) -> Any:
        return self.mapper.product(payload)


class SaleStream(TimestampStream):
    name = "sales"
    object_type = "sale"
    resource = "Sale"
    relations = ("SaleLines",)
    bounded_by_history = True

    def decode(self, payload: Mapping[str, Any]) -> Any:
        return self.mapper.sale(payload)


STREAMS: tuple[type[LightspeedStream], ...] = (ShopStream, EmployeeStream, CustomerStream, ItemStream, SaleStream)


def build_streams(ctx: ConnectorContext, stats: ApiStats | None = None) -> list[Stream]:
    shared = stats if stats is not None else ApiStats()
    return [cls(ctx, shared) for cls in STREAMS]

