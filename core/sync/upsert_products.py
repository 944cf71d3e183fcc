"""Products and their images."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from core.models import Product, ProductImage
from core.sync import refs as refs_mod
from core.sync.bulk import insert_rows
from core.sync.context import Item, Outcome, UpsertContext
from core.sync.upsert_base import upsert_simple
from core.sync.validate import problems

product_t = Product.__table__  # type: ignore[attr-defined]
image_t = ProductImage.__table__  # type: ignore[attr-defined]


def image_urls(item: Item) -> list[str]:
    # The same URL twice would violate (product_id, url); keep the first position.
    return list(dict.fromkeys(u.strip() for u in item.record.image_urls if u and u.strip()))


async def upsert_products(ux: UpsertContext, items: list[Item]) -> dict[int, Outcome]:
    async def to_values(item: Item) -> dict[str, Any] | Outcome:
        rec = item.record
        bad = [p for url in image_urls(item) for p in problems(image_t, {"url": url}, "image")]
        if bad:
            return Outcome.failed("; ".join(bad))
        urls = image_urls(item)
        return {
            "sku": rec.sku,
            "name": rec.name,
            "vendor": rec.vendor,
            "category": rec.category,
            "description": rec.description,
            "price_minor": rec.price_minor,
            "currency": rec.currency.upper() if rec.currency else None,
            # No usable image from the source: flag it so the panel can list products to fix by hand.
            "image_missing": rec.image_missing or not urls,
            "archived": rec.archived,
        }

    applied = await upsert_simple(ux, items, object_type="product", table=product_t, to_values=to_values,
                                  what="product")
    by_index = {i.index: i for i in items}
    await _sync_images(ux, {pid: image_urls(by_index[idx]) for idx, pid in applied.created.items()}, fresh=True)
    await _sync_images(ux, {pid: image_urls(by_index[idx]) for idx, pid in applied.changed.items()}, fresh=False)
    return applied.outcomes


async def _sync_images(ux: UpsertContext, wanted: dict[int, list[str]], *, fresh: bool) -> None:
    if not wanted:
        return
    current: dict[int, list[str]] = {pid: [] for pid in wanted}
    if not fresh:
        for part in refs_mod.chunks(sorted(wanted)):
            rows = await ux.conn.execute(
                select(image_t.c.product_id, image_t.c.url).where(image_t.c.product_id.in_(part))
                .order_by(image_t.c.product_id, image_t.c.position, image_t.c.id)
            )
            for pid, url in rows:
                current[pid].append(url)
    changed = [pid for pid, urls in wanted.items() if urls != current[pid]]
    if not changed:
        return
    if not fresh:
        for part in refs_mod.chunks(changed):
            await ux.conn.execute(delete(image_t).where(image_t.c.product_id.in_(part)))
        for pid in changed:
            ux.feed.add("product", pid, "update", {"image_urls": wanted[pid]}, ux.now)
    rows = [{"product_id": pid, "url": url, "position": pos} for pid in changed for pos, url in enumerate(wanted[pid])]
    await insert_rows(ux.conn, image_t, rows)
