"""Workflows: ``chain``, ``group`` and ``chord`` build a canvas; :func:`plan` compiles it
into numbered steps, each knowing which steps must succeed before it starts and what
its first argument is.

Compilation walks the canvas left to right with two things in hand: the *frontier* (the
steps the next element waits for) and the *feed* (what the next ``.s()`` step gets):

* a task call is one step that waits for the frontier and, if it is a ``.s()`` step,
  gets the feed; after it, the frontier is that step and the feed its result;
* a chain passes frontier and feed from each element to the next;
* a group compiles every member from the same frontier and feed; after it, the frontier
  is all the members' frontiers and the feed the list of their feeds, in the order
  given (an empty group passes the frontier on, with an empty list);
* a chord is the chain of its group and its callback.

The workflow's result is the last feed: the last step's result for a chain, the list of
the members' results for a group, the callback's result for a chord. Steps are numbered
in the order the walk meets them, so a step's id can be derived from the workflow's id
and its number (the same on every re-send).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar, overload

from .errors import ConfigurationError
from .task import TaskCall

if TYPE_CHECKING:
    from .app import Rediq
    from .workflows import WorkflowHandle

__all__ = [
    "Chain",
    "Chord",
    "Feed",
    "Group",
    "Plan",
    "PlannedStep",
    "Step",
    "chain",
    "chord",
    "decode_feed",
    "encode_feed",
    "group",
    "plan",
]

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Chain(Generic[R]):
    """Steps run one after the other; its result is the last step's."""

    steps: tuple[Step[Any], ...]

    async def enqueue(self) -> WorkflowHandle[R]:
        """Publish the workflow (the app of its first step); a handle to follow it."""
        return await _enqueue(self)

    def enqueue_sync(self) -> WorkflowHandle[R]:
        """:meth:`enqueue`, blocking: for code without an event loop (docs/sync.md)."""
        return _app_of(self).sync_runner.call(self.enqueue)


@dataclass(frozen=True, slots=True)
class Group(Generic[R]):
    """Members run side by side; its result (``R``, a list) holds the members' results
    in the order given."""

    members: tuple[Step[Any], ...]

    async def enqueue(self) -> WorkflowHandle[R]:
        """Publish the workflow (the app of its first step); a handle to follow it."""
        return await _enqueue(self)

    def enqueue_sync(self) -> WorkflowHandle[R]:
        """:meth:`enqueue`, blocking: for code without an event loop (docs/sync.md)."""
        return _app_of(self).sync_runner.call(self.enqueue)


@dataclass(frozen=True, slots=True)
class Chord(Generic[R]):
    """A group, then a callback that gets the list of the group's results."""

    header: Group[Any]
    callback: Step[R]

    async def enqueue(self) -> WorkflowHandle[R]:
        """Publish the workflow (the app of its first step); a handle to follow it."""
        return await _enqueue(self)

    def enqueue_sync(self) -> WorkflowHandle[R]:
        """:meth:`enqueue`, blocking: for code without an event loop (docs/sync.md)."""
        return _app_of(self).sync_runner.call(self.enqueue)


#: Anything a workflow is made of, by the type of its result.
Step: TypeAlias = TaskCall[R] | Chain[R] | Group[R] | Chord[R]
_STEP_TYPES = (TaskCall, Chain, Group, Chord)


def _step(value: object, where: str) -> Step[Any]:
    if isinstance(value, _STEP_TYPES):
        return value
    raise TypeError(
        f"{where} takes task calls (fn(...), or fn.s(...) to get the previous result),"
        f" chains, groups and chords; got {value!r}"
    )


@overload
def chain(a: Step[R], /) -> Chain[R]: ...
@overload
def chain(a: Step[Any], b: Step[R], /) -> Chain[R]: ...
@overload
def chain(a: Step[Any], b: Step[Any], c: Step[R], /) -> Chain[R]: ...
@overload
def chain(a: Step[Any], b: Step[Any], c: Step[Any], d: Step[R], /) -> Chain[R]: ...
@overload
def chain(a: Step[Any], b: Step[Any], c: Step[Any], d: Step[Any], e: Step[R], /) -> Chain[R]: ...
@overload
def chain(*steps: Step[Any]) -> Chain[Any]: ...
def chain(*steps: Step[Any]) -> Chain[Any]:
    """Steps one after the other: ``chain(fetch(url), parse.s(), store.s(table="pages"))``.
    A ``.s()`` step gets the previous step's result as its first argument."""
    if not steps:
        raise ConfigurationError("chain() needs at least one step")
    return Chain(tuple(_step(s, "chain()") for s in steps))


