"""Redis Cluster clients (``redis+cluster://``, ``rediss+cluster://``).

redis-py's :class:`~redis.asyncio.cluster.RedisCluster` routes every command to the node
that serves its key's slot and follows MOVED/ASK redirections (resharding). Every queue's
keys share one hash tag, so every script call touches one slot and runs on one node; a
batch of calls on queues of several nodes goes out as one pipeline per node, concurrently
(:func:`~rediq_redis.scripts.run_batch`). Blocking commands (a fetcher's ``BLPOP`` on its
queue's wake key) go to the node of that key, so a worker serving queues on three nodes
blocks on all three at once.

During a failover the failed master's slots are unreachable for a few seconds (until its
replica is promoted). :class:`ResendingCluster` re-sends a command that met a broken
connection or a cluster-down answer, with backoff, for up to ``RESEND_BUDGET_S`` after the
first send; that is safe because every state-changing script call carries its own reply
key (docs/broker.md, "Lost replies"). Past the budget it raises
:class:`SlotUnavailableError`, naming the queue's hash tag, the slot and its node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from redis import exceptions as redis_errors
from redis._parsers import AsyncCommandsParser
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from rediq_core import defaults
from rediq_core.errors import BrokerError

from .connection import BoundedRetry, blocking_options, pool_exhausted
from .durability import WaitReplicas, check_acknowledged
from .packing import fast_packing
from .topology import Topology

if TYPE_CHECKING:
    from .scripts import ScriptCall

__all__ = [
    "RESENDABLE",
    "ResendingCluster",
    "SlotUnavailableError",
    "cluster_batch",
    "is_cluster",
    "make_cluster_clients",
    "resend",
]

T = TypeVar("T")

#: Answers after which a command is sent again (once the node or its replica answers).
RESENDABLE: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.SlotNotCoveredError,
    redis_errors.MasterDownError,
    # redis-py gave up following MOVED / ASK / TRYAGAIN answers (a slot being migrated)
    redis_errors.ClusterError,
)


class SlotUnavailableError(BrokerError, redis_errors.ConnectionError):
    """The node serving a queue's slot stayed unreachable for the whole re-send budget."""


async def resend(
    send: Callable[[], Awaitable[T]], budget_s: float, explain: Callable[[Exception], str]
) -> T:
    """``await send()``, again after each :data:`RESENDABLE` error, with exponential
    backoff, until ``budget_s`` after the first send; then :class:`SlotUnavailableError`
    with ``explain(error)``."""
    started = time.monotonic()
    delay = 0.02
    while True:
        try:
            return await send()
        except RESENDABLE as exc:
            if pool_exhausted(exc):  # the client's own pool is full: no node failed
                raise
            if time.monotonic() - started + delay > budget_s:
                raise SlotUnavailableError(explain(exc)) from exc
            await asyncio.sleep(delay)  # failover backoff, not a poll of work
            delay = min(delay * 2, 0.5)


_KEYLESS = frozenset({"SCRIPT", "CLUSTER", "INFO", "WAIT", "TIME", "PING", "PUBLISH"})


def _hash_tag(key: str) -> str:
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start : end + 1] if start != -1 and end > start + 1 else key


class _CommandTable(AsyncCommandsParser):
    """redis-py loads the command table (``COMMAND``) from the cluster's default node on
    every topology refresh; if that node is down, the refresh fails and so does every
    command, for every slot. The table never changes: load it once, from any primary
    that answers."""

    def __init__(self, cluster: RedisCluster) -> None:
        super().__init__()
        self._cluster = cluster

    async def initialize(self, node: ClusterNode | None = None) -> None:
        if self.commands:
            return
        candidates = [node] if node is not None else []
        candidates += [n for n in self._cluster.get_primaries() if n is not node]
        error: Exception | None = None
        for candidate in candidates:
            try:
                await super().initialize(candidate)
                return
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                error = exc
        if error is not None:
            raise error


