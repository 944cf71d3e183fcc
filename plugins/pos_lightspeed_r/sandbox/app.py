"""The Lightspeed R-Series sandbox: a Litestar app faithful to ``shared/api/lightspeed_r.md``.

Serves OAuth (``/auth/oauth/*``), the V3 API (``/API/V3/...``) over a generated jewelry chain with
the real quirks (all strings, one-vs-many, ``""`` relations, missing keys), cursor paging,
filters, ``load_relations``, the leaky bucket and burst limiter with their headers and 429s, and
Customer writes. ``/_sandbox/*`` is the test and demo back door: truth, stats, faults, run-time
edits (a new shop, a customer edited at the till), token expiry and bucket settings.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode

from litestar import Litestar, Request, Response, get, post, route
from litestar.datastructures import State
from litestar.enums import MediaType
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect

from .bucket import Bucket
from .generator import IMAGE_BASE, Dataset, generate
from .oauth import AuthServer, OAuthError
from .query import (
    PRIMARY_KEYS,
    RESERVED,
    Filter,
    QueryError,
    archived_filter,
    decode_cursor,
    encode_cursor,
    key_of,
    matches,
    parse_datetime,
    sort_spec,
)
from .render import NOT_IN_ALL, RELATIONS, collection, render, select_relations

OPTION_TYPES: dict[str, Callable[[Any], Any]] = {
    "shops": int, "clients": int, "years": int, "seed": int, "sales_per_day": float, "items": int,
    "drip_rate": float, "bucket_size": float, "burst_limit": int, "initial_level": float,
    "token_ttl": int, "refresh_per_minute": int, "client_id": str, "client_secret": str, "account_id": int,
    "auto_approve": lambda v: str(v).lower() in ("1", "true", "yes", "on"), "contact_write_mode": str,
    "rotate_refresh_tokens": lambda v: str(v).lower() in ("1", "true", "yes", "on"),
}
LIMIT_MAX = 100


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Sandbox:
    """All mutable sandbox state: the dataset, the authorization server, the bucket, stats, faults."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.ds: Dataset = generate(
            shops=options.get("shops", 3), clients=options.get("clients", 300), years=options.get("years", 5),
            seed=options.get("seed", 7), sales_per_day=options.get("sales_per_day", 3.0), items=options.get("items"),
            account_id=options.get("account_id", 84001),
        )
        self.auth = AuthServer(
            client_id=options.get("client_id", "clasp-sandbox"),
            client_secret=options.get("client_secret", "sandbox-secret"),
            account_id=self.ds.account_id,
            token_ttl=options.get("token_ttl", 3600),
            refresh_per_minute=options.get("refresh_per_minute", 5),
            rotate=options.get("rotate_refresh_tokens", True),
        )
        self.bucket = Bucket(size=options.get("bucket_size", 90.0), drip=options.get("drip_rate", 1.0),
                             burst_limit=options.get("burst_limit", 20), level=options.get("initial_level", 0.0))
        self.auto_approve = options.get("auto_approve", True)
        self.contact_write_mode = options.get("contact_write_mode", "merge")
        self.lock = threading.RLock()
        self.faults: list[dict[str, Any]] = []
        self.versions: dict[str, int] = {}
        self.sorted_cache: dict[tuple[str, str, int], tuple[list[dict[str, Any]], list[tuple[Any, int]]]] = {}
        self.reset_stats()

    def reset_stats(self) -> None:
        self.stats: dict[str, Any] = {"requests": 0, "served": 0, "throttled": 0, "cost": 0.0, "by_status": {},
                                      "log": []}

    def record(self, method: str, path: str, status: int, cost: float) -> None:
        with self.lock:
            s = self.stats
            s["requests"] += 1
            s["by_status"][str(status)] = s["by_status"].get(str(status), 0) + 1
            if status == 429:
                s["throttled"] += 1
            if status < 300:
                s["served"] += 1
                s["cost"] += cost
            if len(s["log"]) < 20000:
                s["log"].append({"t": time.time(), "method": method, "path": path, "status": status, "cost": cost})

    def touch(self, resource: str) -> None:
        self.versions[resource] = self.versions.get(resource, 0) + 1

    def sorted_rows(self, resource: str, field: str) -> tuple[list[dict[str, Any]], list[tuple[Any, int]]]:
        """Rows in ascending (sort value, id) order with their keys, cached until the table changes."""
        version = self.versions.get(resource, 0)
        key = (resource, field, version)
        cached = self.sorted_cache.get(key)
        if cached is None:
            pk = PRIMARY_KEYS[resource]
            keyed = sorted(((key_of(r, field, pk), r) for r in self.ds.table(resource).values()), key=lambda kr: kr[0])
            cached = ([r for _, r in keyed], [k for k, _ in keyed])
            self.sorted_cache = {k: v for k, v in self.sorted_cache.items() if k[2] == self.versions.get(k[0], 0)}
            self.sorted_cache[key] = cached
        return cached


