"""A test plugin implementing every hook, the way a third party would (it imports only core.plugin)."""

from __future__ import annotations

from typing import Any

from litestar import get
from pydantic import BaseModel

from core.plugin import (
    AdminPage,
    AttributionModel,
    AutomationType,
    ClientPanel,
    ConnectorSettings,
    ConnectorType,
    Job,
    NavItem,
    Sandbox,
    SecretStr,
    hookimpl,
)


class EverythingSettings(ConnectorSettings):
    endpoint: str = "http://127.0.0.1:1"
    token: SecretStr | None = None


class EverythingConnector(ConnectorType):
    name = "everything"
    kind = "crm"
    title = "Everything (test)"
    settings_model = EverythingSettings
    capabilities = frozenset({"push"})


class Anniversary2(AutomationType):
    name = "everything_occasion"
    settings_model = BaseModel
    default_template = "Hi {{ client.first_name }}"


class FirstTouch(AttributionModel):
    name = "everything_first_touch"


async def everything_job(ctx: dict[str, Any], value: int) -> int:
    return value * 2


async def everything_cron(ctx: dict[str, Any]) -> None:
    return None


@get("/everything/ping", sync_to_thread=False)
def ping() -> dict[str, str]:
    return {"pong": "everything"}


class EverythingWeb:
    """A Litestar init plugin adding one route."""

    def on_app_init(self, app_config: Any) -> Any:
        app_config.route_handlers.append(ping)
        return app_config


def sandbox_app(**options: Any) -> Any:
    from litestar import Litestar

    return Litestar(route_handlers=[ping])


@hookimpl
def clasp_register_connector_types(register):  # type: ignore[no-untyped-def]
    register(EverythingConnector())


@hookimpl
def clasp_register_automation_types(register):  # type: ignore[no-untyped-def]
    register(Anniversary2())


@hookimpl
def clasp_register_attribution_models(register):  # type: ignore[no-untyped-def]
    register(FirstTouch())


@hookimpl
def clasp_register_jobs(register):  # type: ignore[no-untyped-def]
    register(Job(name="everything_job", function=everything_job))
    register(Job(name="everything_cron", function=everything_cron, cron={"minute": {0}}))


@hookimpl
def clasp_register_admin(register):  # type: ignore[no-untyped-def]
    register(NavItem(label="Everything", href="/admin/everything", roles=frozenset({"owner"})))
    register(AdminPage(name="everything", route_handlers=[ping]))
    register(ClientPanel(name="everything", title="Everything", render=lambda client: "<p>hi</p>"))


@hookimpl
def clasp_register_web(register):  # type: ignore[no-untyped-def]
    register(EverythingWeb())


@hookimpl
def clasp_register_sandboxes(register):  # type: ignore[no-untyped-def]
    register(Sandbox(name="everything", app_factory=sandbox_app, connector_type="everything"))


@hookimpl
def clasp_register_commands(cli):  # type: ignore[no-untyped-def]
    import click

    @cli.command(name="everything")
    def everything_command() -> None:
        """Say hello from the everything plugin."""
        click.echo("hello from everything")
