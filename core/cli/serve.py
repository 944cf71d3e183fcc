"""``clasp serve`` (the web app) and ``clasp worker`` (the arq worker): the two long-running processes.

Both refuse to start on an out-of-date schema, except on the embedded SQLite default, which
upgrades itself (a single-machine install has nobody else to run `clasp db upgrade` for it).
"""

from __future__ import annotations

import os

import click

from core.cli.servers import bind, run_services, serve_socket, url_of, web_server
from core.cli.state import CliState, get_state, run_with_runtime
from core.runtime import Runtime
from core.settings import Settings


def settings_for_listener(state: CliState, host: str, port: int) -> Settings:
    """Use the address we listen on as the public base URL unless CLASP_BASE_URL says otherwise."""
    settings = state.settings
    if os.environ.get("CLASP_BASE_URL"):
        return settings
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    state.settings_value = settings.model_copy(update={"base_url": f"http://{shown}:{port}"})
    return state.settings_value


async def check_redis(settings: Settings) -> None:
    """Fail fast, in one line, when Redis cannot be reached (arq would retry for seconds first)."""
    from arq import create_pool

    from core.redis import redis_settings

    redis = redis_settings(settings)
    redis.conn_retries = 0
    pool = await create_pool(redis)
    await pool.aclose()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for all).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--no-access-log", is_flag=True, help="Do not log every request.")
def serve(host: str, port: int, no_access_log: bool) -> None:
    """Serve the web app: admin panel, JSON API (/api/v1) and its OpenAPI schema (/schema)."""
    from core.logging import configure_logging
    from core.web import create_app

    state = get_state()
    sock = bind(host, port)
    settings_for_listener(state, host, sock.getsockname()[1])

    async def go(rt: Runtime) -> None:
        await check_redis(rt.settings)
        # After the checks: a mistake found there stays one line, not a screen of start-up logs.
        configure_logging(rt.settings)
        server = web_server(create_app(rt), sock, access_log=not no_access_log)
        click.echo(f"Clasp is serving on {url_of(sock, host)} (Ctrl-C to stop).", err=True)
        await run_services([serve_socket(server, sock, "web server")])

    try:
        run_with_runtime(go)
    finally:
        sock.close()


@click.command()
def worker() -> None:
    """Run the background worker: scheduled syncs and every other job (stop with Ctrl-C / SIGTERM)."""
    from core.jobs import run_worker
    from core.logging import configure_logging

    async def go(rt: Runtime) -> None:
        await check_redis(rt.settings)
        configure_logging(rt.settings)
        click.echo("Clasp worker started (Ctrl-C to stop).", err=True)
        await run_worker(rt)

    run_with_runtime(go)
