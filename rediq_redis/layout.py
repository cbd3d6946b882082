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

from collections.abc import Mapping
from typing import Final

from rediq_core.inspection import COUNTER_NAMES

__all__ = [
    "COUNTER_NAMES",
    "DONE_CHANNEL",
    "GROUP_SEPARATOR",
    "LUA_CONSTANTS",
    "MEMBER_ID_OFFSET",
    "MINUTE_MS",
    "MINUTE_SLOTS",
    "MINUTE_STAMP",
    "POSITION_FORMAT",
    "member_id",
    "minute_field",
    "pending_member",
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

#: Separates group and task id in a member of the group index (``groups`` key):
#: ``"<group>\n<id>"``, so one lex range lists a group.
GROUP_SEPARATOR: Final = "\n"

#: A task's done channel is ``"{NS:Q}:<DONE_CHANNEL>:<id>"``: the scripts publish its end
#: there, result waiters subscribe to it (``QueueKeys.done``).
DONE_CHANNEL: Final = "done"

#: The Lua locals the prelude receives at ``--@LAYOUT@--``, by name.
LUA_CONSTANTS: Final[Mapping[str, str | int | tuple[str, ...]]] = {
    "POSITION_FORMAT": POSITION_FORMAT,
    "MEMBER_ID_AT": MEMBER_ID_OFFSET + 1,
    "MINUTE_SLOTS": MINUTE_SLOTS,
    "MINUTE_MS": MINUTE_MS,
    "MINUTE_STAMP": MINUTE_STAMP,
    "COUNTERS": COUNTER_NAMES,
    "GROUP_SEPARATOR": GROUP_SEPARATOR,
    "DONE_CHANNEL": DONE_CHANNEL,
}


def pending_member(seq: int, task_id: str) -> str:
    """The pending member of ``task_id`` at sequence number ``seq``."""
    return POSITION_FORMAT % (seq, task_id)


def member_id(member: str) -> str:
    """The task id of a pending member."""
    return member[MEMBER_ID_OFFSET:]


def minute_field(name: str, slot: int) -> str:
    """The ring field of counter ``name`` (or :data:`MINUTE_STAMP`) in ``slot``."""
    return f"{name}:{slot}"
