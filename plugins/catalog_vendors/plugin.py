"""Registers the ``vendor_catalog`` connector type."""

from __future__ import annotations

from pydantic import Field

from core.plugin import ConnectorSettings, ConnectorType, SecretStr, hookimpl


class VendorCatalogSettings(ConnectorSettings):
    vendor: str = Field("", title="Vendor name")
    feed_url: str = Field("", title="Catalog feed URL (CSV or JSON)")
    api_key: SecretStr | None = Field(
        None, title="API key", description="Sent as a bearer token, if the feed needs one."
    )
    poll_interval_seconds: int = Field(86400, ge=300, title="Refresh interval (seconds)")


class VendorCatalog(ConnectorType):
    name = "vendor_catalog"
    kind = "catalog"
    title = "Vendor catalog feed"
    description = "Product data and images from a designer vendor's catalog feed."
    settings_model = VendorCatalogSettings
    capabilities = frozenset({"catalog"})


@hookimpl
def clasp_register_connector_types(register):  # type: ignore[no-untyped-def]
    register(VendorCatalog())
