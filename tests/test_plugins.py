"""The plugin system: every hook documented and tested, entry-point discovery, import boundaries."""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient

from core import hookspecs
from core.jobs import worker_settings
from core.plugins import PluginLoadError, hook_names, load_plugins
from core.registry import RegistrationError
from core.runtime import create_runtime
from core.settings import Settings
from core.web import create_app
from tests.plugins import everything

ROOT = Path(__file__).resolve().parent.parent
BUILTIN_TYPES = {"lightspeed_r", "lightspeed_x", "twilio", "vendor_catalog", "salesforce"}


def _settings(**kw: object) -> Settings:
    return Settings(data_dir=Path("/nonexistent"), **kw)  # type: ignore[arg-type]


def _loaded(plugins: str | None = None) -> object:
    return load_plugins(_settings(plugins=plugins), extra=[everything])


# ---------------------------------------------------------------- every hook documented and tested


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_has_a_real_docstring(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert len(doc) > 80, f"{name} needs a docstring: hookspec docstrings are the plugin author's manual"
    assert "register" in doc or "cli" in doc


def test_every_hook_is_implemented_by_the_test_plugin_and_has_a_test() -> None:
    implemented = {n for n in dir(everything) if n.startswith("clasp_")}
    assert implemented == set(hook_names())
    missing = [n for n in hook_names() if f"test_hook_{n.removeprefix('clasp_')}" not in globals()]
    assert not missing, f"hooks without a test_hook_<name> test: {missing}"


def test_hook_register_connector_types() -> None:
    plugins = _loaded()
    reg = plugins.registry  # type: ignore[attr-defined]
    assert BUILTIN_TYPES | {"everything"} <= set(reg.connector_types)
    ctype = reg.connector_type("everything")
    assert ctype.settings_model.secret_fields() == {"token"}
    assert reg.owners["connector type:everything"] == "tests.plugins.everything"


def test_hook_register_automation_types() -> None:
    reg = _loaded().registry  # type: ignore[attr-defined]
    assert reg.automation_types["everything_occasion"].default_template.startswith("Hi")


def test_hook_register_attribution_models() -> None:
    reg = _loaded().registry  # type: ignore[attr-defined]
    assert "everything_first_touch" in reg.attribution_models


def test_hook_register_jobs() -> None:
    plugins = _loaded()
    rt = create_runtime(_settings(redis_url="redis://127.0.0.1:6379/13"), plugins=plugins)  # type: ignore[arg-type]
    ws = worker_settings(rt)
    assert "everything_job" in {f.name for f in ws["functions"]}
    assert "everything_cron" in {c.name for c in ws["cron_jobs"]}


def test_hook_register_admin() -> None:
    reg = _loaded().registry  # type: ignore[attr-defined]
    assert [n.label for n in reg.nav_items if n.label == "Everything"] == ["Everything"]
    assert [p.name for p in reg.admin_pages if p.name == "everything"] == ["everything"]
    assert reg.client_panels[0].render(None) == "<p>hi</p>"


async def test_hook_register_web() -> None:
    plugins = _loaded()
    rt = create_runtime(_settings(database_url="sqlite+aiosqlite:///:memory:"), plugins=plugins)  # type: ignore[arg-type]
    async with AsyncTestClient(create_app(rt, connect_redis=False)) as client:
        resp = await client.get("/everything/ping")
    assert resp.json() == {"pong": "everything"}
    await rt.close()


def test_hook_register_sandboxes() -> None:
    reg = _loaded().registry  # type: ignore[attr-defined]
    assert reg.sandboxes["everything"].connector_type == "everything"
    assert reg.sandboxes["everything"].app_factory() is not None


def test_hook_register_commands() -> None:
    @click.group()
    def cli() -> None:
        pass

    _loaded().register_commands(cli)  # type: ignore[attr-defined]
    result = CliRunner().invoke(cli, ["everything"])
    assert result.exit_code == 0
    assert result.output.strip() == "hello from everything"


# ------------------------------------------------------------------------------- loading rules


def test_misspelt_hook_is_caught_at_startup() -> None:
    from tests.plugins import misspelt

    with pytest.raises(PluginLoadError, match="clasp_register_conector_types"):
        load_plugins(_settings(plugins=""), extra=[misspelt])


def test_duplicate_registration_names_both_plugins() -> None:
    from tests.plugins import duplicate

    with pytest.raises(RegistrationError, match=r"twilio.*already registered by sms_twilio"):
        load_plugins(_settings(plugins="sms_twilio"), extra=[duplicate])


def test_allow_list_loads_only_named_plugins() -> None:
    plugins = load_plugins(_settings(plugins="sms_twilio, tests.plugins.everything"))
    assert [i.name for i in plugins.infos] == ["sms_twilio", "tests.plugins.everything"]
    assert set(plugins.registry.connector_types) == {"twilio", "everything"}
    assert load_plugins(_settings(plugins="")).registry.connector_types == {}
    with pytest.raises(PluginLoadError, match="neither an installed plugin"):
        load_plugins(_settings(plugins="no_such_plugin"))


def test_builtins_load_through_the_entry_point_group() -> None:
    plugins = load_plugins(_settings())
    by_name = {i.name: i for i in plugins.infos}
    assert {"pos_lightspeed_r", "pos_lightspeed_x", "sms_twilio", "catalog_vendors", "crm_salesforce", "admin"} <= set(
        by_name
    )
    assert by_name["sms_twilio"].distribution == "clasp-hub"
    assert "clasp_register_connector_types" in by_name["sms_twilio"].hooks


def test_third_party_plugin_installed_as_a_package_is_discovered(tmp_path: Path) -> None:
    """A throwaway distribution with only an entry point in group `clasp`, really pip-installed."""
    src = tmp_path / "src"
    pkg = src / "clasp_acme"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            '''
            from core.plugin import ConnectorType, hookimpl

            __version__ = "3.1.4"


            class AcmePos(ConnectorType):
                name = "acme_pos"
                kind = "pos"
                capabilities = frozenset({"sync"})


            @hookimpl
            def clasp_register_connector_types(register):
                register(AcmePos())
            '''
        )
    )
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "clasp-acme"
            version = "3.1.4"

            [project.entry-points.clasp]
            acme = "clasp_acme"

            [tool.setuptools]
            packages = ["clasp_acme"]
            """
        )
    )
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(src)],
        check=True,
        capture_output=True,
    )
    probe = (
        "import json; from core.plugins import load_plugins; p = load_plugins(); "
        "print(json.dumps({'plugins': {i.name: [i.version, i.distribution] for i in p.infos}, "
        "'types': sorted(p.registry.connector_types)}))"
    )
    env = {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{ROOT}"}
    env.pop("CLASP_PLUGINS", None)
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    found = json.loads(out.stdout)
    assert found["plugins"]["acme"] == ["3.1.4", "clasp-acme"]
    assert "acme_pos" in found["types"]
    # Without the package on the path it is not there: the discovery is real.
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    assert "acme" not in json.loads(out.stdout)["plugins"]


# ---------------------------------------------------------------------------- import boundaries


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_plugins_import_only_the_public_plugin_api() -> None:
    offenders = []
    for path in (ROOT / "plugins").rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "core" and name != "core.plugin":
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
            if top == "admin":
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "plugins may import only core.plugin:\n" + "\n".join(offenders)


def test_core_never_imports_plugins_or_admin() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / "core").rglob("*.py")
        for name in _imports(path)
        if name.split(".")[0] in {"plugins", "admin"}
    ]
    assert not offenders, "\n".join(offenders)


def test_boundary_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from core.models import Client\nimport admin.plugin\n")
    assert _imports(bad) == ["core.models", "admin.plugin"]
