"""Registers the ``twilio`` connector type."""

from __future__ import annotations

from pydantic import Field, model_validator

from core.plugin import ConnectorSettings, ConnectorType, SecretStr, hookimpl


class TwilioSettings(ConnectorSettings):
    api_base_url: str = Field("https://api.twilio.com", title="API base URL")
    account_sid: str = Field("", title="Account SID", pattern=r"^(AC[0-9a-fA-F]{32})?$")
    auth_token: SecretStr | None = Field(None, title="Auth token")
    from_number: str | None = Field(None, title="From number (E.164)")
    messaging_service_sid: str | None = Field(None, title="Messaging service SID")

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


@hookimpl
def clasp_register_connector_types(register):  # type: ignore[no-untyped-def]
    register(Twilio())
