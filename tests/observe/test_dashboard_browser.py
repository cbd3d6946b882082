"""The dashboard in a real headless browser (Debian's chromium and chromium-driver, through
selenium) against a real worker, queue and Redis: every page loads; pause, resume, purge,
cancel and requeue are clicked and their effect is checked in Redis."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from rediq import TaskState

from .conftest import Harness, start_dashboard

#: Set to a folder (docs/images) to refresh the screenshots in the docs: the tests save
#: dashboard-<page>.png there.
SCREENSHOT_ENV = "REDIQ_DASHBOARD_SCREENSHOTS"

BODY = """
FLAG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fail.flag")

@app.task(task_name="work")
async def work(x):
    return x * 2

@app.task(task_name="sleepy")
async def sleepy():
    out("SLEEPY STARTED")
    await asyncio.sleep(60)

@app.task(task_name="fragile")
async def fragile(label):
    if os.path.exists(FLAG):
        raise RuntimeError(f"{label}: the flag file is there")
    return label

@app.task(task_name="later", task_queue="idle")
async def later(n):
    return n
"""


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--no-proxy-server",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        await asyncio.sleep(0.05)  # re-check interval of a bounded wait


def click(driver: WebDriver, selector: str, *, confirm: bool = False) -> None:
    """Click a button (accepting its confirmation dialog) and wait for the next page."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, selector).click()
    if confirm:
        driver.switch_to.alert.accept()
    deadline = time.monotonic() + 10
    while True:
        try:
            old.is_enabled()  # raises once the page was replaced
        except Exception:
            return
        assert time.monotonic() < deadline, f"clicking {selector} loaded no page"
        time.sleep(0.05)  # re-check interval of a bounded wait


def no_alert(driver: WebDriver) -> bool:
    try:
        _ = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def text_of(browser: WebDriver, element_id: str) -> str:
    """The element's text. Pages that refresh in place may swap the element between
    finding it and reading it; find it again then (bounded)."""
    for _ in range(100):
        try:
            return str(browser.find_element(By.ID, element_id).text)
        except StaleElementReferenceException:
            time.sleep(0.02)  # the swap takes one animation frame
    raise AssertionError(f"#{element_id} kept being replaced")


