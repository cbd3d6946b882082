"""Workflows are compiled into numbered steps: what each waits for, what its first argument
is, and what the workflow's result is made of; a workflow that cannot run as written is
refused at once, saying what to change."""

from __future__ import annotations

from typing import Any

import pytest

from rediq import ConfigurationError, Rediq
from rediq_core.canvas import (
    Chain,
    Group,
    Plan,
    chain,
    chord,
    decode_feed,
    encode_feed,
    group,
    plan,
)
from rediq_core.plugins import PluginHost


@pytest.fixture
def app(plugin_host: PluginHost) -> Rediq:
    return Rediq("redis://127.0.0.1:1/0", plugins=plugin_host)


@pytest.fixture
def tasks(app: Rediq) -> Any:
    class Tasks:
        @app.task(task_name="fetch")
        async def fetch(url: str) -> str:
            return url

        @app.task(task_name="parse")
        async def parse(text: str) -> int:
            return len(text)

        @app.task(task_name="store", task_queue="db")
        async def store(value: int, table: str = "t") -> None:
            return None

        @app.task(task_name="square")
        async def square(i: int) -> int:
            return i * i

        @app.task(task_name="total")
        async def total(values: list[int]) -> int:
            return sum(values)

    return Tasks


def shape(compiled: Plan) -> list[tuple[str, tuple[int, ...], Any, tuple[int, ...]]]:
    return [(s.call.task.name, s.after, s.feed, s.then) for s in compiled.steps]


def test_a_chain_passes_each_result_to_the_next_s_step(tasks: Any) -> None:
    compiled = plan(chain(tasks.fetch("u"), tasks.parse.s(), tasks.store.s(table="pages")))
    assert shape(compiled) == [
        ("fetch", (), None, (1,)),
        ("parse", (0,), 0, (2,)),
        ("store", (1,), 1, ()),
    ]
    assert compiled.result == 2
    assert [s.index for s in compiled.roots] == [0]
    assert compiled.steps[2].call.kwargs == {"table": "pages"}
    assert compiled.steps[2].call.resolved_options.queue == "db"  # steps keep their options


def test_a_plain_call_as_a_later_step_waits_but_ignores_the_result(tasks: Any) -> None:
    compiled = plan(chain(tasks.fetch("a"), tasks.fetch("b")))
    assert shape(compiled) == [("fetch", (), None, (1,)), ("fetch", (0,), None, ())]


def test_a_group_keeps_its_members_results_in_the_order_given(tasks: Any) -> None:
    compiled = plan(group(tasks.square(i) for i in range(4)))
    assert shape(compiled) == [("square", (), None, ())] * 4
    assert compiled.result == [0, 1, 2, 3]
    assert plan(group(tasks.square(1), tasks.square(2))).result == [0, 1]


def test_a_chord_callback_waits_for_every_member_and_gets_the_list(tasks: Any) -> None:
    compiled = plan(chord(group(tasks.square(i) for i in range(3)), tasks.total.s()))
    assert shape(compiled) == [
        ("square", (), None, (3,)),
        ("square", (), None, (3,)),
        ("square", (), None, (3,)),
        ("total", (0, 1, 2), [0, 1, 2], ()),
    ]
    assert compiled.result == 3
    # Celery's spelling: a list of calls as the header
    assert shape(plan(chord([tasks.square(1)], tasks.total.s())))[1] == ("total", (0,), [0], ())


def test_a_group_followed_by_a_step_in_a_chain_is_a_chord(tasks: Any) -> None:
    as_chain = plan(chain(group(tasks.square(1), tasks.square(2)), tasks.total.s()))
    as_chord = plan(chord(group(tasks.square(1), tasks.square(2)), tasks.total.s()))
    assert shape(as_chain) == shape(as_chord)


def test_a_group_after_a_step_gives_each_member_that_result(tasks: Any) -> None:
    compiled = plan(chain(tasks.fetch("u"), group(tasks.parse.s(), tasks.parse.s())))
    assert shape(compiled) == [
        ("fetch", (), None, (1, 2)),
        ("parse", (0,), 0, ()),
        ("parse", (0,), 0, ()),
    ]
    assert compiled.result == [1, 2]


def test_a_group_of_chains_waits_for_each_chains_last_step(tasks: Any) -> None:
    compiled = plan(
        chord(
            group(chain(tasks.fetch(u), tasks.parse.s()) for u in ("a", "b")),
            tasks.total.s(),
        )
    )
    assert shape(compiled) == [
        ("fetch", (), None, (1,)),
        ("parse", (0,), 0, (4,)),
        ("fetch", (), None, (3,)),
        ("parse", (2,), 2, (4,)),
        ("total", (1, 3), [1, 3], ()),
    ]


def test_a_chord_inside_a_chain_and_nested_groups(tasks: Any) -> None:
    compiled = plan(
        chain(
            tasks.fetch("u"),
            chord(group(tasks.parse.s(), tasks.parse.s()), tasks.total.s()),
            tasks.store.s(),
        )
    )
    assert shape(compiled) == [
        ("fetch", (), None, (1, 2)),
        ("parse", (0,), 0, (3,)),
        ("parse", (0,), 0, (3,)),
        ("total", (1, 2), [1, 2], (4,)),
        ("store", (3,), 3, ()),
    ]
    nested = plan(group(tasks.square(1), group(tasks.square(2), tasks.square(3))))
    assert nested.result == [0, [1, 2]]  # a group in a group is a list in the list


