"""Every default value rediq uses, in one documented place.

Change a default per task with ``@app.task(...)``, per call with
``task(...).options(...)``, per app with ``Rediq(...)``, or per worker on the command
line. ``docs/configuration.md`` renders this module.
"""

from __future__ import annotations

from typing import Final

#: Queue used by tasks registered without ``task_queue``.
DEFAULT_QUEUE: Final = "default"
#: Priority of tasks registered without ``task_priority``; lower runs first.
DEFAULT_PRIORITY: Final = 0
#: Allowed priority range (inclusive). Priorities are exact integers in Redis scores.
PRIORITY_MIN: Final = -(2**31)
PRIORITY_MAX: Final = 2**31 - 1
#: Retries after the first attempt for tasks registered without ``task_retries``.
DEFAULT_RETRIES: Final = 0
#: Task timeout in milliseconds; ``None`` means no timeout.
DEFAULT_TIMEOUT_MS: Final[int | None] = None
#: How long a finished task's result (or error) is kept, in seconds. 0 keeps nothing.
DEFAULT_RESULT_TTL_S: Final = 24 * 3600
#: Serializer of apps created without ``serializer_name``. json never executes code on load.
DEFAULT_SERIALIZER: Final = "json"
#: Prefix of every Redis key rediq writes (the ``namespace`` in ``{namespace:queue}``).
DEFAULT_NAMESPACE: Final = "rediq"
#: The largest message (serialized arguments plus envelope) an app enqueues, in bytes;
#: larger ones fail at enqueue with ``MessageTooLargeError`` (0: no limit).
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
#: Redis URL of apps created without ``redis_url``.
DEFAULT_REDIS_URL: Final = "redis://localhost:6379/0"

#: Retry backoff of tasks without a RetryPolicy: exponential (base * 2**retried), capped,
#: with "equal jitter": the delay d is drawn uniformly from [d/2, d] (JITTER False: exactly d).
BACKOFF_BASE_MS: Final = 1_000
BACKOFF_CAP_MS: Final = 5 * 60_000
BACKOFF_JITTER: Final = True

#: A leased task returns to its queue if its worker does not extend the lease in time:
#: the tasks of a worker that died are back within this long.
LEASE_MS: Final = 5_000
#: A live worker extends all its leases this often, in one batched call (from a thread of
#: its own, so a blocked event loop does not stop it).
LEASE_RENEW_MS: Final = 1_000
#: After this many lost leases (its worker died or stalled holding the task each time) a
#: task is dead-lettered instead of being delivered again. Failed attempts that are
#: retried do not count: ``task_retries`` bounds those.
MAX_DELIVERIES: Final = 5
#: What a broker call did is remembered at least this long (Redis: an ended task's
#: tombstone), so that a call re-sent after its reply was lost (the client retries on a
#: broken connection) changes nothing the second time.
REPLAY_WINDOW_MS: Final = 30_000
#: The client re-sends a call whose connection broke only within this long of the first
#: send (well inside the replay window); after that the caller sees the error.
RESEND_BUDGET_S: Final = 10.0
#: The longest ``Rediq(enqueue_retry_s=...)``: an enqueue retried while Redis is
#: unreachable must be re-sent inside the replay window.
MAX_ENQUEUE_RETRY_S: Final = 15.0
#: Durability (``redis_config`` keys ``wait_replicas`` / ``wait_timeout_ms``): an enqueue
#: or settlement batch is acknowledged once this many replicas hold it (Redis ``WAIT``),
#: waiting at most the timeout. 0: acknowledged by the master alone (asynchronous
#: replication; a failover can lose the last writes).
WAIT_REPLICAS: Final = 0
WAIT_TIMEOUT_MS: Final = 1_000
#: Events kept per queue in its event stream (``Rediq(event_stream_length=...)``; 0: no
#: stream, nothing recorded). Off by default: recording costs about 14 % more Redis CPU
#: per task (docs/observability.md, "Event stream"); 10_000 is a sensible length to turn on.
EVENT_STREAM_LENGTH: Final = 0
#: Dead-lettered tasks are kept this long, and at most this many per queue.
DEAD_LETTER_TTL_S: Final = 7 * 24 * 3600
DEAD_LETTER_MAX: Final = 10_000
#: A task keeps the errors of its last this many failed attempts that were retried
#: (``TaskRecord.failed_attempts``, the dashboard's task page), with the task while it
#: lives and with its result once it ended; each message keeps at most
#: ``ATTEMPT_MESSAGE_MAX`` bytes and each traceback its last ``ATTEMPT_TRACEBACK_MAX``.
ATTEMPT_ERRORS_KEPT: Final = 10
ATTEMPT_MESSAGE_MAX: Final = 1_000
ATTEMPT_TRACEBACK_MAX: Final = 4_000

