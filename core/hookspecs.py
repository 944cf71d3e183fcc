"""Every hook Clasp offers to plugins. Each docstring is the plugin author's manual for that hook.

Hooks are startup hooks in the style of ``llm`` and datasette: Clasp calls them once when it loads
plugins, passing a ``register`` callable, and the plugin registers *objects* (instances of the base
classes in :mod:`core.plugin`). The runtime then calls methods on those objects, which may be
``async``. No runtime path awaits a hook call directly: pluggy has no async.

pluggy passes an implementation only the arguments it names, so a hook can gain arguments later
without breaking existing plugins. Implement a hook with ``@hookimpl`` from :mod:`core.plugin`.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("clasp")


@hookspec
def clasp_register_connector_types(register: Any) -> None:
    """Register connector types: call ``register(MyConnectorType())`` once per type.

    A connector type (subclass of :class:`core.plugin.ConnectorType`) declares its ``name``, its
    ``kind`` (``pos``, ``messaging``, ``catalog`` or ``crm``), a pydantic ``settings_model`` (the admin
    panel renders its form from it; ``SecretStr`` fields are stored encrypted and never shown again),
    its ``capabilities`` and the stage objects it provides for a configured connector: sync streams,
    a writeback writer, a message sender, a CRM pusher, catalog feeds, an OAuth flow.
    """


@hookspec
def clasp_register_automation_types(register: Any) -> None:
    """Register automation types: call ``register(MyAutomationType())`` once per type.

    An automation type (subclass of :class:`core.plugin.AutomationType`) has a ``name``, a settings
    model (subclass of :class:`core.plugin.AutomationSettings`), a default template and
    ``occasions(query, settings)``, which describes who is due using the set-based building blocks of
    :class:`core.plugin.OccasionQuery` (client dates, after a sale, piece anniversaries, dormancy).
    Clasp compiles them to SQL, fires each occasion at most once, and sends or creates Today tasks.
    Built-in automations (birthday, anniversary, thank-you, ...) register through this same hook.
    """


@hookspec
def clasp_register_attribution_models(register: Any) -> None:
    """Register attribution models: call ``register(MyModel())`` once per model.

    An attribution model (subclass of :class:`core.plugin.AttributionModel`) decides which outreach
    earns credit for a sale: ``credit(sale, touches)`` gets the sale's facts
    (:class:`core.plugin.SaleFacts`, net pre-tax revenue) and the client's touches within the window
    (:class:`core.plugin.Touch`, newest first, from any store) and returns
    :class:`core.plugin.Credit` shares that sum to 1. Clasp calls every registered model whenever a
    sale, a refund of it, the client's identity or an earlier touch changes, replaces the model's
    credit rows for the sale, and queues the sale in the error queue (stage ``attribution``) when a
    model raises or returns bad shares. The reports show one model at a time.
    """


@hookspec
def clasp_register_jobs(register: Any) -> None:
    """Register background jobs for the arq worker.

    Call ``register(job)`` with a :class:`core.plugin.Job`: an async function taking
    ``(ctx, *args)`` where ``ctx["clasp"]`` is the :class:`core.plugin.Runtime`, an optional cron
    schedule, and a name. Jobs must be safe to run twice: the database is the source of truth, Redis
    only schedules, and arq may deliver a job more than once.
    """


@hookspec
def clasp_register_admin(register: Any) -> None:
    """Contribute to the admin panel.

    Call ``register(item)`` with a :class:`core.plugin.NavItem` (a link in the navigation), an
    :class:`core.plugin.AdminPage` (Litestar route handlers mounted under ``/admin``) or a
    :class:`core.plugin.ClientPanel` (a block rendered on a client's profile).
    """


@hookspec
def clasp_register_web(register: Any) -> None:
    """Extend the web application: call ``register(obj)`` with a Litestar ``InitPluginProtocol``
    instance (it may add route handlers, middleware, templates, static files in ``on_app_init``).

    The admin panel itself is registered through this hook. Routes for the JSON API belong in core;
    use :func:`clasp_register_admin` for pages inside the panel.
    """


@hookspec
def clasp_register_sandboxes(register: Any) -> None:
    """Register sandboxes: faithful fakes of an external API for demos and tests.

    Call ``register(Sandbox(name=..., app_factory=...))`` where ``app_factory(**options)`` returns an
    ASGI app. ``clasp sandbox NAME`` serves it and ``clasp demo`` starts every registered sandbox.
    """


@hookspec
def clasp_register_commands(cli: Any) -> None:
    """Add commands to the ``clasp`` command line.

    ``cli`` is the root :class:`click.Group`; decorate new commands with ``@cli.command()``.
    Use it for plugin-specific tooling; everyday operations belong to the core commands.
    """
