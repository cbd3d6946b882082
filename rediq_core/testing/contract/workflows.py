"""The workflows role: a workflow's record, waiting steps, their release in the same step
as the last parent's settlement (each parent counted once), and the end of every step
after one that did not succeed (:mod:`rediq_core.workflow_records`)."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from rediq_core.message import TaskMessage, new_task_id
from rediq_core.records import CancelOutcome, TaskState
from rediq_core.roles import Role, Workflows
from rediq_core.workflow_records import (
    CASCADE_ERROR_TYPE,
    WORKFLOW_HEADER,
    StepLink,
    WorkflowRecord,
    WorkflowStep,
    cascade_cause,
    step_id,
)

from .helpers import (
    QUEUE,
    CoreBroker,
    RoleContract,
    failure,
    fetch,
    fetch_nothing,
    fetch_one,
    make_message,
    success,
)

__all__ = ["WorkflowsContract"]

OTHER = "contract-other"


class WorkflowBroker(CoreBroker, Workflows, Protocol):
    """A broker with the core roles and workflows."""


def steps(
    workflow: str, edges: dict[int, list[int]], queues: dict[int, str] | None = None
) -> list[TaskMessage]:
    """The messages of a workflow whose step ``n`` is followed by ``edges[n]``."""
    queues = queues or {}
    count = 1 + max([*edges, *(n for then in edges.values() for n in then)], default=0)
    waits = {n: sum(n in then for then in edges.values()) for n in range(count)}
    messages = []
    for n in range(count):
        then = tuple((queues.get(m, QUEUE), m) for m in edges.get(n, []))
        link = StepLink(workflow, n, waits[n], then)
        messages.append(
            make_message(
                queues.get(n, QUEUE),
                id=step_id(workflow, n),
                headers={WORKFLOW_HEADER: link.to_header()},
            )
        )
    return messages


class WorkflowsContract(RoleContract):
    role = Role.WORKFLOWS
    requires: ClassVar[frozenset[Role]] = frozenset(
        {Role.PRODUCER, Role.CONSUMER, Role.RESULTS, Role.CONTROL}
    )

    async def state(self, broker: WorkflowBroker, message: TaskMessage) -> TaskState | None:
        record = await broker.get_task(message.id, message.queue)
        return record.state if record else None

    async def test_a_workflow_record_is_stored_once_and_read_back(
        self, broker: WorkflowBroker
    ) -> None:
        record = WorkflowRecord(
            new_task_id(),
            (*[WorkflowStep(QUEUE, "t")] * 3, WorkflowStep(OTHER, "u")),
            [{"range": [0, 3]}],
            1_700_000_000_000,
            60,
        )
        await broker.store_workflow(record)
        await broker.store_workflow(record)  # a re-send
        assert await broker.get_workflow(record.id) == record
        assert await broker.get_workflow(new_task_id()) is None

    async def test_a_waiting_step_runs_only_after_its_parent_succeeded(
        self, broker: WorkflowBroker
    ) -> None:
        first, second = steps(new_task_id(), {0: [1]})
        outcomes = await broker.enqueue([second, first])
        assert [o.state for o in outcomes] == [TaskState.WAITING, TaskState.PENDING]
        assert (await fetch_one(broker)).message.id == first.id  # the waiting one is not ready
        assert await self.state(broker, second) is TaskState.WAITING
        assert await broker.settle("worker-1", [success(first)]) == [True]
        assert await self.state(broker, second) is TaskState.PENDING
        assert (await fetch_one(broker)).message.id == second.id

    async def test_a_join_counts_each_parent_once(self, broker: WorkflowBroker) -> None:
        *members, join = steps(new_task_id(), {0: [3], 1: [3], 2: [3]})
        await broker.enqueue([join, *members])
        batch = await fetch(broker)
        assert sorted(d.message.id for d in batch.deliveries) == sorted(m.id for m in members)
        first = success(members[0])
        assert await broker.settle("worker-1", [first]) == [True]
        assert await broker.settle("worker-1", [first]) == [True]  # a re-sent settlement
        assert await self.state(broker, join) is TaskState.WAITING
        assert await broker.settle("worker-1", [success(members[1])]) == [True]
        assert await self.state(broker, join) is TaskState.WAITING
        assert await broker.settle("worker-1", [success(members[2])]) == [True]
        assert (await fetch_one(broker)).message.id == join.id

    async def test_steps_of_other_queues_are_released_too(self, broker: WorkflowBroker) -> None:
        first, second, third = steps(new_task_id(), {0: [1], 1: [2]}, {1: OTHER})
        await broker.enqueue([third, second, first])
        await fetch_one(broker)
        await broker.settle("worker-1", [success(first)])
        assert (await fetch_one(broker, queue=OTHER)).message.id == second.id
        await broker.settle("worker-1", [success(second)])
        assert (await fetch_one(broker)).message.id == third.id

    async def test_a_failed_step_ends_every_step_after_it(self, broker: WorkflowBroker) -> None:
        workflow = new_task_id()
        first, second, third, fourth = steps(workflow, {0: [1, 2], 1: [3], 2: [3]}, {2: OTHER})
        await broker.enqueue([fourth, third, second, first])
        await fetch_one(broker)
        await broker.settle("worker-1", [failure(first)])  # dead-lettered: no retry left
        for later in (second, third, fourth):
            record = await broker.wait_finished(later.id, later.queue, 5)
            assert record is not None and record.state is TaskState.CANCELLED, record
            assert record.error is not None and record.error.type == CASCADE_ERROR_TYPE
            assert cascade_cause(record.error) == 0, record.error  # the step that failed first
            assert "boom" in record.error.message
        await fetch_nothing(broker, within_s=0.1)
        await fetch_nothing(broker, within_s=0.1, queue=OTHER)

    async def test_a_retried_step_does_not_release_yet(self, broker: WorkflowBroker) -> None:
        first, second = steps(new_task_id(), {0: [1]})
        await broker.enqueue([second, first])
        await fetch_one(broker)
        await broker.settle("worker-1", [failure(first, retry_delay_ms=0)])
        assert await self.state(broker, second) is TaskState.WAITING
        retried = await fetch_one(broker)
        assert retried.message.id == first.id
        await broker.settle("worker-1", [success(first, delivery=retried.deliveries)])
        assert (await fetch_one(broker)).message.id == second.id

    async def test_cancelling_a_waiting_step_ends_it_and_its_successors(
        self, broker: WorkflowBroker
    ) -> None:
        first, second, third = steps(new_task_id(), {0: [1], 1: [2]})
        await broker.enqueue([third, second, first])
        assert await broker.cancel(second.id, second.queue) is CancelOutcome.CANCELLED
        assert await self.state(broker, third) is TaskState.CANCELLED
        await fetch_one(broker)
        assert await broker.settle("worker-1", [success(first)]) == [True]
        assert await self.state(broker, second) is TaskState.CANCELLED  # not revived
        await fetch_nothing(broker, within_s=0.1)

    async def test_deleting_or_purging_a_step_ends_the_steps_after_it(
        self, broker: WorkflowBroker
    ) -> None:
        first, second, third = steps(new_task_id(), {0: [1], 1: [2]}, {2: OTHER})
        lone, after = steps(new_task_id(), {0: [1]})
        await broker.enqueue([third, second, first, after, lone])
        assert await broker.delete(first.id, first.queue)
        for later in (second, third):
            assert await self.state(broker, later) is TaskState.CANCELLED, later.id
        assert await broker.purge_tasks(QUEUE, [TaskState.PENDING]) == 1  # `lone`
        assert await self.state(broker, after) is TaskState.CANCELLED
        assert await broker.purge_tasks(QUEUE, [TaskState.WAITING]) == 0
        await fetch_nothing(broker, within_s=0.1)

    async def test_waiting_steps_are_listed_and_purged(self, broker: WorkflowBroker) -> None:
        first, second = steps(new_task_id(), {0: [1]})
        await broker.enqueue([second, first])
        page = await broker.list_tasks(QUEUE, TaskState.WAITING)
        assert [r.id for r in page.tasks] == [second.id]
        assert await broker.purge_tasks(QUEUE, [TaskState.WAITING]) == 1
        assert await self.state(broker, second) is None
        await fetch_one(broker)
        assert await broker.settle("worker-1", [success(first)]) == [True]  # nothing to release
        await fetch_nothing(broker, within_s=0.1)

    async def test_a_delayed_step_waits_its_delay_after_release(
        self, broker: WorkflowBroker
    ) -> None:
        first, second = steps(new_task_id(), {0: [1]})
        delayed: Any = make_message(QUEUE, id=second.id, headers=second.headers, delay_ms=60_000)
        await broker.enqueue([delayed, first])
        await fetch_one(broker)
        await broker.settle("worker-1", [success(first)])
        assert await self.state(broker, second) is TaskState.SCHEDULED
