"""The Redis key layout (docs/broker.md, "Key layout").

Every key of queue ``Q`` in namespace ``NS`` starts with the hash tag ``{NS:Q}``, so all of
them hash to one cluster slot and every script can declare all the keys it touches.
Namespace-wide metadata (the queue set, the worker registry) uses the tag ``{NS}`` and is
never written inside a task-state script.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from functools import cached_property

from redis.crc import key_slot

from rediq_core.shards import parse_shard

from .layout import ATTEMPTS, DONE_CHANNEL, JOINED, RESULT, TRAIL, UNBLOCK

__all__ = ["QUEUE_KEY_NAMES", "NamespaceKeys", "QueueKeys", "new_nonce", "shard_tag"]

#: The per-queue keys, in the order every queue script receives them as KEYS[1..N]. The Lua
#: prelude's key table is generated from this tuple: append a new key at the end.
QUEUE_KEY_NAMES: tuple[str, ...] = (
    "pending",  # ZSET score=priority, member="<16 hex position>:<id>"
    "scheduled",  # ZSET score=due ms, member=id
    "active",  # ZSET score=holder number, member=id
    "dead",  # ZSET score=dead-lettered at ms, member=id
    "tasks",  # HASH id -> task record (layout.RECORD_FIELDS, then envelope and payload)
    "errors",  # HASH id -> last error JSON (tasks that failed at least once)
    "holders",  # ZSET member=holder number, score=its deadline ms
    "workers",  # HASH worker id -> holder number, "#<number>" -> worker id, ">"<id> last claim,
    # "<"<id> its registration as waiting, "!" the timekeeper (wake_delay() in the prelude)
    "cancel",  # SET ids of active tasks whose cancellation was requested
    "stats",  # HASH counters: enqueued, succeeded, failed, retried
    "wake",  # LIST wake tokens (at most one)
    "seq",  # STRING sequence counter: FIFO positions and holder numbers
    "paused",  # STRING present while the queue is paused (workers lease nothing from it)
    "groups",  # ZSET score 0, member "<group>\n<id>": the group index (lex ranges)
    "minutes",  # HASH per-minute ring: "<counter>:<slot>", "run:<slot>", "t:<slot>", "open"
    "ended_a",  # HASH tombstones id -> enqueue nonce, even replay-window generations
    "ended_b",  # HASH tombstones id -> enqueue nonce, odd replay-window generations
    "idle",  # LIST ids of workers waiting for a task (enqueue hands one straight over)
    "cron",  # HASH schedule name -> spec JSON (written by the workers serving it)
    "cron_tick",  # HASH schedule name -> last fired tick ms (advanced by compare-and-set)
    "cron_task",  # HASH schedule name -> task id of its last run
    "cron_seen",  # HASH schedule name -> ms a live worker last registered it
    "cron_paused",  # SET names of paused schedules
    "waiting",  # ZSET score=enqueued ms, member=id: workflow steps waiting for earlier ones
    "joins",  # HASH waiting step id -> parents still to succeed, "<id>:due" -> "d<ms>"/"e<ms>"
    "outbox",  # ZSET score=written ms, member=JSON: a step's effect on a step of another queue
    "limits",  # HASH the queue's own limits: "concurrency" -> N, "rate" -> "<n>/<ms>/<burst>"
    "slots",  # ZSET score 0, member "<limit>\n<id>": running tasks holding a concurrency slot
    "parked",  # ZSET score 0, member "<limit>\n<priority><position>:<id>": limited tasks, by lane
    "rates",  # ZSET member=rate limit, score=its theoretical arrival time ms (GCRA)
    "limits_due",  # ZSET member=rate limit, score=ms its lane's first task may start
    "fair",  # ZSET "t<tenant>" -> last position given; "v" -> position of the latest start
    "expiry",  # ZSET "x<id>" -> expires at ms (until it starts), "d<id>" -> deadline ms (-1: past)
    "unique",  # HASH unique key -> id of the task holding it (until it ends, or starts)
    "debounce",  # HASH debounce key -> id of the last call, until it starts
    "history",  # STRING fixed-size records: a day of minutes, 14 days of hours (layout.py)
    "events",  # STREAM one entry per task transition (k, t, n, a, d), MAXLEN ~ the length
)


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue (built once per queue: see :meth:`NamespaceKeys.queue`)."""

    namespace: str
    queue: str

    @cached_property
    def tag(self) -> str:
        """``{NS:Q}``; for a shard of a sharded queue, ``{NS:Q~<salt>}`` with the salt
        that puts it in its share of the cluster's slots (:func:`shard_tag`)."""
        shard = parse_shard(self.queue)
        if shard is None:
            return f"{{{self.namespace}:{self.queue}}}"
        return "{" + shard_tag(f"{self.namespace}:{self.queue}", shard.index, shard.count) + "}"

    def key(self, name: str) -> str:
        return f"{self.tag}:{name}"

    @cached_property
    def all(self) -> tuple[str, ...]:
        """KEYS[1..N] of every queue script."""
        return tuple(self.key(name) for name in QUEUE_KEY_NAMES)

    def result(self, task_id: str) -> str:
        """HASH of a finished task (state, result or error, ...), expires with its TTL."""
        return self.key(f"{RESULT}:{task_id}")

    def trail(self, task_id: str) -> str:
        """HASH of a task's progress and log lines (``n`` the nonce of the run they
        belong to, ``p`` progress, ``log`` lines, ``lines``, ``dropped``); kept with the
        result (docs/broker.md, "Progress and logs")."""
        return self.key(f"{TRAIL}:{task_id}")

    def done(self, task_id: str) -> str:
        """Pub/sub channel (not a key: nothing is stored under it) on which the scripts
        announce that the task ended or was forgotten unfinished; result waiters
        subscribe to it (``rediq_redis/results.py``)."""
        return self.key(f"{DONE_CHANNEL}:{task_id}")

    def unblock(self, worker_id: str) -> str:
        """LIST a worker's wait blocks on besides ``wake``: a task handed straight to the
        waiting worker by an enqueue, or a token that ends the wait of that worker alone
        (its fetch was cancelled); the one key a script names itself (from the queue's
        tag, so in the queue's slot)."""
        return self.key(f"{UNBLOCK}:{worker_id}")

    def joined(self, task_id: str) -> str:
        """SET of the parents (of other queues) of waiting step ``task_id`` whose success
        was delivered; named by the scripts from the tag."""
        return self.key(f"{JOINED}:{task_id}")

    def attempts(self, task_id: str) -> str:
        """LIST of the errors of the task's last failed attempts that were retried (JSON,
        oldest first, capped); named by the scripts from the tag, gone with the task's
        record (its end copies it into the result hash)."""
        return self.key(f"{ATTEMPTS}:{task_id}")

    def for_task(self, task_id: str) -> list[str]:
        """KEYS of a script about one task: the queue's keys, then its result hash."""
        return [*self.all, self.result(task_id)]


