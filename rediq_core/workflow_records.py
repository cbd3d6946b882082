"""What a broker stores of a workflow (``chain``, ``group``, ``chord``): each step's link
to the others, carried in its message, and the workflow's own record.

A step is a task whose id is derived from the workflow's id and its number
(:func:`step_id`: the same on every re-send, so storing or releasing a step twice is a
no-op). Its message carries a :class:`StepLink` in the :data:`WORKFLOW_HEADER` header:

* ``wait``: how many steps must succeed before it starts. A broker stores a step with
  ``wait > 0`` as :attr:`~rediq_core.records.TaskState.WAITING`, and makes it pending
  when its last parent succeeds, in the same atomic step as that parent's settlement;
  each parent counts once, however often its settlement is re-sent.
* ``then``: the steps that wait for it, as ``(queue, number)``.
* ``feed``: what its first argument is made of (:mod:`rediq_core.canvas`); the worker
  reads those results when the step starts.

A step that ends otherwise than succeeded (dead-lettered, cancelled) ends every step that
waits for it, transitively, as cancelled with :func:`cascade_error`: a workflow never
runs a step after a failed one, and its handle names the step that failed first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .message import TaskMessage
from .records import TaskError

__all__ = [
    "CASCADE_ERROR_TYPE",
    "STEP_SEPARATOR",
    "WORKFLOW_HEADER",
    "StepLink",
    "WorkflowRecord",
    "WorkflowStep",
    "cascade_cause",
    "cascade_error",
    "step_id",
]

#: The header of a workflow step's message (a JSON object, :meth:`StepLink.to_header`).
WORKFLOW_HEADER = "rediq-workflow"
#: Between a workflow's id and a step's number in the step's task id.
STEP_SEPARATOR = "-"
#: The error type of a step ended because an earlier step did not succeed.
CASCADE_ERROR_TYPE = "rediq.WorkflowStepSkipped"
_CAUSE = re.compile(r"^step (\d+) of workflow \S+ ended ")


def step_id(workflow_id: str, index: int) -> str:
    """The task id of step ``index`` of a workflow."""
    return f"{workflow_id}{STEP_SEPARATOR}{index}"


@dataclass(frozen=True, slots=True)
class StepLink:
    """A step's place in its workflow (see the module's docstring)."""

    workflow: str
    index: int
    wait: int
    then: tuple[tuple[str, int], ...]
    #: The encoded feed (:func:`rediq_core.canvas.encode_feed`), or None.
    feed: Any = None

    def to_header(self) -> str:
        data: dict[str, Any] = {"wf": self.workflow, "n": self.index, "wait": self.wait}
        data["then"] = [list(t) for t in self.then]
        if self.feed is not None:
            data["feed"] = self.feed
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def of(cls, message: TaskMessage) -> StepLink | None:
        """The message's link, or None if it is no workflow step; ``ValueError`` if its
        header is malformed."""
        text = message.headers.get(WORKFLOW_HEADER)
        if text is None:
            return None
        try:
            data = json.loads(text)
            link = cls(
                str(data["wf"]),
                int(data["n"]),
                int(data["wait"]),
                tuple((str(q), int(n)) for q, n in data["then"]),
                data.get("feed"),
            )
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"malformed {WORKFLOW_HEADER} header {text!r}: {exc}") from None
        return link

    @property
    def successors(self) -> list[tuple[str, str]]:
        """``(queue, task id)`` of each step that waits for this one."""
        return [(queue, step_id(self.workflow, n)) for queue, n in self.then]


def cascade_error(workflow_id: str, cause: int, state: str, cause_error: str) -> TaskError:
    """The error of a step ended because step ``cause`` ended in ``state``."""
    return TaskError(
        CASCADE_ERROR_TYPE, f"step {cause} of workflow {workflow_id} ended {state}: {cause_error}"
    )


def cascade_cause(error: TaskError | None) -> int | None:
    """The step whose ending ended this one (a :func:`cascade_error`), else None."""
    if error is None or error.type != CASCADE_ERROR_TYPE:
        return None
    found = _CAUSE.match(error.message)
    return int(found.group(1)) if found else None


@dataclass(frozen=True, slots=True)
class WorkflowStep:
    queue: str
    name: str


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    """A workflow as stored: its steps (in order), what its result is made of (an
    encoded feed), when it was enqueued, and how long the broker keeps the record."""

    id: str
    steps: tuple[WorkflowStep, ...]
    result: Any
    created_at_ms: int
    ttl_s: int

    def to_json(self) -> str:
        runs: list[list[Any]] = []  # (queue, name, count): a 10,000-member group is one run
        for step in self.steps:
            if runs and runs[-1][0] == step.queue and runs[-1][1] == step.name:
                runs[-1][2] += 1
            else:
                runs.append([step.queue, step.name, 1])
        data = {
            "steps": runs,
            "result": self.result,
            "created_at_ms": self.created_at_ms,
            "ttl_s": self.ttl_s,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, workflow_id: str, text: str | bytes) -> WorkflowRecord:
        data = json.loads(text)
        steps = tuple(
            WorkflowStep(str(queue), str(name))
            for queue, name, count in data["steps"]
            for _ in range(int(count))
        )
        return cls(
            workflow_id, steps, data["result"], int(data["created_at_ms"]), int(data["ttl_s"])
        )

    def step_ids(self) -> list[str]:
        return [step_id(self.id, n) for n in range(len(self.steps))]