async def test_every_page_and_every_operation_in_a_real_browser(
    harness: Harness, browser: WebDriver, tmp_path: Path
) -> None:
    tasks = harness.write_app(BODY)
    control = tasks.app.control
    flag = harness.dir / "fail.flag"
    flag.write_text("fail")
    worker = harness.start("--worker-name", "browser-test")
    done = [await tasks.work(n).enqueue() for n in range(5)]
    for handle in done:
        assert await handle.result(timeout=20) == handle_value(handle, done)
    broken = await tasks.fragile("<b>broken</b>").enqueue()
    doomed = await tasks.fragile("doomed").enqueue()
    sleeper = await tasks.sleepy().enqueue()
    waiting = [await tasks.later(n).enqueue() for n in range(3)]
    worker.wait_for("SLEEPY STARTED")
    await eventually(lambda: dead_count(control, "default", 2), "two dead letters")
    base = start_dashboard(harness, "--refresh", "1")

    # Overview: queues with counts, the chart, the worker; and the screenshot.
    browser.get(base + "/")
    queues = text_of(browser, "queues")
    assert "default" in queues and "idle" in queues
    assert "browser-test" in text_of(browser, "workers")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart rect.ok")) == 60
    await screenshot(browser, "overview", tmp_path)

    # The overview updates itself (plain fetch): a new queue appears without a reload.
    page = browser.find_element(By.TAG_NAME, "html")
    await tasks.later(1).options(queue="fresh").enqueue()
    deadline = time.monotonic() + 10
    while "fresh" not in text_of(browser, "queues"):
        assert time.monotonic() < deadline, "the overview did not update itself"
        await asyncio.sleep(0.1)
    assert page.is_enabled()  # the same document: updated in place, not reloaded

    browser.get(base + "/workers")
    assert "browser-test" in text_of(browser, "workers")

    # Queue page: pending tasks listed; pause and resume, checked in Redis.
    browser.get(base + "/queues/idle")
    listed = browser.find_element(By.ID, "tasks").text
    assert all(handle.hex() in listed for handle in waiting)
    click(browser, "button.pause")
    assert (await control.queue("idle")).paused
    assert browser.find_element(By.ID, "paused").text == "paused"
    click(browser, "button.resume")
    assert not (await control.queue("idle")).paused

    # Purge, with its confirmation (the queue's name typed, then the dialog accepted).
    browser.find_element(By.NAME, "confirm").send_keys("idle")
    click(browser, "button.danger", confirm=True)
    assert (await control.queue("idle")).pending == 0

    # Cancel the running task from its page, reached from the queue's active tab.
    browser.get(base + "/queues/default?state=active")
    browser.find_element(By.LINK_TEXT, sleeper.hex()).click()
    assert browser.find_element(By.ID, "state").text == "active"
    click(browser, "button.cancel", confirm=True)
    await eventually(
        lambda: task_state(control, sleeper.hex(), TaskState.CANCELLED),
        "the running task to be cancelled",
    )

    # Dead letters: the task page shows the traceback and escaped arguments.
    browser.get(base + f"/tasks/{broken.hex()}")
    assert "the flag file is there" in browser.find_element(By.ID, "traceback").text
    assert "<b>broken</b>" in browser.find_element(By.ID, "args").text  # text, not markup
    assert no_alert(browser)

    # Requeue one in bulk (ticked), after removing the cause of its failure.
    flag.unlink()
    browser.get(base + "/queues/default/dead")
    browser.find_element(By.CSS_SELECTOR, f'input[value="{broken.hex()}"]').click()
    click(browser, "button.requeue")
    await eventually(
        lambda: task_state(control, broken.hex(), TaskState.SUCCEEDED),
        "the requeued dead letter to succeed",
    )

    # Requeue from the task page, then visit the finished task's page.
    browser.get(base + f"/tasks/{doomed.hex()}")
    click(browser, "button.requeue")
    await eventually(
        lambda: task_state(control, doomed.hex(), TaskState.SUCCEEDED),
        "the task requeued from its page to succeed",
    )
    browser.get(base + f"/tasks/{doomed.hex()}")
    assert browser.find_element(By.ID, "state").text == "succeeded"
    assert '"doomed"' in browser.find_element(By.ID, "result").text

    # Nothing the pages do was refused by their own Content-Security-Policy.
    refused = [
        e["message"]
        for e in browser.get_log("browser")
        if "Content Security Policy" in e["message"]
    ]
    assert not refused, refused


async def screenshot(browser: WebDriver, page: str, tmp_path: Path) -> None:
    """Save the window as dashboard-<page>.png (in the docs' folder if asked to)."""
    shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path) / f"dashboard-{page}.png"
    browser.save_screenshot(str(shot))
    assert (await asyncio.to_thread(shot.read_bytes))[:8] == b"\x89PNG\r\n\x1a\n"


def handle_value(handle: object, handles: list[object]) -> int:
    return handles.index(handle) * 2


async def dead_count(control: object, queue: str, count: int) -> bool:
    return (await control.queue(queue)).dead == count  # type: ignore[attr-defined]


async def task_state(control: object, task_id: str, state: TaskState) -> bool:
    record = await control.task(task_id)  # type: ignore[attr-defined]
    return record is not None and record.state is state


OPERATIONS = """
FLAG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "attempts.txt")

@app.task(task_name="invoice", task_queue="billing")
async def invoice(customer, amount=0, currency="EUR"):
    return amount

@app.task(task_name="sleepy", task_queue="slow")
async def sleepy(label):
    out("SLEEPY STARTED", label)
    await asyncio.sleep(60)

@app.task(task_name="flaky", task_queue="slow",
          retry=RetryPolicy(retries=5, backoff="fixed", base=0))
async def flaky(order):
    n = int(open(FLAG).read()) if os.path.exists(FLAG) else 0
    if n < 3:
        open(FLAG, "w").write(str(n + 1))
        reasons = ["connection reset by peer", "timed out", "503 from the payment API"]
        raise ConnectionError(f"order {order}: {reasons[n]}")
    return "charged"

@app.cron("0 6 * * *", name="nightly-report")
@app.task(task_name="report", task_queue="slow")
async def report():
    return "reported"
"""


