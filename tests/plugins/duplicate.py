"""Registers a connector type under a name a built-in plugin already uses."""

from core.plugin import ConnectorType, hookimpl


class AnotherTwilio(ConnectorType):
    name = "twilio"
    kind = "messaging"


@hookimpl
def clasp_register_connector_types(register):  # type: ignore[no-untyped-def]
    register(AnotherTwilio())
