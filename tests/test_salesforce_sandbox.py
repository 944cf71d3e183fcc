"""The Salesforce sandbox behaves as the API note says, the metadata package matches the mapping, and
the plugin registers what it should. Everything over real HTTP against the served sandbox."""

from __future__ import annotations

import csv
import io
import time
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.plugins import load_plugins
from plugins.crm_salesforce.mapping import money
from plugins.crm_salesforce.plugin import (
    DEFAULT_CONTACT_FIELDS,
    DEFAULT_LEAD_FIELDS,
    DEFAULT_LINE_FIELDS,
    DEFAULT_PRODUCT_FIELDS,
    DEFAULT_RECEIPT_FIELDS,
    SalesforceSettings,
)
from plugins.crm_salesforce.sandbox.app import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN
from tests.salesforce.fixtures import SandboxServer, serve_sandbox

METADATA = Path(__file__).resolve().parent.parent / "plugins" / "crm_salesforce" / "metadata"
NS = {"m": "http://soap.sforce.com/2006/04/metadata"}
API = "/services/data/v60.0"


def _session(sf: SandboxServer) -> httpx.Client:
    token = httpx.post(f"{sf.url}/services/oauth2/token", data={
        "grant_type": "refresh_token", "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET,
        "refresh_token": SANDBOX_REFRESH_TOKEN}).json()
    assert token["instance_url"] == sf.url and token["token_type"] == "Bearer"
    return httpx.Client(base_url=token["instance_url"] + API,
                        headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10)


