"""The one source of every layout constant the Lua scripts and the Python code share.

Both sides read and write the same members and fields: a pending member is built by the
scripts and cut by ``list_tasks``, the per-minute ring is written by the scripts and read
by ``queue_overview``, the group index is written by the scripts and ranged over by
``group_ids``. The scripts do not spell these values out: the prelude's ``--@LAYOUT@--``
line is replaced with :data:`LUA_CONSTANTS` as Lua locals when a script is assembled
(``rediq_redis/scripts.py``), as its key table is from ``keys.QUEUE_KEY_NAMES``.
``tests/broker/test_layout.py`` checks that no script carries a bare layout value and that
a member built on one side is cut right on the other, on a real Redis.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from rediq_core.flow import EXPIRED_ERROR_TYPE, SUPERSEDED_ERROR_TYPE
from rediq_core.history import HISTORY_RETENTION_MS, HOUR_MS, MINUTE_RETENTION_MS
from rediq_core.inspection import COUNTER_NAMES
from rediq_core.workflow_records import CASCADE_ERROR_TYPE, STEP_SEPARATOR, WORKFLOW_HEADER

__all__ = [
    "COUNTER_NAMES",
    "DONE_CHANNEL",
    "FLOW_MARK",
    "GROUP_SEPARATOR",
    "HISTORY_HOURS",
    "HISTORY_MINUTES",
    "HISTORY_RECORD",
    "HISTORY_SIZE",
    "HISTORY_TTL_S",
    "JOINED",
    "LANE_ID_OFFSET",
    "LANE_ORDER_FORMAT",
    "LANE_SEPARATOR",
    "LUA_CONSTANTS",
    "MEMBER_ID_OFFSET",
    "MINUTE_MS",
    "MINUTE_OPEN",
    "MINUTE_SLOTS",
    "MINUTE_STAMP",
    "OUTBOX_GRACE_MS",
    "POSITION_FORMAT",
    "PRIORITY_OFFSET",
    "PROTOCOL",
    "QUEUE_CONCURRENCY",
    "QUEUE_RATE",
    "RECORD_FIELDS",
    "RECORD_PATTERNS",
    "RESULT",
    "RUN_FIELD",
    "RUN_SCALE",
    "TRAIL",
    "TRAIL_LINE_END",
    "UNBLOCK",
    "UNBLOCK_TTL_MS",
    "HistoryRecord",
    "Record",
    "history_hour_offset",
    "history_minute_offset",
    "lane_of",
    "member_id",
    "minute_field",
    "parked_id",
    "parse_record",
    "pending_member",
    "unpack_history",
]

#: A task's member in the ``pending`` sorted set (its FIFO position): the queue's sequence
#: number as 16 hex digits, ``:``, the task id. Members of one priority sort by the
#: sequence, so the order of arrival is kept. Both Lua's ``string.format`` and Python's
#: ``%`` read this format the same way.
POSITION_FORMAT: Final = "%016x:%s"
#: Where the task id starts in a pending member (0-based; Lua's ``string.sub`` takes
#: ``MEMBER_ID_AT = MEMBER_ID_OFFSET + 1``).
MEMBER_ID_OFFSET: Final = len(POSITION_FORMAT % (0, ""))

#: Minutes kept in the per-minute counters ring (``minutes`` key): one slot per minute.
MINUTE_SLOTS: Final = 60
#: The length of one ring slot, in milliseconds.
MINUTE_MS: Final = 60_000
#: The ring field ``"<MINUTE_STAMP>:<slot>"`` holds the minute a slot counts now; the
#: counts are in ``"<counter>:<slot>"`` (a slot reused for a new minute is reset).
MINUTE_STAMP: Final = "t"
#: The ring field ``"<RUN_FIELD>:<slot>"`` holds the minute's attempts and their run time,
#: packed into one integer (one HINCRBY per settle call): ``run_ms * RUN_SCALE + runs``.
RUN_FIELD: Final = "run"
RUN_SCALE: Final = 2**24
#: The ring field ``MINUTE_OPEN`` holds the minute counted last: every earlier minute is
#: rolled up into the history (``history`` key); that one is, when the next one starts.
MINUTE_OPEN: Final = "open"

#: The ``history`` key (STRING) is two rings of fixed-size binary records: one per minute
#: of the last day (record ``minute % HISTORY_MINUTES``), then one per hour of the last
#: 14 days (record ``HISTORY_MINUTES + hour % HISTORY_HOURS``). A record is
#: :data:`HISTORY_RECORD`: the minute (or hour) it holds, the counters of
#: :data:`COUNTER_NAMES`, the attempts whose run time was recorded (unsigned 32-bit
#: little-endian each) and their run time in ms (a double). A record whose stamp is not
#: the minute (hour) asked for holds an older one: that minute (hour) had no counts.
HISTORY_MINUTES: Final = MINUTE_RETENTION_MS // MINUTE_MS
HISTORY_HOURS: Final = HISTORY_RETENTION_MS // HOUR_MS
HISTORY_RECORD: Final = struct.Struct("<" + "I" * (len(COUNTER_NAMES) + 2) + "d")
#: The history's size: it is made that long at once (zero records: stamp 0 is no minute
#: anyone asks for), so its memory is the same from its first minute on.
HISTORY_SIZE: Final = (HISTORY_MINUTES + HISTORY_HOURS) * HISTORY_RECORD.size
#: The minutes ring and the history expire this long after their last new minute.
HISTORY_TTL_S: Final = (HISTORY_RETENTION_MS + HOUR_MS) // 1000

#: Separates group and task id in a member of the group index (``groups`` key):
#: ``"<group>\n<id>"``, so one lex range lists a group.
GROUP_SEPARATOR: Final = "\n"

#: A task's done channel is ``"{NS:Q}:<DONE_CHANNEL>:<id>"``: the scripts publish its end
#: there, result waiters subscribe to it (``QueueKeys.done``).
DONE_CHANNEL: Final = "done"

#: A worker's own list is ``"{NS:Q}:<UNBLOCK>:<worker id>"`` (``QueueKeys.unblock``): an
#: enqueue pushes a task it hands straight to the waiting worker there, a cancelled fetch
#: a token that ends its own wait. It expires ``UNBLOCK_TTL_MS`` after its last push.
UNBLOCK: Final = "unblock"
UNBLOCK_TTL_MS: Final = 60_000

#: A finished task's result hash is ``"{NS:Q}:<RESULT>:<id>"`` (``QueueKeys.result``); a
#: script that ends a workflow step it was not called about names it from the tag.
RESULT: Final = "result"

#: A task's trail, ``"{NS:Q}:<TRAIL>:<id>"`` (``QueueKeys.trail``): its progress and log
#: lines, written under its lease (``report.lua``), kept with its result; the scripts
#: that end or forget a task name it from the tag.
TRAIL: Final = "trail"
#: Ends each log line in a trail's ``log`` field (a line is JSON: it holds no raw break).
TRAIL_LINE_END: Final = "\n"

#: ``"{NS:Q}:<JOINED>:<id>"``: the numbers of the parents of waiting workflow step ``id``
#: (of other queues) whose success was delivered, so a delivery sent twice counts once.
JOINED: Final = "joined"

#: A workflow step's effect on a step of another queue waits in its queue's ``outbox``
#: until delivered; the broker delivers it right after the call that wrote it, and a claim
#: of the queue re-delivers what is older than this (its first delivery was lost).
OUTBOX_GRACE_MS: Final = 5_000

#: A task's limits come first in its envelope (``TaskMessage.envelope``): a script sees
#: whether a task has any by comparing the envelope's first bytes with this.
FLOW_MARK: Final = '{"flow":'
#: The names of a queue's own limits (``limits`` key), beside a task's "c:..." and "r:...".
QUEUE_CONCURRENCY: Final = "c"
QUEUE_RATE: Final = "r"
#: A member of ``slots`` is ``"<limit><LANE_SEPARATOR><id>"``; a member of ``parked`` is
#: ``"<limit><LANE_SEPARATOR>"`` then :data:`LANE_ORDER_FORMAT` of (priority +
#: :data:`PRIORITY_OFFSET`, position, id), so one lex range is one limit's lane in
#: (priority, position) order. A limit's name never holds a line break (``rediq_core.flow``).
LANE_SEPARATOR: Final = "\n"
LANE_ORDER_FORMAT: Final = "%08x%016x:%s"
PRIORITY_OFFSET: Final = 2**31
#: Where the task id starts in a parked member, after its limit and separator (0-based).
LANE_ID_OFFSET: Final = len(LANE_ORDER_FORMAT % (0, 0, ""))

#: The protocol version: the data model and the scripts' arguments. A client of another
#: version refuses to work on data written by this one (``{NS}:protocol``).
PROTOCOL: Final = 2

#: The header of a task record (the ``tasks`` hash, id -> record), in order: each field is
#: followed by ``|``, then come the envelope (``envelope`` bytes long) and the payload.
#: ``state`` pending|scheduled|active|failed; ``position`` the FIFO sequence number of its
#: pending member; ``holder`` the number of the holder of its lease (active only);
#: ``worker`` the worker of its current or last lease (``|`` in it written as ``/``);
#: ``started`` when that lease began (ms); ``ttl`` its result TTL (s); ``nonce`` the
#: nonce of the enqueue call that stored it.
RECORD_FIELDS: Final = (
    "state",
    "priority",
    "position",
    "retried",
    "deliveries",
    "lost",
    "holder",
    "worker",
    "started",
    "ttl",
    "nonce",
    "envelope",
)

#: What each header field of a record may hold, as a Lua pattern capture (the scripts'
#: parser refuses a record with anything else: it goes to the dead-letter set).
RECORD_PATTERNS: Final = {
    "state": "(%l*)",
    "priority": "(%-?%d+)",
    "position": "(%d*)",
    "retried": "(%d+)",
    "deliveries": "(%d+)",
    "lost": "(%d+)",
    "holder": "(%d*)",
    "worker": "([^|]*)",
    "started": "(%d*)",
    "ttl": "(%d+)",
    "nonce": "([^|]*)",
    "envelope": "(%d+)",
}

#: The Lua locals the prelude receives at ``--@LAYOUT@--``, by name.
LUA_CONSTANTS: Final[Mapping[str, str | int | tuple[str, ...]]] = {
    "POSITION_FORMAT": POSITION_FORMAT,
    "MEMBER_ID_AT": MEMBER_ID_OFFSET + 1,
    "MINUTE_SLOTS": MINUTE_SLOTS,
    "MINUTE_MS": MINUTE_MS,
    "MINUTE_STAMP": MINUTE_STAMP,
    "MINUTE_OPEN": MINUTE_OPEN,
    "RUN_FIELD": RUN_FIELD,
    "RUN_SCALE": RUN_SCALE,
    "HOUR_MINUTES": HOUR_MS // MINUTE_MS,
    "HISTORY_MINUTES": HISTORY_MINUTES,
    "HISTORY_HOURS": HISTORY_HOURS,
    "HISTORY_FORMAT": "<" + "I4" * (len(COUNTER_NAMES) + 2) + "d",
    "HISTORY_RECORD_SIZE": HISTORY_RECORD.size,
    "HISTORY_SIZE": HISTORY_SIZE,
    "HISTORY_TTL_S": HISTORY_TTL_S,
    "COUNTERS": COUNTER_NAMES,
    "GROUP_SEPARATOR": GROUP_SEPARATOR,
    "DONE_CHANNEL": DONE_CHANNEL,
    "UNBLOCK": UNBLOCK,
    "UNBLOCK_TTL_MS": UNBLOCK_TTL_MS,
    "RESULT": RESULT,
    "JOINED": JOINED,
    "TRAIL": TRAIL,
    "TRAIL_LINE_END": TRAIL_LINE_END,
    "OUTBOX_GRACE_MS": OUTBOX_GRACE_MS,
    "WORKFLOW_HEADER": WORKFLOW_HEADER,
    "STEP_SEPARATOR": STEP_SEPARATOR,
    "CASCADE_ERROR_TYPE": CASCADE_ERROR_TYPE,
    "FLOW_MARK": FLOW_MARK,
    "QUEUE_CONCURRENCY": QUEUE_CONCURRENCY,
    "QUEUE_RATE": QUEUE_RATE,
    "LANE_SEPARATOR": LANE_SEPARATOR,
    "LANE_ORDER_FORMAT": LANE_ORDER_FORMAT,
    "PRIORITY_OFFSET": PRIORITY_OFFSET,
    "LANE_ID_AT": LANE_ID_OFFSET + 1,
    "EXPIRED_ERROR_TYPE": EXPIRED_ERROR_TYPE,
    "SUPERSEDED_ERROR_TYPE": SUPERSEDED_ERROR_TYPE,
}


def pending_member(seq: int, task_id: str) -> str:
    """The pending member of ``task_id`` at sequence number ``seq``."""
    return POSITION_FORMAT % (seq, task_id)


def member_id(member: str) -> str:
    """The task id of a pending member."""
    return member[MEMBER_ID_OFFSET:]


def parked_id(member: str) -> str:
    """The task id of a member of ``parked``."""
    return member[member.index(LANE_SEPARATOR) + 1 + LANE_ID_OFFSET :]


def lane_of(member: str) -> str:
    """The limit whose lane a member of ``slots`` or ``parked`` is in."""
    return member[: member.index(LANE_SEPARATOR)]


def minute_field(name: str, slot: int) -> str:
    """The ring field of counter ``name`` (or :data:`MINUTE_STAMP`) in ``slot``."""
    return f"{name}:{slot}"


def history_minute_offset(minute: int) -> int:
    """Where minute ``minute``'s record is in the ``history`` string (bytes)."""
    return (minute % HISTORY_MINUTES) * HISTORY_RECORD.size