#: Tasks a worker leases beyond those it can start at once (``--worker-queue-size``). 0:
#: a worker leases only for idle runners, so idle workers get the work and a newer
#: high-priority task starts next; a prefetch trades both for less idle time between very
#: short tasks.
WORKER_QUEUE_SIZE: Final = 0
#: Worker defaults (the ``rediq worker`` options of the same names).
WORKER_TASK_CONCURRENCY: Final = 100
EXECUTOR_POOL_NAME: Final = "thread"
EXECUTOR_POOL_SIZE: Final[int | None] = None  # the pool's own default (CPU based)
#: A worker's registry entry expires if it misses heartbeats for this long.
WORKER_HEARTBEAT_TTL_S: Final = 60
#: The control API marks a worker ``stale`` when its last heartbeat is older than this
#: (two missed heartbeats: it is busy-blocked or gone; its entry expires at the TTL).
WORKER_STALE_AFTER_S: Final = 35

#: Cron schedules (``@app.cron``): the zone an expression is read in, what a worker does
#: at start-up about ticks missed while no worker ran (``skip`` or ``run_once``), how late
#: a running worker may still fire the latest due tick (several due ticks coalesce into
#: one run; older ones are skipped and logged), and after
#: how long without a live worker registering it a stored schedule shows as orphaned.
CRON_TIMEZONE: Final = "UTC"
CRON_MISSED: Final = "skip"
CRON_MISFIRE_GRACE_MS: Final = 60_000
CRON_ORPHAN_AFTER_S: Final = 60
#: A worker re-registers its schedules this often (keeps them from looking orphaned).
CRON_REGISTER_INTERVAL_S: Final = 15

#: Environment variables read by the plugin manager and the CLI.
ENV_DISABLE_PLUGINS: Final = "REDIQ_DISABLE_PLUGINS"
ENV_DISABLE_AUTOLOAD: Final = "REDIQ_DISABLE_PLUGIN_AUTOLOAD"
ENV_REDIS_URL: Final = "REDIQ_REDIS_URL"
#: Sharded queues of an app, ``emails=8,reports=4`` (besides ``queue_shards=`` and
#: ``app.queue(..., shards=N)``; docs/scaling.md).
ENV_QUEUE_SHARDS: Final = "REDIQ_QUEUE_SHARDS"
#: Environment variables of the control commands (``rediq queues``, ``rediq top``, ...):
#: the app (``module:app``) and the key namespace when no app is given.
ENV_APP: Final = "REDIQ_APP"
ENV_NAMESPACE: Final = "REDIQ_NAMESPACE"

#: Task logs (docs/progress-and-logs.md): the log records a task emits while it runs are
#: kept with it, as long as its result: the last this many lines, within this many
#: bytes (of lines as stored, JSON); earlier ones are dropped and counted. 0 lines: no
#: log capture (progress is still kept).
TASK_LOG_LINES: Final = 1_000
TASK_LOG_BYTES: Final = 64 * 1024

#: Worker internals. A worker refreshes its registry entry this often.
WORKER_HEARTBEAT_INTERVAL_S: Final = 15
#: A graceful shutdown (first signal) waits this long for running and prefetched tasks,
#: then hands the unfinished ones back as a second signal would (0: wait without limit).
WORKER_SHUTDOWN_TIMEOUT_S: Final = 25.0
#: A settlement that cannot reach Redis is retried (with backoff) for this long before
#: the worker gives up on it (its lease then expires and the task runs again).
SETTLE_RETRY_S: Final = 15.0
#: On a second shutdown signal, running tasks get this long to honour their cancellation
#: before their leases are handed back anyway.
WORKER_FORCE_GRACE_S: Final = 2.0
#: The lease keeper warns when the worker's event loop did not answer for this long
#: (a task running blocking code in a coroutine); it is also the keeper's tick.
WORKER_STALL_WARNING_MS: Final = 2_000
#: Pause after a broker error in a fetcher or the control listener (doubles, capped).
WORKER_RECONNECT_MIN_S: Final = 0.1
WORKER_RECONNECT_MAX_S: Final = 5.0
#: Format of worker logs: ``auto`` (rich on a TTY, plain otherwise), ``rich``, ``plain``,
#: ``json`` (one JSON object per line).
WORKER_LOG_FORMAT: Final = "auto"
#: Environment overrides of worker tuning that has no command-line option.
ENV_LEASE_MS: Final = "REDIQ_LEASE_MS"
ENV_LEASE_RENEW_MS: Final = "REDIQ_LEASE_RENEW_MS"
ENV_BACKOFF_BASE_MS: Final = "REDIQ_BACKOFF_BASE_MS"
ENV_BACKOFF_CAP_MS: Final = "REDIQ_BACKOFF_CAP_MS"
ENV_LOG_FORMAT: Final = "REDIQ_LOG_FORMAT"
ENV_TASK_LOG_LINES: Final = "REDIQ_TASK_LOG_LINES"
ENV_TASK_LOG_BYTES: Final = "REDIQ_TASK_LOG_BYTES"