@overload
def group(members: Iterable[Step[R]], /) -> Group[list[R]]: ...
@overload
def group(*members: Step[R]) -> Group[list[R]]: ...
def group(*members: Any) -> Group[Any]:
    """Steps side by side, given as arguments or as one iterable:
    ``group(resize(i) for i in ids)``. Its result is the list of their results, in the
    order given."""
    if len(members) == 1 and not isinstance(members[0], _STEP_TYPES):
        if not isinstance(members[0], Iterable):
            _step(members[0], "group()")
        members = tuple(members[0])
    return Group(tuple(_step(m, "group()") for m in members))


def chord(header: Group[Any] | Iterable[Step[Any]], callback: Step[R]) -> Chord[R]:
    """A group, then ``callback`` with the list of the group's results as its first
    argument: ``chord(group(square(i) for i in range(20)), total.s())``."""
    members = header if isinstance(header, Group) else group(header)
    return Chord(members, _step(callback, "chord()"))


async def _enqueue(workflow: Step[R]) -> WorkflowHandle[R]:
    return await _app_of(workflow).enqueue_workflow(workflow)


def _app_of(workflow: Step[Any]) -> Rediq:
    first = _first_call(workflow)
    if first is None:
        raise ConfigurationError("an empty workflow has no step to run and no app to run it")
    return first.task.app


def _first_call(step: Step[Any]) -> TaskCall[Any] | None:
    if isinstance(step, TaskCall):
        return step
    parts = (
        step.steps
        if isinstance(step, Chain)
        else (step.members if isinstance(step, Group) else (step.header, step.callback))
    )
    for part in parts:
        found = _first_call(part)
        if found is not None:
            return found
    return None


# --- compilation ----------------------------------------------------------------------

#: What a step gets as its first argument: the result of step ``n`` (an int), or a list
#: of such values (nested as the groups are).
Feed: TypeAlias = "int | list[Feed]"


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step of a compiled workflow."""

    index: int
    call: TaskCall[Any]
    #: Steps that must succeed before this one starts.
    after: tuple[int, ...]
    #: Its first argument (a ``.s()`` step), or None: it gets no parent's result.
    feed: Feed | None
    #: Steps that wait for this one.
    then: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """A compiled workflow: its steps in order, and what its result is made of."""

    steps: tuple[PlannedStep, ...]
    result: Feed

    @property
    def roots(self) -> tuple[PlannedStep, ...]:
        """The steps that start at once."""
        return tuple(s for s in self.steps if not s.after)

    def needed(self) -> frozenset[int]:
        """The steps whose results are read: by a later step, or as the workflow's."""
        needed: set[int] = set()
        for feed in (*(s.feed for s in self.steps), self.result):
            _collect(feed, needed)
        return frozenset(needed)


def _collect(feed: Feed | None, into: set[int]) -> None:
    if isinstance(feed, int):
        into.add(feed)
    elif feed is not None:
        for item in feed:
            _collect(item, into)