async def test_search_schedules_workers_and_row_actions_in_a_real_browser(
    harness: Harness, browser: WebDriver, tmp_path: Path
) -> None:
    tasks = harness.write_app(OPERATIONS)
    control, cron = tasks.app.control, tasks.app.cron_control
    worker = harness.start("--queue-name", "slow", "--worker-name", "reporter")
    customers = ["acme-corp", "globex", "initech", "umbrella", "acme-labs"]
    bills = [await tasks.invoice(c, amount=100 + 10 * n).enqueue() for n, c in enumerate(customers)]
    flaky = await tasks.flaky(4711).enqueue()
    assert await flaky.result(timeout=30) == "charged"
    sleeper = await tasks.sleepy("nightly import").enqueue()
    worker.wait_for("SLEEPY STARTED")

    async def reported() -> bool:
        schedules = [s.name for s in await cron.list()]
        running = [i for w in await control.workers() for i in w.running_ids]
        return schedules == ["nightly-report"] and sleeper.hex() in running

    await eventually(reported, "the schedule stored and the running task reported", 40)
    base = start_dashboard(harness, "--refresh", "0")

    # Search from the box of any page: an id opens the task, text lists matches.
    browser.get(base + "/")
    box = browser.find_element(By.ID, "search-box")
    box.send_keys(bills[2].hex())
    click(browser, "form.search button")
    assert bills[2].hex() in browser.find_element(By.TAG_NAME, "h1").text
    browser.find_element(By.ID, "search-box").send_keys("acme")
    click(browser, "form.search button")
    listed = browser.find_element(By.ID, "tasks").text
    assert bills[0].hex() in listed and bills[4].hex() in listed
    assert bills[1].hex() not in listed
    assert "every queue was searched" in browser.find_element(By.ID, "search-summary").text
    await screenshot(browser, "search", tmp_path)

    # Queue rows show the arguments; cancel one row.
    browser.get(base + "/queues/billing")
    listed = browser.find_element(By.ID, "tasks").text
    assert '"globex", amount=110' in listed
    browser.find_element(By.CSS_SELECTOR, "nav.tabs:not(.spans)").location_once_scrolled_into_view  # noqa: B018
    await screenshot(browser, "queue", tmp_path)
    row = f'//tr[td/a[text()="{bills[1].hex()}"]]//button[@class="cancel-row"]'
    old = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.XPATH, row).click()
    browser.switch_to.alert.accept()
    await eventually(lambda: task_state(control, bills[1].hex(), TaskState.CANCELLED), "cancel")
    await eventually(lambda: replaced(old), "the queue page to load again")
    assert bills[1].hex() not in browser.find_element(By.ID, "tasks").text
    assert (await control.task(bills[3].hex())).state is TaskState.PENDING

    # Schedules: pause, resume, trigger now.
    browser.get(base + "/schedules")
    assert "nightly-report" in browser.find_element(By.ID, "schedules").text
    await screenshot(browser, "schedules", tmp_path)
    click(browser, "button.pause")
    assert [s.paused for s in await cron.list()] == [True]
    assert "paused" in browser.find_element(By.ID, "schedules").text
    click(browser, "button.resume")
    assert [s.paused for s in await cron.list()] == [False]
    click(browser, "button.trigger", confirm=True)
    triggered = browser.find_element(By.CSS_SELECTOR, "h1 .mono").text
    handle = await tasks.app.handle(triggered)
    assert await handle.result(timeout=20) == "reported"

    # The task page lists every failed attempt's error.
    browser.get(base + f"/tasks/{flaky.hex()}")
    attempts = browser.find_element(By.ID, "attempts").text
    for reason in ("connection reset by peer", "timed out", "503 from the payment API"):
        assert reason in attempts
    browser.find_element(By.ID, "attempts").location_once_scrolled_into_view  # noqa: B018
    await screenshot(browser, "task", tmp_path)

    # Workers: the running task is linked; stop the worker.
    browser.get(base + "/workers")
    browser.find_element(By.CSS_SELECTOR, f'a[href*="{sleeper.hex()}"]')
    assert "sleepy" in browser.find_element(By.ID, "workers").text
    await screenshot(browser, "workers", tmp_path)
    click(browser, "button.stop", confirm=True)
    assert "asked worker" in browser.find_element(By.CLASS_NAME, "notice").text
    await control.cancel(sleeper.hex())  # a graceful stop waits for running tasks
    assert await asyncio.to_thread(worker.wait_exit, 30) == 0

    refused = [
        e["message"]
        for e in browser.get_log("browser")
        if "Content Security Policy" in e["message"]
    ]
    assert not refused, refused


async def replaced(element: object) -> bool:
    try:
        element.is_enabled()  # type: ignore[attr-defined]
    except Exception:
        return True
    return False