#: Slots of a Redis Cluster (CRC16 of the hash tag, modulo this).
CLUSTER_SLOTS = 16384


@functools.lru_cache(maxsize=4096)
def shard_tag(base: str, index: int, count: int) -> str:
    """The hash tag content of shard ``index`` of ``count``: ``base``, or ``base~<n>``
    with the smallest ``n`` that puts its slot in the middle half of the ``index``-th of
    ``count`` equal slot ranges. A cluster whose masters own equal contiguous ranges
    (what ``redis-cli --cluster create`` makes) thus gives each master the same number
    of shards when ``count`` is a multiple of the masters (docs/scaling.md)."""
    low, high = index * CLUSTER_SLOTS // count, (index + 1) * CLUSTER_SLOTS // count
    quarter = (high - low) // 4
    low, high = low + quarter, high - quarter
    candidate, salt = base, 0
    while not low <= key_slot(candidate.encode()) < high:
        salt += 1
        candidate = f"{base}~{salt}"
    return candidate


#: Maps the two bytes a nonce must not hold (record and claim-memo separators) to others.
_NONCE_SAFE = bytes.maketrans(b"|,", b"/.")


def new_nonce() -> bytes:
    """A per-call nonce: 4 random bytes, neither ``|`` nor ``,``. It tells a re-send of
    one enqueue of a task id from another enqueue of that id within the replay window,
    and is what an ended task's tombstone keeps (4 bytes: the smallest allocation)."""
    return secrets.token_bytes(4).translate(_NONCE_SAFE)


@dataclass(frozen=True)
class NamespaceKeys:
    """Namespace-wide keys (tag ``{NS}``) and the cancellation channel."""

    namespace: str

    @cached_property
    def queues(self) -> str:
        """SET of queue names that have received a task."""
        return f"{{{self.namespace}}}:queues"

    @cached_property
    def workers(self) -> str:
        """ZSET worker id -> registry entry expiry (ms)."""
        return f"{{{self.namespace}}}:workers"

    def worker(self, worker_id: str) -> str:
        """HASH of one worker's registry entry, with a TTL."""
        return f"{{{self.namespace}}}:worker:{worker_id}"

    @cached_property
    def control_channel(self) -> str:
        """Pub/sub channel on which workers are asked to stop (message: worker id or ``*``)."""
        return f"{{{self.namespace}}}:control"

    @cached_property
    def cancel_channel(self) -> str:
        """Pub/sub channel on which cancellation requests of running tasks are announced."""
        return f"{{{self.namespace}}}:cancel"

    def workflow(self, workflow_id: str) -> str:
        """STRING: a workflow's record (``WorkflowRecord.to_json``), kept as long as its
        steps' longest result TTL; tagged by the workflow, so workflows spread over the
        slots of a cluster."""
        return f"{{{self.namespace}:wf:{workflow_id}}}"

    @cached_property
    def protocol(self) -> str:
        """STRING: the protocol version of the data in this namespace (layout.PROTOCOL)."""
        return f"{{{self.namespace}}}:protocol"

    @cached_property
    def cron_queues(self) -> str:
        """SET of queue names that have stored cron schedules."""
        return f"{{{self.namespace}}}:cron_queues"

    @cached_property
    def cron_channel(self) -> str:
        """Pub/sub channel announcing schedules whose stored spec changed."""
        return f"{{{self.namespace}}}:cron"

    def queue(self, name: str) -> QueueKeys:
        keys = self._queues.get(name)
        if keys is None:
            keys = self._queues[name] = QueueKeys(self.namespace, name)
        return keys

    @cached_property
    def _queues(self) -> dict[str, QueueKeys]:
        return {}