class ResendingCluster(RedisCluster):
    """A cluster client that rides out a failover (see the module docstring)."""

    def __init__(self, *args: Any, shown_url: str, budget_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        node_options = self.nodes_manager.connection_kwargs
        node_options["connection_class"] = fast_packing(node_options["connection_class"])
        self.commands_parser = _CommandTable(self)
        self.shown_url = shown_url
        self.budget_s = budget_s

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        send = super().execute_command
        return await resend(
            lambda: send(*args, **dict(kwargs)), self.budget_s, lambda exc: self.explain(args, exc)
        )

    async def load_script(self, source: str, key: str) -> None:
        """Load a script on the node that serves ``key`` (not on every master: one of
        them may be down while this key's node answers)."""

        async def once() -> None:
            await self.initialize()
            node = self.get_node_from_key(key)
            await RedisCluster.execute_command(self, "SCRIPT LOAD", source, target_nodes=node)

        await resend(once, self.budget_s, lambda exc: self.explain(("GET", key), exc))

    async def run_script(
        self, sha: str, source: str, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """EVALSHA on the key's node, loading the script there on NOSCRIPT."""
        for _ in range(3):  # the slot may move between loading and running
            try:
                return await self.execute_command("EVALSHA", sha, len(keys), *keys, *args)
            except redis_errors.NoScriptError:
                await self.load_script(source, keys[0])
        return await self.execute_command("EVALSHA", sha, len(keys), *keys, *args)

    def explain(self, args: tuple[Any, ...], exc: Exception) -> str:
        """One line: the URL, what failed, and what to check."""
        key = _first_key(args)
        if key is None:
            return (
                f"{self.shown_url}: the Redis Cluster did not answer {args[0]!s} within"
                f" {self.budget_s:.0f} s ({exc}); check that its nodes are up"
            )
        slot = self.keyslot(key)
        nodes = self.nodes_manager.slots_cache.get(slot) or []
        where = nodes[0].name if nodes else "no node"
        return (
            f"{self.shown_url}: keys {_hash_tag(key)} live in slot {slot}, served by"
            f" {where}, which did not answer within {self.budget_s:.0f} s ({exc});"
            " check that node, and that a replica of it can take over (CLUSTER NODES)"
        )


def _first_key(args: tuple[Any, ...]) -> str | None:
    if not args:
        return None
    command = str(args[0]).upper()
    if command.split()[0] in _KEYLESS:
        return None
    index = 3 if command in ("EVALSHA", "EVAL") else 1
    if len(args) <= index or (index == 3 and int(args[2]) == 0):
        return None
    key = args[index]
    return key.decode(errors="replace") if isinstance(key, bytes) else str(key)


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)


def make_cluster_clients(topology: Topology, options: dict[str, Any]) -> tuple[Redis, Redis]:
    """The main and the blocking client of a cluster URL.

    ``retry`` in ``redis_config`` sets the re-send budget: a
    :class:`~rediq_redis.connection.BoundedRetry` gives its ``budget_s``; any other retry
    object disables re-sending.
    """
    retry = options.pop("retry", None)
    options.pop("retry_on_error", None)
    if retry is None:
        budget = defaults.RESEND_BUDGET_S
    else:
        budget = retry.budget_s if isinstance(retry, BoundedRetry) else 0.0
    options.update(
        startup_nodes=[ClusterNode(host, port) for host, port in topology.hosts],
        # one immediate re-try after a topology refresh; longer waits are resend()'s
        retry=Retry(NoBackoff(), 1),
        ssl=topology.tls,
    )
    if topology.username is not None:
        options.setdefault("username", topology.username)
    if topology.password is not None:
        options.setdefault("password", topology.password)

    def build(kwargs: dict[str, Any]) -> Redis:
        cluster = ResendingCluster(shown_url=topology.shown, budget_s=budget, **kwargs)
        # RedisCluster offers the part of the Redis API the broker uses, routed by key.
        return cast(Redis, cluster)

    return build(options), build(blocking_options(options))


async def _pipeline_once(
    cluster: ResendingCluster, calls: Sequence[ScriptCall], wait: WaitReplicas | None
) -> tuple[list[Any], dict[str, Any], list[str]]:
    """One pipeline per node, sent concurrently: the calls' replies; with ``wait``, the
    ``WAIT`` answer of each node (sent last on that node's connection) and the node each
    call was meant for."""
    await cluster.initialize()  # a no-op unless the slot map must be (re)loaded
    nodes: dict[str, ClusterNode] = {}
    meant: list[str] = []
    async with cluster.pipeline() as pipe:
        for c in calls:
            pipe.execute_command("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args)
            node = cluster.get_node_from_key(c.keys[0]) if wait is not None else None
            if node is not None:
                nodes[node.name] = node
            meant.append(node.name if node is not None else "")
        for node in nodes.values():
            assert wait is not None  # nodes are collected only with a wait
            pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms, target_nodes=node)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    return replies[: len(calls)], dict(zip(nodes, replies[len(calls) :], strict=True)), meant


async def cluster_batch(
    client: Redis, calls: Sequence[ScriptCall], wait: WaitReplicas | None
) -> list[Any]:
    """Script calls on a cluster; calls whose node failed are sent again (only those: a
    re-send is safe, docs/broker.md "Lost replies") until the node or its promoted
    replica answers, within the re-send budget. With ``wait``, a node's ``WAIT`` answer
    counts once all the calls sent to it ran (calls sent again are followed by a
    ``WAIT`` of their own)."""
    cluster = cast(ResendingCluster, client)
    replies: list[Any] = [None] * len(calls)
    acks: list[Any] = []
    todo = list(range(len(calls)))

    async def attempt() -> None:
        nonlocal todo
        sent = [calls[i] for i in todo]
        try:
            answers, waited, meant = await _pipeline_once(cluster, sent, wait)
        except RESENDABLE as exc:
            answers, waited, meant = [exc] * len(todo), {}, []
        # a node's WAIT counts once all its calls ran; calls sent again (or again after
        # NOSCRIPT) are followed by a WAIT of their own, later in that node's stream
        failed_nodes = {
            name
            for name, answer in zip(meant, answers, strict=False)
            if isinstance(answer, (*RESENDABLE, redis_errors.NoScriptError))
        }
        for index, answer in zip(todo, answers, strict=True):
            replies[index] = answer
        acks.extend(ack for name, ack in waited.items() if name not in failed_nodes)
        todo = [i for i in todo if isinstance(replies[i], RESENDABLE)]
        if todo:
            raise replies[todo[0]]

    def explain(exc: Exception) -> str:
        c = calls[todo[0]]
        return cluster.explain(("EVALSHA", c.script.sha, len(c.keys), *c.keys), exc)

    await resend(attempt, cluster.budget_s, explain)
    if wait is not None:
        check_acknowledged(wait, acks, len(calls))
    return replies
