"""Span names and attributes (OpenTelemetry messaging semantic conventions, plus
``rediq.*`` for what the conventions have no name for)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.util.types import Attributes

    from rediq_core.info import TaskInfo
    from rediq_core.message import TaskMessage

__all__ = ["SYSTEM", "consumer_attributes", "producer_attributes"]

#: ``messaging.system``: rediq is the messaging system (Redis is its storage).
SYSTEM = "rediq"


def producer_attributes(message: TaskMessage) -> Attributes:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
        "messaging.destination.name": message.queue,
        "messaging.message.id": message.id,
        "messaging.message.body.size": len(message.payload),
        "rediq.task.name": message.name,
        "rediq.task.priority": message.priority,
        "rediq.task.retries": message.max_retries,
    }


def consumer_attributes(task: TaskInfo) -> Attributes:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": task.task_queue,
        "messaging.message.id": task.task_id,
        "messaging.consumer.group.name": task.task_queue,
        "rediq.task.name": task.task_name,
        "rediq.task.retried": task.retried,
        "rediq.task.deliveries": task.deliveries,
        "rediq.worker.name": task.worker_name,
    }
