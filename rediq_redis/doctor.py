"""What ``rediq doctor`` checks on a Redis server, and what each finding means for tasks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ResponseError

from rediq_core.diagnosis import Check, CheckStatus

from .connection import MIN_SERVER_VERSION, _parse_version
from .records import text
from .session import Session

__all__ = ["diagnose", "namespaces"]

OK, INFO, WARN, FAIL = CheckStatus.OK, CheckStatus.INFO, CheckStatus.WARN, CheckStatus.FAIL

#: Commands rediq sends (per role); checked with ACL DRYRUN on a key of the namespace.
NEEDED_COMMANDS = (
    ("EVALSHA", "sha", "1", "{key}"),
    ("SCRIPT", "LOAD", "return 1"),
    ("BLPOP", "{key}", "1"),
    ("PUBLISH", "{key}", "x"),
    ("SUBSCRIBE", "{key}"),
    ("HGETALL", "{key}"),
    ("ZRANGE", "{key}", "0", "1"),
    ("SADD", "{key}", "x"),
    ("SMEMBERS", "{key}"),
    ("TIME",),
    ("INFO", "server"),
)
#: Skew between this host and Redis above which delays and ETAs given as absolute times
#: (eta=) visibly shift; relative delays and leases do not depend on it.
SKEW_WARN_MS = 500
LATENCY_WARN_MS = 5.0


def _info(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name, "")
    return text(value) or "" if isinstance(value, bytes) else str(value)


async def _version(session: Session) -> Check:
    info = await session.client.info("server")
    version = _info(info, "redis_version")
    if _parse_version(version) < MIN_SERVER_VERSION:
        return Check(
            "server_version",
            FAIL,
            f"Redis {version}",
            "rediq needs Redis >= 6.2 (or Valkey >= 7.2): upgrade the server",
        )
    return Check("server_version", OK, f"Redis {version} ({_info(info, 'redis_mode')} mode)")


async def _memory(session: Session) -> Check:
    info = await session.client.info("memory")
    policy, limit = _info(info, "maxmemory_policy"), int(info.get("maxmemory", 0) or 0)
    used = _info(info, "used_memory_human")
    if policy != "noeviction":
        return Check(
            "maxmemory_policy",
            WARN,
            f"maxmemory-policy {policy} (used {used})",
            "with any policy but noeviction Redis may silently evict task data when"
            " full; set maxmemory-policy noeviction (enqueue then fails clearly)",
        )
    bound = f"maxmemory {limit:,} bytes" if limit else "no maxmemory"
    return Check("maxmemory_policy", OK, f"noeviction, {bound}, used {used}")


async def _persistence(session: Session) -> Check:
    info = await session.client.info("persistence")
    aof = _info(info, "aof_enabled") == "1"
    try:
        save = text((await session.client.config_get("save")).get("save")) or ""
    except ResponseError:
        save = "?"
    if aof:
        try:
            fsync = text((await session.client.config_get("appendfsync")).get("appendfsync")) or "?"
        except ResponseError:
            fsync = "?"
        loses = "nothing acknowledged" if fsync == "always" else "up to ~1 s of writes"
        return Check(
            "persistence",
            OK,
            f"AOF on (appendfsync {fsync}), RDB save '{save}'",
            f"a restart loses {loses}",
        )
    if save not in ("", "?"):
        return Check(
            "persistence",
            WARN,
            f"RDB snapshots only (save '{save}')",
            "a restart loses every task change since the last snapshot; enable AOF"
            " (appendonly yes) to keep acknowledged enqueues",
        )
    return Check(
        "persistence",
        WARN,
        "no persistence",
        "a restart loses every queued task and result; enable AOF (appendonly yes)",
    )


async def _clock(session: Session) -> Check:
    before = time.time()
    seconds, micros = await session.client.time()
    after = time.time()
    skew_ms = (seconds + micros / 1e6 - (before + after) / 2) * 1000
    detail = f"Redis clock is {skew_ms:+.0f} ms from this host's"
    if abs(skew_ms) > SKEW_WARN_MS:
        return Check(
            "clock_skew",
            WARN,
            detail,
            "delays, retries and leases use Redis' clock and are unaffected, but an"
            " absolute eta= from this host shifts by the skew: run NTP",
        )
    return Check("clock_skew", OK, detail)


async def _latency(session: Session) -> Check:
    samples = []
    for _ in range(20):
        started = time.perf_counter()
        await session.client.ping()
        samples.append((time.perf_counter() - started) * 1000)
    median, worst = statistics.median(samples), max(samples)
    detail = f"round trip median {median:.2f} ms, max {worst:.2f} ms (20 PINGs)"
    if median > LATENCY_WARN_MS:
        return Check(
            "latency",
            WARN,
            detail,
            "every enqueue and settlement costs a round"
            " trip: run workers and producers close to Redis",
        )
    return Check("latency", OK, detail)


async def _permissions(session: Session) -> Check:
    client = session.client
    key = session.keys.queue("doctor").key("probe")
    try:
        user = (
            text(
                await client.execute_command(  # type: ignore[no-untyped-call]
                    "ACL", "WHOAMI"
                )
            )
            or "default"
        )
    except ResponseError as exc:
        return Check("acl", INFO, f"cannot read ACLs ({exc})", "nothing to check before 6.0")
    denied = []
    for command in NEEDED_COMMANDS:
        args = [a.replace("{key}", key) for a in command]
        try:
            reply = await client.execute_command(  # type: ignore[no-untyped-call]
                "ACL", "DRYRUN", user, *args
            )
        except ResponseError as exc:
            if "unknown subcommand" in str(exc).lower() or "NOPERM" in str(exc):
                return Check(
                    "acl",
                    INFO,
                    f"user {user!r}: ACL DRYRUN unavailable ({exc})",
                    "permissions are checked on Redis >= 7 with ACL access",
                )
            denied.append(f"{command[0]} ({exc})")
            continue
        if text(reply) != "OK":
            denied.append(f"{command[0]}: {text(reply)}")
    if denied:
        return Check(
            "acl",
            FAIL,
            f"user {user!r} may not run: {'; '.join(denied)}",
            "grant the commands above on keys '{NS}*' and '{NS:*' (docs/reliability.md)",
        )
    return Check("acl", OK, f"user {user!r} may run every command rediq needs")


async def _topology(session: Session) -> Check:
    replication = await session.client.info("replication")
    role = _info(replication, "role")
    replicas = int(replication.get("connected_slaves", 0) or 0)
    cluster = _info(await session.client.info("cluster"), "cluster_enabled") == "1"
    detail = f"role {role}, {replicas} replica(s){', cluster mode' if cluster else ''}"
    if role != "master":
        return Check(
            "topology",
            FAIL,
            detail,
            "this is a replica: point rediq at the master"
            " (or use a Sentinel URL, which follows failovers)",
        )
    if not replicas:
        return Check(
            "topology",
            INFO,
            detail,
            "a single server: if it is lost, so are its"
            " tasks; see docs/deployment.md for Sentinel and Cluster",
        )
    return Check("topology", OK, detail)


CHECKS: tuple[Callable[[Session], Awaitable[Check]], ...] = (
    _version,
    _memory,
    _persistence,
    _clock,
    _latency,
    _permissions,
    _topology,
)


async def diagnose(session: Session) -> list[Check]:
    found = []
    for check in CHECKS:
        try:
            found.append(await check(session))
        except ResponseError as exc:  # a restricted server: say so, check the rest
            name = check.__name__.strip("_")
            found.append(Check(name, INFO, f"could not check: {exc}"))
    return found


#: Namespace-wide keys (``{NS}:<name>``, rediq_redis/keys.py): a namespace holds rediq
#: data while one of them exists (a worker's entry is ``{NS}:worker:<id>``).
NAMESPACE_KEYS = frozenset({"queues", "workers", "cron_queues"})
#: Keys asked for per SCAN call.
SCAN_COUNT = 1000


async def namespaces(session: Session) -> list[str]:
    """Every namespace with a queue set, a worker registry or stored schedules on the
    server (every master of a cluster), found by SCAN; the session's own namespace too if
    any key carries its prefix. Walks the whole keyspace: for diagnosis only."""
    own = session.keys.namespace
    own_prefixes = (f"{{{own}}}", f"{{{own}:")
    # no sign of data: the first client of a namespace writes its protocol version
    # (rediq_redis/protocol.py), even a command run on a mistyped one
    own_marker = session.keys.protocol
    found: set[str] = set()
    async for raw in session.client.scan_iter(match="{*}:*", count=SCAN_COUNT):
        key = text(raw) or ""
        if key.startswith(own_prefixes) and key != own_marker:
            found.add(own)
            continue
        tag, _, name = key[1:].partition("}:")
        if name == "workers" and await session.client.type(raw) != b"zset":
            continue  # a queue's own workers hash (``{NS:Q}:workers``), not a registry
        if name in NAMESPACE_KEYS or name.startswith("worker:"):
            found.add(tag)
    return sorted(found)
