"""A plugin owns its ``rediq worker`` options and its settings, through hooks: a
third-party-style plugin adds an option, receives its value before the worker starts
(and may refuse it), adjusts supervised processes, and its settings module is rendered
in docs/configuration.md under its name."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import pytest
from click.testing import CliRunner

from rediq_core.cli.worker_cmd import worker_command
from rediq_core.errors import PluginNameClash
from rediq_core.hookspecs import RegisterSettings, RegisterWorkerOption
from rediq_core.plugins import hookimpl, make_plugin_host
from rediq_core.plugins.extras import missing_extra

DOCS = Path(__file__).resolve().parents[2] / "docs"


class Audit:
    """A plugin with a ``--audit-level`` worker option."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.seen: list[tuple[dict[str, Any], int]] = []

    @hookimpl
    def rediq_register_worker_options(self, register: RegisterWorkerOption) -> None:
        register(click.Option(["--audit-level"], type=int, default=1, envvar="AUDIT_LEVEL_TEST"))

    @hookimpl
    def rediq_configure_worker(self, options: Mapping[str, Any], processes: int) -> None:
        self.seen.append((dict(options), processes))
        if self.refuse and options["audit_level"] > 2:
            raise click.UsageError("--audit-level above 2 needs the audit server")
        raise SystemExit(7)  # stop before the app is imported: this test has none

    @hookimpl
    def rediq_prepare_worker_process(
        self, slot: int, processes: int, argv: list[str], env: dict[str, str]
    ) -> None:
        env["AUDIT_SLOT"] = f"{slot}/{processes}"
        argv.append(f"--audit-level={slot}")


def _invoke(plugin: object, *args: str) -> tuple[int, str]:
    command = worker_command(make_plugin_host(plugins=[plugin], autoload=False))
    result = CliRunner().invoke(command, ["nowhere:app", *args])
    return result.exit_code, result.output


def test_a_plugin_option_is_parsed_and_handed_to_its_plugin() -> None:
    plugin = Audit()
    code, output = _invoke(plugin, "--audit-level", "3", "--processes", "2")
    assert code == 7, output
    ((options, processes),) = plugin.seen
    assert options["audit_level"] == 3 and processes == 2
    assert "burst" not in options, "built-in options stay with the core"


def test_a_plugin_option_reads_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_LEVEL_TEST", "2")
    plugin = Audit()
    assert _invoke(plugin)[0] == 7
    assert plugin.seen[0] == ({**plugin.seen[0][0], "audit_level": 2}, 1)


def test_a_plugin_refuses_an_option_with_a_usage_error() -> None:
    code, output = _invoke(Audit(refuse=True), "--audit-level", "3")
    assert code == 2, output
    assert "--audit-level above 2 needs the audit server" in output


def test_a_plugin_option_is_listed_in_the_help() -> None:
    command = worker_command(make_plugin_host(plugins=[Audit()], autoload=False))
    names = [param.name for param in command.params]
    assert names.index("audit_level") < names.index("reload") == len(names) - 1
    assert "--audit-level" in CliRunner().invoke(command, ["--help"]).output


def test_a_plugin_option_named_like_a_built_in_one_is_a_clash() -> None:
    class Burst:
        @hookimpl
        def rediq_register_worker_options(self, register: RegisterWorkerOption) -> None:
            register(click.Option(["--burst"], is_flag=True))

    with pytest.raises(PluginNameClash, match="'--burst'"):
        worker_command(make_plugin_host(plugins=[Burst()], autoload=False))


def test_a_plugin_adjusts_each_supervised_process() -> None:
    host = make_plugin_host(plugins=[Audit()], autoload=False)
    argv, env = ["worker", "tasks:app"], {"KEEP": "1"}
    host.prepare_worker_process(1, 3, argv, env)
    assert argv == ["worker", "tasks:app", "--audit-level=1"]
    assert env == {"KEEP": "1", "AUDIT_SLOT": "1/3"}


def test_the_prometheus_plugin_serves_metrics_from_the_first_process_only() -> None:
    from rediq_prometheus import options

    host = make_plugin_host(autoload=False)
    options._Supervised.serving, options._Supervised.multiproc_dir = True, "/tmp/shared"
    try:
        slots = []
        for slot in (0, 1):
            argv = ["worker", "tasks:app", "--metrics-port", "9808", "--burst"]
            env = {"REDIQ_METRICS_PORT": "9808"}
            host.prepare_worker_process(slot, 2, argv, env)
            slots.append((argv, env))
    finally:
        options._Supervised.serving, options._Supervised.multiproc_dir = False, None
    shared = {"PROMETHEUS_MULTIPROC_DIR": "/tmp/shared"}
    assert slots[0] == (
        ["worker", "tasks:app", "--metrics-port", "9808", "--burst"],
        {"REDIQ_METRICS_PORT": "9808", **shared},
    )
    assert slots[1] == (["worker", "tasks:app", "--burst"], shared)


def _settings_module(tmp_path: Path) -> ModuleType:
    path = tmp_path / "audit_settings_for_test.py"
    path.write_text(
        textwrap.dedent(
            """
            from typing import Final

            #: Where the audit server listens.
            AUDIT_URL: Final = "http://localhost:9000"
            #: Environment variable of ``--audit-level``.
            ENV_AUDIT_LEVEL: Final = "AUDIT_LEVEL"
            """
        )
    )
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("docs_generate", module)
    spec.loader.exec_module(module)
    return module


def test_a_plugin_settings_module_is_rendered_under_its_name(tmp_path: Path) -> None:
    settings = _settings_module(tmp_path)

    class AuditSettings:
        @hookimpl
        def rediq_register_settings(self, register: RegisterSettings) -> None:
            register(settings)

    host = make_plugin_host(autoload=False)
    host.pm.register(AuditSettings(), name="audit")
    page = _generator().render_configuration(host)
    section = page[page.index("### audit\n") :]
    assert "`audit_settings_for_test`" in section
    assert (
        '| `AUDIT_URL` | `"http://localhost:9000"` | Where the audit server listens. |' in section
    )
    assert "| `ENV_AUDIT_LEVEL` |" in section


def test_every_setting_of_rediqs_plugins_is_in_the_configuration_page() -> None:
    page = (DOCS / "configuration.md").read_text()
    registered = make_plugin_host(autoload=False).settings()
    assert {"rediq_prometheus.settings", "rediq_dashboard.settings"} <= set(registered)
    for registration in registered.values():
        assert f"### {registration.plugin}\n" in page
        names = [name for name in vars(registration.value) if name.isupper()]
        missing = [name for name in names if f"`{name}`" not in page]
        assert not missing, f"{registration.name}: missing from docs/configuration.md: {missing}"


def test_missing_extra_finds_modules_without_importing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "heavy_extra_for_test.py").write_text("raise AssertionError('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert missing_extra("pip install x", "json", "heavy_extra_for_test") is None
    assert "heavy_extra_for_test" not in sys.modules
    assert missing_extra("pip install x", "json", "no_such_module_here") == "pip install x"
    assert missing_extra("pip install x", "no_such_package.sub") == "pip install x"
