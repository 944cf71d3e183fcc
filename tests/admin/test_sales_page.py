"""/admin/sales: scoped by the sale's store, filters in store time, totals from minor units, lines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.models import Associate, Location, Sale, SaleLine
from core.runtime import Runtime
from tests.admin.conftest import Org, text_of

# 23:30 on 2026-03-10 in New York (EDT started 2026-03-08) is 03:30 UTC on 2026-03-11.
LATE_IN_NEW_YORK = datetime(2026, 3, 11, 3, 30, tzinfo=UTC)


async def _more_sales(rt: Runtime, org: Org) -> dict[str, int]:
    async with rt.db.transaction() as s:
        ann = (await s.exec(Associate.__table__.select().where(Associate.first_name == "Ann"))).first()  # type: ignore[attr-defined]
        bob = (await s.exec(Associate.__table__.select().where(Associate.first_name == "Bob"))).first()  # type: ignore[attr-defined]
        sold = Sale(location_id=org.locations["downtown"], associate_id=bob.id, client_id=org.clients["bob_client"],
                    status="completed", currency="USD", subtotal_minor=250000, tax_minor=22188, total_minor=272188,
                    occurred_at=LATE_IN_NEW_YORK)
        walk_in = Sale(location_id=org.locations["downtown"], associate_id=ann.id, client_id=None, channel="ecom",
                       status="layaway", currency="USD", total_minor=4550,
                       occurred_at=datetime(2026, 2, 1, 15, tzinfo=UTC))
        s.add_all([sold, walk_in])
        await s.flush()
        ring = SaleLine(sale_id=sold.id, name="Halo Engagement Ring", sku="RNG-1", quantity=1,
                        unit_price_minor=250000, total_minor=250000)
        s.add(ring)
        s.add(SaleLine(sale_id=walk_in.id, name="Pearl Drops", quantity=1, unit_price_minor=4550, total_minor=4550))
        await s.flush()
        # Uptown takes the ring back (a refund sale at another store, pointing at the original line).
        refund = Sale(location_id=org.locations["uptown"], client_id=org.clients["uptown_client"], status="completed",
                      currency="USD", total_minor=-272188, occurred_at=datetime(2026, 3, 20, 18, tzinfo=UTC))
        s.add(refund)
        await s.flush()
        s.add(SaleLine(sale_id=refund.id, name="Halo Engagement Ring", quantity=-1, unit_price_minor=250000,
                       total_minor=-272188, parent_line_id=ring.id))
        kwd = Location(name="Kuwait City", timezone="Asia/Kuwait", currency="KWD", country="KW")
        s.add(kwd)
        await s.flush()
        s.add(Sale(location_id=kwd.id, status="completed", currency="KWD", total_minor=1234567,
                   occurred_at=datetime(2026, 3, 1, 9, tzinfo=UTC)))
        return {"downtown_sold": sold.id, "walk_in": walk_in.id, "refund": refund.id}  # type: ignore[dict-item]


def _sale_ids(html: str) -> set[int]:
    import re

    return {int(m) for m in re.findall(r'href="/admin/sales/(\d+)"', html)}


async def test_the_owner_sees_every_sale_with_totals_per_currency(rt: Runtime, org: Org, panels: Any) -> None:
    ids = await _more_sales(rt, org)
    owner = await panels(org.users["owner"])
    resp = await owner.get("/admin/sales")
    assert resp.status_code == 200
    page = text_of(resp.text)
    assert len(_sale_ids(resp.text)) == 6 and "6 sales" in page
    assert "−2,721.88 USD" in page  # the refund, visibly negative
    assert "2,721.88 USD" in page and "1,234.567 KWD" in page  # KWD has three decimals
    # Net of completed USD sales: 1,250.00 + 990.00 + 2,721.88 − 2,721.88.
    assert "2,240.00 USD net of 4 completed sales in USD" in page
    assert "Walk-in" in page and "Halo Engagement Ring" in page and "<details" in resp.text

    detail = await owner.get(f"/admin/sales/{ids['refund']}")
    assert detail.status_code == 200
    text = text_of(detail.text)
    assert "−2,721.88 USD" in text and "refund" in text
    assert f'href="/admin/sales/{ids["downtown_sold"]}"' in detail.text  # the return points at the original sale


async def test_an_associate_sees_only_their_stores_sales(rt: Runtime, org: Org, panels: Any) -> None:
    ids = await _more_sales(rt, org)
    ann = await panels(org.users["ann"])
    resp = await ann.get("/admin/sales")
    page = text_of(resp.text)
    downtown = {ids["downtown_sold"], ids["walk_in"]}
    assert downtown < _sale_ids(resp.text) and ids["refund"] not in _sale_ids(resp.text)
    assert len(_sale_ids(resp.text)) == 3 and "Uptown" not in page and "Harbor" not in page
    # Bob's client (Downtown is an "own book" store): the sale shows, the client's name does not.
    assert "Ben Bell" not in page and "Private client" in page
    assert "Hope Hill" in page  # Ann's own client
    assert (await ann.get(f"/admin/sales/{ids['refund']}")).status_code == 404
    # Another store's id in the filter is ignored, not honoured.
    other = await ann.get(f"/admin/sales?location={org.locations['uptown']}")
    assert _sale_ids(other.text) == _sale_ids(resp.text)

    cat = await panels(org.users["cat"])
    uptown = await cat.get("/admin/sales")
    assert _sale_ids(uptown.text) == {ids["refund"]}
    # The refund's original sale is at Downtown, out of Cat's scope: no link to it.
    detail = await cat.get(f"/admin/sales/{ids['refund']}")
    assert detail.status_code == 200 and f'/admin/sales/{ids["downtown_sold"]}' not in detail.text


async def test_filters_use_store_days_status_channel_and_location(rt: Runtime, org: Org, panels: Any) -> None:
    ids = await _more_sales(rt, org)
    owner = await panels(org.users["owner"])

    async def found(query: str) -> set[int]:
        resp = await owner.get("/admin/sales?" + query)
        assert resp.status_code == 200
        return _sale_ids(resp.text)

    # The sale at 23:30 New York time on March 10 belongs to March 10, although it is March 11 in UTC.
    assert ids["downtown_sold"] in await found("date_from=2026-03-10&date_to=2026-03-10")
    assert ids["downtown_sold"] not in await found("date_from=2026-03-11&date_to=2026-03-11")
    assert await found("status=layaway") == {ids["walk_in"]}
    assert await found("channel=ecom") == {ids["walk_in"]}
    assert await found(f"location={org.locations['uptown']}") == {ids["refund"]}
    bad = await owner.get("/admin/sales?date_from=yesterday")
    assert "is not a date" in text_of(bad.text) and len(_sale_ids(bad.text)) == 6


async def test_pages_of_fifty(rt: Runtime, org: Org, panels: Any) -> None:
    async with rt.db.transaction() as s:
        for i in range(60):
            s.add(Sale(location_id=org.locations["harbor"], status="completed", currency="USD", total_minor=100 + i,
                       occurred_at=datetime(2025, 1, 1, tzinfo=UTC).replace(hour=i % 24, minute=i)))
    owner = await panels(org.users["owner"])
    first = await owner.get(f"/admin/sales?location={org.locations['harbor']}")
    second = await owner.get(f"/admin/sales?location={org.locations['harbor']}&page=2")
    assert len(_sale_ids(first.text)) == 50 and len(_sale_ids(second.text)) == 11
    assert f"location={org.locations['harbor']}&amp;page=2" in first.text
    assert not _sale_ids(first.text) & _sale_ids(second.text)


async def test_a_sale_page_shows_who_earned_it(rt: Runtime, org: Org, panels: Any) -> None:
    from datetime import timedelta

    from core.attribution.jobs import recompute
    from core.models import Outreach

    ids = await _more_sales(rt, org)
    async with rt.db.transaction() as s:
        ann = (await s.exec(Associate.__table__.select().where(Associate.first_name == "Ann"))).first()  # type: ignore[attr-defined]
        # Ann texts from Uptown; the client buys Downtown four days later.
        s.add(Outreach(client_id=org.clients["bob_client"], associate_id=ann.id, location_id=org.locations["uptown"],
                       state="delivered", body="Your ring is in", delivered_at=LATE_IN_NEW_YORK - timedelta(days=4),
                       sent_at=LATE_IN_NEW_YORK - timedelta(days=4)))
    result = await recompute(rt, [ids["downtown_sold"], ids["walk_in"]])
    assert result.credited == 0  # the ring came back at Uptown: nothing left to credit
    owner = await panels(org.users["owner"])
    page = text_of((await owner.get(f"/admin/sales/{ids['downtown_sold']}")).text)
    assert "No outreach earned this sale" in page

    async with rt.db.transaction() as s:
        from sqlmodel import delete

        await s.exec(delete(SaleLine).where(SaleLine.sale_id == ids["refund"]))  # type: ignore[call-overload]
    assert (await recompute(rt, [ids["downtown_sold"]])).credited == 1
    page = text_of((await owner.get(f"/admin/sales/{ids['downtown_sold']}")).text)
    assert "Credited to" in page and "Last touch" in page and "cross-store" in page
    assert "Engagement-weighted" in page and "SMS delivered" in page and "100% 2,500.00 USD" in page