def history_hour_offset(hour: int) -> int:
    """Where hour ``hour``'s record is in the ``history`` string (bytes)."""
    return (HISTORY_MINUTES + hour % HISTORY_HOURS) * HISTORY_RECORD.size


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One record of the ``history`` string: its minute (or hour) and counts."""

    stamp: int
    counts: Mapping[str, int]
    runs: int
    run_ms: int


def unpack_history(raw: bytes) -> Iterator[HistoryRecord]:
    """The records of a range of the ``history`` string (a short last one is left out)."""
    size = HISTORY_RECORD.size
    for at in range(0, len(raw) - size + 1, size):
        stamp, *counts, runs, run_ms = HISTORY_RECORD.unpack_from(raw, at)
        yield HistoryRecord(
            stamp, dict(zip(COUNTER_NAMES, counts, strict=True)), runs, round(run_ms)
        )


@dataclass(frozen=True, slots=True)
class Record:
    """A task record as the scripts store it (header fields as text)."""

    fields: Mapping[str, str]
    envelope: bytes
    payload: bytes

    def number(self, name: str) -> int:
        try:
            return int(self.fields.get(name) or 0)
        except ValueError:
            return 0


def parse_record(raw: bytes | None) -> Record | None:
    """A record of the ``tasks`` hash, or None if ``raw`` is missing or not a record."""
    if raw is None:
        return None
    parts = raw.split(b"|", len(RECORD_FIELDS))
    if len(parts) != len(RECORD_FIELDS) + 1:
        return None
    fields = {name: parts[i].decode("utf-8", "replace") for i, name in enumerate(RECORD_FIELDS)}
    try:
        length = int(fields["envelope"])
    except ValueError:
        return None
    body = parts[-1]
    return Record(fields, body[:length], body[length:])
