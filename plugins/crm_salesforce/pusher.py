"""The CRM stage for Salesforce: clients, products and receipts upserted by external ID.

Core hands over items in dependency order (clients, products, sales); each call pushes clients
first, then products, then receipts and last the receipts' lines, so every reference by external ID
(``Contact__r.Clasp_Client_Id__c``, ``Receipt__r...``, ``Product__r.Clasp_Sku__c``) resolves.

Per object: one record → a single upsert (``PATCH /sobjects/{obj}/{field}/{value}``: 201 created,
200 updated, 300 several records carry that ID); up to ``bulk_threshold`` → sObject Collections
upserts of 200 (``allOrNone: false``, so one bad record fails alone); more → a Bulk API 2.0 job.
Upserts by external ID make every retry and replay idempotent.

A record Salesforce refuses comes back as a failed :class:`PushOutcome` with the Salesforce error in
``error`` and ``details`` (error code, fields, duplicate candidates) for the error queue. A problem
with the whole request (metadata missing, credentials refused) raises :class:`PermanentError`; an
outage or the daily limit raises :class:`TransientError`: nothing of the call is then considered
done, and core pushes the same items again later.

Near the org's daily API limit (usage ≥ ``daily_limit_threshold``) each run pushes one batch and
then stops with a TransientError whose ``retry_after`` is ``near_limit_pause_seconds``: the push
slows to a trickle instead of spending the allocation other integrations need.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from core.plugin import ConnectorContext, PermanentError, Pusher, PushItem, PushOutcome, TransientError

from . import bulk, mapping
from .client import SalesforceClient, SalesforceError, error_text
from .matching import Matcher

COLLECTION_SIZE = 200
SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
RECORD_ID = re.compile(r"/sobjects/[^/]+/([A-Za-z0-9]{15,18})$")


@dataclass
class SalesforceOutcome(PushOutcome):
    """A push outcome with the Salesforce error's details (error code, fields, candidates)."""

    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    ok: bool
    id: str | None = None
    created: bool = False
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class SalesforcePusher(Pusher):
    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.client = SalesforceClient(ctx)
        self.batches = 0
        self.throttled = False

    def usage(self) -> dict[str, Any]:
        """API usage for core to record on the run (``throttled``: this run stopped early near the limit)."""
        return {**self.client.usage(), "throttled": self.throttled}

    async def close(self) -> None:
        await self.client.aclose()

    async def push(self, items: Sequence[PushItem]) -> list[PushOutcome]:
        if self.batches and self.client.near_limit():
            used, limit = self.client.api_usage or (0, 0)
            self.throttled = True
            raise TransientError(
                f"Salesforce API usage is {used}/{limit} (≥ {self.settings.daily_limit_threshold:.0%} of the daily "
                "limit): pushing slowed to one batch per pause",
                retry_after=float(self.settings.near_limit_pause_seconds),
            )
        self.batches += 1
        outcomes: dict[int, PushOutcome] = {}
        by_entity: dict[str, list[tuple[int, PushItem]]] = {"client": [], "product": [], "sale": []}
        for index, item in enumerate(items):
            if item.entity in by_entity:
                by_entity[item.entity].append((index, item))
            else:
                outcomes[index] = SalesforceOutcome(
                    item, False, error=f"Salesforce push has no mapping for {item.entity!r}")
        await self._clients(by_entity["client"], outcomes)
        await self._products(by_entity["product"], outcomes)
        await self._sales(by_entity["sale"], outcomes)
        return [outcomes[i] for i in range(len(items))]

    # ------------------------------------------------------------------------------------ clients

    async def _clients(self, items: list[tuple[int, PushItem]], outcomes: dict[int, PushOutcome]) -> None:
        if not items:
            return
        s = self.settings
        sobject, ext = s.client_object, s.client_external_id_field
        new = [item.data for _, item in items if not item.data.get("ref")]
        matcher = Matcher(self.client, sobject=sobject, ext_field=ext, match_on=s.match_on,
                          region=s.default_phone_region)
        matches = await matcher.match(new)
        blocked: set[int] = set()
        adopt: list[tuple[str, dict[str, Any]]] = []
        for index, item in items:
            match = matches.get(item.entity_id)
            if match is None:
                continue
            if match.adopt is None:
                blocked.add(index)
                outcomes[index] = SalesforceOutcome(
                    item, False, error=match.reason,
                    details={"errorCode": "MULTIPLE_MATCHES", "candidates": match.candidates, "object": sobject})
            else:
                adopt.append((str(item.entity_id), {"attributes": {"type": sobject}, "id": match.adopt,
                                                    ext: str(item.entity_id)}))
        adopted = await self._update_by_id(adopt)
        for index, item in items:
            res = adopted.get(str(item.entity_id))
            if res is not None and not res.ok and res.details.get("errorCode") == "DUPLICATE_VALUE" \
                    and ext in (res.details.get("errors") or [{}])[0].get("fields", []):
                # Another record already carries this client's id (linked by hand): the upsert updates that one.
                del adopted[str(item.entity_id)]
                continue
            if res is not None and not res.ok:
                blocked.add(index)
                outcomes[index] = SalesforceOutcome(item, False, error=f"adopting the existing record: {res.error}",
                                                    details=res.details)
        fields = s.client_mapping()
        keyed = [(str(item.entity_id), {"attributes": {"type": sobject}, **mapping.client_record(item.data, fields)})
                 for index, item in items if index not in blocked]
        results = await self._upsert(sobject, ext, keyed)
        for index, item in items:
            if index in blocked:
                continue
            outcomes[index] = _outcome(item, results[str(item.entity_id)], adopted=str(item.entity_id) in adopted)

    async def _update_by_id(self, records: list[tuple[str, dict[str, Any]]]) -> dict[str, Result]:
        out: dict[str, Result] = {}
        for start in range(0, len(records), COLLECTION_SIZE):
            part = records[start : start + COLLECTION_SIZE]
            body = await self._collection_call("PATCH", "composite/sobjects", [r for _, r in part])
            for (key, record), res in zip(part, body, strict=False):
                out[key] = _result(res, record.get("id"))
        return out

    # ----------------------------------------------------------------------------------- products

    async def _products(self, items: list[tuple[int, PushItem]], outcomes: dict[int, PushOutcome]) -> None:
        if not items:
            return
        s = self.settings
        keyed: dict[str, dict[str, Any]] = {}
        for _, item in items:
            key = mapping.product_key(item.data)
            # Two Clasp products with one SKU are one Salesforce product: the later change wins.
            record = mapping.product_record(item.data, s.product_fields)
            keyed[key] = {"attributes": {"type": s.product_object}, **record}
        results = await self._upsert(s.product_object, s.product_external_id_field, list(keyed.items()))
        for index, item in items:
            outcomes[index] = _outcome(item, results[mapping.product_key(item.data)])

    # -------------------------------------------------------------------------------------- sales

    async def _sales(self, items: list[tuple[int, PushItem]], outcomes: dict[int, PushOutcome]) -> None:
        if not items:
            return
        s = self.settings
        if not s.push_walk_in_sales:
            # A walk-in sale has no person to attach it to: not clienteling data unless the admin asks for it
            # (a receipt Salesforce already has is still updated, e.g. voided).
            kept = []
            for index, item in items:
                if item.data.get("client_id") is None and not item.data.get("ref"):
                    outcomes[index] = SalesforceOutcome(item, True, details={"skipped": "walk-in sale"})
                else:
                    kept.append((index, item))
            items = kept
        receipts = [
            (str(item.entity_id), {"attributes": {"type": s.receipt_object},
                                   **mapping.receipt_record(item.data, s.receipt_fields, s.client_external_id_field)})
            for _, item in items
        ]
        results = await self._upsert(s.receipt_object, s.receipt_external_id_field, receipts)
        lines: list[tuple[str, dict[str, Any]]] = []
        line_sale: dict[str, str] = {}
        for _, item in items:
            if not results[str(item.entity_id)].ok:
                continue
            for line in item.data.get("lines") or []:
                key = str(line["id"])
                record = mapping.line_record(item.data, line, s.line_fields, s.receipt_external_id_field,
                                             s.product_external_id_field)
                lines.append((key, {"attributes": {"type": s.line_object}, **record}))
                line_sale[key] = str(item.entity_id)
        line_results = await self._upsert(s.line_object, s.line_external_id_field, lines)
        failed_lines: dict[str, list[tuple[str, Result]]] = {}
        for key, res in line_results.items():
            if not res.ok:
                failed_lines.setdefault(line_sale[key], []).append((key, res))
        for index, item in items:
            res = results[str(item.entity_id)]
            bad = failed_lines.get(str(item.entity_id))
            if res.ok and bad:
                text = "; ".join(f"line {key}: {r.error}" for key, r in bad)
                outcomes[index] = SalesforceOutcome(
                    item, False, external_id=res.id, error=f"receipt stored, but lines failed: {text}",
                    retryable=all(r.details.get("retryable") for _, r in bad),
                    details={"lines": {key: r.details for key, r in bad}})
            else:
                outcomes[index] = _outcome(item, res)

    # ------------------------------------------------------------------------------------ upserts

    async def _upsert(self, sobject: str, ext: str, keyed: list[tuple[str, dict[str, Any]]]) -> dict[str, Result]:
        if not keyed:
            return {}
        if len(keyed) >= self.settings.bulk_threshold:
            return await self._bulk(sobject, ext, keyed)
        if len(keyed) == 1 and SAFE_KEY.match(keyed[0][0]):
            key, record = keyed[0]
            return {key: await self._single(sobject, ext, key, record)}
        out: dict[str, Result] = {}
        for start in range(0, len(keyed), COLLECTION_SIZE):
            part = keyed[start : start + COLLECTION_SIZE]
            records = [{**record, ext: key} for key, record in part]
            body = await self._collection_call("PATCH", f"composite/sobjects/{sobject}/{ext}", records)
            for (key, _), res in zip(part, body, strict=False):
                out[key] = _result(res)
        return out

    async def _collection_call(self, method: str, path: str, records: list[dict[str, Any]]) -> list[Any]:
        if not records:
            return []
        try:
            body = await self.client.json(method, path, json={"allOrNone": False,
                                                              "records": [mapping.jsonable(r) for r in records]})
        except SalesforceError as exc:
            # The request as a whole was refused (unknown object or field, malformed): no record can pass
            # until the metadata or the mapping is fixed, so the push stops instead of queueing them all.
            raise PermanentError(f"Salesforce refused the {path} request: {exc}") from None
        if not isinstance(body, list) or len(body) != len(records):
            raise TransientError(f"unexpected answer to {path}: {str(body)[:200]}")
        return body

    async def _single(self, sobject: str, ext: str, key: str, record: dict[str, Any]) -> Result:
        body = mapping.jsonable({k: v for k, v in record.items() if k != "attributes"})
        try:
            response = await self.client.request("PATCH", f"sobjects/{sobject}/{ext}/{quote(key, safe='')}", json=body)
        except SalesforceError as exc:
            if exc.status == 404 and not isinstance(exc.errors, list):
                raise PermanentError(f"{sobject}.{ext} does not exist: deploy the Clasp metadata package") from None
            if exc.status == 404 and any(e.get("errorCode") == "NOT_FOUND" for e in exc.errors if isinstance(e, dict)):
                raise PermanentError(f"{sobject}.{ext} does not exist: deploy the Clasp metadata package") from None
            return _error_result(exc.errors)
        if response.status_code == 300:
            urls = response.json() if response.content else []
            ids = [m.group(1) for u in urls if isinstance(u, str) and (m := RECORD_ID.search(u))]
            return Result(False, error=f"{len(ids) or 'several'} {sobject} records carry {ext} = {key}; "
                          "remove the duplicate external IDs in Salesforce, then replay",
                          details={"errorCode": "MULTIPLE_RECORDS", "status": 300, "candidates": ids})
        data = response.json() if response.content else {}
        return Result(True, id=data.get("id"), created=response.status_code == 201 or bool(data.get("created")))

    async def _bulk(self, sobject: str, ext: str, keyed: list[tuple[str, dict[str, Any]]]) -> dict[str, Result]:
        records = [{ext: key, **{k: v for k, v in record.items() if k != "attributes"}} for key, record in keyed]
        res = await bulk.upsert(self.client, sobject, ext, records, poll_seconds=self.settings.bulk_poll_seconds)
        out: dict[str, Result] = {}
        for key, _ in keyed:
            if key in res.ok:
                sf_id, created = res.ok[key]
                out[key] = Result(True, id=sf_id, created=created)
            elif key in res.failed:
                code, _, message = res.failed[key].partition(":")
                out[key] = Result(False, error=res.failed[key],
                                  details={"errorCode": code, "message": message, "retryable": code in RETRYABLE})
            else:
                out[key] = Result(False, error="the Bulk job reported no result for this record",
                                  details={"retryable": True})
        return out


