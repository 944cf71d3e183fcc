"""The Salesforce sandbox: a Litestar app faithful to ``shared/api/salesforce_twilio.md`` Part A.

OAuth (``POST /services/oauth2/token``, form-encoded):

- ``grant_type=refresh_token`` with ``client_id``, ``client_secret``, ``refresh_token`` (option
  ``rotate_refresh_tokens`` hands out a new refresh token each time and retires the old one);
- ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` with an RS256 ``assertion`` whose
  ``iss`` is the client id, ``sub`` a username, ``aud`` the login URL (this sandbox's URL, or
  login./test.salesforce.com) and ``exp`` in the future, signed by the key whose public half is
  option ``jwt_public_key`` (PEM; without one, every assertion is refused as an unknown certificate).
- Answers ``access_token``, ``instance_url`` (this sandbox), ``id``, ``token_type``, ``issued_at``;
  errors are 400 ``{"error", "error_description"}``.

REST under ``/services/data/vXX.X/`` with ``Authorization: Bearer``:

- ``PATCH sobjects/{obj}/{extField}/{value}``: 201 created / 200 updated (``{"id","success","errors",
  "created"}``), 300 with the matching record URLs when several records carry the value, 404
  ``NOT_FOUND`` when the field is not an external ID of the object, 400 error arrays otherwise.
- ``PATCH composite/sobjects/{obj}/{extField}`` (upsert, ≤200) and ``PATCH composite/sobjects`` (update
  by ``id``): always 200 with per-record results (``statusCode`` errors, ``DUPLICATE_EXTERNAL_ID``,
  ``allOrNone`` → ``ALL_OR_NONE_OPERATION_ROLLED_BACK``).
- ``GET query?q=`` (see :mod:`.soql`), ``nextRecordsUrl`` paging (option ``query_batch_size``).
- Bulk API 2.0 ingest: ``POST jobs/ingest``, ``PUT jobs/ingest/{id}/batches`` (CSV, 201), ``PATCH
  jobs/ingest/{id}`` (``UploadComplete``/``Aborted``), ``GET jobs/ingest/{id}``, ``.../successfulResults/``,
  ``.../failedResults/``. Relationship columns ``Contact__r.Clasp_Client_Id__c``; empty cells are
  left alone, ``#N/A`` clears.
- ``GET limits``, ``GET sobjects/{obj}/describe``.
- A duplicate rule on Contact email (case-insensitive; on create and on an email change):
  ``DUPLICATES_DETECTED`` with the ``duplicateResult`` Salesforce sends.
- Every API answer carries ``Sforce-Limit-Info: api-usage=N/M``; at the daily limit every call is
  refused with 403 ``REQUEST_LIMIT_EXCEEDED``. Expired sessions answer 401 ``INVALID_SESSION_ID``.

Back door (``/_sandbox/*``, no auth): ``GET/POST /_sandbox/records/{obj}``, ``PATCH/DELETE
/_sandbox/records/{obj}/{id}`` (a person editing the org), ``POST /_sandbox/expire-sessions``,
``POST /_sandbox/faults`` ``{"status": 503, "count": 1, "after": 0, "path": "composite"}`` (status 401
ends every session at that call),
``POST /_sandbox/config`` (``daily_limit``, ``api_usage``, ``duplicate_rule``, ``bulk_delay``,
``clear_faults``),
``GET /_sandbox/stats``, ``POST /_sandbox/reset``. ``GET /`` lists what arrived.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import secrets
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import parse_qsl

import jwt
from litestar import Litestar, Request, Response, delete, get, patch, post, route
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from .org import EXTERNAL_IDS, FIELDS, PREFIX, MultipleMatches, Org, RecordError
from .soql import SoqlError, field_names, matches, parse

SANDBOX_CLIENT_ID = "3MVG9sandbox.clasp.connected.app"
SANDBOX_CLIENT_SECRET = "sandbox-consumer-secret"
SANDBOX_REFRESH_TOKEN = "5Aep861sandbox-refresh-token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
KNOWN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


def _bool(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


class Sandbox:
    def __init__(
        self,
        *,
        client_id: str = SANDBOX_CLIENT_ID,
        client_secret: str = SANDBOX_CLIENT_SECRET,
        refresh_token: str = SANDBOX_REFRESH_TOKEN,
        jwt_public_key: str | None = None,
        username: str = "integration@clasp.example",
        rotate_refresh_tokens: Any = False,
        daily_limit: Any = 15000,
        api_usage: Any = 0,
        query_batch_size: Any = 2000,
        duplicate_rule: Any = True,
        bulk_delay: Any = 0.05,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.initial_refresh_token = refresh_token
        self.jwt_public_key = jwt_public_key
        self.username = username
        self.rotate = _bool(rotate_refresh_tokens)
        self.daily_limit = int(daily_limit)
        self.initial_usage = int(api_usage)
        self.query_batch_size = int(query_batch_size)
        self.duplicate_rule = _bool(duplicate_rule)
        self.bulk_delay = float(bulk_delay)
        self.reset()

    def reset(self) -> None:
        self.org = Org(duplicate_rule=self.duplicate_rule)
        self.refresh_tokens = {self.initial_refresh_token}
        self.sessions: set[str] = set()
        self.api_usage = self.initial_usage
        self.faults: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self.token_calls = 0
        self.jobs: dict[str, dict[str, Any]] = {}
        self.query_cursors: dict[str, list[dict[str, Any]]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------------------------- helpers

    def limit_header(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_usage}/{self.daily_limit}"}

    def answer(self, body: Any, status: int = 200, *, media_type: str = "application/json") -> Response[Any]:
        if media_type == "application/json":
            content: Any = json.dumps(body) if body is not None else b""
        else:
            content = body
        return Response(content, status_code=status, media_type=media_type, headers=self.limit_header())

    def errors(self, status: int, code: str, message: str) -> Response[Any]:
        return self.answer([{"message": message, "errorCode": code}], status)

    def fault(self, path: str) -> dict[str, Any] | None:
        for fault in self.faults:
            if fault.get("path") and fault["path"] not in path:
                continue
            if fault.get("after", 0) > 0:
                fault["after"] -= 1
                continue
            fault["count"] -= 1
            if fault["count"] <= 0:
                self.faults.remove(fault)
            return fault
        return None

    # --------------------------------------------------------------------------------------- oauth

    def token(self, form: dict[str, str], base_url: str) -> Response[Any]:
        self.token_calls += 1
        grant = form.get("grant_type")
        if grant == "refresh_token":
            if form.get("client_id") != self.client_id:
                return Response({"error": "invalid_client_id", "error_description": "client identifier invalid"},
                                status_code=400)
            if form.get("client_secret") != self.client_secret:
                return Response({"error": "invalid_client", "error_description": "invalid client credentials"},
                                status_code=400)
            if form.get("refresh_token") not in self.refresh_tokens:
                return Response({"error": "invalid_grant", "error_description": "expired access/refresh token"},
                                status_code=400)
            body = self._session(base_url)
            if self.rotate:
                self.refresh_tokens.discard(form["refresh_token"])
                new = "5Aep861" + secrets.token_urlsafe(24)
                self.refresh_tokens.add(new)
                body["refresh_token"] = new
            return Response(body, status_code=200)
        if grant == JWT_GRANT:
            if not self.jwt_public_key:
                return Response({"error": "invalid_client", "error_description": "no certificate uploaded for this "
                                 "connected app"}, status_code=400)
            audiences = [base_url.rstrip("/"), *KNOWN_AUDIENCES]
            try:
                claims = jwt.decode(form.get("assertion", ""), self.jwt_public_key, algorithms=["RS256"],
                                    audience=audiences, options={"require": ["exp", "iss", "sub", "aud"]})
            except jwt.PyJWTError as exc:
                return Response({"error": "invalid_grant", "error_description": f"invalid assertion: {exc}"},
                                status_code=400)
            if claims.get("iss") != self.client_id:
                return Response({"error": "invalid_client_id", "error_description": "client identifier invalid"},
                                status_code=400)
            if claims.get("sub") != self.username:
                return Response({"error": "invalid_grant", "error_description": "user hasn't approved this consumer"},
                                status_code=400)
            return Response(self._session(base_url), status_code=200)
        return Response({"error": "unsupported_grant_type", "error_description": "grant type not supported"},
                        status_code=400)

    def _session(self, base_url: str) -> dict[str, Any]:
        token = "00DSbx!" + secrets.token_urlsafe(32)
        self.sessions.add(token)
        return {
            "access_token": token,
            "instance_url": base_url.rstrip("/"),
            "id": f"{base_url.rstrip('/')}/id/00DSbx000000001/005Sbx000000001",
            "token_type": "Bearer",
            "issued_at": str(int(datetime.now(UTC).timestamp() * 1000)),
            "signature": secrets.token_urlsafe(16),
            "scope": "api refresh_token",
        }

    # ----------------------------------------------------------------------------------------- api

    async def api(self, request: Request[Any, Any, Any], path: str) -> Response[Any]:
        parts = [p for p in path.strip("/").split("/") if p]
        if not parts or not parts[0].startswith("v"):
            return self.errors(404, "NOT_FOUND", "The requested resource does not exist")
        version, rest = parts[0], parts[1:]
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.sessions:
            return self.errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if self.api_usage >= self.daily_limit:
            return self.errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        self.api_usage += 1
        kind = f"{request.method} {'/'.join(rest[:2])}"
        self.calls[kind] = self.calls.get(kind, 0) + 1
        fault = self.fault("/".join(rest))
        if fault is not None:
            status = int(fault.get("status", 503))
            if status == 401:  # the session ends mid-push (timeout, an admin revoking it)
                self.sessions.clear()
                return self.errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
            code = {503: "SERVER_UNAVAILABLE", 500: "UNKNOWN_EXCEPTION"}.get(status, "SERVER_UNAVAILABLE")
            return self.errors(status, code, "Service temporarily unavailable, try again later")
        body = await request.body()
        try:
            return await self._route(request, version, rest, body)
        except RecordError as exc:
            return self.answer([exc.as_error()], 404 if exc.code == "NOT_FOUND" else 400)
        except SoqlError as exc:
            return self.errors(400, "MALFORMED_QUERY", str(exc))

    async def _route(
        self, request: Request[Any, Any, Any], version: str, rest: list[str], body: bytes
    ) -> Response[Any]:
        method = request.method
        if rest == ["limits"] and method == "GET":
            return self.answer({"DailyApiRequests": {"Max": self.daily_limit,
                                                     "Remaining": self.daily_limit - self.api_usage},
                                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000}})
        if len(rest) == 3 and rest[0] == "sobjects" and rest[2] == "describe" and method == "GET":
            self.org.check_object(rest[1])
            fields = [{"name": "Id"}] + [{"name": f, "externalId": f in EXTERNAL_IDS[rest[1]]}
                                          for f in sorted(FIELDS[rest[1]])]
            return self.answer({"name": rest[1], "fields": fields})
        if len(rest) == 4 and rest[0] == "sobjects" and method == "PATCH":
            return self._upsert_one(version, rest[1], rest[2], rest[3], _json(body))
        if rest[:2] == ["composite", "sobjects"] and method == "PATCH":
            payload = _json(body)
            if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
                return self.errors(400, "JSON_PARSER_ERROR", "records is required")
            if len(payload["records"]) > 200:
                return self.errors(400, "EXCEEDED_ID_LIMIT", "record limit exceeded: 200")
            if len(rest) == 4:
                return self._upsert_many(rest[2], rest[3], payload)
            if len(rest) == 2:
                return self._update_many(payload)
        if rest and rest[0] == "query" and method == "GET":
            if len(rest) == 2:
                return self._more(version, rest[1])
            return self._query(version, request.query_params.get("q", ""))
        if rest[:2] == ["jobs", "ingest"]:
            return await self._bulk(version, method, rest[2:], body)
        return self.errors(404, "NOT_FOUND", "The requested resource does not exist")

    def _upsert_one(self, version: str, sobject: str, ext: str, value: str, body: Any) -> Response[Any]:
        self.org.check_object(sobject)
        if ext != "Id" and ext not in EXTERNAL_IDS[sobject]:
            return self.errors(404, "NOT_FOUND", "The requested resource does not exist")
        if not isinstance(body, dict):
            return self.errors(400, "JSON_PARSER_ERROR", "Unexpected body")
        try:
            rid, created = self.org.upsert(sobject, ext, value, body)
        except MultipleMatches as exc:
            return self.answer([f"/services/data/{version}/sobjects/{sobject}/{i}" for i in exc.ids], 300)
        return self.answer({"id": rid, "success": True, "errors": [], "created": created}, 201 if created else 200)

    def _upsert_many(self, sobject: str, ext: str, payload: dict[str, Any]) -> Response[Any]:
        self.org.check_object(sobject)
        if ext not in EXTERNAL_IDS[sobject]:
            return self.errors(400, "INVALID_FIELD", f"Field name provided, {ext} is not an External ID or indexed "
                               f"field for {sobject}")
        records = payload["records"]
        values = [str(r.get(ext)) if isinstance(r, dict) and r.get(ext) is not None else None for r in records]
        seen: dict[str, int] = {}
        for v in values:
            if v is not None:
                seen[v.casefold()] = seen.get(v.casefold(), 0) + 1
        before = self.org.snapshot() if payload.get("allOrNone") else None
        results: list[dict[str, Any]] = []
        for record, value in zip(records, values, strict=True):
            try:
                if not isinstance(record, dict) or (record.get("attributes") or {}).get("type") != sobject:
                    raise RecordError("INVALID_TYPE", f"attributes.type must be {sobject}")
                if value is None:
                    raise RecordError("MISSING_ARGUMENT", f"{ext} not specified", [ext])
                if seen[value.casefold()] > 1:
                    raise RecordError("DUPLICATE_VALUE", f"Duplicate external id specified: {value}", [ext])
                body = {k: v for k, v in record.items() if k != ext}
                rid, created = self.org.upsert(sobject, ext, value, body)
                results.append({"id": rid, "success": True, "errors": [], "created": created})
            except MultipleMatches as exc:
                results.append({"id": None, "success": False, "errors": [{
                    "statusCode": "DUPLICATE_EXTERNAL_ID",
                    "message": f"{ext}: more than one record found for external id field: {exc.ids}",
                    "fields": [ext]}]})
            except RecordError as exc:
                results.append({"id": None, "success": False, "errors": [exc.as_error("statusCode")]})
        return self._all_or_none(payload, results, before)

    def _update_many(self, payload: dict[str, Any]) -> Response[Any]:
        before = self.org.snapshot() if payload.get("allOrNone") else None
        results: list[dict[str, Any]] = []
        for record in payload["records"]:
            rid = record.get("id") or record.get("Id") if isinstance(record, dict) else None
            sobject = (record.get("attributes") or {}).get("type") if isinstance(record, dict) else None
            try:
                if not rid or sobject not in PREFIX:
                    raise RecordError("MALFORMED_ID", "a record needs attributes.type and id", ["Id"])
                self.org.update(sobject, rid, record)
                results.append({"id": rid, "success": True, "errors": []})
            except RecordError as exc:
                results.append({"id": rid, "success": False, "errors": [exc.as_error("statusCode")]})
        return self._all_or_none(payload, results, before)

    def _all_or_none(self, payload: dict[str, Any], results: list[dict[str, Any]], before: Any) -> Response[Any]:
        if payload.get("allOrNone") and not all(r["success"] for r in results):
            self.org.restore(before)
            rolled = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not "
                      "all records were valid and the request was using AllOrNone header", "fields": []}
            results = [r if not r["success"] else {"id": None, "success": False, "errors": [rolled]} for r in results]
        return self.answer(results, 200)

    def _query(self, version: str, soql: str) -> Response[Any]:
        q = parse(soql)
        self.org.check_object(q.sobject)
        known = FIELDS[q.sobject] | {"Id"}
        unknown = [f for f in [*q.fields, *field_names(q.where)] if f not in known]
        if unknown:
            raise RecordError("INVALID_FIELD", f"No such column '{unknown[0]}' on entity '{q.sobject}'", unknown[:1])
        rows = [r for r in self.org.records[q.sobject].values() if matches(q.where, r)]
        if q.limit is not None:
            rows = rows[: q.limit]
        if q.count:
            return self.answer({"totalSize": len(rows), "done": True, "records": []})
        shaped = [{"attributes": {"type": q.sobject, "url": f"/services/data/{version}/sobjects/{q.sobject}/{r['Id']}"},
                   **{f: r.get(f) for f in q.fields}} for r in rows]
        return self._page(version, shaped, secrets.token_hex(8), 0)

    def _more(self, version: str, locator: str) -> Response[Any]:
        cursor, _, offset = locator.rpartition("-")
        rows = self.query_cursors.get(cursor)
        if rows is None or not offset.isdigit():
            return self.errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(version, rows, cursor, int(offset))

    def _page(self, version: str, rows: list[dict[str, Any]], cursor: str, offset: int) -> Response[Any]:
        end = offset + self.query_batch_size
        body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows), "records": rows[offset:end]}
        if end < len(rows):
            self.query_cursors[cursor] = rows
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{cursor}-{end}"
        else:
            self.query_cursors.pop(cursor, None)
        return self.answer(body)

    # ---------------------------------------------------------------------------------------- bulk

    async def _bulk(self, version: str, method: str, rest: list[str], body: bytes) -> Response[Any]:
        if not rest and method == "POST":
            spec = _json(body)
            if not isinstance(spec, dict) or spec.get("operation") != "upsert":
                return self.errors(400, "INVALIDJOB", "only upsert jobs are supported by the sandbox")
            sobject, ext = spec.get("object", ""), spec.get("externalIdFieldName", "")
            self.org.check_object(sobject)
            if ext not in EXTERNAL_IDS[sobject]:
                return self.errors(400, "INVALIDJOB", f"InvalidJob : Field name provided, {ext} is not an External ID")
            job_id = "750Sbx" + secrets.token_hex(6)
            now = datetime.now(UTC).isoformat()
            self.jobs[job_id] = {
                "id": job_id, "operation": "upsert", "object": sobject, "externalIdFieldName": ext,
                "createdById": "005Sbx000000001", "createdDate": now, "systemModstamp": now, "state": "Open",
                "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(version[1:]),
                "contentUrl": f"services/data/{version}/jobs/ingest/{job_id}/batches", "lineEnding": "LF",
                "columnDelimiter": "COMMA", "jobType": "V2Ingest", "numberRecordsProcessed": 0,
                "numberRecordsFailed": 0, "retries": 0, "totalProcessingTime": 0,
                "_csv": [], "_ok": [], "_failed": [],
            }
            return self.answer(self._job_info(job_id), 200)
        if not rest or rest[0] not in self.jobs:
            return self.errors(404, "NOT_FOUND", "The requested resource does not exist")
        job = self.jobs[rest[0]]
        sub = rest[1] if len(rest) > 1 else None
        if sub == "batches" and method == "PUT":
            if job["state"] != "Open":
                return self.errors(400, "INVALIDJOBSTATE", f"Job is in state {job['state']}")
            job["_csv"].append(body.decode("utf-8"))
            return Response(b"", status_code=201, headers=self.limit_header())
        if sub is None and method == "PATCH":
            state = (_json(body) or {}).get("state")
            if state == "UploadComplete" and job["state"] == "Open":
                job["state"] = "UploadComplete"
                task = asyncio.create_task(self._process(job))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif state == "Aborted" and job["state"] in ("Open", "UploadComplete"):
                job["state"] = "Aborted"
            else:
                return self.errors(400, "INVALIDJOBSTATE", f"cannot move a {job['state']} job to {state}")
            return self.answer(self._job_info(job["id"]))
        if sub is None and method == "GET":
            return self.answer(self._job_info(job["id"]))
        if sub in ("successfulResults", "failedResults") and method == "GET":
            if job["state"] != "JobComplete":
                return self.errors(400, "INVALIDJOBSTATE", "results are available when the job is complete")
            return self.answer(self._results_csv(job, sub), media_type="text/csv")
        return self.errors(404, "NOT_FOUND", "The requested resource does not exist")

    def _job_info(self, job_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.jobs[job_id].items() if not k.startswith("_")}

    async def _process(self, job: dict[str, Any]) -> None:
        await asyncio.sleep(self.bulk_delay)
        if job["state"] == "Aborted":
            return
        job["state"] = "InProgress"
        sobject, ext = job["object"], job["externalIdFieldName"]
        for text in job["_csv"]:
            reader = csv.DictReader(io.StringIO(text))
            job["_columns"] = reader.fieldnames or []
            for row in reader:
                record: dict[str, Any] = {}
                for column, value in row.items():
                    if value == "":
                        continue
                    value = None if value == "#N/A" else value
                    if "." in column:
                        rel, _, sub = column.partition(".")
                        record[rel] = {sub: value}
                    else:
                        record[column] = value
                try:
                    key = record.pop(ext, None)
                    if key is None:
                        raise RecordError("MISSING_ARGUMENT", f"{ext} not specified", [ext])
                    rid, created = self.org.upsert(sobject, ext, key, record)
                    job["_ok"].append((rid, created, row))
                except MultipleMatches as exc:
                    job["_failed"].append((f"DUPLICATE_EXTERNAL_ID:{ext}: more than one record found for external "
                                           f"id field: {exc.ids}:{ext} --", row))
                except RecordError as exc:
                    fields = ",".join(exc.fields)
                    job["_failed"].append((f"{exc.code}:{exc.message}:{fields} --", row))
            await asyncio.sleep(0)
        job.update(state="JobComplete", numberRecordsProcessed=len(job["_ok"]) + len(job["_failed"]),
                   numberRecordsFailed=len(job["_failed"]), systemModstamp=datetime.now(UTC).isoformat())

    def _results_csv(self, job: dict[str, Any], kind: str) -> str:
        columns = list(job.get("_columns", []))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
        if kind == "successfulResults":
            writer.writerow(["sf__Id", "sf__Created", *columns])
            for rid, created, row in job["_ok"]:
                writer.writerow([rid, "true" if created else "false", *[row.get(c, "") for c in columns]])
        else:
            writer.writerow(["sf__Id", "sf__Error", *columns])
            for error, row in job["_failed"]:
                writer.writerow(["", error, *[row.get(c, "") for c in columns]])
        return out.getvalue()


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _sandbox(request: Request[Any, Any, Any]) -> Sandbox:
    return request.app.state.sandbox  # type: ignore[no-any-return]


def _base_url(request: Request[Any, Any, Any]) -> str:
    return str(request.base_url).rstrip("/")


@post("/services/oauth2/token", status_code=200)
async def token(request: Request[Any, Any, Any]) -> Response[Any]:
    form = dict(parse_qsl((await request.body()).decode()))
    return _sandbox(request).token(form, _base_url(request))


@route("/services/data/{path:path}", http_method=["GET", "POST", "PATCH", "PUT", "DELETE"])
async def data_api(request: Request[Any, Any, Any], path: FromPath[str]) -> Response[Any]:
    return await _sandbox(request).api(request, path)


@get("/_sandbox/records/{sobject:str}")
async def list_records(request: Request[Any, Any, Any], sobject: FromPath[str]) -> dict[str, Any]:
    sb = _sandbox(request)
    return {"records": list(sb.org.records.get(sobject, {}).values())}


@post("/_sandbox/records/{sobject:str}", status_code=201)
async def seed_record(
    request: Request[Any, Any, Any], sobject: FromPath[str], data: JSONBody[dict[str, Any]]
) -> dict[str, Any]:
    """A record a person created in Salesforce (no rules run: it is already there)."""
    sb = _sandbox(request)
    sb.org.check_object(sobject)
    rid = sb.org.new_id(sobject)
    now = datetime.now(UTC).isoformat()
    record = {**data, "Id": rid, "CreatedDate": now, "LastModifiedDate": now}
    if sobject == "Lead":
        record.setdefault("IsConverted", False)
    sb.org.put(sobject, rid, record)
    return record


@patch("/_sandbox/records/{sobject:str}/{rid:str}")
async def edit_record(request: Request[Any, Any, Any], sobject: FromPath[str], rid: FromPath[str],
                      data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    sb = _sandbox(request)
    record = {**sb.org.records[sobject][rid], **data}
    sb.org.put(sobject, rid, record)
    return record


@delete("/_sandbox/records/{sobject:str}/{rid:str}", status_code=204)
async def delete_record(request: Request[Any, Any, Any], sobject: FromPath[str], rid: FromPath[str]) -> None:
    org = _sandbox(request).org
    if sobject in org.records:
        org.remove(sobject, rid)


@post("/_sandbox/expire-sessions", status_code=200)
async def expire_sessions(request: Request[Any, Any, Any]) -> dict[str, Any]:
    sb = _sandbox(request)
    expired = len(sb.sessions)
    sb.sessions.clear()
    return {"expired": expired}


@post("/_sandbox/faults", status_code=200)
async def add_fault(request: Request[Any, Any, Any], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    sb = _sandbox(request)
    sb.faults.append({"status": int(data.get("status", 503)), "count": int(data.get("count", 1)),
                      "after": int(data.get("after", 0)), "path": data.get("path")})
    return {"faults": sb.faults}


@post("/_sandbox/config", status_code=200)
async def configure(request: Request[Any, Any, Any], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    sb = _sandbox(request)
    if "daily_limit" in data:
        sb.daily_limit = int(data["daily_limit"])
    if "api_usage" in data:
        sb.api_usage = int(data["api_usage"])
    if "duplicate_rule" in data:
        sb.org.duplicate_rule = sb.duplicate_rule = _bool(data["duplicate_rule"])
    if "bulk_delay" in data:
        sb.bulk_delay = float(data["bulk_delay"])
    if data.get("clear_faults"):
        sb.faults.clear()
    return {"daily_limit": sb.daily_limit, "api_usage": sb.api_usage, "duplicate_rule": sb.org.duplicate_rule}


@get("/_sandbox/stats")
async def stats(request: Request[Any, Any, Any]) -> dict[str, Any]:
    sb = _sandbox(request)
    return {"calls": sum(sb.calls.values()), "by_kind": sb.calls, "token_calls": sb.token_calls,
            "api_usage": sb.api_usage, "daily_limit": sb.daily_limit, "jobs": len(sb.jobs),
            "counts": {name: len(rows) for name, rows in sb.org.records.items()}}


@post("/_sandbox/reset", status_code=200)
async def reset(request: Request[Any, Any, Any]) -> dict[str, Any]:
    _sandbox(request).reset()
    return {"ok": True}


PAGE_COLUMNS = {
    "Contact": ("Id", "Clasp_Client_Id__c", "FirstName", "LastName", "Email", "Phone"),
    "Lead": ("Id", "Clasp_Client_Id__c", "FirstName", "LastName", "Email", "Phone", "Company"),
    "Product2": ("Id", "Clasp_Sku__c", "Name", "Family", "IsActive"),
    "Clasp_Receipt__c": ("Id", "Clasp_External_Id__c", "Contact__c", "Store__c", "Associate__c", "Occurred_At__c",
                         "Total__c", "Tax__c", "Currency__c", "Status__c"),
    "Clasp_Receipt_Line__c": ("Id", "Clasp_External_Id__c", "Receipt__c", "Product__c", "Quantity__c",
                              "Unit_Price__c", "Line_Total__c"),
}


@get("/", media_type="text/html")
async def page(request: Request[Any, Any, Any]) -> str:
    sb = _sandbox(request)
    sections = []
    for sobject, columns in PAGE_COLUMNS.items():
        rows = list(sb.org.records[sobject].values())[-500:]
        head = "".join(f"<th>{escape(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape('' if r.get(c) is None else str(r.get(c)))}</td>" for c in columns) + "</tr>"
            for r in rows
        )
        sections.append(f"<h2>{escape(sobject)} ({len(sb.org.records[sobject])})</h2>"
                        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    usage = f"API usage {sb.api_usage}/{sb.daily_limit}; {len(sb.jobs)} bulk jobs; {len(sb.sessions)} sessions"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Salesforce sandbox</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse;margin-bottom:2rem}"
        "td,th{border:1px solid #ccc;padding:.25rem .5rem;font-size:.85rem;text-align:left}</style></head><body>"
        f"<h1>Salesforce sandbox</h1><p>{escape(usage)} (latest 500 rows per object)</p>{''.join(sections)}"
        "</body></html>"
    )


def create_app(**options: Any) -> Litestar:
    """The sandbox app; options are :class:`Sandbox` keyword arguments (strings accepted)."""
    sandbox = Sandbox(**options)

    async def on_shutdown(app: Litestar) -> None:
        for task in list(sandbox.tasks):
            task.cancel()

    return Litestar(
        route_handlers=[token, data_api, list_records, seed_record, edit_record, delete_record, expire_sessions,
                        add_fault, configure, stats, reset, page],
        state=State({"sandbox": sandbox}),
        on_shutdown=[on_shutdown],
        openapi_config=None,
        debug=False,
    )
