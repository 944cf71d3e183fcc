"""Registers the ``lightspeed_x`` connector type."""

from __future__ import annotations

from pydantic import Field

from core.plugin import ConnectorSettings, ConnectorType, SecretStr, hookimpl


class LightspeedXSettings(ConnectorSettings):
    domain_prefix: str = Field(
        "", title="Store domain prefix", description="The <prefix> of <prefix>.retail.lightspeed.app"
    )
    api_base_url: str | None = Field(
        None, title="API base URL", description="Defaults to https://<prefix>.retail.lightspeed.app/api"
    )
    auth_base_url: str = Field("https://secure.retail.lightspeed.app", title="OAuth base URL")
    client_id: str = Field("", title="OAuth client id")
    client_secret: SecretStr | None = Field(None, title="OAuth client secret")
    refresh_token: SecretStr | None = Field(None, title="Refresh token")
    access_token: SecretStr | None = Field(None, title="Access token")
    history_years: int = Field(5, ge=0, le=30, title="History to backfill (years)")
    poll_interval_seconds: int = Field(60, ge=10, title="Sync interval (seconds)")


class LightspeedX(ConnectorType):
    name = "lightspeed_x"
    kind = "pos"
    title = "Lightspeed Retail (X-Series)"
    description = "Outlets, users, customers, products and sales from Lightspeed Retail X-Series."
    settings_model = LightspeedXSettings
    capabilities = frozenset({"oauth", "sync", "webhooks"})


@hookimpl
def clasp_register_connector_types(register):  # type: ignore[no-untyped-def]
    register(LightspeedX())
