"""Bulk API 2.0 ingest: one upsert job per object for a backfill.

create job → PUT the CSV (one upload per job, at most ~100 MB raw; larger sets are split into
several jobs) → PATCH ``UploadComplete`` → poll until ``JobComplete``/``Failed``/``Aborted`` →
``successfulResults/`` (``sf__Id``, ``sf__Created``, columns) and ``failedResults/`` (``sf__Id``,
``sf__Error``, columns). Result order is not the input order, so rows are matched back by their
external ID column.

A CSV upload is not replayed after a timeout (it might have landed, and a job cannot tell): the
job is aborted and the push stops with a TransientError; the next run upserts the same records
again, which the external ID makes harmless.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from dataclasses import dataclass, field
from typing import Any

from core.plugin import TransientError

from .client import SalesforceClient
from .mapping import flatten

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
TERMINAL = ("JobComplete", "Failed", "Aborted")


@dataclass
class BulkResult:
    ok: dict[str, tuple[str, bool]] = field(default_factory=dict)  # external id → (Salesforce id, created)
    failed: dict[str, str] = field(default_factory=dict)  # external id → "ERRORCODE:message"


def to_csv(records: list[dict[str, Any]]) -> list[bytes]:
    """CSV bodies (LF line endings, a header each), split so none exceeds the upload limit."""
    rows = [flatten(r) for r in records]
    columns: list[str] = []
    seen: set[str] = set()
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    bodies: list[bytes] = []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    header_len = buffer.tell()
    for row in rows:
        writer.writerow(row)
        if buffer.tell() >= MAX_UPLOAD_BYTES:
            bodies.append(buffer.getvalue().encode())
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", restval="")
            writer.writeheader()
    if buffer.tell() > header_len or not bodies:
        bodies.append(buffer.getvalue().encode())
    return bodies


async def upsert(
    client: SalesforceClient, sobject: str, ext_field: str, records: list[dict[str, Any]], *, poll_seconds: float
) -> BulkResult:
    result = BulkResult()
    for body in to_csv(records):
        await _one_job(client, sobject, ext_field, body, result, poll_seconds)
    return result


async def _one_job(
    client: SalesforceClient, sobject: str, ext_field: str, body: bytes, result: BulkResult, poll_seconds: float
) -> None:
    job = await client.json(
        "POST",
        "jobs/ingest",
        json={
            "object": sobject,
            "externalIdFieldName": ext_field,
            "contentType": "CSV",
            "operation": "upsert",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        },
    )
    job_id = job["id"]
    upload = job.get("contentUrl") or f"services/data/{client.ctx.settings.api_version}/jobs/ingest/{job_id}/batches"
    try:
        await client.request("PUT", "/" + upload.lstrip("/"), content=body, headers={"Content-Type": "text/csv"},
                             retry=False)
    except TransientError:
        await _abort(client, job_id)
        raise
    await client.json("PATCH", f"jobs/ingest/{job_id}", json={"state": "UploadComplete"})
    info = await _wait(client, job_id, poll_seconds)
    if info.get("state") != "JobComplete":
        raise TransientError(f"Bulk job {job_id} for {sobject} ended {info.get('state')}: {info.get('errorMessage')}")
    ok_csv = await client.request("GET", f"jobs/ingest/{job_id}/successfulResults/")
    for row in csv.DictReader(io.StringIO(ok_csv.text)):
        result.ok[row.get(ext_field, "")] = (row.get("sf__Id", ""), str(row.get("sf__Created", "")).lower() == "true")
    if int(info.get("numberRecordsFailed") or 0):
        failed_csv = await client.request("GET", f"jobs/ingest/{job_id}/failedResults/")
        for row in csv.DictReader(io.StringIO(failed_csv.text)):
            result.failed[row.get(ext_field, "")] = row.get("sf__Error", "") or "failed without a message"


async def _wait(client: SalesforceClient, job_id: str, poll_seconds: float) -> dict[str, Any]:
    delay = poll_seconds
    deadline = time.monotonic() + 6 * 3600
    while True:
        info: dict[str, Any] = await client.json("GET", f"jobs/ingest/{job_id}")
        if info.get("state") in TERMINAL:
            return info
        if time.monotonic() > deadline:
            raise TransientError(f"Bulk job {job_id} still {info.get('state')} after 6 hours")
        await asyncio.sleep(delay)
        # Poll less often as a long job goes on: every poll is an API call.
        delay = min(delay * 1.5, 30.0)


async def _abort(client: SalesforceClient, job_id: str) -> None:
    try:
        await client.request("PATCH", f"jobs/ingest/{job_id}", json={"state": "Aborted"})
    except Exception:  # best effort: an Open job left behind expires on its own
        pass
