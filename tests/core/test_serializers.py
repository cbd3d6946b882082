"""Every built-in serializer round-trips what it claims to carry; the rest fails at enqueue."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from rediq import Rediq, SerializationError
from rediq_core.errors import PluginUnavailableError
from rediq_core.plugins import PluginHost

ALL = ["json", "pickle", "orjson", "cloudpickle", "msgpack"]
CARRIES_BYTES = {"pickle", "cloudpickle", "msgpack"}
NESTED = {"list": [1, 2.5, None, True, {"deep": [[["x"]]]}], "text": "héllo — 日本語 🎉", "n": -7}


@pytest.mark.parametrize("name", ALL)
def test_round_trip_nested_and_unicode(plugin_host: PluginHost, name: str) -> None:
    serializer = plugin_host.serializer(name)
    assert serializer.name == name
    assert serializer.loads(serializer.dumps([[NESTED], {"k": NESTED}])) == [
        [NESTED],
        {"k": NESTED},
    ]


@pytest.mark.parametrize("name", sorted(CARRIES_BYTES))
def test_round_trip_bytes(plugin_host: PluginHost, name: str) -> None:
    serializer = plugin_host.serializer(name)
    value = {"blob": bytes(range(256)), "nested": [b"\x00\xff"]}
    assert serializer.loads(serializer.dumps(value)) == value


@pytest.mark.parametrize("name", ALL)
def test_round_trip_10_mb(plugin_host: PluginHost, name: str) -> None:
    serializer = plugin_host.serializer(name)
    value: Any = bytes(10 * 1024 * 1024) if name in CARRIES_BYTES else "x" * (10 * 1024 * 1024)
    data = serializer.dumps([value])
    assert len(data) >= 10 * 1024 * 1024
    assert serializer.loads(data) == [value]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("json", b"raw"),
        ("json", {1, 2}),
        ("json", float("nan")),
        ("orjson", b"raw"),
        ("orjson", object()),
        ("msgpack", object()),
        ("pickle", lambda: 1),
        ("pickle", (x for x in "generator")),
        ("cloudpickle", (x for x in "generator")),
    ],
)
async def test_unsupported_value_fails_at_enqueue(
    plugin_host: PluginHost, name: str, value: Any
) -> None:
    app = Rediq("redis://127.0.0.1:1/0", serializer_name=name, plugins=plugin_host)

    @app.task(task_name="carry")
    async def carry(value: Any) -> None: ...

    with pytest.raises(
        SerializationError, match=f"cannot be serialized with '{name}'.*another serializer_name"
    ):
        await carry(value).enqueue()  # fails before any connection is attempted


def test_cloudpickle_carries_lambdas(plugin_host: PluginHost) -> None:
    serializer = plugin_host.serializer("cloudpickle")
    assert serializer.loads(serializer.dumps(lambda x: x * 2))(21) == 42


def test_pickle_family_is_flagged_unsafe(plugin_host: PluginHost) -> None:
    flags = {name: plugin_host.serializer(name).executes_code_on_load for name in ALL}
    assert flags == {
        "json": False,
        "pickle": True,
        "orjson": False,
        "cloudpickle": True,
        "msgpack": False,
    }


def test_missing_package_names_the_extra(
    plugin_host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)  # makes `import msgpack` fail
    with pytest.raises(PluginUnavailableError, match=r"pip install 'rediq\[msgpack\]'"):
        plugin_host.serializer("msgpack")


def test_message_carries_serializer_name(plugin_host: PluginHost) -> None:
    app = Rediq("redis://127.0.0.1:1/0", serializer_name="msgpack", plugins=plugin_host)

    @app.task(task_name="t")
    async def t(x: bytes) -> None: ...

    message = app.build_message(t(b"\x00"))
    assert message.serializer == "msgpack"
    assert app.serializer.loads(message.payload) == [[b"\x00"], {}]
