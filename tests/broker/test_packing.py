"""Commands packed in C (hiredis) are byte for byte what redis-py's own packer sends."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from rediq_redis.connection import make_clients
from rediq_redis.packing import fast_packing

pytest.importorskip("hiredis")

COMMANDS: list[tuple[Any, ...]] = [
    (
        "EVALSHA",
        "a" * 40,
        3,
        "{rediq:default}:pending",
        "{rediq:default}:é",
        b"k",
        "id",
        b'{"x":1}',
        b"\x00\xff\r\n",
        0,
        -7,
        10**20,
        "",
        1.5,
        0.1,
        1 / 3,
        1e20,
    ),
    ("PING",),
    (b"GET", b"key"),
]
FALLBACK: list[tuple[Any, ...]] = [
    ("CLIENT SETNAME", "worker"),  # redis-py splits a name with a space
    (b"CONFIG GET", b"maxmemory"),
    ("SET", "k", memoryview(b"value")),
    ("SET", "k", bytearray(b"value")),
]


def _wire(connection: Any, args: tuple[Any, ...]) -> bytes:
    return b"".join(bytes(part) for part in connection.pack_command(*args))


@pytest.mark.parametrize("args", COMMANDS + FALLBACK)
def test_the_bytes_are_redis_pys(args: tuple[Any, ...]) -> None:
    fast = fast_packing(Connection)()
    assert _wire(fast, args) == _wire(Connection(), args)


def test_arguments_redis_py_refuses_are_still_refused() -> None:
    fast = fast_packing(Connection)()
    for bad in (None, True):
        with pytest.raises(Exception, match="Invalid input"):
            fast.pack_command("SET", "k", bad)


def test_another_encoding_is_packed_by_redis_py() -> None:
    fast = fast_packing(Connection)(encoding="latin-1")
    args = ("SET", "k", "é")
    assert _wire(fast, args) == _wire(Connection(encoding="latin-1"), args)


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("redis://127.0.0.1:1/0", Connection),
        ("rediss://127.0.0.1:1/0", SSLConnection),
        ("unix:///tmp/none.sock", UnixDomainSocketConnection),
    ],
)
def test_the_brokers_clients_pack_in_c(url: str, base: type[Any]) -> None:
    for client in make_clients(url, {}):
        cls = client.connection_pool.connection_class
        assert issubclass(cls, base) and cls is fast_packing(base)
