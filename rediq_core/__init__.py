"""rediq's core: registry, context API, plugin contract, worker orchestrator and CLI.

It imports no plugin package; brokers and serializers arrive through entry points.
"""

from __future__ import annotations

from .app import EVENT_NAMES, Rediq
from .broker import (
    Broker,
    BrokerOptions,
    CancelOutcome,
    FailedAttempt,
    TaskError,
    TaskRecord,
    TaskState,
)
from .canvas import Chain, Chord, Group, chain, chord, group
from .context import (
    current_task_exception,
    current_task_groups,
    current_task_info,
    current_task_result,
    current_task_retried,
    run_in_current_executor,
    set_progress,
)
from .control import Control
from .flow import FlowArgs, LimitUse, QueueFlow, QueueLimits, Rate
from .handle import TaskHandle
from .info import TaskInfo, WorkerInfo
from .inspection import (
    HistoryPoint,
    MinuteCounts,
    QueueHistory,
    QueueOverview,
    TaskPage,
    WorkerStatus,
)
from .lifespan import lifespan
from .message import TaskMessage
from .plugins import hookimpl, make_plugin_host
from .retry import Retry, RetryPolicy
from .scaling import QueueScaling
from .serializer import Serializer
from .shards import QueueSpec
from .task import TaskCall, TaskDefinition
from .task_events import TaskEvent, TaskEventKind
from .tasklogs import TaskLogLine, TaskLogs, TaskProgress, TaskReport
from .waits import WAIT_BUCKETS_S, WaitBucket
from .workflows import StepStatus, WorkflowHandle

__version__ = "0.1.0"

__all__ = [
    "EVENT_NAMES",
    "WAIT_BUCKETS_S",
    "Broker",
    "BrokerOptions",
    "CancelOutcome",
    "Chain",
    "Chord",
    "Control",
    "FailedAttempt",
    "FlowArgs",
    "Group",
    "HistoryPoint",
    "LimitUse",
    "MinuteCounts",
    "QueueFlow",
    "QueueHistory",
    "QueueLimits",
    "QueueOverview",
    "QueueScaling",
    "QueueSpec",
    "Rate",
    "Rediq",
    "Retry",
    "RetryPolicy",
    "Serializer",
    "StepStatus",
    "TaskCall",
    "TaskDefinition",
    "TaskError",
    "TaskEvent",
    "TaskEventKind",
    "TaskHandle",
    "TaskInfo",
    "TaskLogLine",
    "TaskLogs",
    "TaskMessage",
    "TaskPage",
    "TaskProgress",
    "TaskRecord",
    "TaskReport",
    "TaskState",
    "WaitBucket",
    "WorkerInfo",
    "WorkerStatus",
    "WorkflowHandle",
    "__version__",
    "chain",
    "chord",
    "current_task_exception",
    "current_task_groups",
    "current_task_info",
    "current_task_result",
    "current_task_retried",
    "group",
    "hookimpl",
    "lifespan",
    "make_plugin_host",
    "run_in_current_executor",
    "set_progress",
]
