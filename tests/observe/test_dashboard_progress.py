"""The dashboard's task page shows a task's progress and log lines (escaped), reloads
itself while the task may run, and keeps showing them once it ended; against
``rediq dashboard`` and worker subprocesses and a real Redis (no browser)."""

from __future__ import annotations

import httpx
import pytest

from rediq_core.errors import TaskCancelledError
from tests.control.conftest import eventually

from .conftest import Harness, start_dashboard

pytestmark = pytest.mark.timeout(120)

APP = """
import logging
log = logging.getLogger("shop.images")

@app.task(task_queue="work")
async def resize(name):
    await set_progress(0.25, "resizing <b>big</b>")
    log.warning("resizing %s", name)
    await asyncio.sleep(60)
"""


async def test_the_task_page_shows_progress_and_logs(harness: Harness) -> None:
    m = harness.write_app(APP)
    handle = await m.resize("<script>x</script>").enqueue()
    harness.start("--queue-name", "work")
    base = start_dashboard(harness)

    async def reported() -> bool:
        return len((await handle.logs()).lines) == 1

    await eventually(reported, "the task's log line")
    async with httpx.AsyncClient(base_url=base) as client:
        page = (await client.get(f"/tasks/{handle.id}")).text
        assert '<progress max="1" value="0.25"></progress> 25%' in page
        assert "resizing &lt;b&gt;big&lt;/b&gt;" in page, "the message is escaped"
        assert 'id="logs"' in page and "shop.images" in page
        assert "resizing &lt;script&gt;x&lt;/script&gt;" in page
        assert "<script>x</script>" not in page
        assert "data-refresh=" in page, "a running task's page reloads itself"

        await handle.cancel()
        with pytest.raises(TaskCancelledError):
            await handle.result(timeout=20)
        ended = (await client.get(f"/tasks/{handle.id}")).text
        assert "25%" in ended and "shop.images" in ended
        assert "data-refresh=" not in ended, "an ended task's page does not reload"
