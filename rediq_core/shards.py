"""Sharded queues: one queue spread over several broker queues, its *shards*
(``app.queue("emails", shards=8)``; docs/scaling.md).

A shard is an ordinary queue named ``<queue>#<index>of<count>`` (``emails#3of8``): ``#``
is not allowed in a queue's own name, so a shard's name says which queue it belongs to
and how many shards that queue was given, to every process that reads it from the broker
(the control commands need no configuration to group them). A broker places each shard
where it likes (the Redis broker puts the shards of a queue on evenly spread cluster
slots).

Routing, in the producer (:meth:`QueueShards.route`), takes the first that applies:

1. the call's ``shard_key`` (per-key ordering: one key, one shard);
2. the call's first limit (rate, concurrency, unique, debounce): every call sharing that
   limit's state goes to the one shard that keeps it;
3. an explicit task id (an id always lands in the same shard, so deduplication holds);
4. round-robin among the shards, per process.

Nothing here talks to a broker.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeGuard

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .flow import Flow

__all__ = [
    "MAX_SHARDS",
    "QUEUE_NAME",
    "QueueShards",
    "QueueSpec",
    "Shard",
    "is_queue_name",
    "logical_queue",
    "parse_shard",
    "parse_shards_setting",
    "shard_names",
]

#: The most shards a queue may have (a shard costs each worker one fetch connection).
MAX_SHARDS: Final = 256
#: A queue's own name (``#`` is not among its characters: a shard's name has one).
QUEUE_NAME: Final = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_SHARD = re.compile(r"^(?P<queue>[A-Za-z0-9_.:\-]{1,128})#(?P<index>[0-9]+)of(?P<count>[0-9]+)$")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (from 0) of the ``count`` shards of ``queue``."""

    queue: str
    index: int
    count: int

    @property
    def name(self) -> str:
        return f"{self.queue}#{self.index}of{self.count}"


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A queue as an app declared it (``app.queue(name, shards=N)``)."""

    name: str
    shards: int = 1

    @property
    def shard_names(self) -> tuple[str, ...]:
        """The broker queues that hold its tasks (``(name,)`` when not sharded)."""
        return shard_names(self.name, self.shards)


def parse_shard(name: str) -> Shard | None:
    """The shard a queue name names, or None for a queue's own name."""
    found = _SHARD.match(name)
    if found is None:
        return None
    index, count = int(found["index"]), int(found["count"])
    if not 0 <= index < count <= MAX_SHARDS or found["index"] != str(index):
        return None
    return Shard(found["queue"], index, count)


def is_queue_name(value: object) -> TypeGuard[str]:
    """Whether ``value`` names a queue, or a shard of one."""
    return isinstance(value, str) and bool(QUEUE_NAME.match(value) or parse_shard(value))


def _checked(queue: str, source: str) -> str:
    if not QUEUE_NAME.match(queue):
        raise ConfigurationError(
            f"{source}: queue {queue!r} is invalid: expected 1-128 characters among letters,"
            " digits and _ . : -"
        )
    return queue


def logical_queue(name: str) -> str:
    """The queue a broker queue belongs to: a shard's queue, else the name itself."""
    shard = parse_shard(name)
    return name if shard is None else shard.queue


def shard_names(queue: str, count: int) -> tuple[str, ...]:
    """The names of the ``count`` shards of ``queue`` (``(queue,)`` for one shard)."""
    if count == 1:
        return (queue,)
    return tuple(Shard(queue, i, count).name for i in range(count))


def check_shards(queue: str, count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SHARDS:
        raise ConfigurationError(
            f"shards={count!r} for queue {queue!r} is invalid: expected a whole number from 1"
            f" to {MAX_SHARDS} (a multiple of the cluster's masters spreads it evenly)"
        )
    return count


def parse_shards_setting(text: str, source: str) -> dict[str, int]:
    """``emails=8,reports=4`` (the ``REDIQ_QUEUE_SHARDS`` setting) as ``{queue: shards}``."""
    found: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        queue, sep, count = part.partition("=")
        if not sep or not count.strip().isdigit():
            raise ConfigurationError(
                f"{source}={text!r}: expected queue=shards pairs separated by commas,"
                " like 'emails=8,reports=4'"
            )
        name = _checked(queue.strip(), source)
        found[name] = check_shards(name, int(count))
    return found


def _bucket(key: str, count: int) -> int:
    """A stable shard index for ``key`` (the same in every process and release)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def flow_route(flow: Flow | None) -> str | None:
    """The routing key of a call's limits: the first limit's task and key (without its
    kind, so a rate and a concurrency limit on one key route alike), or None."""
    if flow is None:
        return None
    names: list[str] = [n for n, _ in flow.concurrency] + [n for n, _ in flow.rates]
    names += [flow.unique[0]] if flow.unique else []
    names += [flow.debounce[0]] if flow.debounce else []
    return names[0].split(":", 1)[1] if names else None


class QueueShards:
    """The shard counts an app declared (``app.queue(..., shards=N)``, ``queue_shards=``,
    ``REDIQ_QUEUE_SHARDS``), and the producer's routing among them."""

    def __init__(self, counts: Mapping[str, int] | None = None) -> None:
        self.counts: dict[str, int] = {}
        self._turns: dict[str, Iterator[int]] = {}
        for queue, count in (counts or {}).items():
            self.declare(queue, count)

    def declare(self, queue: str, count: int) -> None:
        self.counts[_checked(queue, "queue")] = check_shards(queue, count)
        self._turns.pop(queue, None)

    def count(self, queue: str) -> int:
        return self.counts.get(queue, 1)

    def names(self, queue: str) -> tuple[str, ...]:
        """The shards of ``queue`` (a shard's name stands for itself)."""
        if parse_shard(queue) is not None:
            return (queue,)
        return shard_names(queue, self.count(queue))

    def expand(self, queues: Iterable[str]) -> tuple[str, ...]:
        """Every shard of ``queues``, in order, without duplicates."""
        return tuple(dict.fromkeys(s for q in queues for s in self.names(q)))

    def by_key(self, queue: str, key: str) -> str:
        """The shard of ``queue`` that ``key`` always routes to."""
        count = self.count(queue)
        if count == 1 or parse_shard(queue) is not None:
            return queue
        return Shard(queue, _bucket(key, count), count).name

    def route(
        self,
        queue: str,
        *,
        shard_key: str | None = None,
        flow: Flow | None = None,
        task_id: str | None = None,
    ) -> str:
        """The shard a call of ``queue`` goes to (see the module's docstring)."""
        count = self.count(queue)
        if count == 1 or parse_shard(queue) is not None:
            return queue
        key = shard_key if shard_key is not None else flow_route(flow)
        if key is None and task_id is not None:
            key = "id:" + task_id
        if key is not None:
            return self.by_key(queue, key)
        turns = self._turns.get(queue)
        if turns is None:
            turns = self._turns[queue] = itertools.cycle(range(count))
        return Shard(queue, next(turns), count).name
