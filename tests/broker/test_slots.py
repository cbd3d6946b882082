"""Every script call touches keys of one cluster hash slot.

1. Every script call of a contract run is recorded and the CRC16 slot of each key computed
   (the Redis Cluster algorithm, with hash tags).
2. The whole contract suite runs against a single-node Redis Cluster, which rejects
   scripts whose keys span slots.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from rediq_core.broker import BrokerOptions
from rediq_core.testing.broker_contract import BrokerContract
from rediq_redis import RedisBroker
from rediq_redis.scripts import LuaScript, ScriptCall
from rediq_redis.testing import RedisServer
from rediq_redis.testing.processes import cluster_port


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), as Redis Cluster uses it."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: bytes) -> int:
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc16(key) % 16384


def test_crc16_reference_values() -> None:
    assert crc16(b"123456789") == 0x31C3  # the reference value in the cluster spec
    assert key_slot(b"{user1000}.following") == key_slot(b"{user1000}.followers")
    assert key_slot(b"foo{}{bar}") == crc16(b"foo{}{bar}") % 16384


CALLS: list[tuple[str, list[str]]] = []


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, list[str]]]]:
    original = LuaScript.__call__
    original_call = LuaScript.call

    async def recording(
        self: LuaScript, client: Any, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        CALLS.append((self.name, list(keys)))
        return await original(self, client, keys, args)

    def recording_call(
        self: LuaScript, keys: Sequence[str], args: Sequence[Any], items: Sequence[Any] = ()
    ) -> ScriptCall:
        CALLS.append((self.name, list(keys)))  # batched calls (run_batch)
        return original_call(self, keys, args, items)

    monkeypatch.setattr(LuaScript, "__call__", recording)
    monkeypatch.setattr(LuaScript, "call", recording_call)
    CALLS.clear()
    yield CALLS


class TestEveryScriptCallIsSingleSlot(BrokerContract):
    """The contract suite with every script call's keys checked after each test."""

    @pytest.fixture
    async def broker(
        self, rediq_redis_url: str, rediq_namespace: str, recorded: list[tuple[str, list[str]]]
    ) -> AsyncIterator[RedisBroker]:
        broker = RedisBroker(BrokerOptions(url=rediq_redis_url, namespace=rediq_namespace))
        try:
            yield broker
        finally:
            await broker.close()
        assert recorded, "no script was called"
        for name, keys in recorded:
            slots = {key_slot(k.encode()) for k in keys}
            assert len(slots) == 1, f"script {name} called with keys in slots {slots}: {keys}"
            assert all(k.startswith(f"{{{rediq_namespace}") for k in keys)


@pytest.fixture(scope="module")
def cluster_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    conf = tmp_path_factory.mktemp("cluster") / "nodes.conf"
    server = RedisServer(
        port=cluster_port(),
        extra_args=("--cluster-enabled", "yes", "--cluster-config-file", str(conf)),
    ).start()
    try:
        yield server
    finally:
        server.close()


class TestContractOnClusterNode(BrokerContract):
    """A one-node Redis Cluster owning every slot raises CROSSSLOT on a mixed script."""

    @pytest.fixture
    async def broker(
        self, cluster_node: RedisServer, rediq_namespace: str
    ) -> AsyncIterator[RedisBroker]:
        admin = Redis.from_url(cluster_node.url())
        try:
            info = await admin.execute_command("CLUSTER", "INFO")
            if b"cluster_state:ok" not in info:
                await admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
                await _wait_cluster_ok(admin)
            with pytest.raises(Exception, match="same slot"):
                await admin.eval("return 1", 2, "{a}x", "{b}x")
        finally:
            await admin.aclose()
        broker = RedisBroker(BrokerOptions(url=cluster_node.url(), namespace=rediq_namespace))
        try:
            yield broker
        finally:
            await broker.close()


async def _wait_cluster_ok(admin: Redis) -> None:
    for _ in range(200):  # start-up wait of the test server, bounded to 10 s
        if b"cluster_state:ok" in await admin.execute_command("CLUSTER", "INFO"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the one-node cluster never reached cluster_state:ok")


def test_scripts_name_no_key_of_their_own() -> None:
    """Scripts reach keys only through KEYS (via the prelude's Q table): no literal or
    computed key names, and no KEYS/SCAN commands. The exceptions are built from the queue's
    tag by the prelude (so in the queue's slot): a waiting worker's own list (``inbox``,
    ``inbox_of``), onto which an enqueue pushes the task it hands over, a waiting workflow
    step's set of joined parents (``joined``, ``joined_of``), the result hash of a step
    a script ends without being called about it (``result_of``) and a task's trail of
    progress and logs, which the steps that end or forget a task keep or delete
    (``trail_of``), and a retried task's failed attempts (``TAG .. ':' .. ATTEMPTS``,
    spelt out where used: a helper function would cost the scripts a Lua local)."""
    import re
    from importlib import resources

    folder = resources.files("rediq_redis") / "scripts"
    for entry in folder.iterdir():
        if not entry.name.endswith(".lua"):
            continue
        source = entry.read_text("utf-8")
        code = "\n".join(line.split("--")[0] for line in source.splitlines())
        assert not re.search(r"redis\.p?call\('(KEYS|SCAN)'", code), entry.name
        for match in re.finditer(r"redis\.p?call\('(\w+)'(?:,\s*([^,)]+))?", code):
            command, first = match.group(1), (match.group(2) or "").strip()
            if command in ("TIME",):
                continue
            if command == "PUBLISH":  # a channel given, or a task's done channel
                assert first.startswith(("ARGV[", "done_channel(")), (entry.name, match.group(0))
                continue
            allowed = (
                "Q.",
                "Q[",
                "KEYS[",
                "key",
                "result_key",
                "done_key",
                "reply_key",
                "RESULT",
                "DONE",
                "inbox",
                "joined",
                "trail_of(",
                "TAG .. ':' .. ATTEMPTS .. ':'",
                "unpack(key_names",
            )
            assert first.startswith(allowed), (entry.name, match.group(0))