# ----------------------------------------------------------------------------------------- helpers


def _error(
    status: int, message: str, error_class: str = "Exception", headers: dict[str, str] | None = None
) -> Response:
    phrases = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
               422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
               502: "Bad Gateway", 503: "Service Unavailable"}
    body = {"httpCode": str(status), "httpMessage": phrases.get(status, ""), "message": message,
            "errorClass": error_class}
    return Response(content=body, status_code=status, headers=headers or {}, media_type=MediaType.JSON)


def _json(
    body: Any, status: int = 200, headers: dict[str, str] | None = None, *, images: str | None = None
) -> Response:
    text = json.dumps(body)
    if images is not None:
        # The generated Image rows name Lightspeed's Cloudinary folder, which this sandbox (with no
        # internet) cannot reach; it serves a picture for every publicID itself, under the same
        # {baseImageURL}{publicID}.{ext} composition, so clients and the demo show real images.
        text = text.replace(IMAGE_BASE, images)
    return Response(content=text.encode(), status_code=status, headers=headers or {}, media_type=MediaType.JSON)


def _image_svg(public_id: str) -> bytes:
    """A small deterministic product picture: a gem on a tinted card, its colours from the id."""
    digest = hashlib.sha256(public_id.encode()).digest()
    hue, gem = digest[0] * 360 // 256, digest[1] * 360 // 256
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="240" height="240" viewBox="0 0 240 240">'
        f'<rect width="240" height="240" fill="hsl({hue},35%,92%)"/>'
        f'<circle cx="120" cy="138" r="58" fill="none" stroke="hsl(45,70%,50%)" stroke-width="14"/>'
        f'<polygon points="120,46 148,74 120,104 92,74" fill="hsl({gem},70%,55%)" stroke="#fff" stroke-width="3"/>'
        "</svg>"
    ).encode()


@get("/_sandbox/images/{name:str}")
async def product_image(name: str) -> Response:
    public_id = name.rsplit(".", 1)[0]
    if not public_id.isalnum():
        return Response(content=b"not found", status_code=404, media_type=MediaType.TEXT)
    return Response(content=_image_svg(public_id), media_type="image/svg+xml",
                    headers={"Cache-Control": "public, max-age=86400"})


def _relations(raw: str | None, resource: str) -> set[str]:
    if not raw:
        return set()
    known = RELATIONS.get(resource, {})
    if raw == "all":
        return set(known) - NOT_IN_ALL
    try:
        names = json.loads(raw)
    except ValueError:
        names = [raw]
    names = [names] if isinstance(names, str) else names
    unknown = [n for n in names if n not in known]
    if unknown:
        raise QueryError(f"Invalid relation(s) for {resource}: {', '.join(map(str, unknown))}")
    return set(map(str, names))


def request_cost(method: str, resource: str, relations: set[str], listing: bool, body: Any, count: bool) -> float:
    if count:
        return 10.0
    if method != "GET":
        cost = 1.0
        if isinstance(body, dict):
            for value in body.values():
                if isinstance(value, dict):
                    cost += 0.5 + 0.5 * sum(1 for v in value.values() if isinstance(v, dict | list))
        return cost
    cost = 1.0
    kinds = RELATIONS.get(resource, {})
    for name in relations:
        parts = name.split(".")
        base = 0.2 if kinds.get(name) == "many" else 0.1
        factor = 2 if listing else 1
        if len(parts) > 1 and kinds.get(parts[0]) == "many":
            factor *= 2
        cost += base * factor
    return round(cost, 4)


