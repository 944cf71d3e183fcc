"""The automations stage: occasions found by set-based SQL, fired once each as a text or a Today task.

- ``store``: automation rows (one per registered type, created disabled), their settings, the
  organisation-wide automation settings (owner rule, default timezone).
- ``occasions``: the :class:`core.plugin.OccasionQuery` building blocks, compiled to SQL.
- ``evaluate``: one evaluation (real or dry run) of the enabled automations.
- ``templates``: the sandboxed Jinja2 environment and the variables a template sees.
- ``owners``: who owns a client (last or first seller; departures reassigned).
- ``today``: the Today page's tasks, completing and snoozing them, managers' completion figures.
- ``jobs``: the worker's cron entry points.

Modules are imported where used, so importing the package pulls in nothing heavy.
"""
