"""rediq: an asyncio-native, Redis-backed distributed task framework.

This package is the public face; everything is defined in ``rediq_core``.
"""

from __future__ import annotations

from rediq_core import (
    EVENT_NAMES,
    Rediq,
    TaskHandle,
    TaskInfo,
    TaskState,
    WorkerInfo,
    __version__,
    current_task_exception,
    current_task_groups,
    current_task_info,
    current_task_result,
    current_task_retried,
    hookimpl,
    run_in_current_executor,
)
from rediq_core.errors import (
    BrokerError,
    BrokerOutOfMemoryError,
    BrokerUnavailableError,
    ConfigurationError,
    ContextUnavailableError,
    MessageTooLargeError,
    RediqError,
    ResultNotKeptError,
    SerializationError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFoundError,
    TaskRegistrationError,
    UnknownNameError,
)

__all__ = [
    "EVENT_NAMES",
    "BrokerError",
    "BrokerOutOfMemoryError",
    "BrokerUnavailableError",
    "ConfigurationError",
    "ContextUnavailableError",
    "MessageTooLargeError",
    "Rediq",
    "RediqError",
    "ResultNotKeptError",
    "SerializationError",
    "TaskCancelledError",
    "TaskFailedError",
    "TaskHandle",
    "TaskInfo",
    "TaskNotFoundError",
    "TaskRegistrationError",
    "TaskState",
    "UnknownNameError",
    "WorkerInfo",
    "__version__",
    "current_task_exception",
    "current_task_groups",
    "current_task_info",
    "current_task_result",
    "current_task_retried",
    "hookimpl",
    "run_in_current_executor",
]