def _extras(sb: Sandbox, resource: str, row: dict[str, Any]) -> dict[str, Any]:
    ds = sb.ds
    if resource == "Item":
        return {"Manufacturer": ds.manufacturers.get(row.get("manufacturerID", 0)),
                "Category": ds.categories.get(row.get("categoryID", 0))}
    if resource == "Sale":
        customer = ds.customers.get(row.get("customerID", 0))
        return {"Customer": {k: v for k, v in customer.items() if k not in RELATIONS["Customer"]} if customer else None}
    return {}


def _present(sb: Sandbox, resource: str, row: dict[str, Any], relations: set[str]) -> Any:
    return render(select_relations(resource, row, relations, _extras(sb, resource, row)))


# ----------------------------------------------------------------------------------------- OAuth


@get("/auth/oauth/authorize", media_type=MediaType.HTML)
async def authorize(request: Request, state: State) -> Response:
    sb: Sandbox = state.sandbox
    q = request.query_params
    try:
        if q.get("response_type") != "code":
            raise OAuthError(400, "unsupported_response_type", "The authorization server does not support this")
        redirect_uri = q.get("redirect_uri", "")
        if not redirect_uri:
            raise OAuthError(400, "invalid_request", "The sandbox needs redirect_uri (the real app has it registered)")
        args = {"client_id": q.get("client_id", ""), "redirect_uri": redirect_uri, "scope": q.get("scope", ""),
                "challenge": q.get("code_challenge", ""), "method": q.get("code_challenge_method", "")}
        if sb.auto_approve:
            code = sb.auth.new_code(**args)
            return Redirect(_with(redirect_uri, code=code, state=q.get("state", "")))
    except OAuthError as exc:
        return _json(exc.body(), exc.status)
    hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in q.items())
    page = (f"<!doctype html><title>Authorize</title><h1>Lightspeed sandbox</h1><p>Allow <b>{escape(args['client_id'])}"
            f"</b> to access <b>{escape(sb.ds.account_name)}</b> ({escape(args['scope'])})?</p>"
            f'<form method="post" action="/auth/oauth/authorize">{hidden}<button>Approve</button></form>')
    return Response(content=page, media_type=MediaType.HTML)


@post("/auth/oauth/authorize", status_code=302)
async def approve(request: Request, state: State) -> Response:
    sb: Sandbox = state.sandbox
    form = dict(await request.form())
    try:
        code = sb.auth.new_code(client_id=form.get("client_id", ""), redirect_uri=form.get("redirect_uri", ""),
                                scope=form.get("scope", ""), challenge=form.get("code_challenge", ""),
                                method=form.get("code_challenge_method", ""))
    except OAuthError as exc:
        return _json(exc.body(), exc.status)
    return Redirect(_with(form["redirect_uri"], code=code, state=form.get("state", "")))


