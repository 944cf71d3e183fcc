"""``clasp plugins``: what is installed, what it registers, which hooks it implements."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from core.cli.state import get_state


def describe_plugins() -> dict[str, Any]:
    plugins = get_state().plugins
    registry = plugins.registry
    return {
        "plugins": [
            {
                "name": info.name,
                "version": info.version,
                "module": info.module,
                "distribution": info.distribution,
                "hooks": info.hooks,
            }
            for info in plugins.infos
        ],
        "connector_types": [
            {
                "name": ctype.name,
                "kind": ctype.kind,
                "title": ctype.title,
                "capabilities": sorted(ctype.capabilities),
                "settings": list(ctype.settings_model.model_fields),
                "secret_settings": sorted(ctype.settings_model.secret_fields()),
                "plugin": registry.owners.get(f"connector type:{name}"),
            }
            for name, ctype in sorted(registry.connector_types.items())
        ],
        "sandboxes": [
            {
                "name": name,
                "description": sb.description,
                "connector_type": sb.connector_type,
                "plugin": registry.owners.get(f"sandbox:{name}"),
            }
            for name, sb in sorted(registry.sandboxes.items())
        ],
        "automation_types": sorted(registry.automation_types),
        "attribution_models": sorted(registry.attribution_models),
        "jobs": sorted(registry.jobs),
    }


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List installed plugins with versions, the connector types they register and their hooks."""
    data = describe_plugins()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    console = Console(soft_wrap=True)
    table = Table("plugin", "version", "hooks", title="Plugins", title_justify="left", box=None)
    for p in data["plugins"]:
        table.add_row(p["name"], p["version"] or "-", ", ".join(p["hooks"]) or "-")
    console.print(table)
    console.print()
    table = Table(
        "connector type",
        "kind",
        "capabilities",
        "settings",
        "plugin",
        title="Connector types",
        title_justify="left",
        box=None,
    )
    for c in data["connector_types"]:
        settings = ", ".join(f"{s}*" if s in c["secret_settings"] else s for s in c["settings"])
        table.add_row(c["name"], c["kind"], ", ".join(c["capabilities"]) or "-", settings, c["plugin"] or "-")
    console.print(table)
    console.print("(* secret: stored encrypted, shown masked)")
    if data["sandboxes"]:
        console.print()
        table = Table(
            "sandbox", "connector type", "description", "plugin", title="Sandboxes", title_justify="left", box=None
        )
        for s in data["sandboxes"]:
            table.add_row(s["name"], s["connector_type"] or "-", s["description"], s["plugin"] or "-")
        console.print(table)
    for label, key in (
        ("Automation types", "automation_types"),
        ("Attribution models", "attribution_models"),
        ("Jobs", "jobs"),
    ):
        if data[key]:
            console.print(f"{label}: {', '.join(data[key])}")
