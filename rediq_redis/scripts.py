"""Loads the Lua scripts in ``scripts/`` (one per state transition).

Queue scripts are prefixed with ``scripts/_prelude.lua`` (the shared key table and
helpers); each script's header lists its KEYS, ARGV and invariants. Scripts run with
EVALSHA and fall back to loading on NOSCRIPT (redis-py ``register_script``).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

__all__ = ["QUEUE_SCRIPTS", "STANDALONE_SCRIPTS", "LuaScript", "Scripts", "script_source"]

QUEUE_SCRIPTS = (
    "enqueue",
    "claim",
    "extend_leases",
    "ack_success",
    "ack_failure",
    "release",
    "cancel",
    "delete",
    "purge",
    "requeue_dead",
)
STANDALONE_SCRIPTS = ("heartbeat",)


def _read(name: str) -> str:
    return (resources.files(__package__) / "scripts" / f"{name}.lua").read_text("utf-8")


def script_source(name: str) -> str:
    """The full text sent to Redis for script ``name``."""
    body = _read(name)
    return _read("_prelude") + "\n" + body if name in QUEUE_SCRIPTS else body


class LuaScript:
    """One registered script; ``await script(client, keys, args)``."""

    def __init__(self, name: str, client: Redis) -> None:
        self.name = name
        self._script = client.register_script(script_source(name))

    async def __call__(
        self, client: Redis | Pipeline, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        return await self._script(keys=keys, args=args, client=client)


class Scripts:
    """Every script, registered on one client."""

    def __init__(self, client: Redis) -> None:
        self.enqueue = LuaScript("enqueue", client)
        self.claim = LuaScript("claim", client)
        self.extend_leases = LuaScript("extend_leases", client)
        self.ack_success = LuaScript("ack_success", client)
        self.ack_failure = LuaScript("ack_failure", client)
        self.release = LuaScript("release", client)
        self.cancel = LuaScript("cancel", client)
        self.delete = LuaScript("delete", client)
        self.purge = LuaScript("purge", client)
        self.requeue_dead = LuaScript("requeue_dead", client)
        self.heartbeat = LuaScript("heartbeat", client)