def _with(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        data = json.loads(await request.body() or b"{}")
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        return {k: str(v) for k, v in (await request.form()).items()}
    return dict(parse_qsl((await request.body()).decode()))


@route("/auth/oauth/token", http_method=["GET", "POST", "PUT"])
async def token(request: Request, state: State) -> Response:
    sb: Sandbox = state.sandbox
    if request.method != "POST":
        return _json({"error": "invalid_request", "error_description": "Method not allowed"}, 405)
    try:
        return _json(sb.auth.token(await _form(request)))
    except OAuthError as exc:
        return _json(exc.body(), exc.status)


@post("/auth/oauth/revoke", status_code=200)
async def revoke(request: Request, state: State) -> Response:
    sb: Sandbox = state.sandbox
    form = await _form(request)
    grant = sb.auth.grants.get(form.get("refresh_token", ""))
    if grant:
        grant.revoked = True
    return _json({})


# ----------------------------------------------------------------------------------------- API


@route("/API/V3/{rest:path}", http_method=["GET", "PUT", "POST", "DELETE"])
async def api(request: Request, state: State, rest: FromPath[str]) -> Response:
    sb: Sandbox = state.sandbox
    path = rest.lstrip("/")
    method = request.method
    if sb.faults:
        with sb.lock:
            fault = sb.faults.pop(0) if sb.faults else None
        if fault:
            status = int(fault.get("status", 500))
            sb.record(method, path, status, 0)
            if fault.get("drop"):
                return Response(content=b"{", status_code=200, headers={"Content-Length": "4096",
                                                                       "X-Sandbox-Drop": "1"})
            headers = {"Retry-After": str(fault["retry_after"])} if fault.get("retry_after") is not None else {}
            if status == 429:
                headers["X-LS-API-RateLimit-Type"] = "api-leaky-bucket"
            return _error(status, "Injected fault", "SandboxFault", headers)
    try:
        sb.auth.verify(request.headers.get("authorization"))
    except OAuthError as exc:
        sb.record(method, path, 401, 0)
        return _json(exc.body(), 401)
    raw_body: Any = None
    if method in ("PUT", "POST"):
        try:
            raw_body = json.loads(await request.body() or b"{}")
        except ValueError:
            sb.record(method, path, 400, 0)
            return _error(400, "Invalid JSON body")
    params = dict(request.query_params)
    parts = path.removesuffix(".json").split("/")
    resource = parts[2] if len(parts) >= 3 and parts[0] == "Account" else "Account"
    listing = len(parts) == 3
    try:
        relations = _relations(params.get("load_relations"), resource) if resource in RELATIONS else set()
    except QueryError as exc:
        sb.record(method, path, 400, 0)
        return _error(400, str(exc))
    cost = request_cost(method, resource, relations, listing, raw_body, params.get("count") == "1")
    verdict = sb.bucket.take(cost)
    base_headers = {"X-LS-Acct-Id": str(sb.ds.account_id), "X-LS-Oauth-Client-Id": sb.auth.client_id,
                    **verdict.headers}
    if not verdict.allowed:
        sb.record(method, path, 429, cost)
        return _error(429, "Rate limit exceeded. Please slow down.", "RateLimitExceeded",
                      {**base_headers, "Retry-After": str(verdict.retry_after),
                       "X-LS-API-RateLimit-Type": verdict.limit_type or ""})
    try:
        with sb.lock:
            status, body = _dispatch(sb, request, method, parts, params, relations, raw_body)
    except QueryError as exc:
        status, body = 400, None
        response = _error(400, str(exc), headers=base_headers)
    else:
        images = f"{request.base_url}".rstrip("/") + "/_sandbox/images/"
        response = (_json(body, status, base_headers, images=images) if status < 400
                    else _error(status, body, headers=base_headers))
    sb.record(method, path, status, cost)
    return response


def _dispatch(sb: Sandbox, request: Request, method: str, parts: list[str], params: dict[str, str],
              relations: set[str], body: Any) -> tuple[int, Any]:
    ds = sb.ds
    if parts == ["Account"]:
        return 200, {"@attributes": {"count": "1"}, "Account": {
            "accountID": str(ds.account_id), "name": ds.account_name,
            "link": {"@attributes": {"href": f"/API/V3/Account/{ds.account_id}"}}}}
    if len(parts) < 2 or parts[0] != "Account" or parts[1] != str(ds.account_id):
        return 404, "Object of type 'Account' not found with primary ID '" + (parts[1] if len(parts) > 1 else "") + "'."
    if len(parts) == 2:
        return 200, {"@attributes": {"count": "1", "systemCustomerID": str(ds.account_id)}, "Account": {
            "accountID": str(ds.account_id), "name": ds.account_name, "status": "active",
            "employeeCount": str(len(ds.employees)), "defaultCurrency": {"code": ds.currency, "symbol": "$"}}}
    resource = parts[2]
    if parts[2:] == ["Customer", "CustomField"]:
        rows = [render(f) for f in ds.custom_fields.values()]
        return 200, {"@attributes": {"next": "", "previous": ""}, "CustomField": rows[0] if len(rows) == 1 else rows}
    if resource not in PRIMARY_KEYS:
        return 404, f"Unknown resource {resource}"
    table = ds.table(resource)
    if len(parts) == 3:
        if method == "GET":
            return 200, _list(sb, request, resource, params, relations)
        if method == "POST" and resource == "Customer":
            return 200, _write_customer(sb, None, body)
        return 405, f"{method} is not allowed on {resource}"
    if len(parts) == 4:
        try:
            object_id = int(parts[3])
        except ValueError:
            return 404, f"Object of type '{resource}' not found with primary ID '{parts[3]}'."
        row = table.get(object_id)
        if row is None:
            return 404, f"Object of type '{resource}' not found with primary ID '{object_id}'."
        if method == "GET":
            return 200, {"@attributes": {"count": "1"}, resource: _present(sb, resource, row, relations)}
        if method == "PUT" and resource == "Customer":
            return 200, _write_customer(sb, object_id, body)
        if method == "DELETE" and resource == "Customer":
            row["archived"] = True
            row["timeStamp"] = _now()
            sb.touch(resource)
            return 200, {"@attributes": {"count": "1"}, resource: _present(sb, resource, row, {"Contact"})}
        return 405, f"{method} is not allowed on {resource}"
    return 404, "Not found"


def _full_key(cursor: tuple[Any, int], by_primary_key: bool) -> tuple[Any, int]:
    # A primary-key cursor is just [id]; the sort key of such a row is (id, id).
    return (cursor[1], cursor[1]) if by_primary_key else cursor


def _list(sb: Sandbox, request: Request, resource: str, params: dict[str, str], relations: set[str]) -> dict[str, Any]:
    if params.get("count") == "1":
        if set(params) & {"limit", "sort", "after", "before"}:
            raise QueryError("count cannot be combined with limit, sort, after or before")
        rows = list(archived_filter(sb.ds.table(resource).values(), params.get("archived", "false")))
        rows = [r for r in rows if all(matches(r, f, v) for f, v in params.items() if f not in RESERVED)]
        return {"@attributes": {"count": str(len(rows))}}
    try:
        limit = int(params.get("limit", LIMIT_MAX))
    except ValueError:
        raise QueryError("limit must be a number") from None
    if not 0 <= limit <= LIMIT_MAX:
        raise QueryError(f"limit must be between 0 and {LIMIT_MAX}")
    field, descending = sort_spec(resource, params.get("sort"))
    pk = PRIMARY_KEYS[resource]
    filters = [(f, v) for f, v in params.items() if f not in RESERVED]
    after = _full_key(decode_cursor(params["after"]), field == pk) if params.get("after") else None
    before = _full_key(decode_cursor(params["before"]), field == pk) if params.get("before") else None
    rows, keys = sb.sorted_rows(resource, field)
    # Walk the sorted keys from the cursor (bisect, not a scan): ascending after "after", descending
    # before it; "before" walks the other way and the page is flipped back afterwards.
    if descending:
        start = bisect_left(keys, after) - 1 if after is not None else len(rows) - 1
        indexes: Iterable[int] = range(start, -1, -1)
        if before is not None:
            indexes = range(bisect_right(keys, before), len(rows))
    else:
        start = bisect_right(keys, after) if after is not None else 0
        indexes = range(start, len(rows))
        if before is not None:
            indexes = range(bisect_left(keys, before) - 1, -1, -1)
    checks = [Filter(f, v) for f, v in filters]
    archived = (params.get("archived") or "false").lower()
    found: list[dict[str, Any]] = []
    for i in indexes:
        row = rows[i]
        if archived == "only" and not row.get("archived"):
            continue
        if archived not in ("true", "1", "all", "only") and row.get("archived"):
            continue
        if all(check(row) for check in checks):
            found.append(row)
            if len(found) > limit:
                break
    more = len(found) > limit
    page = found[:limit]
    if before is not None:
        page.reverse()
    base = f"{request.base_url}".rstrip("/") + request.url.path
    keep = [(k, v) for k, v in params.items() if k not in ("after", "before", "limit", "sort")]
    keep += [("limit", str(limit)), ("sort", params.get("sort") or field)]
    next_url = ""
    if page and (more if before is None else True):
        next_url = base + "?" + urlencode([*keep, ("after", encode_cursor(key_of(page[-1], field, pk), field == pk))])
    previous_url = ""
    if page and (after is not None or (before is not None and more)):
        previous_url = base + "?" + urlencode(
            [*keep, ("before", encode_cursor(key_of(page[0], field, pk), field == pk))])
    out: dict[str, Any] = {"@attributes": {"next": next_url, "previous": previous_url}}
    if page:  # zero rows: the resource key is absent altogether
        rendered = [_present(sb, resource, row, relations) for row in page]
        out[resource] = rendered[0] if len(rendered) == 1 else rendered
    return out


# ----------------------------------------------------------------------------------------- writes


def _scalar_in(value: Any) -> Any:
    return value if not isinstance(value, bool) else ("true" if value else "false")


def _as_bool(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1")


def _write_customer(sb: Sandbox, customer_id: int | None, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise QueryError("Body must be a Customer object")
    if "Customer" in body and isinstance(body["Customer"], dict) and len(body) == 1:
        raise QueryError("Send the Customer fields unwrapped, not inside {\"Customer\": ...}")
    ds = sb.ds
    now = _now()
    if customer_id is None:
        customer_id = max(ds.customers, default=0) + 1
        if not str(body.get("firstName", "")).strip() and not str(body.get("lastName", "")).strip():
            raise QueryError("Customer not created: firstName or lastName is required.")
        row: dict[str, Any] = {
            "customerID": customer_id, "firstName": "", "lastName": "", "dob": None, "archived": False,
            "title": "", "company": "", "createTime": now, "timeStamp": now, "creditAccountID": 0,
            "customerTypeID": 0, "discountID": 0, "taxCategoryID": 0, "contactID": 5000 + customer_id,
            "noteID": 0, "Contact": {"contactID": 5000 + customer_id, "custom": "", "noEmail": True, "noPhone": True,
                                     "noMail": True, "timeStamp": now, "Addresses": [], "Phones": [], "Emails": [],
                                     "Websites": []},
            "Note": {"noteID": 0, "note": "", "isPublic": False, "timeStamp": now}, "CustomFieldValues": [],
        }
        ds.customers[customer_id] = row
    row = ds.customers[customer_id]
    for key in ("firstName", "lastName", "title", "company"):
        if key in body:
            row[key] = str(body[key] if body[key] is not None else "")
    if "archived" in body:
        row["archived"] = _as_bool(body["archived"])
    if "dob" in body:
        row["dob"] = parse_datetime(str(body["dob"])) if body["dob"] not in (None, "") else None
    contact = body.get("Contact")
    if isinstance(contact, dict):
        stored = row["Contact"]
        for flag in ("noEmail", "noPhone", "noMail"):
            if flag in contact:
                stored[flag] = _as_bool(contact[flag])
        for wrapper, singular, key in (("Phones", "ContactPhone", "useType"), ("Emails", "ContactEmail", "useType"),
                                       ("Addresses", "ContactAddress", None)):
            if wrapper not in contact:
                continue
            sent = contact[wrapper]
            entries = sent.get(singular) if isinstance(sent, dict) else []
            entries = [entries] if isinstance(entries, dict) else list(entries or [])
            entries = [{k: str(_scalar_in(v)) for k, v in e.items()} for e in entries if isinstance(e, dict)]
            if key is None or sb.contact_write_mode == "replace":
                stored[wrapper] = [e for e in entries if any(str(v).strip() for k, v in e.items() if k != key)]
            else:
                # One entry per useType: sent entries replace theirs, the others stay (undocumented; see notes).
                merged = {e.get(key): e for e in stored[wrapper]}
                for e in entries:
                    merged[e.get(key)] = e
                stored[wrapper] = [e for e in merged.values() if str(e.get("number", e.get("address", ""))).strip()]
        stored["timeStamp"] = now
    note = body.get("Note")
    if isinstance(note, dict) and "note" in note:
        row["Note"] = {**row.get("Note", {}), "note": str(note["note"] or ""), "timeStamp": now}
    values = body.get("CustomFieldValues")
    if isinstance(values, dict):
        entries = values.get("CustomFieldValue")
        entries = [entries] if isinstance(entries, dict) else list(entries or [])
        current = {int(v["customFieldID"]): v for v in row.get("CustomFieldValues", [])}
        for e in entries:
            field_id = int(e.get("customFieldID", 0))
            definition = ds.custom_fields.get(field_id)
            if definition is None:
                raise QueryError(f"Unknown customFieldID {field_id}")
            if _as_bool(e.get("deleted", False)):
                current.pop(field_id, None)
                continue
            value: Any = e.get("value")
            if definition["type"] == "date" and value not in (None, ""):
                value = parse_datetime(str(value)) if "T" in str(value) else parse_datetime(f"{value}T00:00:00+00:00")
            current[field_id] = {"customFieldValueID": customer_id * 10 + field_id, "customFieldID": field_id,
                                 "name": definition["name"], "type": definition["type"], "value": value}
        row["CustomFieldValues"] = list(current.values())
    row["timeStamp"] = now  # a customer write always moves timeStamp, contact-only ones included
    sb.touch("Customer")
    return {"@attributes": {"count": "1"},
            "Customer": _present(sb, "Customer", row, {"Contact", "Note", "CustomFieldValues"})}


# ----------------------------------------------------------------------------------------- back door


@get("/_sandbox/truth")
async def truth(state: State) -> dict[str, Any]:
    return state.sandbox.ds.truth.as_dict()


@get("/_sandbox/stats")
async def stats(state: State, log: FromQuery[bool] = False) -> dict[str, Any]:
    sb: Sandbox = state.sandbox
    with sb.lock:
        out = {k: v for k, v in sb.stats.items() if k != "log" or log}
        out["rows"] = {r: len(sb.ds.table(r)) for r in PRIMARY_KEYS}
        out["bucket"] = {"size": sb.bucket.size, "drip": sb.bucket.drip, "burst_limit": sb.bucket.burst_limit}
        out["oauth"] = {"issued": sb.auth.issued, "refreshes": sb.auth.refreshes}
    return out


@post("/_sandbox/stats/reset", status_code=200)
async def stats_reset(state: State) -> dict[str, Any]:
    state.sandbox.reset_stats()
    return {"ok": True}


@post("/_sandbox/faults", status_code=200)
async def faults(state: State, data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    sb: Sandbox = state.sandbox
    count = int(data.get("count", 1))
    with sb.lock:
        sb.faults.extend({k: v for k, v in data.items() if k != "count"} for _ in range(count))
    return {"pending": len(sb.faults)}


@post("/_sandbox/tokens/expire", status_code=200)
async def expire_tokens(state: State) -> dict[str, Any]:
    state.sandbox.auth.expire_all()
    return {"ok": True}


@post("/_sandbox/bucket", status_code=200)
async def configure_bucket(state: State, data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    sb: Sandbox = state.sandbox
    sb.bucket.configure(size=data.get("size"), drip=data.get("drip"), burst_limit=data.get("burst_limit"),
                        level=data.get("level"))
    return {"size": sb.bucket.size, "drip": sb.bucket.drip, "burst_limit": sb.bucket.burst_limit}


@post("/_sandbox/shops", status_code=201)
async def add_shop(state: State, data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    """A shop opened since the last sync (for "a new shop appears after the next sync")."""
    sb: Sandbox = state.sandbox
    with sb.lock:
        shop_id = max(sb.ds.shops, default=0) + 1
        now = _now()
        sb.ds.shops[shop_id] = {
            "shopID": shop_id, "name": str(data.get("name") or f"Maison Clasp Shop {shop_id}"),
            "timeZone": str(data.get("timeZone") or "America/New_York"), "archived": False, "timeStamp": now,
            "serviceRate": Decimal(0), "taxLabor": False, "contactID": 1000 + shop_id, "taxCategoryID": 1,
            "Contact": {"contactID": 1000 + shop_id, "timeStamp": now, "Phones": [], "Emails": [], "Websites": [],
                        "Addresses": [{"city": str(data.get("city", "")), "countryCode": str(data.get("countryCode",
                                                                                                      "US"))}]},
        }
        sb.touch("Shop")
        return {"shopID": shop_id}


@route("/_sandbox/customers/{customer_id:int}", http_method=["PATCH"])
async def edit_customer(state: State, customer_id: FromPath[int], data: JSONBody[dict[str, Any]]) -> Response:
    """An edit made at the till: names, email, phone, dob (YYYY-MM-DD), note, archived, the contact
    flags (noEmail, noPhone, noMail) and custom fields by name (``{"custom": {"Text Opt-In": "true"}}``,
    an empty value clears one)."""
    sb: Sandbox = state.sandbox
    with sb.lock:
        row = sb.ds.customers.get(customer_id)
        if row is None:
            return _error(404, f"no customer {customer_id}")
        now = _now()
        for key in ("firstName", "lastName"):
            if key in data:
                row[key] = str(data[key])
        if "email" in data:
            row["Contact"]["Emails"] = [{"address": str(data["email"]), "useType": "Primary"}] if data["email"] else []
        if "phone" in data:
            others = [p for p in row["Contact"]["Phones"] if p["useType"] != "Mobile"]
            row["Contact"]["Phones"] = ([{"number": str(data["phone"]), "useType": "Mobile"}] if data["phone"]
                                        else []) + others
        if "dob" in data:
            row["dob"] = parse_datetime(f"{data['dob']}T00:00:00+00:00") if data["dob"] else None
        if "note" in data:
            row["Note"] = {**row.get("Note", {}), "note": str(data["note"]), "timeStamp": now}
        if "archived" in data:
            row["archived"] = bool(data["archived"])
        for flag in ("noEmail", "noPhone", "noMail"):
            if flag in data:
                row["Contact"][flag] = bool(data[flag])
        for name, value in (data.get("custom") or {}).items():
            field = next((f for f in sb.ds.custom_fields.values() if f["name"] == name), None)
            if field is None:
                return _error(400, f"no custom field {name!r}")
            values = [v for v in row.get("CustomFieldValues", []) if v["customFieldID"] != field["customFieldID"]]
            if value not in (None, ""):
                values.append({"customFieldValueID": customer_id * 10 + int(field["customFieldID"]),
                               "customFieldID": field["customFieldID"], "name": name, "type": field["type"],
                               "value": str(value)})
            row["CustomFieldValues"] = values
        row["Contact"]["timeStamp"] = now
        row["timeStamp"] = now
        sb.touch("Customer")
        return _json(render(select_relations("Customer", row, {"Contact", "Note"}, {})))


@get("/", media_type=MediaType.HTML)
async def index(state: State) -> str:
    sb: Sandbox = state.sandbox
    t = sb.ds.truth
    return (
        "<!doctype html><title>Lightspeed R-Series sandbox</title><h1>Lightspeed Retail R-Series sandbox</h1>"
        f"<p>{escape(sb.ds.account_name)} (account {sb.ds.account_id}): {t.shops} shops, {t.employees} employees, "
        f"{t.customer_records} customers ({t.distinct_persons} people), {t.items} items, {t.sales} sales.</p>"
        f"<p>OAuth client id <code>{escape(sb.auth.client_id)}</code>, secret <code>{escape(sb.auth.client_secret)}"
        f"</code>. Bucket {sb.bucket.size:g}, drip {sb.bucket.drip:g}/s, burst {sb.bucket.burst_limit}/s.</p>"
        "<p>Back door: <a href='/_sandbox/truth'>truth</a> · <a href='/_sandbox/stats'>stats</a></p>"
    )


def coerce_options(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key not in OPTION_TYPES:
            # TypeError, like any unexpected keyword argument (the CLI reports it as a bad option).
            raise TypeError(f"unknown lightspeed-r sandbox option {key!r}; known: {', '.join(sorted(OPTION_TYPES))}")
        out[key] = OPTION_TYPES[key](value)
    return out


def create_app(**options: Any) -> Litestar:
    """The sandbox app. Options (strings are accepted, as from ``--option k=v``): see ``OPTION_TYPES``."""
    sandbox = Sandbox(**coerce_options(options))
    app = Litestar(
        route_handlers=[authorize, approve, token, revoke, api, truth, stats, stats_reset, faults, expire_tokens,
                        configure_bucket, add_shop, edit_customer, product_image, index],
        state=State({"sandbox": sandbox}),
        openapi_config=None,
        debug=False,
    )
    return app


__all__ = ["Sandbox", "collection", "create_app"]
