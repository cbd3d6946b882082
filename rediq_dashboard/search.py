"""Search: a task id jumps to its task page; any other text is looked for in the names,
ids and decoded arguments of the tasks the queue pages list (pending, waiting, limited,
scheduled, active and dead letters of every queue), reading at most ``scan`` records
per request through the control API's listings. The answer carries a cursor (queue,
state, the listing's own cursor) from which the next request goes on, so a search of a
large namespace is a bounded amount of work per page, never one long scan. Finished
tasks (kept only as results) are found by their id alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from rediq_core.broker import TaskRecord

from .pages import LISTED_STATES, Page
from .present import call_line

if TYPE_CHECKING:
    from rediq_core.app import Rediq

    from .app import Dashboard

__all__ = ["Found", "page", "search"]

#: Records read per listing call.
CHUNK = 100
_SEPARATOR = "\n"


@dataclass(frozen=True, slots=True)
class Found:
    """One page of a search: the matching tasks, how many records were read, where the
    next page starts (None: every queue was searched) and where this one stopped."""

    tasks: list[TaskRecord]
    scanned: int
    next_cursor: str | None
    reached: str


def _position(cursor: str | None) -> tuple[str, int, str | None]:
    """(queue, index into LISTED_STATES, listing cursor) of a search cursor."""
    if not cursor:
        return "", 0, None
    parts = cursor.split(_SEPARATOR)
    if len(parts) != 3:
        raise ValueError(f"bad search cursor {cursor!r}: follow a 'search further' link")
    queue, state, inner = parts
    try:
        index = [s.value for s in LISTED_STATES].index(state)
    except ValueError:
        raise ValueError(f"bad search cursor {cursor!r}: unknown state {state!r}") from None
    return queue, index, inner or None


def _cursor(queue: str, index: int, inner: str | None) -> str:
    return _SEPARATOR.join((queue, LISTED_STATES[index].value, inner or ""))


def matches(app: Rediq, record: TaskRecord, needle: str) -> bool:
    """Whether ``needle`` (lower case) is in the task's id, name or decoded arguments."""
    return (
        needle in record.id.lower()
        or needle in (record.name or "").lower()
        or needle in call_line(app, record).lower()
    )


async def search(app: Rediq, text: str, cursor: str | None, *, page_size: int, scan: int) -> Found:
    """Tasks whose id, name or arguments contain ``text`` (case-insensitive), from
    ``cursor`` on, reading at most ``scan`` records (in listing calls of at most
    :data:`CHUNK`); stops early once ``page_size`` matched (at a call's end)."""
    needle = text.lower()
    start, index, inner = _position(cursor)
    queues = [q for q in sorted(await app.control.queues()) if q >= start]
    if queues and queues[0] != start:  # the queue it stopped in is gone: its next one
        index, inner = 0, None
    found: list[TaskRecord] = []
    scanned = 0
    for position, queue in enumerate(queues):
        while index < len(LISTED_STATES):
            if scanned >= scan or len(found) >= page_size:
                return Found(found, scanned, _cursor(queue, index, inner), queue)
            page = await app.control.tasks(
                queue, LISTED_STATES[index], limit=min(CHUNK, scan - scanned), cursor=inner
            )
            scanned += len(page.tasks)
            found += [t for t in page.tasks if matches(app, t, needle)]
            if page.next_cursor:
                inner = page.next_cursor
            else:
                index, inner = index + 1, None
        index = 0
        if position + 1 < len(queues) and (scanned >= scan or len(found) >= page_size):
            return Found(found, scanned, _cursor(queues[position + 1], 0, None), queue)
    return Found(found, scanned, None, queues[-1] if queues else "")


def page(board: Dashboard) -> Page:
    """``/search?q=TEXT[&cursor=...]``: an existing task's id redirects to its page."""

    async def endpoint(request: Request) -> Response:
        text = request.query_params.get("q", "").strip()
        cursor = request.query_params.get("cursor") or None
        if not text:
            return board.render(request, "search.html", q="", found=None, scan=board.search_scan)
        if cursor is None and (record := await board.app.control.task(text)) is not None:
            root = request.scope.get("root_path", "")
            target = f"{root}/tasks/{quote(record.id, safe='')}?queue={quote(record.queue)}"
            return RedirectResponse(target, status_code=303)
        try:
            found = await search(
                board.app, text, cursor, page_size=board.page_size, scan=board.search_scan
            )
        except ValueError as exc:
            return board.render(
                request, "search.html", status_code=400, q=text, found=None, error=str(exc)
            )
        return board.render(
            request, "search.html", q=text, found=found, cursor=cursor, scan=board.search_scan
        )

    return endpoint
