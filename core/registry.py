"""What the loaded plugins contributed, collected once at startup from the ``clasp_register_*`` hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.plugin import (
    CAPABILITIES,
    AdminPage,
    AttributionModel,
    AutomationType,
    ClientPanel,
    ConnectorType,
    Job,
    NavItem,
    Sandbox,
)


class RegistrationError(Exception):
    """A plugin registered something invalid (duplicate name, wrong type, unknown capability)."""


@dataclass
class Registry:
    connector_types: dict[str, ConnectorType] = field(default_factory=dict)
    automation_types: dict[str, AutomationType] = field(default_factory=dict)
    attribution_models: dict[str, AttributionModel] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    nav_items: list[NavItem] = field(default_factory=list)
    admin_pages: list[AdminPage] = field(default_factory=list)
    client_panels: list[ClientPanel] = field(default_factory=list)
    sandboxes: dict[str, Sandbox] = field(default_factory=dict)
    web_plugins: list[Any] = field(default_factory=list)
    # Which plugin contributed each named object, for `clasp plugins` and error messages.
    owners: dict[str, str] = field(default_factory=dict)

    def connector_type(self, name: str) -> ConnectorType:
        try:
            return self.connector_types[name]
        except KeyError:
            known = ", ".join(sorted(self.connector_types)) or "none"
            raise KeyError(f"unknown connector type {name!r} (installed: {known})") from None

    def add_connector_type(self, obj: Any, owner: str) -> None:
        if not isinstance(obj, ConnectorType):
            raise RegistrationError(f"{owner}: register() expects a ConnectorType instance, got {obj!r}")
        for attr in ("name", "kind"):
            if not getattr(obj, attr, None):
                raise RegistrationError(f"{owner}: connector type {obj!r} has no {attr}")
        unknown = set(obj.capabilities) - CAPABILITIES
        if unknown:
            raise RegistrationError(f"{owner}: connector type {obj.name} declares unknown capabilities {unknown}")
        self._unique(self.connector_types, obj.name, obj, owner, "connector type")

    def add_automation_type(self, obj: Any, owner: str) -> None:
        if not isinstance(obj, AutomationType):
            raise RegistrationError(f"{owner}: register() expects an AutomationType instance, got {obj!r}")
        self._unique(self.automation_types, obj.name, obj, owner, "automation type")

    def add_attribution_model(self, obj: Any, owner: str) -> None:
        if not isinstance(obj, AttributionModel):
            raise RegistrationError(f"{owner}: register() expects an AttributionModel instance, got {obj!r}")
        self._unique(self.attribution_models, obj.name, obj, owner, "attribution model")

    def add_job(self, obj: Any, owner: str) -> None:
        if not isinstance(obj, Job):
            raise RegistrationError(f"{owner}: register() expects a Job, got {obj!r}")
        self._unique(self.jobs, obj.name, obj, owner, "job")

    def add_admin(self, obj: Any, owner: str) -> None:
        if isinstance(obj, NavItem):
            self.nav_items.append(obj)
            self.nav_items.sort(key=lambda n: (n.order, n.label))
        elif isinstance(obj, AdminPage):
            self.admin_pages.append(obj)
        elif isinstance(obj, ClientPanel):
            self.client_panels.append(obj)
            self.client_panels.sort(key=lambda p: (p.order, p.title))
        else:
            raise RegistrationError(f"{owner}: register() expects a NavItem, AdminPage or ClientPanel, got {obj!r}")

    def add_web(self, obj: Any, owner: str) -> None:
        if not callable(getattr(obj, "on_app_init", None)):
            raise RegistrationError(f"{owner}: register() expects a Litestar InitPluginProtocol, got {obj!r}")
        self.web_plugins.append(obj)
        self.owners[f"web plugin:{type(obj).__name__}"] = owner

    def add_sandbox(self, obj: Any, owner: str) -> None:
        if not isinstance(obj, Sandbox):
            raise RegistrationError(f"{owner}: register() expects a Sandbox, got {obj!r}")
        self._unique(self.sandboxes, obj.name, obj, owner, "sandbox")

    def _unique(self, table: dict[str, Any], name: str, obj: Any, owner: str, what: str) -> None:
        key = f"{what}:{name}"
        if name in table:
            raise RegistrationError(f"{owner}: {what} {name!r} is already registered by {self.owners[key]}")
        table[name] = obj
        self.owners[key] = owner