def test_an_empty_group_passes_the_wait_on_with_an_empty_list(tasks: Any) -> None:
    compiled = plan(chain(tasks.fetch("u"), group(), tasks.total.s()))
    assert shape(compiled) == [("fetch", (), None, (1,)), ("total", (0,), [], ())]
    assert plan(chord(group(), tasks.total.s())).steps[0].feed == []
    assert plan(group()).result == [] and plan(group()).steps == ()


def test_every_step_whose_result_is_read_is_needed(tasks: Any) -> None:
    compiled = plan(chain(tasks.fetch("a"), tasks.fetch("b"), tasks.parse.s()))
    assert compiled.needed() == {1, 2}  # step 0's result is read by no one


def test_workflows_that_cannot_run_are_refused_with_what_to_change(app: Rediq, tasks: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"starts the workflow.*write parse\(\.\.\.\)"):
        plan(chain(tasks.parse.s(), tasks.store.s()))
    with pytest.raises(ConfigurationError, match="starts the workflow"):
        plan(group(tasks.parse.s()))
    with pytest.raises(ConfigurationError, match="remove task_id"):
        plan(chain(tasks.fetch("u").options(task_id="mine"), tasks.parse.s()))
    with pytest.raises(ConfigurationError, match="result_ttl=0.*positive result_ttl"):
        plan(chain(tasks.fetch("u").options(result_ttl=0), tasks.parse.s()))
    with pytest.raises(ConfigurationError, match="result_ttl=0"):  # the workflow's result
        plan(chain(tasks.fetch("u"), tasks.parse.s().options(result_ttl=0)))
    plan(chain(tasks.fetch("u").options(result_ttl=0), tasks.fetch("v")))  # not read: fine
    with pytest.raises(ConfigurationError, match="at least one step"):
        chain()
    with pytest.raises(TypeError, match=r"chain\(\) takes task calls.*got 42"):
        chain(tasks.fetch("u"), 42)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"group\(\) takes task calls.*got 'x'"):
        group(["x"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"group\(\) takes task calls"):
        group(7)  # type: ignore[call-overload]

    other = Rediq("redis://127.0.0.1:1/0", plugins=app.plugins)

    @other.task(task_name="elsewhere")
    async def elsewhere() -> None:
        return None

    with pytest.raises(ConfigurationError, match="another app"):
        plan(chain(tasks.fetch("u"), elsewhere()))


def test_s_checks_the_arguments_with_the_parents_result_first(tasks: Any) -> None:
    step = tasks.store.s(table="pages")
    assert step.takes_parent and step.args == () and step.kwargs == {"table": "pages"}
    assert step.options(priority=3).takes_parent  # options keep it a step
    with pytest.raises(TypeError, match=r"cannot be a step.*parent's result first"):
        tasks.total.s(1)  # total takes one argument: the parent's result


async def test_an_s_step_alone_cannot_be_enqueued(app: Rediq, tasks: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"parse\.s\(\.\.\.\) is a workflow step"):
        await tasks.parse.s().enqueue()
    with pytest.raises(ConfigurationError, match="workflow step"):
        await app.enqueue_many([tasks.parse.s()])


def test_canvases_are_plain_values(tasks: Any) -> None:
    built = chain(tasks.fetch("u"), tasks.parse.s())
    assert isinstance(built, Chain) and len(built.steps) == 2
    assert isinstance(group(tasks.square(1)), Group)
    assert chain(tasks.fetch("u"), tasks.parse.s()) == built


def test_a_feed_travels_compactly_and_comes_back_whole() -> None:
    feed: Any = [0, 1, 2, 3, [4, 5], 7, 9, 10, 11, 12]
    data = encode_feed(feed)
    assert data == [{"range": [0, 4]}, [4, 5], 7, {"range": [9, 13]}]
    assert decode_feed(data) == feed
    big: Any = list(range(10_000))
    assert encode_feed(big) == [{"range": [0, 10_000]}]
    assert decode_feed(encode_feed(big)) == big
    assert decode_feed(encode_feed(5)) == 5 and decode_feed(encode_feed([])) == []
    for bad in ("x", -1, True, [{"range": [3, 1]}], [{"range": [0, 1], "x": 1}], {"range": [0, 1]}):
        with pytest.raises(ValueError, match="not a workflow feed"):
            decode_feed(bad)


def test_a_step_without_a_deadline_takes_the_earliest_of_the_steps_before_it(tasks: Any) -> None:
    from rediq_core.workflows import _step_calls

    compiled = plan(
        chain(
            tasks.fetch("u").options(deadline=30),
            group(tasks.parse.s(), tasks.parse.s().options(deadline=60)),
            chord(group(tasks.square(1).options(deadline=10), tasks.square(2)), tasks.total.s()),
        )
    )
    calls = _step_calls(tasks.fetch.app, "w" * 32, compiled)
    deadlines = [c.resolved_options.flow.deadline_ms for c in calls]
    # fetch 30 s; parse inherits 30 s, the other keeps its own 60 s; the chord's members
    # follow both parses (30 s), one with its own 10 s; the callback the earliest, 10 s
    assert deadlines == [30_000, 30_000, 60_000, 10_000, 30_000, 10_000]