class _Compiler:
    def __init__(self) -> None:
        self.calls: list[TaskCall[Any]] = []
        self.after: list[tuple[int, ...]] = []
        self.feeds: list[Feed | None] = []

    def walk(
        self, step: Step[Any], frontier: tuple[int, ...], feed: Feed | None
    ) -> tuple[tuple[int, ...], Feed | None]:
        if isinstance(step, TaskCall):
            return self.call(step, frontier, feed)
        if isinstance(step, Chain):
            for element in step.steps:
                frontier, feed = self.walk(element, frontier, feed)
            return frontier, feed
        if isinstance(step, Chord):
            frontier, feed = self.walk(step.header, frontier, feed)
            return self.walk(step.callback, frontier, feed)
        ends: list[int] = []
        feeds: list[Feed] = []
        for member in step.members:
            member_frontier, member_feed = self.walk(member, frontier, feed)
            ends.extend(member_frontier)
            assert member_feed is not None  # every member ends in a step or a group
            feeds.append(member_feed)
        return (tuple(ends) if step.members else frontier), feeds

    def call(
        self, call: TaskCall[Any], frontier: tuple[int, ...], feed: Feed | None
    ) -> tuple[tuple[int, ...], Feed]:
        index = len(self.calls)
        name = call.task.name
        if call.takes_parent and feed is None:
            raise ConfigurationError(
                f"step {index} ({name}.s(...)) starts the workflow, so no result comes"
                f" before it: write {name}(...) with every argument"
            )
        if call.task_id is not None:
            raise ConfigurationError(
                f"step {index} ({name}) has task_id={call.task_id!r}: a workflow names its"
                " steps after its own id; remove task_id from the step's options"
            )
        if self.calls and call.task.app is not self.calls[0].task.app:
            raise ConfigurationError(
                f"step {index} ({name}) belongs to another app than the workflow's first step"
            )
        self.calls.append(call)
        self.after.append(frontier)
        self.feeds.append(feed if call.takes_parent else None)
        return (index,), index


def plan(workflow: Step[Any]) -> Plan:
    """Compile a canvas into its steps (see the module's docstring); raise
    :class:`ConfigurationError` for a workflow that cannot run as written."""
    compiler = _Compiler()
    _, result = compiler.walk(_step(workflow, "a workflow"), (), None)
    assert result is not None
    then: list[list[int]] = [[] for _ in compiler.calls]
    for index, after in enumerate(compiler.after):
        for parent in after:
            then[parent].append(index)
    built = Plan(
        tuple(
            PlannedStep(i, call, compiler.after[i], compiler.feeds[i], tuple(then[i]))
            for i, call in enumerate(compiler.calls)
        ),
        result,
    )
    for index in sorted(built.needed()):
        call = built.steps[index].call
        if call.resolved_options.result_ttl_s == 0:
            raise ConfigurationError(
                f"step {index} ({call.task.name}) has result_ttl=0, but its result is"
                " passed on or is the workflow's result: give it a positive result_ttl"
            )
    return built


# --- the feed's wire form --------------------------------------------------------------
# A list of three or more consecutive step numbers travels as {"range": [first, end]}
# (end excluded): a chord callback over 10,000 members carries two numbers, not 10,000.


def encode_feed(feed: Feed) -> Any:
    """``feed`` as compact JSON-ready data (:func:`decode_feed` reverses it)."""
    if isinstance(feed, int):
        return feed
    out: list[Any] = []
    i = 0
    while i < len(feed):
        end = i
        while (
            end + 1 < len(feed)
            and isinstance(feed[end], int)
            and isinstance(feed[end + 1], int)
            and feed[end + 1] == feed[end] + 1  # type: ignore[operator]
        ):
            end += 1
        if end - i >= 2:
            out.append({"range": [feed[i], feed[end] + 1]})  # type: ignore[operator]
            i = end + 1
        else:
            out.append(encode_feed(feed[i]))
            i += 1
    return out


def decode_feed(data: Any) -> Feed:
    """The feed :func:`encode_feed` wrote; ``ValueError`` for anything else."""
    if isinstance(data, int) and not isinstance(data, bool) and data >= 0:
        return data
    if isinstance(data, list):
        feed: list[Feed] = []
        for item in data:
            if isinstance(item, dict):
                first, end = _range(item)
                feed.extend(range(first, end))
            else:
                feed.append(decode_feed(item))
        return feed
    raise ValueError(f"not a workflow feed: {data!r}")


def _range(item: dict[str, Any]) -> tuple[int, int]:
    bounds = item.get("range")
    if (
        len(item) == 1
        and isinstance(bounds, list)
        and len(bounds) == 2
        and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
        and 0 <= bounds[0] <= bounds[1]
    ):
        return bounds[0], bounds[1]
    raise ValueError(f"not a workflow feed range: {item!r}")
