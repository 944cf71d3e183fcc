"""Registers the ``salesforce`` connector type (clients, products and receipts pushed to Salesforce).

Work lives in ``auth`` (JWT bearer and refresh-token flows), ``client`` (REST calls: session
replay, retries, API-usage reading), ``mapping`` (unified records → Salesforce fields), ``matching``
(adopting existing Contacts/Leads), ``bulk`` (Bulk API 2.0 ingest), ``pusher`` (the CRM stage) and
``sandbox`` (a faithful fake org). ``metadata/`` is an SFDX source package with the custom objects
and fields the default mapping writes; deploy it before the first push.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from core.plugin import (
    CheckResult,
    ConnectorContext,
    ConnectorSettings,
    ConnectorType,
    PluginError,
    Pusher,
    Sandbox,
    SecretStr,
    hookimpl,
)

DEFAULT_CONTACT_FIELDS = {
    "first_name": "FirstName",
    "last_name": "LastName",
    "email": "Email",
    "phone": "Phone",
    "birthday": "Birthdate",
    "street": "MailingStreet",
    "city": "MailingCity",
    "region": "MailingState",
    "postal_code": "MailingPostalCode",
    "country": "MailingCountry",
}
# Leads have no birthdate and name their address fields without a prefix; Company is required.
DEFAULT_LEAD_FIELDS = {
    "first_name": "FirstName",
    "last_name": "LastName",
    "email": "Email",
    "phone": "Phone",
    "street": "Street",
    "city": "City",
    "region": "State",
    "postal_code": "PostalCode",
    "country": "Country",
    "company": "Company",
}
DEFAULT_RECEIPT_FIELDS = {
    "client": "Contact__c",
    "store": "Store__c",
    "associate": "Associate__c",
    "occurred_at": "Occurred_At__c",
    "total": "Total__c",
    "tax": "Tax__c",
    "currency": "Currency__c",
    "status": "Status__c",
}
DEFAULT_LINE_FIELDS = {
    "receipt": "Receipt__c",
    "product": "Product__c",
    "quantity": "Quantity__c",
    "unit_price": "Unit_Price__c",
    "total": "Line_Total__c",
}
# Family is a picklist whose values differ per org: map "category" to it only once its values match.
DEFAULT_PRODUCT_FIELDS = {"name": "Name", "description": "Description", "sku": "ProductCode", "active": "IsActive"}


class SalesforceSettings(ConnectorSettings):
    login_url: str = Field(
        "https://login.salesforce.com",
        title="Login URL",
        description="https://test.salesforce.com for a sandbox org, or your My Domain URL.",
    )
    api_version: str = Field("v60.0", title="API version", pattern=r"^v\d+\.\d$")
    auth_mode: Literal["jwt", "refresh_token"] = Field("jwt", title="Authentication")
    client_id: str = Field("", title="Connected app consumer key")
    username: str | None = Field(None, title="Username (JWT bearer)")
    private_key: SecretStr | None = Field(None, title="Private key, PEM (JWT bearer)")
    client_secret: SecretStr | None = Field(None, title="Consumer secret (refresh token)")
    refresh_token: SecretStr | None = Field(None, title="Refresh token")

    client_object: Literal["Contact", "Lead"] = Field("Contact", title="Clients become")
    client_external_id_field: str = Field("Clasp_Client_Id__c", title="Client external ID field")
    client_fields: dict[str, str] | None = Field(
        None,
        title="Client field mapping",
        description="Clasp field → Salesforce field; empty uses the defaults for the object chosen.",
    )
    match_on: Literal["email", "phone", "both", "neither"] = Field(
        "both", title="Adopt existing records matching on"
    )
    default_phone_region: str = Field(
        "US", pattern=r"^[A-Z]{2}$", title="Region of phone numbers typed without a country code in Salesforce"
    )
    receipt_object: str = Field("Clasp_Receipt__c", title="Receipt object")
    receipt_external_id_field: str = Field("Clasp_External_Id__c", title="Receipt external ID field")
    receipt_fields: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_RECEIPT_FIELDS),
                                           title="Receipt field mapping")
    line_object: str = Field("Clasp_Receipt_Line__c", title="Receipt line object")
    line_external_id_field: str = Field("Clasp_External_Id__c", title="Receipt line external ID field")
    line_fields: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LINE_FIELDS),
                                        title="Receipt line field mapping")
    product_object: str = Field("Product2", title="Product object")
    product_external_id_field: str = Field("Clasp_Sku__c", title="Product external ID field")
    product_fields: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PRODUCT_FIELDS),
                                           title="Product field mapping")
    push_walk_in_sales: bool = Field(
        False, title="Push walk-in sales", description="Receipts for sales with no client (no Contact)."
    )

    bulk_threshold: int = Field(2000, ge=200, title="Use Bulk API 2.0 above this many records")
    daily_limit_threshold: float = Field(
        0.8, gt=0, le=1, title="Slow down above this share of the daily API limit"
    )
    near_limit_pause_seconds: int = Field(
        900, ge=60, title="Pause between batches near the daily limit (seconds)"
    )
    poll_interval_seconds: int = Field(300, ge=30, title="Push interval (seconds)")
    request_timeout_seconds: float = Field(60.0, gt=0, le=600, title="Request timeout (seconds)")
    bulk_poll_seconds: float = Field(2.0, gt=0, le=60, title="Bulk job poll interval (seconds)")

    def client_mapping(self) -> dict[str, str]:
        if self.client_fields:
            return dict(self.client_fields)
        return dict(DEFAULT_LEAD_FIELDS if self.client_object == "Lead" else DEFAULT_CONTACT_FIELDS)

    def missing_credentials(self) -> list[str]:
        needed = ["client_id"]
        needed += ["username", "private_key"] if self.auth_mode == "jwt" else ["client_secret", "refresh_token"]
        return [name for name in needed if not getattr(self, name)]


class Salesforce(ConnectorType):
    name = "salesforce"
    kind = "crm"
    title = "Salesforce"
    description = "Clients as Contacts or Leads, products, and receipts with their lines as custom objects."
    settings_model = SalesforceSettings
    capabilities = frozenset({"push"})

    async def check(self, ctx: ConnectorContext) -> CheckResult:
        from .client import SalesforceClient

        missing = ctx.settings.missing_credentials()
        if missing:
            return CheckResult(ok=False, message=f"Set {', '.join(missing)}.")
        client = SalesforceClient(ctx)
        try:
            limits = await client.json("GET", "limits")
            describe = await client.json("GET", f"sobjects/{ctx.settings.client_object}/describe")
        except PluginError as exc:
            return CheckResult(ok=False, message=str(exc))
        except Exception as exc:
            return CheckResult(ok=False, message=f"cannot reach Salesforce at {ctx.settings.login_url}: {exc}")
        finally:
            await client.aclose()
        fields = {f.get("name") for f in describe.get("fields", [])} if isinstance(describe, dict) else set()
        ext = ctx.settings.client_external_id_field
        if fields and ext not in fields:
            return CheckResult(
                ok=False,
                message=f"{ctx.settings.client_object} has no field {ext}: deploy the Clasp metadata package first.",
            )
        daily = limits.get("DailyApiRequests", {}) if isinstance(limits, dict) else {}
        return CheckResult(
            ok=True,
            message=f"Connected to {client.instance_url}.",
            details={"instance_url": client.instance_url, "daily_api_requests": daily, **client.usage()},
        )

    def pusher(self, ctx: ConnectorContext) -> Pusher | None:
        from .pusher import SalesforcePusher

        return SalesforcePusher(ctx)

    def sync_interval_seconds(self, ctx: ConnectorContext) -> int:
        return int(ctx.settings.poll_interval_seconds)


def _sandbox_app(**options: Any) -> Any:
    from .sandbox.app import create_app

    return create_app(**options)


def _sandbox_settings(url: str) -> dict[str, Any]:
    from .sandbox.app import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN

    return {
        "login_url": url,
        "auth_mode": "refresh_token",
        "client_id": SANDBOX_CLIENT_ID,
        "client_secret": SANDBOX_CLIENT_SECRET,
        "refresh_token": SANDBOX_REFRESH_TOKEN,
        "bulk_poll_seconds": 0.2,
    }


@hookimpl
def clasp_register_connector_types(register):  # type: ignore[no-untyped-def]
    register(Salesforce())


@hookimpl
def clasp_register_sandboxes(register):  # type: ignore[no-untyped-def]
    register(
        Sandbox(
            name="salesforce",
            app_factory=_sandbox_app,
            description=(
                "Salesforce org: OAuth (JWT bearer, refresh token), upsert by external ID, sObject Collections, "
                "a SOQL subset, Bulk API 2.0 ingest, a Contact email duplicate rule, Sforce-Limit-Info, session "
                "expiry and injectable 503s; what arrived at /. Options: daily_limit, jwt_public_key, "
                "rotate_refresh_tokens, query_batch_size."
            ),
            connector_type="salesforce",
            connector_settings=_sandbox_settings,
        )
    )
