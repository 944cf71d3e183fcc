"""``clasp sandbox [NAME]``: serve one registered sandbox (a faithful fake of an external API)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from core.cli.servers import bind, run_services, serve_socket, url_of, web_server
from core.cli.state import CliError, get_state, parse_pairs


def option_values(pairs: dict[str, str]) -> dict[str, Any]:
    """``--option`` values are JSON when they parse as JSON (numbers, true, lists), else strings."""
    out: dict[str, Any] = {}
    for key, raw in pairs.items():
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


@click.command()
@click.argument("name", required=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Port to listen on (default: a free one).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Passed to the sandbox's app factory.")
def sandbox(name: str | None, host: str, port: int, options: tuple[str, ...]) -> None:
    """Serve sandbox NAME; without NAME, list the registered sandboxes."""
    state = get_state()
    sandboxes = state.plugins.registry.sandboxes
    if name is None:
        if not sandboxes:
            click.echo("No sandboxes are registered by the installed plugins.")
            return
        for sb_name, sb in sorted(sandboxes.items()):
            stands_in = f" (for {sb.connector_type})" if sb.connector_type else ""
            click.echo(f"{sb_name}{stands_in}: {sb.description}".rstrip(": "))
        return
    if name not in sandboxes:
        known = ", ".join(sorted(sandboxes)) or "none"
        raise CliError(f"no sandbox named {name!r} (registered: {known})")
    from core.logging import configure_logging

    configure_logging(state.settings)
    kwargs = option_values(parse_pairs(options, "--option"))
    try:
        app = sandboxes[name].app_factory(**kwargs)
    except TypeError as exc:
        raise CliError(f"sandbox {name!r} does not accept these options: {exc}") from None
    sock = bind(host, port)
    click.echo(f"Sandbox {name} is serving on {url_of(sock, host)} (Ctrl-C to stop).")
    try:
        asyncio.run(run_services([serve_socket(web_server(app, sock, lifespan="auto"), sock, f"sandbox {name}")]))
    finally:
        sock.close()
