"""Registers the ``twilio`` connector type (SMS/MMS through Twilio's Messages API) and its sandbox.

The same code talks to Twilio or to the sandbox: only ``api_base_url`` differs. Work lives in
``client`` (Messages API, lookup, webhook signatures), ``errors`` (error codes) and ``sandbox``.

Configure Twilio's phone number (or messaging service) to POST incoming messages to
``<Clasp base URL>/webhooks/twilio/<connector id>/inbound``; Clasp sets each message's status
callback itself.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from core.plugin import (
    CheckResult,
    ConnectorContext,
    ConnectorSettings,
    ConnectorType,
    PluginError,
    Sandbox,
    SecretStr,
    Sender,
    hookimpl,
)

from .client import TwilioSender


class TwilioSettings(ConnectorSettings):
    api_base_url: str = Field("https://api.twilio.com", title="API base URL")
    account_sid: str = Field("", title="Account SID", pattern=r"^(AC[0-9a-fA-F]{32})?$")
    auth_token: SecretStr | None = Field(None, title="Auth token")
    from_number: str | None = Field(None, title="From number (E.164)")
    messaging_service_sid: str | None = Field(None, title="Messaging service SID")
    request_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=120,
        title="Request timeout (seconds)",
        description="A send that times out is checked with Twilio afterwards, never re-sent blindly.",
    )

    @model_validator(mode="after")
    def _one_sender(self) -> TwilioSettings:
        if self.from_number and self.messaging_service_sid:
            raise ValueError("set either from_number or messaging_service_sid, not both")
        return self


class Twilio(ConnectorType):
    name = "twilio"
    kind = "messaging"
    title = "Twilio SMS/MMS"
    description = "Texts and picture messages through Twilio, with delivery status and replies."
    settings_model = TwilioSettings
    capabilities = frozenset({"send", "webhooks"})

    async def check(self, ctx: ConnectorContext) -> CheckResult:
        settings = ctx.settings
        if not settings.account_sid or not settings.auth_token:
            return CheckResult(ok=False, message="Set the account SID and auth token.")
        if not settings.from_number and not settings.messaging_service_sid:
            return CheckResult(ok=False, message="Set a from number or a messaging service SID.")
        try:
            account = await TwilioSender(ctx).account()
        except PluginError as exc:
            return CheckResult(ok=False, message=str(exc))
        except Exception as exc:
            return CheckResult(ok=False, message=f"cannot reach Twilio at {settings.api_base_url}: {exc}")
        inbound = f"{ctx.base_url}/webhooks/twilio/{ctx.connector_id}/inbound"
        return CheckResult(
            ok=True,
            message=f"Connected to Twilio account {account.get('friendly_name') or settings.account_sid}.",
            details={"status": account.get("status"), "inbound_webhook": inbound},
        )

    def sender(self, ctx: ConnectorContext) -> Sender | None:
        return TwilioSender(ctx)


def _sandbox_app(**options):  # type: ignore[no-untyped-def]
    from .sandbox.app import create_app

    return create_app(**options)


@hookimpl
def clasp_register_connector_types(register):  # type: ignore[no-untyped-def]
    register(Twilio())


@hookimpl
def clasp_register_sandboxes(register):  # type: ignore[no-untyped-def]
    register(
        Sandbox(
            name="twilio",
            app_factory=_sandbox_app,
            description=(
                "Twilio Messages API: magic numbers, signed status callbacks, inbound simulator, inbox page at /. "
                "Account ACc1a5b0c1a5b0c1a5b0c1a5b0c1a5b0c1, auth token sandbox-auth-token, from +15005550006. "
                "Options: callback_delay, out_of_order, duplicate_callbacks, inbound_url, numbers."
            ),
            connector_type="twilio",
            connector_settings=sandbox_connector_settings,
        )
    )


def sandbox_connector_settings(url: str) -> dict[str, Any]:
    """Settings for a ``twilio`` connector pointed at a sandbox served at ``url`` (for demos).

    The sandbox's fixed, published test credentials: not secrets."""
    from plugins.sms_twilio.sandbox.app import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

    return {
        "api_base_url": url,
        "account_sid": DEFAULT_ACCOUNT_SID,
        "auth_token": DEFAULT_AUTH_TOKEN,
        "from_number": "+15005550006",
    }
