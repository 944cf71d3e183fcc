"""The ``clasp`` command line: one module per command group, plugins may add their own commands.

Every user mistake ends in one line on stderr and a non-zero exit status; an unexpected error ends
in one line too, and ``clasp --debug ...`` shows its traceback.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from core import __version__
from core.cli.failures import describe, unexpected
from core.cli.state import CliState


def error_line(message: str) -> None:
    click.echo(f"error: {message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show the full traceback when something unexpected fails.")
@click.version_option(__version__, "--version", prog_name="clasp")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Clasp: a self-hostable clienteling hub for multi-store retailers.

    Configure with CLASP_* environment variables (or a .env file). With none set, Clasp runs on the
    embedded defaults: a SQLite file and an embedded Redis in ~/.local/share/clasp.

    Start with `clasp demo`, or `clasp db upgrade`, `clasp user add` and `clasp serve` + `clasp worker`.
    """
    state = ctx.ensure_object(CliState)
    state.debug = state.debug or debug


def _add_core_commands(group: click.Group) -> None:
    from core.cli import (
        attribution,
        automations,
        connector,
        consent,
        db,
        demo,
        errors,
        export,
        outbox,
        plugins,
        sandbox,
        serve,
        sync,
        tokens,
        users,
    )

    group.add_command(db.db)
    group.add_command(connector.connector)
    group.add_command(sync.sync)
    group.add_command(errors.errors)
    group.add_command(export.export)
    group.add_command(users.user)
    group.add_command(tokens.token)
    group.add_command(outbox.outbox)
    group.add_command(automations.automations)
    group.add_command(consent.consent)
    group.add_command(attribution.attribution)
    group.add_command(serve.serve)
    group.add_command(serve.worker)
    group.add_command(demo.demo)
    group.add_command(plugins.plugins)
    group.add_command(sandbox.sandbox)


def load_state() -> CliState:
    """Settings and plugins for this invocation; failures are kept for the commands that need them."""
    from core.settings import get_settings, reset_settings_cache

    state = CliState()
    reset_settings_cache()
    try:
        state.settings_value = get_settings()
    except Exception as exc:
        state.settings_error = f"invalid settings: {describe(exc) or exc}"
        state.plugins_error = state.settings_error
        return state
    from core.plugins import load_plugins

    try:
        state.plugins_value = load_plugins(state.settings_value)
    except Exception as exc:
        state.plugins_error = describe(exc) or f"{type(exc).__name__}: {exc}"
    return state


def build_cli(state: CliState) -> click.Group:
    """The root group with core commands, plus whatever the loaded plugins add."""
    group = cli
    if getattr(group, "_clasp_built", False):
        return group
    _add_core_commands(group)
    group._clasp_built = True  # type: ignore[attr-defined]
    if state.plugins_value is not None:
        try:
            state.plugins_value.register_commands(group)
        except Exception as exc:
            # One broken plugin must not take the whole command line down with it.
            error_line(f"a plugin failed to add its commands: {describe(exc) or f'{type(exc).__name__}: {exc}'}")
    return group


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CLASP_DEBUG", "") not in ("", "0", "false")
    state = CliState(debug=debug)
    try:
        state = load_state()
        state.debug = debug
        if state.settings_error:
            error_line(state.settings_error)
        elif state.plugins_error:
            error_line(f"plugins not loaded: {state.plugins_error}")
        group = build_cli(state)
        code = group.main(args=args, prog_name="clasp", standalone_mode=False, obj=state)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        error_line(f"{exc.format_message()}{hint}")
        code = exc.exit_code
    except click.exceptions.Abort:
        # Usually raised from a prompt, with the cursor still on the prompt's line.
        click.echo("", err=True)
        error_line("aborted")
        code = 1
    except click.ClickException as exc:
        error_line(exc.format_message())
        code = exc.exit_code
    except KeyboardInterrupt:
        error_line("interrupted")
        code = 130
    except Exception as exc:
        if state.debug:
            traceback.print_exc()
        message = describe(exc)
        error_line(message if message is not None else unexpected(exc))
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