RETRYABLE = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG"})


def _result(res: Any, fallback_id: str | None = None) -> Result:
    if not isinstance(res, dict):
        return Result(False, error=f"unexpected result {res!r}")
    if res.get("success"):
        return Result(True, id=res.get("id") or fallback_id, created=bool(res.get("created")))
    return _error_result(res.get("errors") or [])


def _error_result(errors: Any) -> Result:
    errors = errors if isinstance(errors, list) else [errors]
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    code = first.get("statusCode") or first.get("errorCode") or "UNKNOWN"
    details: dict[str, Any] = {"errorCode": code, "errors": errors, "retryable": code in RETRYABLE}
    dup = first.get("duplicateResult")
    if isinstance(dup, dict):
        ids = [m.get("record", {}).get("Id") for r in dup.get("matchResults", []) for m in r.get("matchRecords", [])]
        details["candidates"] = [i for i in ids if i]
    return Result(False, error=error_text(errors), details=details)


def _outcome(item: PushItem, res: Result, adopted: bool = False) -> SalesforceOutcome:
    if res.ok:
        details = {"created": res.created, **({"adopted": True} if adopted else {})}
        return SalesforceOutcome(item, True, external_id=res.id, details=details)
    return SalesforceOutcome(item, False, error=res.error, retryable=bool(res.details.get("retryable")),
                             details=res.details)
