"""``clasp demo``: everything in one process on the embedded defaults — web app, worker, sandboxes.

The panel and the worker start at once; the sandboxes come up beside them (the point-of-sale one
generates a jewelry chain first), their connectors are wired and authorized by
:mod:`core.demo`, and the point-of-sale backfill runs here with a progress bar while the panel is
already usable (its connector page shows the same run live). After that the worker's tick keeps
every connector syncing on its interval. Stopping and starting again with the same data directory
reuses the connectors and resumes from the checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import sys
import time
from typing import Any

import click
from sqlmodel import col, select

from core.cli.servers import Service, bind, run_services, serve_socket, url_of, web_server, worker_service
from core.cli.state import CliError, actor, get_state, open_runtime, safe_database_url
from core.demo import ChainOptions, DemoConnector, DemoSetup, RunningSandbox
from core.runtime import Runtime

DEMO_EMAIL = "demo@clasp.local"
SMALL_CHAIN = {"shops": 2, "clients": 100, "years": 1}


async def ensure_demo_owner(rt: Runtime) -> tuple[str, str | None]:
    """Create the demo owner when there is no owner yet; returns (email, password or None if it existed)."""
    from core.models import User
    from core.users import create_user

    async with rt.db.transaction() as session:
        owner = (await session.exec(select(User).where(col(User.role) == "owner").order_by(col(User.id)))).first()
        if owner is not None:
            return owner.email, None
        password = os.environ.get("CLASP_DEMO_PASSWORD") or secrets.token_urlsafe(12)
        # The reserved .local domain can never be someone's real address, which is why the demo uses it.
        user = await create_user(session, email=DEMO_EMAIL, password=password, role="owner", name="Demo owner",
                                 audit_actor={"actor": actor()})
        return user.email, password


# ---------------------------------------------------------------------------------------- progress


class ProgressView:
    """Shows a running sync: a live bar on a terminal, a line every few seconds otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.started = time.monotonic()
        self.interactive = sys.stdout.isatty()
        self.progress: Any = None
        self.task: Any = None
        self.last_line = 0.0
        self.last_stream: str | None = None
        self.swapped: list[tuple[logging.StreamHandler[Any], Any]] = []

    def __enter__(self) -> ProgressView:
        if self.interactive:
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                redirect_stdout=True,
                redirect_stderr=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=1.0, detail="starting…")
            # Log lines (web, worker) must scroll above the bar, not through it: point the handlers
            # that write to the terminal at rich's proxies while the bar is shown.
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.__stderr__, sys.__stdout__):
                    self.swapped.append((handler, handler.setStream(sys.stderr)))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            for handler, stream in self.swapped:
                handler.setStream(stream)
            self.progress.stop()

    def __call__(self, p: Any) -> None:
        detail = f"{p.stream or ''} · {p.records:,} records" + (f" · {p.errors:,} errors" if p.errors else "")
        if self.progress is not None:
            self.progress.update(self.task, completed=p.progress or 0.0, detail=detail)
            return
        now = time.monotonic()
        if p.stream != self.last_stream or now - self.last_line >= 5:
            self.last_stream, self.last_line = p.stream, now
            share = f"{p.progress * 100:3.0f}%" if p.progress is not None else "  …"
            click.echo(f"  {self.label}: {share} {detail} ({_elapsed(now - self.started)})")


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


# ------------------------------------------------------------------------------------ the demo runner


