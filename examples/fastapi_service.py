"""A FastAPI service that enqueues in one endpoint and awaits the result by id in another.

Run it next to a worker (both read REDIQ_REDIS_URL, default redis://localhost:6379/0)::

    rediq worker examples.fastapi_service:app --queue-name reports --skip-default-queue
    uvicorn examples.fastapi_service:api

    curl -X POST 'localhost:8000/reports?customer=42'      # {"task_id": "..."}
    curl 'localhost:8000/reports/<task_id>?wait=10'        # {"state": "succeeded", ...}
"""

from __future__ import annotations

import asyncio
import os

from fastapi import FastAPI, HTTPException

from rediq import Rediq, TaskFailedError, TaskNotFoundError, lifespan

app = Rediq(
    redis_url=os.environ.get("REDIQ_REDIS_URL", "redis://localhost:6379/0"),
    namespace=os.environ.get("REDIQ_NAMESPACE", "rediq"),
)


@app.task(task_queue="reports")
async def build_report(customer: int) -> dict[str, int]:
    await asyncio.sleep(0.1)  # the slow part
    return {"customer": customer, "rows": customer * 10}


# The lifespan closes the app's broker connections when the server stops.
api = FastAPI(lifespan=lifespan(app))


@api.post("/reports")
async def start_report(customer: int) -> dict[str, str]:
    handle = await build_report(customer).enqueue()
    return {"task_id": handle.hex()}


@api.get("/reports/{task_id}")
async def report(task_id: str, wait: float = 0) -> dict[str, object]:
    try:
        handle = await app.handle(task_id)
        if wait > 0:
            try:
                return {"state": "succeeded", "result": await handle.result(timeout=wait)}
            except TimeoutError:
                pass
        return {"state": str(await handle.state())}
    except TaskNotFoundError:
        raise HTTPException(404, f"no task {task_id}") from None
    except TaskFailedError as exc:
        return {"state": "failed", "error": str(exc)}
