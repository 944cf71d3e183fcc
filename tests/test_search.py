"""Client search (core.search) through its two doors, the panel's Clients list and GET /api/v1/clients,
on both backends: phone numbers in any format and by their last digits, names in any order without
accents or case, email addresses whole or in part, ranking, paging, scope, and what results show."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from core.access import Principal
from core.models import Associate, Client, ClientContact, Location, Sale
from core.runtime import Runtime
from core.search import fold, name_key, search
from core.tokens import create_token
from core.users import create_user
from core.web import create_app

PASSWORD = "correct horse battery"


@dataclass
class Book:
    locations: dict[str, int] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # key → email
    tokens: dict[str, str] = field(default_factory=dict)


CLIENTS = (
    # key, first, last, home, emails, phones
    ("renee", "Renée", "García", "downtown", ["renee.garcia@example.com"], ["+13125550177"]),
    # A namesake at another store: only the phone, email and home store tell them apart.
    ("renee_twin", "Renee", "Garcia", "lakeshore", ["rgarcia@example.org"], ["+17735550123"]),
    # Same last seven digits as Renée's number, another area code.
    ("tail_twin", "Paul", "Smith", "downtown", ["garcia.fan@example.net"], ["+12125550177"]),
    ("isabella", "Isabella", "Thompson", "downtown", ["bella@example.com"], ["+13125559876"]),
    ("isabel", "Isabel", "Thompson", "lakeshore", [], ["+13125554321"]),
    ("zoe", "Zoë", "O'Brien", "london", ["zoe@example.co.uk"], ["+442079460018"]),
    ("soren", "Søren", "Groß", "lakeshore", ["rgarcia@example.org.au"], []),
)


async def build_book(rt: Runtime) -> Book:
    book = Book()
    async with rt.db.transaction() as s:
        for key, name, country, tz in (
            ("downtown", "Downtown", "US", "America/Chicago"),
            ("lakeshore", "Lakeshore", "US", "America/Chicago"),
            ("london", "London", "GB", "Europe/London"),
        ):
            loc = Location(name=name, country=country, timezone=tz, outreach_mode="store")
            s.add(loc)
            await s.flush()
            book.locations[key] = loc.id  # type: ignore[assignment]
        for key, first, last, home, emails, phones in CLIENTS:
            c = Client(first_name=first, last_name=last, home_location_id=book.locations[home])
            s.add(c)
            await s.flush()
            book.clients[key] = c.id  # type: ignore[assignment]
            for i, value in enumerate(emails):
                s.add(ClientContact(client_id=c.id, kind="email", value=value, is_primary=i == 0))  # type: ignore[arg-type]
            for i, value in enumerate(phones):
                s.add(ClientContact(client_id=c.id, kind="phone", value=value, is_primary=i == 0))  # type: ignore[arg-type]
        # An old record merged into Renée: never listed.
        old = Client(first_name="Renée", last_name="García", merged_into_id=book.clients["renee"])
        s.add(old)
        await s.flush()
        book.clients["renee_old"] = old.id  # type: ignore[assignment]
        for client, loc, status, total, when in (
            ("renee", "downtown", "completed", 120_000, "2026-01-05T15:00:00"),
            # Her last purchase: at Lakeshore, late in the evening (already the 11th in UTC).
            ("renee", "lakeshore", "completed", 250_000, "2026-03-11T02:30:00"),
            ("renee", "downtown", "voided", 90_000, "2026-04-01T15:00:00"),  # not a purchase
            ("renee", "downtown", "completed", -120_000, "2026-04-02T15:00:00"),  # a refund, not a purchase
            ("renee_twin", "lakeshore", "completed", 45_000, "2025-11-20T18:00:00"),
            ("zoe", "london", "completed", 80_000, "2026-02-14T12:00:00"),
        ):
            s.add(
                Sale(
                    client_id=book.clients[client],
                    location_id=book.locations[loc],
                    status=status,
                    currency="USD",
                    subtotal_minor=total,
                    total_minor=total,
                    occurred_at=datetime.fromisoformat(when).replace(tzinfo=UTC),
                )
            )
        linked = Associate(first_name="Ada", location_id=book.locations["downtown"])
        s.add(linked)
        await s.flush()
        for key, role, locs, associate in (
            ("owner", "owner", [], None),
            ("manager", "manager", ["downtown", "lakeshore"], None),
            ("unlinked", "associate", ["downtown"], None),
        ):
            email = f"{key}@shop.example.com"
            user = await create_user(
                s,
                email=email,
                password=PASSWORD,
                role=role,
                location_ids=[book.locations[x] for x in locs],
                associate_id=associate,
            )
            book.users[key] = email
            _, book.tokens[key] = await create_token(s, user_id=user.id, name=key)  # type: ignore[arg-type]
    # The unlinked associate works at Downtown in "own" mode: a book of their own clients only.
    async with rt.db.transaction() as s:
        downtown = await s.get(Location, book.locations["downtown"])
        assert downtown is not None
        downtown.outreach_mode = "own"
        s.add(downtown)
    return book


@pytest.fixture
async def book(rt: Runtime) -> Book:
    return await build_book(rt)


@pytest.fixture
async def http(rt: Runtime) -> Any:
    transport = httpx.ASGITransport(app=create_app(rt), client=("10.1.2.3", 50000))
    clients: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver.local")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def api_ids(http: Any, book: Book, who: str, **params: Any) -> list[int]:
    resp = await http().get("/api/v1/clients", params=params, headers={"Authorization": f"Bearer {book.tokens[who]}"})
    assert resp.status_code == 200, resp.text
    return [item["id"] for item in resp.json()["items"]]


async def signed_in(http: Any, book: Book, who: str) -> httpx.AsyncClient:
    client = http()
    await client.get("/admin/sign-in")
    resp = await client.post(
        "/admin/sign-in",
        data={"email": book.users[who], "password": PASSWORD, "next": "", "_csrf_token": client.cookies["clasp_csrf"]},
    )
    assert resp.status_code == 303, resp.text
    return client


def panel_ids(html: str) -> list[int]:
    body = html.split('id="client-rows"', 1)[1] if 'id="client-rows"' in html else ""
    return [int(i) for i in re.findall(r'<td data-label="Name"><a href="/admin/clients/(\d+)"', body)]


def text_of(html: str) -> str:
    """The page's text as a reader sees it (tags gone, spaces collapsed, none before punctuation)."""
    return re.sub(r" ([).,])", r"\1", re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


# ------------------------------------------------------------------------------------------- queries

QUERIES = [
    # A whole number, typed as people type it, finds that number only (not the same last digits).
    ("312-555-0177", ["renee"]),
    ("(312) 555 0177", ["renee"]),
    ("+1 312 555 0177", ["renee"]),
    ("3125550177", ["renee"]),
    ("+13125550177", ["renee"]),
    ("020 7946 0018", ["zoe"]),  # read in London's country
    # The last 4 to 7 digits find every number ending so.
    ("555-0177", ["renee", "tail_twin"]),
    ("5550177", ["renee", "tail_twin"]),
    ("0177", ["renee", "tail_twin"]),
    ("9876", ["isabella"]),
    ("555-9999", []),
    # Names: any order, any case, with or without accents, beginnings of words.
    ("renee garcia", ["renee", "renee_twin"]),
    ("RENÉE GARCÍA", ["renee", "renee_twin"]),
    ("García Renée", ["renee", "renee_twin"]),
    ("gar ren", ["renee", "renee_twin"]),
    ("Thompson Isabella", ["isabella"]),
    ("isabella thompson", ["isabella"]),
    ("isabel thompson", ["isabella", "isabel"]),
    ("thompson", ["isabella", "isabel"]),
    ("zoe obrien", []),
    ("zoe o'brien", ["zoe"]),
    ("Brien", ["zoe"]),
    ("soren gross", ["soren"]),
    ("Søren", ["soren"]),
    ("renee smith", []),
    ("sabella", []),  # inside a word, not a beginning
    ("enee", ["renee"]),  # ... but inside an address (renee.garcia@...)
    # Email: whole (any case) or part.
    ("renee.garcia@example.com", ["renee"]),
    ("RENEE.GARCIA@EXAMPLE.COM", ["renee"]),
    ("@example.co.uk", ["zoe"]),
    ("rgarcia@example.org", ["renee_twin"]),  # a whole address is that address
    ("rgarcia@example", ["renee_twin", "soren"]),
    ("bella@", ["isabella"]),
    ("100%", []),
    ("nobody", []),
]


@pytest.mark.parametrize(("query", "expected"), QUERIES)
async def test_every_query_form_finds_the_right_clients(
    rt: Runtime, book: Book, query: str, expected: list[str]
) -> None:
    owner = Principal(user_id=None, role="owner", location_ids=frozenset())
    async with rt.db.session() as s:
        page = await search(s, owner, q=query)
    assert sorted(c.id for c in page.clients) == sorted(book.clients[k] for k in expected), query


async def test_ranking_exact_contacts_then_names_then_parts(rt: Runtime, book: Book) -> None:
    owner = Principal(user_id=None, role="owner", location_ids=frozenset())
    async with rt.db.session() as s:
        # A single word: names first (by last name, first name), then addresses containing it.
        garcia = await search(s, owner, q="garcia")
        tail = await search(s, owner, q="0177")
    ids = book.clients
    assert [h.client.id for h in garcia.hits] == [ids["renee_twin"], ids["renee"], ids["soren"], ids["tail_twin"]]
    assert [h.match for h in garcia.hits] == ["name", "name", "partial", "partial"]
    assert {h.match for h in tail.hits} == {"partial"}
    async with rt.db.session() as s:
        (exact,) = (await search(s, owner, q="+1 312 555 0177")).hits
    assert exact.match == "exact"


@pytest.mark.parametrize("query", ["garcia", "0177", "renee", "example", "rgarcia@example"])
async def test_a_match_too_large_to_rank_by_ids_walks_to_the_same_pages(
    rt: Runtime, book: Book, query: str, monkeypatch: Any
) -> None:
    import core.search

    owner = Principal(user_id=None, role="owner", location_ids=frozenset())

    async def pages() -> list[list[tuple[int, str | None]]]:
        out, cursor = [], None
        while True:
            async with rt.db.session() as s:
                page = await search(s, owner, q=query, limit=1, cursor=cursor)
            out.append([(h.client.id, h.match) for h in page.hits])  # type: ignore[misc]
            cursor = page.next_cursor
            if cursor is None:
                return out

    ranked = await pages()
    # One candidate at most: every match of two or more is walked in name order, rank by rank.
    monkeypatch.setattr(core.search, "MAX_CANDIDATES", 1)
    walked = await pages()
    assert walked == ranked and sum(map(len, ranked)) >= 2, query


async def test_results_carry_phone_email_home_store_and_last_purchase(rt: Runtime, book: Book) -> None:
    owner = Principal(user_id=None, role="owner", location_ids=frozenset())
    async with rt.db.session() as s:
        (renee,) = (await search(s, owner, q="312-555-0177")).hits
        (twin,) = (await search(s, owner, q="rgarcia@example.org")).hits[:1]
    assert (renee.phone, renee.email, renee.home_location) == ("+13125550177", "renee.garcia@example.com", "Downtown")
    # The latest completed sale that is not a refund, dated in its store's timezone.
    assert renee.last_purchase is not None
    bought = renee.last_purchase
    assert (bought.location_name, bought.local_date.isoformat()) == ("Lakeshore", "2026-03-10")
    assert (twin.phone, twin.email, twin.home_location) == ("+17735550123", "rgarcia@example.org", "Lakeshore")
    assert twin.last_purchase is not None and twin.last_purchase.local_date.isoformat() == "2025-11-20"


async def test_fold_and_name_key_match_the_database(rt: Runtime, book: Book) -> None:
    from sqlalchemy import func, select

    samples = [("Renée", "García-López"), ("Zoë", "O'Brien"), ("Søren", "Groß"), ("Łukasz", "Dvořák"), ("", "")]
    async with rt.db.session() as s:
        for first, last in samples:
            got = (await s.exec(select(func.clasp_name_key(first, last)))).one()  # type: ignore[call-overload]
            assert got[0] == name_key(first, last), (first, last)
        assert (await s.exec(select(func.clasp_fold("ÉLODIE")))).one()[0] == fold("ÉLODIE") == "elodie"  # type: ignore[call-overload]


# ------------------------------------------------------------------------------- panel and API alike


@pytest.mark.parametrize("query", ["renee garcia", "555-0177", "garcia", "rgarcia@example.org", "(312) 555 0177", ""])
async def test_panel_and_api_give_the_same_clients(rt: Runtime, book: Book, http: Any, query: str) -> None:
    panel = await signed_in(http, book, "owner")
    html = (await panel.get("/admin/clients", params={"q": query})).text
    from_panel = panel_ids(html)
    from_api = await api_ids(http, book, "owner", q=query)
    if query:
        assert from_panel == from_api and from_api, query  # same ranking, same order
    else:
        # Without a query the panel lists by name, the API by id (its paging contract).
        assert sorted(from_panel) == sorted(from_api) == sorted(v for k, v in book.clients.items() if k != "renee_old")


async def test_api_items_carry_home_store_last_purchase_and_match(rt: Runtime, book: Book, http: Any) -> None:
    resp = await http().get(
        "/api/v1/clients", params={"q": "0177"}, headers={"Authorization": f"Bearer {book.tokens['owner']}"}
    )
    items = {i["id"]: i for i in resp.json()["items"]}
    renee = items[book.clients["renee"]]
    assert renee["phone"] == "+13125550177" and renee["email"] == "renee.garcia@example.com"
    assert renee["home_location_name"] == "Downtown" and renee["match"] == "partial"
    assert renee["last_purchase"]["location_name"] == "Lakeshore"
    assert renee["last_purchase"]["occurred_at"].startswith("2026-03-11T02:30:00")
    assert items[book.clients["tail_twin"]]["last_purchase"] is None


async def test_panel_shows_what_tells_namesakes_apart(rt: Runtime, book: Book, http: Any) -> None:
    panel = await signed_in(http, book, "owner")
    page = text_of((await panel.get("/admin/clients", params={"q": "renee garcia"})).text)
    assert "(312) 555-0177" in page and "(773) 555-0123" in page
    assert "renee.garcia@example.com" in page and "rgarcia@example.org" in page
    assert "Mar 10, 2026 · Lakeshore" in page and "Nov 20, 2025 · Lakeshore" in page
    assert "2 matches" in page


async def test_paging_with_a_cursor_through_ranked_results(rt: Runtime, book: Book, http: Any) -> None:
    everyone = await api_ids(http, book, "owner", q="garcia")
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": "garcia", "limit": 1, **({"cursor": cursor} if cursor else {})}
        auth = {"Authorization": f"Bearer {book.tokens['owner']}"}
        body = (await http().get("/api/v1/clients", params=params, headers=auth)).json()
        seen += [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == everyone and len(seen) == 4
    # A cursor of one order is refused by another (the id listing).
    owner = Principal(user_id=None, role="owner", location_ids=frozenset())
    async with rt.db.session() as s:
        first = await search(s, owner, q="garcia", limit=1)
        assert first.next_cursor is not None
        with pytest.raises(ValueError, match="invalid cursor"):
            await search(s, owner, cursor=first.next_cursor)


async def test_panel_more_appends_the_next_rows(rt: Runtime, book: Book, http: Any, monkeypatch: Any) -> None:
    import admin.routes.clients as clients_route

    monkeypatch.setattr(clients_route, "PAGE_SIZE", 2)
    panel = await signed_in(http, book, "owner")
    first = (await panel.get("/admin/clients", params={"q": "garcia"})).text
    more = re.search(r'hx-get="(/admin/clients\?[^"]+)"', first)
    assert more is not None and panel_ids(first) == [book.clients["renee_twin"], book.clients["renee"]]
    fragment = (await panel.get(more.group(1).replace("&amp;", "&"), headers={"hx-request": "true"})).text
    assert "<html" not in fragment and 'hx-swap-oob="true"' in fragment
    rest = [str(book.clients[k]) for k in ("soren", "tail_twin")]
    assert re.findall(r'href="/admin/clients/(\d+)"', fragment) == rest
    assert "hx-get" not in fragment  # the last page: no further "More"


# ------------------------------------------------------------------------------------------- scope


@pytest.mark.parametrize("query", ["020 7946 0018", "+44 20 7946 0018", "zoe", "zoe@example.co.uk", "0018", "o'brien"])
async def test_a_manager_never_finds_another_stores_client(rt: Runtime, book: Book, http: Any, query: str) -> None:
    owner_ids = await api_ids(http, book, "owner", q=query)
    assert owner_ids == [book.clients["zoe"]]
    assert await api_ids(http, book, "manager", q=query) == []
    panel = await signed_in(http, book, "manager")
    assert panel_ids((await panel.get("/admin/clients", params={"q": query})).text) == []


async def test_a_managers_last_purchase_is_at_their_stores(rt: Runtime, book: Book) -> None:
    manager = Principal(user_id=None, role="manager", location_ids=frozenset({book.locations["downtown"]}))
    async with rt.db.session() as s:
        (renee,) = (await search(s, manager, q="renee.garcia@example.com")).hits
    assert renee.last_purchase is not None and renee.last_purchase.location_name == "Downtown"


# ----------------------------------------------------------------------------------- empty states


async def test_an_unlinked_associate_is_told_why_their_book_is_empty(rt: Runtime, book: Book, http: Any) -> None:
    panel = await signed_in(http, book, "unlinked")
    page = text_of((await panel.get("/admin/clients")).text)
    assert (
        "Your account isn't linked to a POS associate, so your book is empty. Ask an owner to link it "
        "(Users page or clasp user edit EMAIL --associate …)."
    ) in page
    assert "connector" not in page.lower()
    searched = text_of((await panel.get("/admin/clients", params={"q": "renee"})).text)
    assert "Your account isn't linked to a POS associate" in searched


async def test_a_real_empty_book_says_no_clients_yet(rt: Runtime, http: Any) -> None:
    async with rt.db.transaction() as s:
        await create_user(s, email="solo@shop.example.com", password=PASSWORD, role="owner")
    book = Book(users={"owner": "solo@shop.example.com"})
    panel = await signed_in(http, book, "owner")
    page = text_of((await panel.get("/admin/clients")).text)
    assert "No clients yet" in page and "isn't linked" not in page
