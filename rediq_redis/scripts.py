"""Loads the Lua scripts in ``scripts/`` (one per state transition).

Queue and cron scripts are prefixed with ``scripts/_prelude.lua`` (the shared key table,
layout constants and helpers), assembled by one function (:func:`script_source`); each
script's header lists its KEYS, ARGV and invariants. Scripts run with
EVALSHA and fall back to loading on NOSCRIPT (redis-py ``register_script``). Batches of
script calls go out as one pipeline of bare EVALSHAs (:func:`run_batch`): redis-py would
otherwise spend an extra ``SCRIPT EXISTS`` round trip on every pipeline that holds a script.
On a Redis Cluster the pipeline is split by node and sent to all nodes concurrently
(``rediq_redis/cluster.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from rediq_core import defaults

from .cluster import ResendingCluster, cluster_batch, is_cluster
from .durability import NotDurableError, WaitReplicas, check_acknowledged
from .event_stream import NO_EVENTS, EventLengths
from .keys import QUEUE_KEY_NAMES
from .layout import LUA_CONSTANTS, RECORD_FIELDS, RECORD_PATTERNS
from .wire import HotLine

__all__ = [
    "CRON_SCRIPTS",
    "QUEUE_SCRIPTS",
    "STANDALONE_SCRIPTS",
    "CronScripts",
    "LuaScript",
    "NotDurableError",
    "ScriptCall",
    "Scripts",
    "WaitReplicas",
    "check_acknowledged",
    "prelude_source",
    "run_batch",
    "script_source",
]

QUEUE_SCRIPTS = (
    "enqueue",
    "claim",
    "wait",
    "renew",
    "settle",
    "release",
    "cancel",
    "delete",
    "requeue_dead",
    "pause",
    "resume",
    "purge_state",
    "oldest_pending",
    "delete_dead",
    "forget_queue",
    "deliver",
    "set_limits",
    "report",
)
#: Scripts about one queue's schedules; ``cron_fire`` enqueues a tick's run with the
#: prelude's ``enqueue_tasks``, the very code that writes every other task.
CRON_SCRIPTS = ("cron_fire", "cron_register", "cron_pause", "cron_forget")
#: Scripts about no queue: sent without the prelude.
STANDALONE_SCRIPTS = ("heartbeat", "stop_workers")


def _read(name: str) -> str:
    return (resources.files(__package__) / "scripts" / f"{name}.lua").read_text("utf-8")


def _key_table() -> str:
    """The prelude's ``N`` and ``Q`` (name -> key), from the one list in ``keys.py``."""
    entries = ", ".join(f"{name} = KEYS[{i}]" for i, name in enumerate(QUEUE_KEY_NAMES, 1))
    return f"local N = {len(QUEUE_KEY_NAMES)}\nlocal Q = {{ {entries} }}"


def _lua_value(value: str | int | tuple[str, ...] | tuple[int, ...]) -> str:
    if isinstance(value, tuple):
        return "{ " + ", ".join(_lua_value(item) for item in value) + " }"
    if isinstance(value, int):
        return str(value)
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def _layout_table() -> str:
    """The prelude's layout constants, from the one source in ``layout.py``."""
    return "\n".join(f"local {name} = {_lua_value(v)}" for name, v in LUA_CONSTANTS.items())


def _record_functions() -> str:
    """The prelude's ``parse`` and ``pack`` of a task record, from ``RECORD_FIELDS``."""
    names = RECORD_FIELDS
    captures = ", ".join(f"c{i}" for i in range(len(names)))
    pattern = "^" + "|".join(RECORD_PATTERNS[n] for n in names) + "|()"
    fields = ", ".join(f"{n} = c{i}" for i, n in enumerate(names))
    values = ", ".join(f"r.{n}" for n in names)
    return (
        f"local RECORD_PATTERN = {_lua_value(pattern)}\n"
        "local function parse(raw)\n"
        "  if not raw then return nil end\n"
        f"  local {captures}, at = string.match(raw, RECORD_PATTERN)\n"
        "  if not at then return nil end\n"
        f"  return {{ {fields}, raw = raw, at = at }}\n"
        "end\n"
        "local function pack(r)\n"
        f"  return table.concat({{ {values}, r.body or string.sub(r.raw, r.at) }}, '|')\n"
        "end"
    )


def script_source(
    name: str, replay_ms: int = defaults.REPLAY_WINDOW_MS, events: EventLengths = NO_EVENTS
) -> str:
    """The full text sent to Redis for script ``name`` (``replay_ms``: how long an ended
    task's tombstone is kept for a re-send; ``events``: the event streams' lengths): every
    script but the standalone ones gets the prelude with its generated key table and
    layout constants, and with only the functions it uses (:func:`shaken`)."""
    body = _read(name)
    if name in STANDALONE_SCRIPTS:
        return body
    return shaken(prelude_source(replay_ms, events), body) + "\n" + body