def test_single_upsert_answers_201_200_300_and_404() -> None:
    with serve_sandbox() as sf, _session(sf) as api:
        created = api.patch("/sobjects/Contact/Clasp_Client_Id__c/7", json={"LastName": "Lee"})
        assert created.status_code == 201 and created.json()["created"] is True
        assert created.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
        updated = api.patch("/sobjects/Contact/Clasp_Client_Id__c/7", json={"FirstName": "Ann"})
        assert updated.status_code == 200 and updated.json() == {**created.json(), "created": False}
        sf.seed("Contact", LastName="Copy", Clasp_Client_Id__c="7")
        several = api.patch("/sobjects/Contact/Clasp_Client_Id__c/7", json={"FirstName": "Ann"})
        assert several.status_code == 300 and len(several.json()) == 2
        assert all(u.startswith(f"{API}/sobjects/Contact/003") for u in several.json())
        missing = api.patch("/sobjects/Contact/No_Such__c/7", json={"LastName": "x"})
        assert missing.status_code == 404 and missing.json()[0]["errorCode"] == "NOT_FOUND"
        required = api.patch("/sobjects/Contact/Clasp_Client_Id__c/8", json={"FirstName": "No last name"})
        assert required.status_code == 400 and required.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_collections_report_per_record_errors_and_roll_back_all_or_none() -> None:
    with serve_sandbox() as sf, _session(sf) as api:
        sf.seed("Contact", LastName="Existing", Email="taken@example.com")
        records = [
            {"attributes": {"type": "Contact"}, "Clasp_Client_Id__c": "1", "LastName": "One"},
            {"attributes": {"type": "Contact"}, "Clasp_Client_Id__c": "2", "LastName": "Two",
             "Email": "TAKEN@example.com"},
            {"attributes": {"type": "Contact"}, "Clasp_Client_Id__c": "3"},
        ]
        body = api.patch("/composite/sobjects/Contact/Clasp_Client_Id__c",
                         json={"allOrNone": False, "records": records}).json()
        assert [r["success"] for r in body] == [True, False, False]
        assert body[1]["errors"][0]["statusCode"] == "DUPLICATES_DETECTED"
        assert body[1]["errors"][0]["duplicateResult"]["matchResults"][0]["matchRecords"][0]["record"]["Id"]
        assert body[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
        rolled = api.patch("/composite/sobjects/Contact/Clasp_Client_Id__c", json={"allOrNone": True, "records": [
            {"attributes": {"type": "Contact"}, "Clasp_Client_Id__c": "4", "LastName": "Four"}, records[2]]}).json()
        assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
        assert "4" not in sf.by("Contact", "Clasp_Client_Id__c")


def test_soql_subset_pages_and_matches_case_insensitively() -> None:
    with serve_sandbox(query_batch_size=2) as sf, _session(sf) as api:
        for i in range(5):
            sf.seed("Contact", LastName=f"P{i}", Email=f"p{i}@example.com", Phone="(212) 555-0100")
        sf.seed("Contact", LastName="Linked", Email="P1@EXAMPLE.com", Clasp_Client_Id__c="9")
        q = ("SELECT Id, Email FROM Contact WHERE Clasp_Client_Id__c = null AND "
             "(Email IN ('P1@example.com', 'p3@example.com') OR Phone = '(212) 555-0100')")
        page = api.get("/query", params={"q": q}).json()
        assert page["totalSize"] == 5 and page["done"] is False and len(page["records"]) == 2
        seen = page["records"]
        while not page["done"]:
            page = httpx.get(sf.url + page["nextRecordsUrl"], headers=api.headers).json()
            seen += page["records"]
        assert len({r["Id"] for r in seen}) == 5
        count = api.get("/query", params={"q": "SELECT COUNT() FROM Contact WHERE Email = 'p1@example.com'"}).json()
        assert count["totalSize"] == 2 and count["records"] == []
        bad = api.get("/query", params={"q": "SELECT Id FROM Contact WHERE"})
        assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_bulk_ingest_job_lifecycle_and_results() -> None:
    with serve_sandbox() as sf, _session(sf) as api:
        sf.seed("Contact", LastName="Lee", Clasp_Client_Id__c="1")
        spec = {"object": "Clasp_Receipt__c", "externalIdFieldName": "Clasp_External_Id__c", "contentType": "CSV",
                "operation": "upsert", "lineEnding": "LF"}
        job = api.post("/jobs/ingest", json=spec).json()
        assert job["state"] == "Open" and job["id"].startswith("750")
        data = "Clasp_External_Id__c,Contact__r.Clasp_Client_Id__c,Total__c\n10,1,12.50\n11,404,3\n"
        put = httpx.put(f"{sf.url}/{job['contentUrl']}", content=data,
                        headers={**api.headers, "Content-Type": "text/csv"})
        assert put.status_code == 201 and put.content == b""
        closed = api.patch(f"/jobs/ingest/{job['id']}", json={"state": "UploadComplete"}).json()
        assert closed["state"] == "UploadComplete"
        deadline = time.monotonic() + 10
        info: dict[str, Any] = {}
        while time.monotonic() < deadline:
            info = api.get(f"/jobs/ingest/{job['id']}").json()
            if info["state"] == "JobComplete":
                break
            time.sleep(0.05)
        assert info["numberRecordsProcessed"] == 2 and info["numberRecordsFailed"] == 1
        ok = list(csv.DictReader(io.StringIO(api.get(f"/jobs/ingest/{job['id']}/successfulResults/").text)))
        assert ok[0]["sf__Created"] == "true" and ok[0]["Clasp_External_Id__c"] == "10"
        failed = list(csv.DictReader(io.StringIO(api.get(f"/jobs/ingest/{job['id']}/failedResults/").text)))
        assert failed[0]["sf__Error"].startswith("INVALID_FIELD:Foreign key external ID: 404")
        (receipt,) = sf.records("Clasp_Receipt__c")
        assert receipt["Total__c"] == 12.5 and receipt["Contact__c"] == sf.records("Contact")[0]["Id"]


def test_sessions_limits_and_faults() -> None:
    with serve_sandbox(daily_limit=3) as sf, _session(sf) as api:
        sf.post("/_sandbox/faults", {"status": 503, "count": 1})
        down = api.get("/limits")
        assert down.status_code == 503 and down.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
        assert api.get("/limits").json()["DailyApiRequests"] == {"Max": 3, "Remaining": 1}
        sf.post("/_sandbox/expire-sessions")
        expired = api.get("/limits")
        assert expired.status_code == 401 and expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    with serve_sandbox(daily_limit=1) as sf, _session(sf) as api:
        assert api.get("/limits").headers["Sforce-Limit-Info"] == "api-usage=1/1"
        spent = api.get("/limits")
        assert spent.status_code == 403 and spent.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
        page = httpx.get(sf.url + "/").text
        assert "Salesforce sandbox" in page and "Clasp_Receipt__c" in page


def test_refresh_and_jwt_token_errors_are_oauth_shaped() -> None:
    with serve_sandbox() as sf:
        wrong = httpx.post(f"{sf.url}/services/oauth2/token", data={
            "grant_type": "refresh_token", "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET,
            "refresh_token": "nope"})
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        jwt_without_cert = httpx.post(f"{sf.url}/services/oauth2/token", data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "x.y.z"})
        assert jwt_without_cert.status_code == 400 and jwt_without_cert.json()["error"] == "invalid_client"


