"""The typed events over the hooks, and how event hooks are called (plugins/calling.py).

The isolation of a raising listener and the basic wrapper order are in test_plugins.py;
these tests cover the rest of the calling rules and keep the typed methods in step with
the hookspecs.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import types
from collections.abc import Generator
from typing import Any

import pluggy
import pytest

from rediq_core import EVENT_NAMES, hookspecs
from rediq_core.message import TaskMessage
from rediq_core.plugins import hookimpl, make_plugin_host
from rediq_core.plugins.events import Event, Events
from rediq_core.testing.broker_contract import make_message


def _event_hookspecs() -> dict[str, inspect.Signature]:
    """Every event hook (an async-allowed ``rediq_*`` spec) and its signature."""
    return {
        name: inspect.signature(fn)
        for name, fn in vars(hookspecs).items()
        if name.startswith("rediq_") and "MaybeAwaitable" in str(fn.__annotations__["return"])
    }


def _typed_methods() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in vars(Events).items()
        if inspect.iscoroutinefunction(fn) and not name.startswith("_")
    }


def test_typed_methods_and_event_hookspecs_match_one_to_one() -> None:
    specs = _event_hookspecs()
    methods = _typed_methods()
    assert len(specs) >= 9
    assert sorted(f"rediq_{name}" for name in methods) == sorted(specs)
    for name, signature in methods.items():
        params = [p for p in signature.parameters.values() if p.name != "self"]
        spec_params = list(specs[f"rediq_{name}"].parameters.values())
        assert [(p.name, p.annotation) for p in params] == [
            (p.name, p.annotation) for p in spec_params
        ], name


async def test_each_typed_method_calls_its_own_hook_with_its_arguments() -> None:
    calls: list[tuple[str, dict[str, object]]] = []
    plugin = types.SimpleNamespace()
    for hook_name, signature in _event_hookspecs().items():
        # pluggy reads a listener's argument names from its code: write one per hook
        params = ", ".join(signature.parameters)
        namespace: dict[str, Any] = {"calls": calls}
        exec(f"def record({params}):\n    calls.append(({hook_name!r}, dict(locals())))", namespace)
        setattr(plugin, hook_name, hookimpl(namespace["record"]))
    host = make_plugin_host(plugins=[plugin], autoload=False)
    for name, signature in _typed_methods().items():
        params = [p for p in signature.parameters if p != "self"]
        values = [object() for _ in params]
        calls.clear()
        assert host.events.listens(getattr(host.events, name))
        await getattr(host.events, name)(*values)
        assert calls[-1:] == [(f"rediq_{name}", dict(zip(params, values, strict=True)))]


def test_app_events_are_hooks_with_typed_methods() -> None:
    assert [type(name) for name in EVENT_NAMES] == [str] * len(Event)
    assert list(Event) == list(EVENT_NAMES)
    for event in Event:
        assert f"rediq_{event}" in _event_hookspecs()
        assert event.value in _typed_methods()


def test_listens_only_when_a_plugin_implements_the_event() -> None:
    class OnStart:
        @hookimpl
        def rediq_before_task_start(self, task: object) -> None: ...

    builtins = [name for name, _ in make_plugin_host(autoload=False).pm.list_name_plugin()]
    host = make_plugin_host(plugins=[OnStart()], blocked=builtins, autoload=False)
    assert host.events.listens(Event.BEFORE_TASK_START)
    assert host.events.listens(host.events.before_task_start)
    assert not host.events.listens(Event.BEFORE_TASK_RETRY)
    assert not host.events.listens(host.events.after_task_attempt)


def _listener(label: str, calls: list[str], **marks: bool) -> object:
    """A plugin whose async listener yields to the loop between its start and its end."""

    class Listener:
        @hookimpl(**marks)
        async def rediq_before_task_enqueue(self, message: TaskMessage) -> None:
            calls.append(f"{label} start")
            await asyncio.sleep(0)
            calls.append(f"{label} end")

    return Listener()


async def test_async_listeners_are_awaited_one_by_one_in_pluggy_order() -> None:
    calls: list[str] = []

    class Sync:
        @hookimpl
        def rediq_before_task_enqueue(self, message: TaskMessage) -> None:
            calls.append("sync")

    earlier = _listener("earlier", calls)
    later = _listener("later", calls)
    first = _listener("first", calls, trylast=False, tryfirst=True)
    last = _listener("last", calls, trylast=True)
    host = make_plugin_host(plugins=[last, earlier, Sync(), later, first], autoload=False)
    await host.events.before_task_enqueue(make_message())
    # pluggy: tryfirst first, trylast last, otherwise later registrations first
    assert calls == [
        "first start",
        "first end",
        "later start",
        "later end",
        "sync",
        "earlier start",
        "earlier end",
        "last start",
        "last end",
    ]


async def test_what_wrappers_receive_around_async_listeners() -> None:
    seen: dict[str, object] = {}
    calls: list[str] = []

    class Returning:
        @hookimpl
        async def rediq_before_task_enqueue(self, message: TaskMessage) -> str:
            calls.append("returning start")
            await asyncio.sleep(0)
            calls.append("returning end")
            return "value"

    class NewStyle:
        @hookimpl(wrapper=True)
        def rediq_before_task_enqueue(self, message: TaskMessage) -> Generator[None, Any, None]:
            calls.append("new before")
            seen["new"] = yield
            calls.append("new after")

    class OldStyle:
        @hookimpl(hookwrapper=True)
        def rediq_before_task_enqueue(self, message: TaskMessage) -> Generator[None, Any, None]:
            calls.append("old before")
            seen["old"] = yield
            calls.append("old after")

    host = make_plugin_host(
        plugins=[Returning(), _listener("quiet", calls), NewStyle(), OldStyle()], autoload=False
    )
    await host.events.before_task_enqueue(make_message())
    # the awaited results, not coroutines; a None result is left out
    assert seen["new"] == ["value"]
    old = seen["old"]
    assert isinstance(old, pluggy.Result) and old.get_result() == ["value"]
    assert calls == [
        "old before",
        "new before",
        "quiet start",
        "quiet end",
        "returning start",
        "returning end",
        "new after",
        "old after",
    ]


async def test_wrapper_raising_before_its_yield_is_skipped_and_not_resumed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    class Broken:
        @hookimpl(wrapper=True)
        def rediq_before_task_enqueue(self, message: TaskMessage) -> Generator[None, Any, None]:
            calls.append("broken before")
            raise RuntimeError("wrapper bug before yield")
            yield  # a generator all the same
            calls.append("broken after")  # never reached

    class Fine:
        @hookimpl(hookwrapper=True)
        def rediq_before_task_enqueue(self, message: TaskMessage) -> Generator[None, Any, None]:
            yield
            calls.append("fine after")

    host = make_plugin_host(plugins=[_listener("listener", calls), Fine(), Broken()])
    with caplog.at_level(logging.ERROR, logger="rediq.plugins"):
        await host.events.before_task_enqueue(make_message())
    assert calls == ["broken before", "listener start", "listener end", "fine after"]
    assert "wrapper bug before yield" in caplog.text and "before its yield" in caplog.text


async def test_wrapper_raising_after_its_yield_leaves_the_others_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    class Outer:
        @hookimpl(wrapper=True, tryfirst=True)
        def rediq_before_task_enqueue(self, message: TaskMessage) -> Generator[None, Any, None]:
            yield
            calls.append("outer after")

    class Inner:
        @hookimpl(hookwrapper=True)
        def rediq_before_task_enqueue(self, message: TaskMessage) -> Generator[None, Any, None]:
            yield
            raise RuntimeError("old-style bug after yield")

    host = make_plugin_host(plugins=[_listener("listener", calls), Inner(), Outer()])
    with caplog.at_level(logging.ERROR, logger="rediq.plugins"):
        await host.events.before_task_enqueue(make_message())
    assert calls == ["listener start", "listener end", "outer after"]
    assert "old-style bug after yield" in caplog.text and "after its yield" in caplog.text


async def test_wrapper_yielding_twice_is_closed_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    class Twice:
        @hookimpl(wrapper=True)
        def rediq_before_task_enqueue(self, message: TaskMessage) -> Generator[None, Any, None]:
            try:
                yield
                calls.append("between")
                yield
                calls.append("after second yield")  # never reached
            finally:
                calls.append("closed")

    host = make_plugin_host(plugins=[_listener("listener", calls), Twice()])
    with caplog.at_level(logging.ERROR, logger="rediq.plugins"):
        await host.events.before_task_enqueue(make_message())
    assert calls == ["listener start", "listener end", "between", "closed"]
    assert "yielded more than once" in caplog.text
