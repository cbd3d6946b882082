"""Every exception rediq raises on purpose, in one place.

Each message says what went wrong *and* what to do about it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AmbiguousWorkerError",
    "BrokerError",
    "BrokerOutOfMemoryError",
    "BrokerPoolExhaustedError",
    "BrokerUnavailableError",
    "ConfigurationError",
    "ContextUnavailableError",
    "MessageTooLargeError",
    "PluginError",
    "PluginNameClash",
    "PluginUnavailableError",
    "ProtocolMismatchError",
    "RediqError",
    "ResultNotKeptError",
    "SerializationError",
    "SyncCallInEventLoopError",
    "TaskCancelledError",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskRegistrationError",
    "UnknownNameError",
    "WorkflowFailed",
]


class RediqError(Exception):
    """Base class of every error rediq raises on purpose."""


class ConfigurationError(RediqError, ValueError):
    """An option has a value rediq cannot work with."""


class TaskRegistrationError(RediqError, TypeError):
    """A task or event handler cannot be registered as written."""


class ContextUnavailableError(RediqError, LookupError):
    """A ``current_*`` accessor was called where its value does not exist."""


class SerializationError(RediqError, TypeError):
    """A value cannot be carried by the chosen serializer (raised at enqueue time)."""


class SyncCallInEventLoopError(RediqError, RuntimeError):
    """A blocking ``*_sync()`` method was called in a thread that runs an event loop;
    ``await`` its async twin there instead (``enqueue_sync()`` -> ``await enqueue()``)."""


class PluginError(RediqError):
    """A plugin is misbuilt or cannot be loaded."""


class PluginNameClash(PluginError):
    """Two plugins registered the same name for the same kind of thing."""


class PluginUnavailableError(PluginError):
    """A registered plugin needs a package that is not installed."""


class UnknownNameError(RediqError, LookupError):
    """A serializer, broker scheme or executor pool name that no plugin registered."""


class BrokerError(RediqError):
    """The broker could not carry out an operation."""


class BrokerUnavailableError(BrokerError, ConnectionError):
    """The broker cannot be reached (refused, reset, timed out); the message names the URL
    (password masked). Nothing was half-written: the call either happened or did not."""


class BrokerPoolExhaustedError(BrokerError):
    """Every connection of the client's pool is in use (``max_connections`` reached): the
    broker is reachable, this process asks too much of it at once. The message says which
    setting to raise."""


class ProtocolMismatchError(BrokerError):
    """The broker holds data written by another version of rediq's storage protocol: this
    client refuses to read or change it (the message says which versions, and what to do)."""


class BrokerOutOfMemoryError(BrokerError):
    """The broker refused to store data because its memory limit is reached."""


class MessageTooLargeError(RediqError, ValueError):
    """A task's arguments serialize to more than the app's ``max_message_bytes``."""


class TaskNotFoundError(RediqError, LookupError):
    """No task with this id is known to the broker (never existed, or its record expired)."""


class ResultNotKeptError(RediqError):
    """The task's result is not stored (``result_ttl=0``), so it cannot be awaited."""


class TaskFailedError(RediqError):
    """The awaited task failed; ``type``, ``message`` and ``traceback`` describe the error."""

    def __init__(self, task_id: str, type_: str, message: str, traceback: str) -> None:
        super().__init__(f"task {task_id} failed with {type_}: {message}")
        self.task_id = task_id
        self.type = type_
        self.message = message
        self.traceback = traceback


class TaskExpiredError(TaskFailedError):
    """The awaited task ended ``expired``: it was not started by its ``expires`` time, or
    its ``deadline`` passed before its next attempt could start (``message`` says which)."""


class TaskCancelledError(RediqError):
    """The awaited task was cancelled."""


class WorkflowFailed(RediqError):
    """A step of the awaited workflow did not succeed, so the workflow cannot end;
    ``step`` is its number, ``task_name`` its task, ``state`` how it ended (``failed``
    or ``cancelled``), ``error`` its error (None if it has none)."""

    def __init__(
        self, workflow_id: str, step: int, task_name: str, state: str, error: TaskFailedError | None
    ) -> None:
        why = f" with {error.type}: {error.message}" if error is not None else ""
        super().__init__(f"workflow {workflow_id}: step {step} ({task_name}) {state}{why}")
        self.workflow_id, self.step, self.task_name = workflow_id, step, task_name
        self.state, self.error = state, error


class AmbiguousWorkerError(RediqError, LookupError):
    """A name that several registered workers share, where one worker was meant
    (:meth:`Control.stop_worker`); ``ids`` are theirs."""

    def __init__(self, name: str, ids: Sequence[str]) -> None:
        self.name, self.ids = name, tuple(ids)
        super().__init__(
            f"{len(self.ids)} workers are named {name!r} ({', '.join(self.ids)}):"
            " name one by its id, or pass every=True"
        )