_FUNCTION = re.compile(r"^local function (\w+)\(")
#: A name as code uses it: not a field (``Q.wake``, ``r:m``) nor a table key (``wake =``).
_WORD = re.compile(r"(?<![\w.:])[A-Za-z_]\w*(?!\w)(?!\s*=[^=])")


def _code(line: str) -> str:
    """``line`` without its comment (``--`` outside a quoted string)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote and line[i - 1] != "\\":
                quote = ""
        elif char in "'\"":
            quote = char
        elif line.startswith("--", i):
            return line[:i]
    return line


def shaken(prelude: str, body: str) -> str:
    """``prelude`` without the top-level ``local function``\\ s that neither ``body`` nor
    the rest of the prelude it keeps can call.

    Every call of a script runs its whole text, and each ``local function`` there creates
    a closure: the prelude's ~50 functions cost ~9 us of server time per call whatever
    the script uses. A function is kept if its name appears as code (not in a comment,
    not as a field or table key) in the body, in a top-level statement of the prelude or
    in a kept function. The order of the text is unchanged, so each function is still
    defined before the code that calls it. The layout constants no kept code names go too.
    """
    chunks: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in prelude.split("\n"):
        opened = _FUNCTION.match(line)
        if opened:
            chunks.append((opened.group(1), [line]))
            continue
        name, lines = chunks[-1]
        lines.append(line)
        if name is not None and line == "end":
            chunks.append((None, []))
    functions = {name for name, _ in chunks if name is not None}

    def calls(lines: list[str]) -> set[str]:
        return {w for line in lines for w in _WORD.findall(_code(line)) if w in functions}

    graph = {name: calls(lines) for name, lines in chunks if name is not None}
    kept = calls(body.split("\n"))
    for name, lines in chunks:
        if name is None:
            kept |= calls(lines)
    todo = list(kept)
    while todo:
        for callee in graph[todo.pop()] - kept:
            kept.add(callee)
            todo.append(callee)
    text = "\n".join("\n".join(lines) for name, lines in chunks if name is None or name in kept)
    return _without_unused_constants(text, body)


#: A generated layout constant's line (``_layout_table``).
_LAYOUT_LOCAL = re.compile(r"^local (" + "|".join(LUA_CONSTANTS) + r") = ")


def _without_unused_constants(prelude: str, body: str) -> str:
    """``prelude`` without the generated layout constants that neither it nor ``body``
    uses: Lua allows a function (the script's main chunk included) at most 200 locals,
    and a script needs only the constants of the functions it keeps."""
    lines = prelude.split("\n")
    used = {
        word
        for line in [*lines, *body.split("\n")]
        if not _LAYOUT_LOCAL.match(line)
        for word in _WORD.findall(_code(line))
    }
    return "\n".join(
        line
        for line in lines
        if not ((found := _LAYOUT_LOCAL.match(line)) and found.group(1) not in used)
    )


def prelude_source(
    replay_ms: int = defaults.REPLAY_WINDOW_MS, events: EventLengths = NO_EVENTS
) -> str:
    """``scripts/_prelude.lua`` with its generated parts filled in."""
    prelude = _read("_prelude").replace("--@QUEUE_KEYS@--", _key_table())
    prelude = prelude.replace("--@LAYOUT@--", _layout_table())
    prelude = prelude.replace("--@RECORD@--", _record_functions())
    prelude = prelude.replace("--@EVENT_LENGTHS@--", events.lua_table())
    return prelude.replace("--@REPLAY_MS@--", str(int(replay_ms)))


class LuaScript:
    """One registered script; ``await script(client, keys, args)``."""

    def __init__(
        self, name: str, client: Redis, replay_ms: int, events: EventLengths = NO_EVENTS
    ) -> None:
        self.name = name
        self._script = client.register_script(script_source(name, replay_ms, events))

    @property
    def sha(self) -> str:
        return str(self._script.sha)

    @property
    def source(self) -> str:
        return str(self._script.script)

    async def __call__(
        self, client: Redis | Pipeline, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        if is_cluster(client):
            cluster = cast(ResendingCluster, client)
            return await cluster.run_script(self.sha, self.source, keys, args)
        return await self._script(keys=keys, args=args, client=client)

    async def load(self, client: Redis, key: str) -> None:
        """Load the script (on a cluster: on the node serving ``key``)."""
        if is_cluster(client):
            await cast(ResendingCluster, client).load_script(self.source, key)
        else:
            await client.script_load(self.source)

    def call(
        self, keys: Sequence[str], args: Sequence[Any], items: Sequence[Any] = ()
    ) -> ScriptCall:
        """This script with these keys and arguments, for :func:`run_batch` (``items``:
        what a batch call is about, in the order of its answers)."""
        return ScriptCall(self, keys, args, items)


class ScriptCall:
    __slots__ = ("args", "items", "keys", "script")

    def __init__(
        self,
        script: LuaScript,
        keys: Sequence[str],
        args: Sequence[Any],
        items: Sequence[Any] = (),
    ) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.items = items


async def run_batch(
    client: Redis,
    calls: Sequence[ScriptCall],
    wait: WaitReplicas | None = None,
    line: HotLine | None = None,
) -> list[Any]:
    """Run script calls in one round trip (each call stays atomic on its own).

    A call answered NOSCRIPT (the server restarted, flushed its script cache, or is a
    replica just promoted) is sent again after its script was loaded (on a cluster: on
    the node of its keys); it did not run the first time, so nothing happens twice. Any other
    error is raised after the whole batch was answered. With ``wait``, the batch ends
    with ``WAIT`` (see :class:`WaitReplicas`). A lone call goes out on ``line`` when it
    is free (``wire.py``).
    """
    if not calls:
        return []
    if len(calls) == 1 and wait is None:  # a pipeline would only add client-side overhead
        c = calls[0]
        if line is not None and not line.busy:
            return [await line.evalsha(c.script.sha, c.script.source, c.keys, c.args)]
        return [await c.script(client, c.keys, c.args)]
    replies = await _send(client, calls, wait)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        per_node = is_cluster(client)
        loads = {
            (calls[i].script.name, key_slot(calls[i].keys[0].encode()) if per_node else 0): calls[i]
            for i in missing
        }
        for call in loads.values():
            await call.script.load(client, call.keys[0])
        again = await _send(client, [calls[i] for i in missing], wait)
        for index, reply in zip(missing, again, strict=True):
            replies[index] = reply
    for index, reply in enumerate(replies):
        if isinstance(reply, NoScriptError):  # flushed again meanwhile: the loading path
            c = calls[index]
            replies[index] = await c.script(client, c.keys, c.args)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def _send(client: Redis, calls: Sequence[ScriptCall], wait: WaitReplicas | None) -> list[Any]:
    if is_cluster(client):
        return await cluster_batch(client, calls, wait)
    async with client.pipeline(transaction=False) as pipe:
        for c in calls:
            pipe.execute_command("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args)
        if wait is not None:
            pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    if wait is not None:
        ack = replies.pop()
        # a call answered NOSCRIPT is sent again with a WAIT of its own, later in the same
        # replication stream: that one covers this batch too
        if not any(isinstance(reply, NoScriptError) for reply in replies):
            check_acknowledged(wait, [ack], len(calls))
    return replies


class _Script:
    """One script of :class:`Scripts` or :class:`CronScripts`, registered on the client at
    its first use: a worker uses a third of the scripts, and each one holds the shared
    prelude's text (an idle worker kept ~0.25 MiB of script text it never sends)."""

    def __init__(self, script: str) -> None:
        self.script = script

    def __set_name__(self, owner: type, name: str) -> None:
        self.attribute = name

    def __get__(self, scripts: _ScriptSet, owner: type | None = None) -> LuaScript:
        script = LuaScript(self.script, scripts.client, scripts.replay_ms, scripts.events)
        scripts.__dict__[self.attribute] = script  # the next lookup finds it, not this
        return script


class _ScriptSet:
    """Scripts (:class:`_Script` attributes) on one client (``replay_ms``: the broker's
    ``replay_window_ms``; ``events``: its event streams' lengths), each registered as it
    is first used."""

    def __init__(
        self,
        client: Redis,
        replay_ms: int = defaults.REPLAY_WINDOW_MS,
        events: EventLengths = NO_EVENTS,
    ) -> None:
        self.client = client
        self.replay_ms = replay_ms
        self.events = events


class Scripts(_ScriptSet):
    """Every queue and standalone script."""

    enqueue = _Script("enqueue")
    claim = _Script("claim")
    wait = _Script("wait")
    renew = _Script("renew")
    settle = _Script("settle")
    release = _Script("release")
    cancel = _Script("cancel")
    delete = _Script("delete")
    requeue_dead = _Script("requeue_dead")
    heartbeat = _Script("heartbeat")
    pause = _Script("pause")
    resume = _Script("resume")
    purge_state = _Script("purge_state")
    oldest_pending = _Script("oldest_pending")
    stop_workers = _Script("stop_workers")
    delete_dead = _Script("delete_dead")
    forget_queue = _Script("forget_queue")
    deliver = _Script("deliver")
    set_limits = _Script("set_limits")
    report = _Script("report")


class CronScripts(_ScriptSet):
    """Every cron script."""

    fire = _Script("cron_fire")
    register = _Script("cron_register")
    pause = _Script("cron_pause")
    forget = _Script("cron_forget")
