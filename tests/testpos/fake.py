"""A tiny fake POS API (Litestar) for the sync engine's end-to-end tests.

It serves ``shops``, ``employees``, ``customers``, ``items`` and ``sales`` at ``GET /api/<resource>``
with bearer-key auth, an ``updated_since`` filter (``>=``) and opaque cursor paging ordered by
(updated_at, id). Tests mutate it from Python: add or edit records (each change bumps a fake clock),
make a late edit (updated_at in the past), inject a malformed record, or make the next requests fail
with a 500 or a 429. State is guarded by a lock: the server runs in another thread.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Litestar, Request, get
from litestar.response import Response

RESOURCES = ("shops", "employees", "customers", "items", "sales")
BASE_TIME = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _key(record: dict[str, Any]) -> tuple[datetime, str]:
    return parse(record["updated_at"]), str(record["id"])


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Fault:
    resource: str  # a resource name or "*"
    status: int
    times: int
    retry_after: float | None = None


@dataclass
class FakePOS:
    api_key: str = "testpos-key"
    tables: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {r: {} for r in RESOURCES})
    clock: datetime = BASE_TIME
    faults: list[Fault] = field(default_factory=list)
    latency: float = 0.0
    requests: int = 0
    url: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)

    # ----------------------------------------------------------------------------------- mutations

    def reset(self) -> None:
        with self.lock:
            self.tables = {r: {} for r in RESOURCES}
            self.clock = BASE_TIME
            self.faults = []
            self.latency = 0.0
            self.requests = 0

    def tick(self) -> str:
        with self.lock:
            self.clock += timedelta(seconds=1)
            return iso(self.clock)

    def put(self, resource: str, record: dict[str, Any], *, updated_at: str | None = None) -> dict[str, Any]:
        """Add or replace a record as-is (malformed ones too); it gets a fresh ``updated_at``."""
        with self.lock:
            record = copy.deepcopy(record)
            record["updated_at"] = updated_at or self.tick()
            self.tables[resource][str(record["id"])] = record
            return record

    def edit(self, resource: str, record_id: str, *, updated_at: str | None = None, **changes: Any) -> dict[str, Any]:
        with self.lock:
            record = {**self.tables[resource][record_id], **changes}
            return self.put(resource, record, updated_at=updated_at)

    def get_record(self, resource: str, record_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.tables[resource][record_id])

    def fail(self, resource: str, status: int, times: int = 1, retry_after: float | None = None) -> None:
        with self.lock:
            self.faults.append(Fault(resource, status, times, retry_after))

    # --------------------------------------------------------------------------------------- reads

    def take_fault(self, resource: str) -> Fault | None:
        with self.lock:
            self.requests += 1
            for fault in self.faults:
                if fault.times > 0 and fault.resource in (resource, "*"):
                    fault.times -= 1
                    return fault
            return None

    def page(self, resource: str, since: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
        with self.lock:
            rows = sorted(self.tables[resource].values(), key=_key)
            if since:
                rows = [r for r in rows if parse(r["updated_at"]) >= parse(since)]
            if cursor:
                stamp, last_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
                rows = [r for r in rows if _key(r) > (parse(stamp), last_id)]
            data, rest = rows[:limit], rows[limit:]
            next_cursor = None
            if rest and data:
                last = data[-1]
                next_cursor = base64.urlsafe_b64encode(f"{last['updated_at']}|{last['id']}".encode()).decode()
            return {"data": copy.deepcopy(data), "next_cursor": next_cursor, "remaining": len(rest)}

    # ------------------------------------------------------------------------------------ fixtures

    def generate(self, *, seed: int = 7, shops: int = 2, employees: int = 4, customers: int = 30, items: int = 12,
                 sales: int = 60) -> None:
        """Deterministic demo data: duplicates for identity, walk-ins, refunds of earlier lines."""
        rnd = random.Random(seed)
        zones = ["America/New_York", "America/Chicago", "America/Los_Angeles"]
        for i in range(1, shops + 1):
            self.put("shops", {"id": f"S{i}", "name": f"Shop {i}", "tz": zones[(i - 1) % 3], "currency": "USD",
                               "country": "US", "phone": f"+1212555{1000 + i}"})
        for i in range(1, employees + 1):
            self.put("employees", {"id": f"E{i}", "first": f"Emp{i}", "last": "Staff", "email": f"emp{i}@shop.test",
                                   "shop_id": f"S{(i - 1) % shops + 1}", "active": True})
        firsts = ["Ada", "Grace", "Linus", "Marie", "Alan", "Rosa", "Nina", "Omar", "Ines", "Yuki"]
        lasts = ["Lovelace", "Hopper", "Torvalds", "Curie", "Turing", "Parks", "Simone", "Khayyam", "Sastre"]
        for i in range(1, customers + 1):
            first, last = firsts[i % len(firsts)], lasts[i % len(lasts)]
            email = f"{first}.{last}{i}@example.com".lower()
            if i % 10 == 0:  # the same person entered twice in another shop: identity merges them
                email = f"{firsts[(i - 1) % len(firsts)]}.{lasts[(i - 1) % len(lasts)]}{i - 1}@example.com".lower()
            self.put("customers", {
                "id": f"C{i}", "first_name": first, "last_name": last,
                "emails": [{"address": email, "primary": True}],
                "phones": [{"number": f"(212) 555-{2000 + i:04d}", "type": "mobile"}] if i % 3 else [],
                "dob": f"19{60 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}" if i % 2 else None,
                "shop_id": f"S{(i - 1) % shops + 1}", "note": None,
            })
        for i in range(1, items + 1):
            self.put("items", {"id": f"I{i}", "sku": f"SKU-{i:04d}", "description": f"Ring {i}", "brand": "Maison",
                               "category": "rings", "price": f"{rnd.randint(100, 5000)}.00", "currency": "USD",
                               "images": [f"https://img.test/{i}.jpg"] if i % 4 else [], "archived": False})
        sold: list[tuple[str, str, str]] = []  # (line id, item id, unit price)
        line_no = 0
        for i in range(1, sales + 1):
            shop = f"S{(i - 1) % shops + 1}"
            lines = []
            if i % 15 == 0 and sold:  # a return: a negative line pointing at the line it refunds
                parent, item, price = sold[rnd.randrange(len(sold))]
                line_no += 1
                lines.append({"id": f"L{line_no}", "item_id": item, "sku": None, "description": "Return",
                              "qty": -1, "unit_price": price, "total": f"-{price}", "refund_of": parent})
            else:
                for _ in range(rnd.randint(1, 3)):
                    item = f"I{rnd.randint(1, items)}"
                    price = self.tables["items"][item]["price"]
                    line_no += 1
                    lines.append({"id": f"L{line_no}", "item_id": item, "sku": self.tables["items"][item]["sku"],
                                  "description": self.tables["items"][item]["description"], "qty": 1,
                                  "unit_price": price, "total": price, "refund_of": None})
                    sold.append((f"L{line_no}", item, price))
            total = sum(float(line["total"]) for line in lines)
            self.put("sales", {
                "id": f"T{i}", "shop_id": shop, "employee_id": f"E{rnd.randint(1, employees)}",
                "customer_id": None if i % 7 == 0 else f"C{rnd.randint(1, customers)}",
                "status": "completed", "currency": "USD", "subtotal": f"{total:.2f}", "tax": "0.00",
                "total": f"{total:.2f}", "completed_at": self.tick(), "lines": lines,
            })


def create_app(pos: FakePOS) -> Litestar:
    @get("/api/{resource:str}", sync_to_thread=False)
    async def listing(request: Request, resource: str, updated_since: str | None = None, cursor: str | None = None,
                      limit: int = 100) -> Response[Any]:
        if request.headers.get("authorization") != f"Bearer {pos.api_key}":
            return Response({"error": "invalid api key"}, status_code=401)
        if resource not in RESOURCES:
            return Response({"error": f"no resource {resource}"}, status_code=404)
        fault = pos.take_fault(resource)
        if pos.latency:
            await asyncio.sleep(pos.latency)
        if fault is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return Response({"error": "injected failure"}, status_code=fault.status, headers=headers)
        if updated_since:
            try:
                parse(updated_since)
            except ValueError:
                return Response({"error": "updated_since must be an ISO 8601 time"}, status_code=400)
        return Response(pos.page(resource, updated_since, cursor, max(1, min(limit, 500))))

    return Litestar(route_handlers=[listing], openapi_config=None)
