"""Third-party plugins, installed as real separate distributions on sys.path."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from rediq import Rediq
from rediq_core.errors import PluginError, PluginNameClash, UnknownNameError
from rediq_core.message import TaskMessage
from rediq_core.plugins import hookimpl, make_plugin_host
from rediq_core.testing.broker_contract import make_message

REVERSE_PLUGIN = """
import json
from rediq import hookimpl

class ReverseJson:
    name = "reverse-json"
    executes_code_on_load = False
    def dumps(self, value):
        return json.dumps(value).encode()[::-1]
    def loads(self, data):
        return json.loads(data[::-1])

@hookimpl
def rediq_register_serializers(register):
    register("reverse-json", ReverseJson)

SEEN = []

@hookimpl
async def rediq_before_task_enqueue(message):
    message.headers["trace"] = "t-1"
    SEEN.append(message.id)
"""


def install_distribution(root: Path, dist: str, module: str, source: str) -> None:
    """Write a module and a dist-info with a ``rediq`` entry point (what pip would do)."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[rediq]\n{dist} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("REDIQ_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("REDIQ_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("rediq_test_")]:
        del sys.modules[name]


async def test_separate_distribution_adds_serializer_and_listener(site: Path) -> None:
    install_distribution(site, "rediq-reverse", "rediq_test_reverse", REVERSE_PLUGIN)
    host = make_plugin_host()
    assert host.distributions["rediq-reverse"] == "rediq-reverse 1.0"
    app = Rediq(serializer_name="reverse-json", plugins=host)

    @app.task(task_name="t")
    async def t(x: int) -> None: ...

    message = app.build_message(t(5))
    assert message.payload == b"]}{ ,]5[[" and app.serializer.loads(message.payload) == [[5], {}]
    await host.events.before_task_enqueue(message)
    assert message.headers == {"trace": "t-1"}
    assert [message.id] == sys.modules["rediq_test_reverse"].SEEN


def test_blocking_by_name_removes_it(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_distribution(site, "rediq-reverse", "rediq_test_reverse", REVERSE_PLUGIN)
    monkeypatch.setenv("REDIQ_DISABLE_PLUGINS", "rediq-reverse")
    host = make_plugin_host()
    assert "reverse-json" not in host.serializers()
    with pytest.raises(UnknownNameError, match="unknown serializer 'reverse-json'"):
        Rediq(serializer_name="reverse-json", plugins=host)


def test_builtins_can_be_blocked_too() -> None:
    host = make_plugin_host(blocked=["serializers"])
    assert host.serializers() == {}
    assert "redis" in host.brokers()


def test_autoload_switch_keeps_only_rediq_own_plugins(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_distribution(site, "rediq-reverse", "rediq_test_reverse", REVERSE_PLUGIN)
    monkeypatch.setenv("REDIQ_DISABLE_PLUGIN_AUTOLOAD", "1")
    host = make_plugin_host()
    assert "reverse-json" not in host.serializers() and "json" in host.serializers()


def test_name_clash_names_both_plugins(site: Path) -> None:
    install_distribution(
        site,
        "rediq-clash",
        "rediq_test_clash",
        """
        from rediq import hookimpl
        @hookimpl
        def rediq_register_serializers(register):
            register("json", object)
    """,
    )
    host = make_plugin_host()
    with pytest.raises(
        PluginNameClash,
        match="serializer 'json' is registered by both plugin '(serializers|rediq-clash)' and plugin '(serializers|rediq-clash)'",
    ):
        host.serializers()


def test_implementation_without_spec_is_rejected() -> None:
    class Typo:
        @hookimpl
        def rediq_register_serialisers(self, register: object) -> None: ...

    with pytest.raises(PluginError, match="rediq_register_serialisers.*hook spec"):
        make_plugin_host(plugins=[Typo()])


def test_broken_plugin_says_how_to_block_it(site: Path) -> None:
    install_distribution(site, "rediq-broken", "rediq_test_broken", "raise RuntimeError('boom')")
    with pytest.raises(PluginError, match="'rediq-broken'.*REDIQ_DISABLE_PLUGINS=rediq-broken"):
        make_plugin_host()


async def test_failing_listener_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    class Failing:
        @hookimpl
        def rediq_before_task_enqueue(self, message: TaskMessage) -> None:
            calls.append("failing")
            raise RuntimeError("listener bug")

    class Async:
        @hookimpl
        async def rediq_before_task_enqueue(self, message: TaskMessage) -> None:
            calls.append("async")

    host = make_plugin_host(plugins=[Async(), Failing()])
    message = TaskMessage(
        id="1",
        name="t",
        queue="q",
        payload=b"",
        serializer="json",
        priority=0,
        max_retries=0,
        timeout_ms=None,
        result_ttl_s=0,
    )
    await host.events.before_task_enqueue(message)
    assert sorted(calls) == ["async", "failing"]
    assert "listener bug" in caplog.text and "rediq_before_task_enqueue" in caplog.text


def test_fresh_host_per_call() -> None:
    assert make_plugin_host() is not make_plugin_host()


def test_plugin_commands_are_registered_and_clashes_named() -> None:
    import click

    def plugin_with(command_name: str) -> object:
        class CommandPlugin:
            @hookimpl
            def rediq_register_commands(self, register: Any) -> None:
                register(click.Command(command_name, callback=lambda: None))

        return CommandPlugin()

    host = make_plugin_host(plugins=[plugin_with("audit")])
    assert host.commands()["audit"].value.name == "audit"
    clash = make_plugin_host(plugins=[plugin_with("audit"), plugin_with("audit")])
    with pytest.raises(PluginNameClash, match="command 'audit' is registered by both plugin"):
        clash.commands()


async def test_event_wrappers_run_around_the_listeners_in_pluggy_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[object] = []

    class Listener:
        @hookimpl
        async def rediq_before_task_enqueue(self, message: TaskMessage) -> None:
            calls.append("listener")

    class Outer:
        @hookimpl(wrapper=True, tryfirst=True)
        def rediq_before_task_enqueue(self, message: TaskMessage) -> Generator[None, object, None]:
            calls.append("outer before")
            results = yield
            calls.append(("outer after", results))
            message.headers["outer"] = "1"

    class Inner:
        @hookimpl(wrapper=True)
        def rediq_before_task_enqueue(self, message: TaskMessage) -> Generator[None, object, None]:
            calls.append("inner before")
            yield
            calls.append("inner after")
            raise RuntimeError("inner wrapper bug")  # logged, isolated like a listener's

    class OldStyle:
        @hookimpl(hookwrapper=True)
        def rediq_before_task_enqueue(self, message: TaskMessage) -> Generator[None, object, None]:
            outcome = yield
            calls.append(("old style", type(outcome).__name__))

    host = make_plugin_host(plugins=[Listener(), Inner(), Outer(), OldStyle()])
    message = make_message()
    await host.events.before_task_enqueue(message)
    assert calls[0] == "outer before" and calls[-1] == ("outer after", [])
    assert calls.index("inner before") < calls.index("listener") < calls.index("inner after")
    assert ("old style", "Result") in calls
    assert message.headers == {"outer": "1"}
    assert "inner wrapper bug" in caplog.text


def test_wrappers_of_registration_hooks_are_rejected() -> None:
    class Wrapping:
        @hookimpl(wrapper=True)
        def rediq_register_serializers(self, register: object) -> Generator[None, None, None]:
            yield

    with pytest.raises(PluginError, match="implements rediq_register_serializers as a wrapper"):
        make_plugin_host(plugins=[Wrapping()])