class DemoRunner:
    """The demo's own service: serves the sandboxes, wires them, runs the first syncs, then waits."""

    def __init__(self, rt: Runtime, host: str, chain: ChainOptions) -> None:
        self.rt = rt
        self.host = host
        self.chain = chain
        self.stopping = asyncio.Event()
        self.main: asyncio.Task[None] | None = None
        self.servers: list[tuple[Any, asyncio.Task[Any], socket.socket]] = []

    def service(self) -> Service:
        return Service(name="demo", run=self.run(), stop=self.stop)

    def stop(self) -> None:
        self.stopping.set()
        if self.main is not None:
            self.main.cancel()

    async def run(self) -> None:
        self.main = asyncio.ensure_future(self._main())
        try:
            await self.main
        except asyncio.CancelledError:
            if not self.stopping.is_set():
                raise
        finally:
            for server, _task, _sock in self.servers:
                server.should_exit = True
            for _server, task, sock in self.servers:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await task
                sock.close()

    async def _main(self) -> None:
        from core import demo

        rt = self.rt
        sandboxes = sorted(rt.registry.sandboxes.values(), key=lambda s: s.name)
        if not sandboxes:
            click.echo("No sandboxes are registered by the installed plugins: nothing to connect.")
            await self.stopping.wait()
            return
        pos = [s.name for s in sandboxes if demo.sandbox_options(rt, s, self.chain)]
        if pos:
            c = self.chain
            click.echo(f"Generating the demo chain for {', '.join(pos)}: {c.shops} shops, {c.clients:,} clients, "
                       f"{c.years} years of sales…")
        apps = await asyncio.gather(
            *(asyncio.to_thread(demo.build_sandbox_app, rt, s, self.chain) for s in sandboxes), return_exceptions=True
        )
        ports = await demo.remembered_ports(rt)
        running: list[RunningSandbox] = []
        for sb, app in zip(sandboxes, apps, strict=True):
            if isinstance(app, BaseException):
                owner = rt.registry.owners.get(f"sandbox:{sb.name}", "?")
                click.echo(f"warning: sandbox {sb.name} ({owner}) failed to start: {type(app).__name__}: {app}",
                           err=True)
                continue
            running.append(RunningSandbox(sb, await self._serve(sb.name, app, ports.get(sb.name, 0))))
        result = await demo.setup(rt, running, chain=self.chain)
        click.echo(self._sandbox_lines(running, result))
        synced = False
        for conn in result.connectors:
            if conn.kind in demo.FOREGROUND_KINDS:
                synced = await self._first_sync(conn) or synced
        if synced:
            await self._outreach_history()
        await self.stopping.wait()

    async def _outreach_history(self) -> None:
        from core.demo_outreach import generate_outreach_history

        history = await generate_outreach_history(self.rt, seed=self.chain.seed)
        if not history.skipped:
            click.echo(f"Outreach history: {history.texts:,} texts ({history.replies:,} answered) and "
                       f"{history.tasks:,} calls over the last 90 days; {history.credited:,} sales credited "
                       "to them (Reports page).")

    async def _serve(self, name: str, app: Any, port: int) -> str:
        try:
            sock = bind(self.host, port)
        except CliError:  # last start's port is taken now: any free one will do
            sock = bind(self.host, 0)
        server = web_server(app, sock, access_log=False, lifespan="auto")
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        self.servers.append((server, task, sock))
        while not server.started:
            if task.done():
                raise CliError(f"sandbox {name} did not start: {task.exception() or 'it stopped'}")
            await asyncio.sleep(0.02)
        return url_of(sock, self.host)

    def _sandbox_lines(self, running: list[RunningSandbox], result: DemoSetup) -> str:
        from core import demo

        lines = [""]
        for rs in running:
            conn = result.connector(rs.name)
            lines.append(f"  sandbox:   {rs.name} at {rs.url}")
            if conn is not None:
                how = "created" if conn.created else "updated"
                auth = ", authorized through OAuth" if conn.authorized else ""
                state = "" if conn.ready else f" — NOT READY: {conn.message}"
                lines.append(f"             connector “{conn.name}” (#{conn.connector_id}) {how}{auth}{state}")
        for name, why in result.skipped:
            lines.append(f"  sandbox:   {name}: no connector wired ({why})")
        lines += [f"    · {hint}" for hint in demo.banner_hints(result)]
        lines.append("")
        return "\n".join(lines)

    async def _first_sync(self, conn: DemoConnector) -> bool:
        from core import demo
        from core.sync import SyncBusy, SyncFailed, SyncRefused

        if not conn.ready:
            click.echo(f"{conn.name}: not syncing ({conn.message}).")
            await demo.release_schedule(self.rt, conn.connector_id)
            return False
        started = time.monotonic()
        try:
            with ProgressView(conn.name) as view:
                run = await demo.sync_now(self.rt, conn.connector_id, on_progress=view)
        except SyncBusy:
            click.echo(f"{conn.name}: another process is syncing it; follow it on the connector page.")
            return False
        except SyncRefused as exc:
            click.echo(f"{conn.name}: not syncing: {exc}")
            return False
        except SyncFailed as exc:
            why = exc.run.message or str(exc)
            click.echo(f"{conn.name}: the sync failed ({why}); the worker tries again on its schedule.")
            return False
        took = _elapsed(time.monotonic() - started)
        click.echo(
            f"{conn.name}: synced {run.records:,} records in {took}"
            + (f" ({run.errors:,} to the error queue)" if run.errors else "")
            + ". The worker keeps it in sync from now on."
        )
        return True


