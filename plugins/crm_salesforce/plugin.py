"""Registers the ``salesforce`` connector type."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.plugin import ConnectorSettings, ConnectorType, SecretStr, hookimpl


class SalesforceSettings(ConnectorSettings):
    login_url: str = Field("https://login.salesforce.com", title="Login URL")
    api_version: str = Field("v60.0", title="API version", pattern=r"^v\d+\.\d$")
    auth_mode: Literal["jwt", "refresh_token"] = Field("jwt", title="Authentication")
    client_id: str = Field("", title="Connected app consumer key")
    username: str | None = Field(None, title="Username (JWT bearer)")
    private_key: SecretStr | None = Field(None, title="Private key, PEM (JWT bearer)")
    client_secret: SecretStr | None = Field(None, title="Consumer secret (refresh token)")
    refresh_token: SecretStr | None = Field(None, title="Refresh token")
    client_object: Literal["Contact", "Lead"] = Field("Contact", title="Clients become")
    match_on: Literal["email", "phone", "both", "neither"] = Field("both", title="Adopt existing records matching on")
    bulk_threshold: int = Field(2000, ge=200, title="Use Bulk API 2.0 above this many records")
    daily_limit_threshold: float = Field(0.8, gt=0, le=1, title="Slow down above this share of the daily API limit")
    poll_interval_seconds: int = Field(300, ge=30, title="Push interval (seconds)")


class Salesforce(ConnectorType):
    name = "salesforce"
    kind = "crm"
    title = "Salesforce"
    description = "Clients as Contacts or Leads, receipts and lines as custom objects."
    settings_model = SalesforceSettings
    capabilities = frozenset({"push"})


@hookimpl
def clasp_register_connector_types(register):  # type: ignore[no-untyped-def]
    register(Salesforce())
