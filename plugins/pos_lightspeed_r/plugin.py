"""Registers the ``lightspeed_r`` connector type and its sandbox.

The same code talks to Lightspeed or to the sandbox: only ``api_base_url`` and ``auth_base_url``
differ. The work lives in sibling modules: ``auth`` (OAuth), ``client`` (HTTP, pacing, paging),
``quirks`` (R-Series JSON), ``mapping`` (payload → records), ``streams``, ``writer``, ``sandbox``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from core.plugin import (
    CheckResult,
    ConnectorContext,
    ConnectorSettings,
    ConnectorType,
    OAuthFlow,
    PluginError,
    Sandbox,
    SecretStr,
    Stream,
    Writer,
    hookimpl,
)

from .auth import LightspeedOAuth
from .client import API_PREFIX, LightspeedApi
from .quirks import resource_rows, text
from .streams import build_streams
from .writer import CustomerWriter

DEFAULT_SCOPE = "employee:customers employee:register_read employee:inventory_read"


class LightspeedRSettings(ConnectorSettings):
    api_base_url: str = Field("https://api.lightspeedapp.com", title="API base URL")
    auth_base_url: str = Field("https://cloud.lightspeedapp.com", title="OAuth base URL")
    client_id: str = Field("", title="OAuth client id")
    client_secret: SecretStr | None = Field(None, title="OAuth client secret")
    scope: str = Field(
        DEFAULT_SCOPE,
        title="OAuth scopes",
        description="Space-separated. Read sales and items, read and write customers.",
    )
    account_id: str | None = Field(None, title="Account id", description="Discovered after authorizing.")
    currency: str | None = Field(
        None, min_length=3, max_length=3, title="Currency", description="Discovered from the account."
    )
    refresh_token: SecretStr | None = Field(None, title="Refresh token")
    access_token: SecretStr | None = Field(None, title="Access token")
    access_token_expires_at: datetime | None = Field(
        None, title="Access token refresh due", description="Set by the OAuth flow; the token is renewed then."
    )
    history_years: int = Field(5, ge=0, le=30, title="History to backfill (years)")
    poll_interval_seconds: int = Field(60, ge=10, title="Sync interval (seconds)")
    customer_resweep_hours: int = Field(
        24, ge=0, title="Full customer re-read (hours)",
        description="Re-read every customer this often to catch contact edits; 0 turns it off.",
    )
    anniversary_field: str = Field("Anniversary", title="Custom field holding the anniversary")
    writeback: bool = Field(False, title="Write client edits back to Lightspeed")
    # Consent policy: how Lightspeed's flags and fields read as consent (see consent.py for the why).
    consent_from_pos: bool = Field(True, title="Read consent from Lightspeed")
    consent_read_flags: bool = Field(
        True, title="Read the no email / no phone / no mail flags",
        description="An unset flag is an opt-in to promotions by email, phone call or post.",
    )
    consent_flag_set_means: Literal["no_permission", "opt_out"] = Field(
        "no_permission", title="A set \"no email / phone / mail\" flag means",
        description="Lightspeed sets them on every new customer, so by default a set flag only means nobody "
        "asked. Choose opt_out if your staff set them only when a client refuses.",
    )
    consent_sms_field: str = Field(
        "Text Opt-In", title="Custom field giving text (SMS) consent",
        description="A checkbox: ticked is an opt-in to promotional texts. noPhone is about calls, not texts. "
        "Empty: texts need an in-store opt-in or START.",
    )
    consent_sms_wording: str = Field(
        "Yes, text me about new pieces, events and offers. Up to 4 messages a month; message and data rates "
        "may apply. Reply STOP to opt out.",
        title="Wording staff show when ticking the text field", description="Kept with each consent it gives.",
    )
    consent_catalog_field: str = Field("Wants Catalog", title="Custom field asking for the catalog by post")
    consent_flag_wording: str = Field(
        "Agreed at the till to hear from the store (Lightspeed contact preferences).",
        title="Wording behind the contact flags",
    )
    consent_overrides_opt_out: bool = Field(
        False, title="A Lightspeed opt-in may lift an opt-out recorded in Clasp",
        description="In store or imported opt-outs. A STOP text is never lifted by the point of sale.",
    )


class LightspeedR(ConnectorType):
    name = "lightspeed_r"
    kind = "pos"
    title = "Lightspeed Retail (R-Series)"
    description = "Shops, employees, customers, items and sales from Lightspeed Retail R-Series."
    settings_model = LightspeedRSettings
    capabilities = frozenset({"oauth", "sync", "writeback"})

    async def check(self, ctx: ConnectorContext) -> CheckResult:
        settings = ctx.settings
        if not settings.client_id:
            return CheckResult(ok=False, message="Set the OAuth client id and secret, then authorize.")
        if not settings.refresh_token and not settings.access_token:
            return CheckResult(ok=False, message="Not authorized yet: use Authorize to connect the Lightspeed account.")
        try:
            async with LightspeedApi(ctx) as api:
                # Account.json: the cheapest call that proves token, scopes and account all work.
                body = await api.get_json(f"{api.base_url}{API_PREFIX}/Account.json")
                accounts = resource_rows(body, "Account")
                account_id = await api.ensure_account()
        except PluginError as exc:
            return CheckResult(ok=False, message=str(exc))
        except Exception as exc:  # a check reports, it never crashes the panel
            return CheckResult(ok=False, message=f"Could not reach Lightspeed: {type(exc).__name__}: {exc}")
        account = next((a for a in accounts if text(a, "accountID") == account_id), accounts[0] if accounts else {})
        name = text(account, "name") or account_id
        return CheckResult(
            ok=True,
            message=f"Connected to Lightspeed account {name} ({account_id}).",
            details={"account_id": account_id, "account_name": name, "currency": ctx.settings.currency},
        )

    def streams(self, ctx: ConnectorContext) -> list[Stream]:
        return build_streams(ctx)

    def writer(self, ctx: ConnectorContext) -> Writer | None:
        return CustomerWriter(ctx) if ctx.settings.writeback else None

    def oauth(self, ctx: ConnectorContext) -> OAuthFlow | None:
        return LightspeedOAuth(ctx)


SANDBOX_CLIENT_ID = "clasp-sandbox"
SANDBOX_CLIENT_SECRET = "sandbox-secret"  # the sandbox's fixed demo credentials, not a real secret


def sandbox_connector_settings(url: str) -> dict[str, Any]:
    """Settings for a ``lightspeed_r`` connector pointed at a sandbox served at ``url`` (for demos)."""
    return {"api_base_url": url, "auth_base_url": url, "client_id": SANDBOX_CLIENT_ID,
            "client_secret": SANDBOX_CLIENT_SECRET}


def create_sandbox_app(**options: Any) -> Any:
    from .sandbox.app import create_app

    return create_app(**options)


@hookimpl
def clasp_register_connector_types(register):  # type: ignore[no-untyped-def]
    register(LightspeedR())


@hookimpl
def clasp_register_sandboxes(register):  # type: ignore[no-untyped-def]
    register(
        Sandbox(
            name="lightspeed-r",
            app_factory=create_sandbox_app,
            description="Lightspeed Retail R-Series: OAuth, V3 paging, leaky bucket, a generated jewelry chain. "
            "Options: shops, clients, years, seed, sales_per_day, drip_rate, bucket_size, burst_limit, token_ttl "
            "(client id clasp-sandbox, secret sandbox-secret; truth at /_sandbox/truth).",
            connector_type="lightspeed_r",
            connector_settings=sandbox_connector_settings,
        )
    )