# ------------------------------------------------------------------------------------ metadata


def _metadata_fields() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in (METADATA / "force-app" / "main" / "default" / "objects").glob("*/fields/*.field-meta.xml"):
        root = ET.parse(path).getroot()
        name = root.find("m:fullName", NS)
        assert name is not None and name.text == path.name.removesuffix(".field-meta.xml")
        out.setdefault(path.parent.parent.name, set()).add(name.text)
    return out


def test_metadata_package_defines_every_custom_field_the_mapping_writes() -> None:
    defined = _metadata_fields()
    settings = SalesforceSettings()
    wanted = {
        "Contact": set(DEFAULT_CONTACT_FIELDS.values()) | {settings.client_external_id_field},
        "Lead": set(DEFAULT_LEAD_FIELDS.values()) | {settings.client_external_id_field},
        "Clasp_Receipt__c": set(DEFAULT_RECEIPT_FIELDS.values()) | {settings.receipt_external_id_field},
        "Clasp_Receipt_Line__c": set(DEFAULT_LINE_FIELDS.values()) | {settings.line_external_id_field},
        "Product2": set(DEFAULT_PRODUCT_FIELDS.values()) | {settings.product_external_id_field},
    }
    for sobject, fields in wanted.items():
        custom = {f for f in fields if f.endswith("__c")}
        assert custom <= defined.get(sobject, set()), (sobject, custom - defined.get(sobject, set()))
    package = ET.parse(METADATA / "package.xml").getroot()
    members = {m.text for t in package.findall("m:types", NS) for m in t.findall("m:members", NS)}
    assert {f"{o}.{f}" for o, fs in defined.items() for f in fs} <= members
    assert {"Clasp_Receipt__c", "Clasp_Receipt_Line__c"} <= members
    for obj in ("Clasp_Receipt__c", "Clasp_Receipt_Line__c"):
        ET.parse(METADATA / "force-app" / "main" / "default" / "objects" / obj / f"{obj}.object-meta.xml")


def test_sandbox_is_registered_with_working_connector_settings() -> None:
    registry = load_plugins().registry
    sandbox = registry.sandboxes["salesforce"]
    assert sandbox.connector_type == "salesforce" and sandbox.connector_settings is not None
    settings = SalesforceSettings.model_validate(sandbox.connector_settings("http://127.0.0.1:9"))
    assert settings.login_url == "http://127.0.0.1:9" and not settings.missing_credentials()


@pytest.mark.parametrize(("minor", "currency", "expected"), [
    (123456, "USD", "1234.56"), (-800, "USD", "-8.00"), (5000, "JPY", "5000"), (1234, "KWD", "1.234")])
def test_money_keeps_the_currency_exponent(minor: int, currency: str, expected: str) -> None:
    assert money(minor, currency) == Decimal(expected)
