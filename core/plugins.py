"""The plugin manager: discovers plugins through the ``clasp`` entry-point group and collects
what they register. Built-in plugins are found exactly the way a third party's are."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from core import hookspecs
from core.registry import Registry
from core.settings import Settings, get_settings

PROJECT = "clasp"
ENTRY_POINT_GROUP = "clasp"

REGISTER_HOOKS = {
    "clasp_register_connector_types": "add_connector_type",
    "clasp_register_automation_types": "add_automation_type",
    "clasp_register_attribution_models": "add_attribution_model",
    "clasp_register_jobs": "add_job",
    "clasp_register_admin": "add_admin",
    "clasp_register_web": "add_web",
    "clasp_register_sandboxes": "add_sandbox",
}


class PluginLoadError(Exception):
    pass


@dataclass
class PluginInfo:
    name: str
    module: str
    version: str | None
    distribution: str | None
    hooks: list[str] = field(default_factory=list)


def new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


class Plugins:
    """Loaded plugins and their registry. Build one per process with :func:`load_plugins`."""

    def __init__(self, pm: pluggy.PluginManager, infos: list[PluginInfo]) -> None:
        self.pm = pm
        self.infos = infos
        self.registry = Registry()
        for hook_name, adder in REGISTER_HOOKS.items():
            self._collect(hook_name, getattr(self.registry, adder))

    def _collect(self, hook_name: str, adder: Any) -> None:
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            owner = self.pm.get_name(impl.plugin) or repr(impl.plugin)

            def register(obj: Any, _owner: str = owner) -> None:
                adder(obj, _owner)

            # Call each implementation on its own so a registration error names its plugin.
            args = {name: register for name in impl.argnames}
            impl.function(**args)

    def register_commands(self, cli: Any) -> None:
        self.pm.hook.clasp_register_commands(cli=cli)


def load_plugins(settings: Settings | None = None, extra: list[ModuleType | object] | None = None) -> Plugins:
    """Load installed plugins (all, or the ``CLASP_PLUGINS`` allow-list) and collect registrations.

    ``CLASP_PLUGINS`` names entry points (``pos_lightspeed_r``) or importable modules
    (``my_company.clasp_plugin``), comma-separated; an empty value loads none.
    """
    settings = settings or get_settings()
    pm = new_manager()
    allow = settings.plugin_allowlist
    infos: list[PluginInfo] = []
    eps = {ep.name: ep for ep in _entry_points()}
    wanted = list(eps) if allow is None else allow
    for name in wanted:
        if name in eps:
            ep = eps[name]
            try:
                module = ep.load()
            except Exception as exc:
                raise PluginLoadError(f"plugin {name!r} ({ep.value}) failed to import: {exc}") from exc
            dist = ep.dist
            info = PluginInfo(
                name=name,
                module=ep.value,
                version=dist.version if dist else None,
                distribution=dist.metadata["Name"] if dist else None,
            )
        else:
            try:
                module = importlib.import_module(name)
            except ImportError as exc:
                known = ", ".join(sorted(eps)) or "none"
                raise PluginLoadError(
                    f"CLASP_PLUGINS names {name!r}, which is neither an installed plugin ({known}) "
                    f"nor an importable module"
                ) from exc
            info = PluginInfo(name=name, module=name, version=getattr(module, "__version__", None), distribution=None)
        pm.register(module, name=name)
        infos.append(info)
    for obj in extra or []:
        name = getattr(obj, "__name__", None) or type(obj).__name__
        pm.register(obj, name=name)
        infos.append(PluginInfo(name=name, module=name, version=None, distribution=None))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginLoadError(f"a plugin implements a hook Clasp does not have: {exc}") from exc
    for info in infos:
        plugin = pm.get_plugin(info.name)
        info.hooks = sorted(impl.name for impl in pm.get_hookcallers(plugin) or []) if plugin is not None else []
    return Plugins(pm, infos)


def hook_names() -> list[str]:
    return sorted(name for name in dir(hookspecs) if name.startswith("clasp_") and callable(getattr(hookspecs, name)))


def is_loaded(module_name: str) -> bool:
    return module_name in sys.modules
