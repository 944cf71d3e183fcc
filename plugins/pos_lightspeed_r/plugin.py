"""Registers the ``lightspeed_r`` connector type."""

from __future__ import annotations

from pydantic import Field

from core.plugin import ConnectorSettings, ConnectorType, SecretStr, hookimpl


class LightspeedRSettings(ConnectorSettings):
    api_base_url: str = Field("https://api.lightspeedapp.com", title="API base URL")
    auth_base_url: str = Field("https://cloud.lightspeedapp.com", title="OAuth base URL")
    client_id: str = Field("", title="OAuth client id")
    client_secret: SecretStr | None = Field(None, title="OAuth client secret")
    account_id: str | None = Field(None, title="Account id", description="Discovered after authorizing.")
    refresh_token: SecretStr | None = Field(None, title="Refresh token")
    access_token: SecretStr | None = Field(None, title="Access token")
    history_years: int = Field(5, ge=0, le=30, title="History to backfill (years)")
    poll_interval_seconds: int = Field(60, ge=10, title="Sync interval (seconds)")
    anniversary_field: str = Field("Anniversary", title="Custom field holding the anniversary")
    writeback: bool = Field(False, title="Write client edits back to Lightspeed")


class LightspeedR(ConnectorType):
    name = "lightspeed_r"
    kind = "pos"
    title = "Lightspeed Retail (R-Series)"
    description = "Shops, employees, customers, items and sales from Lightspeed Retail R-Series."
    settings_model = LightspeedRSettings
    capabilities = frozenset({"oauth", "sync", "writeback"})


@hookimpl
def clasp_register_connector_types(register):  # type: ignore[no-untyped-def]
    register(LightspeedR())