# --------------------------------------------------------------------------------------- command


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address for the web app and sandboxes.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Web app port.")
@click.option("--shops", default=3, show_default=True, type=click.IntRange(1, 8), help="Stores in the demo chain.")
@click.option("--clients", default=2000, show_default=True, type=click.IntRange(1, 200_000),
              help="Customers in the demo chain.")
@click.option("--years", default=5, show_default=True, type=click.IntRange(1, 30), help="Years of sales history.")
@click.option("--sales-per-day", default=3.0, show_default=True, type=click.FloatRange(0.01, 1000),
              help="Average sales per store and day.")
@click.option("--seed", default=7, show_default=True, type=int, help="Seed of the generated chain.")
@click.option("--drip-rate", default=10.0, show_default=True, type=click.FloatRange(0.1, 100_000),
              help="The point-of-sale sandbox's rate limit (request units per second; Lightspeed's is 1).")
@click.option("--small", is_flag=True, help="A quick look: 2 shops, 100 clients, 1 year (overrides those options).")
@click.option("--access-log", is_flag=True, help="Log every request to the web app.")
def demo(
    host: str, port: int, shops: int, clients: int, years: int, sales_per_day: float, seed: int, drip_rate: float,
    small: bool, access_log: bool,
) -> None:
    """Run Clasp in one process: web app, worker and every sandbox (migrates the database first).

    Connectors to the sandboxes are created (or updated) and authorized, and the point-of-sale
    sandbox's chain is backfilled with a progress bar while the panel is already up. A demo owner
    (demo@clasp.local) is created when there is no owner yet; its password is printed once (set
    CLASP_DEMO_PASSWORD to choose it). Stop with Ctrl-C; start again to resume.
    """
    from core.cli.serve import check_redis, settings_for_listener
    from core.jobs import create_worker
    from core.logging import configure_logging
    from core.migrate import ensure_up_to_date
    from core.web import create_app

    if small:
        shops, clients, years = SMALL_CHAIN["shops"], SMALL_CHAIN["clients"], SMALL_CHAIN["years"]
    chain = ChainOptions(shops=shops, clients=clients, years=years, seed=seed, sales_per_day=sales_per_day,
                         drip_rate=drip_rate)
    state = get_state()
    web_sock = bind(host, port)
    settings_for_listener(state, host, web_sock.getsockname()[1])

    async def go() -> None:
        async with open_runtime(state, check_schema=False) as rt:
            await ensure_up_to_date(rt.db, auto_upgrade=True)
            await check_redis(rt.settings)
            configure_logging(rt.settings)
            # One line per provider request drowns the progress and the banner; warnings still show.
            logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
            email, password = await ensure_demo_owner(rt)
            runner = DemoRunner(rt, host, chain)
            services: list[Service] = [
                serve_socket(web_server(create_app(rt), web_sock, access_log=access_log), web_sock, "web server"),
                worker_service(await create_worker(rt)),
                runner.service(),
            ]
            url = url_of(web_sock, host)
            lines = [
                "",
                f"Clasp demo is running at {url}/admin",
                f"  sign in:   {email} / {password}" + ("   (shown once: note it down)" if password else ""),
            ]
            if password is None:
                lines[-1] = f"  sign in:   as an existing owner, e.g. {email} (reset: `clasp user password {email}`)"
            lines += [
                f"  API:       {url}/api/v1 (OpenAPI schema at {url}/schema)",
                f"  database:  {safe_database_url(rt.settings)}",
                "Press Ctrl-C to stop (start again with the same data directory to resume).",
            ]
            click.echo("\n".join(lines))
            await run_services(services)
            click.echo("Clasp demo stopped.", err=True)

    try:
        asyncio.run(go())
    finally:
        web_sock.close()
