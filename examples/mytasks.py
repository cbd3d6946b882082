# examples/mytasks.py -- the original rediq tutorial, in English.
# The worker: `rediq mytasks:app --queue-name a --queue-name b --skip-default-queue ...`
import asyncio
import functools
import os
import time

from rediq import (
    Rediq,
    current_task_exception,
    current_task_info,
    current_task_result,
    current_task_retried,
    run_in_current_executor,
)

app = Rediq(
    # a redis-py URL (REDIQ_REDIS_URL lets run_tutorial.py point it at a throwaway server)
    redis_url=os.environ.get("REDIQ_REDIS_URL", "redis://localhost:6379/0"),
    redis_config=dict(  # other redis-py client arguments
        decode_responses=False,
        max_connections=10,
    ),
    serializer_name="pickle",  # how task arguments and results are encoded
    # pickle runs code when decoding, so messages are signed (HMAC) and workers decode
    # only messages signed with this key (keep it secret; >= 16 bytes)
    signing_key=os.environ.get("REDIQ_SIGNING_KEY"),
)


# Register a task: the decorated function becomes a task publisher.
@app.task(
    task_name="simple_task",  # unique task name; defaults to the function name
    task_priority=123,  # lower runs first; default 0
    task_queue="a",  # queue name; default "default"
    task_retries=3,  # retries when the task raises; default 0
    task_timeout=1000 * 10,  # milliseconds per attempt; default none
)
async def simple_task(sec):
    await asyncio.sleep(sec)

    # Blocking (CPU- or IO-bound) sync code runs in the worker's executor pool;
    # choose a thread or process pool when starting the worker.
    await run_in_current_executor(functools.partial(time.sleep, sec))

    print(current_task_info())  # the task's id and options
    print(current_task_retried())  # how many times it has been retried

    return "simple_task finished"


# A periodic task: every weekday at 07:00 Berlin time, one run per tick across all the
# workers serving queue "b" (no separate scheduler process). `rediq cron mytasks:app`
# lists it; see docs/cron.md.
@app.cron("0 7 * * mon-fri", args=("daily",), timezone="Europe/Berlin")
@app.task(task_name="send_report", task_queue="b")
async def send_report(kind):
    print(f"sending the {kind} report")


# Register event handlers; exceptions in handlers are logged, never raised.
@app.event(event_name="before_task_start")  # defaults to the function name
async def before_task_start():
    print(current_task_info())  # the task id and every option it was registered with


@app.event
async def before_task_retry():
    print(current_task_retried())  # how many times the task has been retried


@app.event
async def after_task_success():
    print(current_task_result())  # the task's return value


@app.event
async def after_task_failure():
    print(current_task_exception())  # the task's exception
    print(current_task_result())  # raises here: only available after success


@app.event
async def after_worker_shutdown():  # after the worker stopped
    pass  # await async_db.close()


@app.event
async def before_worker_startup():  # before the worker starts
    pass  # await async_db.connect()
