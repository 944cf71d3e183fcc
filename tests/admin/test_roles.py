"""Every role × every panel route × location scope, over real HTTP on the real app.

Roles: owner (everything), manager (Downtown), associate Ann (Downtown, "own" mode: her clients),
associate Cat (Uptown, "store" mode: the store book). Scoped resources answer 404 outside the
person's scope — the same as for ids that do not exist — so other stores' ids stay opaque.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin.conftest import Org, text_of

PEOPLE = ("owner", "manager", "ann", "cat")
ALL = set(PEOPLE)
STAFF = {"owner", "manager"}
OWNER = {"owner"}

# Who may see each client (by the rules in core.access).
CLIENT_SCOPE = {
    "ann_client": {"owner", "manager", "ann"},
    "bob_client": {"owner", "manager"},
    "uptown_client": {"owner", "cat"},
    "harbor_client": {"owner"},
    "harbor_bought_downtown": {"owner", "manager", "ann"},
}
LOCATION_SCOPE = {"downtown": {"owner", "manager", "ann"}, "uptown": {"owner", "cat"}, "harbor": {"owner"}}
CLIENT_NAMES = {
    "ann_client": "Ada Ames",
    "bob_client": "Ben Bell",
    "uptown_client": "Uma Urban",
    "harbor_client": "Hal Hart",
    "harbor_bought_downtown": "Hope Hill",
}

# (method, path, roles allowed by the route's guard, success status).
ROUTES: list[tuple[str, str, set[str], int]] = [
    ("GET", "/admin", ALL, 200),
    ("GET", "/admin/clients", ALL, 200),
    ("GET", "/admin/locations", ALL, 200),
    ("GET", "/admin/connectors", STAFF, 200),
    ("GET", "/admin/connectors/{connector}", STAFF, 200),
    ("GET", "/admin/connectors/{connector}/status", STAFF, 200),
    ("GET", "/admin/connectors/new", OWNER, 200),
    ("GET", "/admin/connectors/new?type=lightspeed_x", OWNER, 200),
    ("POST", "/admin/connectors/new", OWNER, 422),  # empty form: inline errors
    ("POST", "/admin/connectors/{connector}/settings", OWNER, 303),
    ("POST", "/admin/connectors/{connector}/enabled", OWNER, 303),
    ("POST", "/admin/connectors/{connector}/authorize", OWNER, 303),
    ("POST", "/admin/connectors/{connector}/check", STAFF, 303),
    ("POST", "/admin/connectors/{connector}/sync", STAFF, 303),
    ("GET", "/admin/oauth/callback?state=x&code=y", OWNER, 400),  # unknown state
    ("GET", "/admin/users", OWNER, 200),
    ("POST", "/admin/users", OWNER, 422),  # empty form: the error is shown
    ("GET", "/admin/audit", OWNER, 200),
    ("GET", "/admin/audit?action=auth.sign_in", OWNER, 200),
]


def _data(path: str) -> dict[str, Any]:
    if path.endswith("/enabled"):
        return {"enabled": "true"}
    if path.endswith("/new"):
        return {"type": "lightspeed_x"}
    return {}


@pytest.mark.parametrize("person", PEOPLE)
async def test_route_guards(panels: Any, org: Org, person: str) -> None:
    panel = await panels(org.users[person])
    for method, template, allowed, ok_status in ROUTES:
        path = template.format(connector=org.connector_id)
        if method == "GET":
            resp = await panel.get(path)
        else:
            resp = await panel.post(path, _data(path))
        expected = ok_status if person in allowed else 403
        assert resp.status_code == expected, f"{person} {method} {path}: {resp.status_code}\n{resp.text[:400]}"
        if expected == 403:
            assert "You do not have access to this" in resp.text


@pytest.mark.parametrize("person", PEOPLE)
async def test_client_scope_by_direct_url_and_list(panels: Any, org: Org, person: str) -> None:
    panel = await panels(org.users[person])
    listing = text_of((await panel.get("/admin/clients")).text)
    for key, client_id in org.clients.items():
        visible = person in CLIENT_SCOPE[key]
        resp = await panel.get(f"/admin/clients/{client_id}")
        assert resp.status_code == (200 if visible else 404), f"{person} → client {key}: {resp.status_code}"
        if visible:
            assert CLIENT_NAMES[key] in text_of(resp.text)
        else:
            assert CLIENT_NAMES[key] not in text_of(resp.text)
        assert (CLIENT_NAMES[key] in listing) is visible, f"{person} list vs {key}"
    # Search stays inside the scope too.
    found = text_of((await panel.get("/admin/clients?q=hal")).text)
    assert ("Hal Hart" in found) is (person == "owner")


async def test_sales_of_a_shared_client_are_scoped_to_the_viewers_stores(panels: Any, org: Org) -> None:
    owner, manager = await panels(org.users["owner"]), await panels(org.users["manager"])
    url = f"/admin/clients/{org.clients['harbor_bought_downtown']}"
    assert "Harbor" in text_of((await owner.get(url)).text)
    manager_view = text_of((await manager.get(url)).text)
    assert "1,250.00 USD" in manager_view
    assert "990.00 USD" not in manager_view  # the Harbor purchase is outside the manager's stores


@pytest.mark.parametrize("person", PEOPLE)
async def test_location_scope(panels: Any, org: Org, person: str) -> None:
    panel = await panels(org.users[person])
    listing = text_of((await panel.get("/admin/locations")).text)
    for key, location_id in org.locations.items():
        visible = person in LOCATION_SCOPE[key]
        assert (key.title() in listing) is visible, f"{person} sees location {key}?"
        resp = await panel.post(f"/admin/locations/{location_id}/outreach-mode", {"outreach_mode": "store"})
        if person not in STAFF:
            expected = 403
        else:
            expected = 303 if visible else 404
        assert resp.status_code == expected, f"{person} sets mode of {key}: {resp.status_code}"


async def test_outreach_mode_switch_changes_an_associates_book(panels: Any, org: Org) -> None:
    ann, manager = await panels(org.users["ann"]), await panels(org.users["manager"])
    bob_client = f"/admin/clients/{org.clients['bob_client']}"
    assert (await ann.get(bob_client)).status_code == 404
    resp = await manager.post(f"/admin/locations/{org.locations['downtown']}/outreach-mode", {"outreach_mode": "store"})
    assert resp.status_code == 303
    assert (await ann.get(bob_client)).status_code == 200
    owner = await panels(org.users["owner"])
    audit = text_of((await owner.get("/admin/audit?action=location.outreach_mode")).text)
    assert "manager@example.com" in audit and "to: store" in audit


@pytest.mark.parametrize("person", PEOPLE)
async def test_nav_shows_only_what_the_role_may_open(panels: Any, org: Org, person: str) -> None:
    panel = await panels(org.users[person])
    html = (await panel.get("/admin")).text
    assert ('href="/admin/connectors"' in html) is (person in STAFF)
    assert ('href="/admin/audit"' in html) is (person == "owner")
    assert ('href="/admin/users"' in html) is (person == "owner")
    assert 'href="/admin/clients"' in html
