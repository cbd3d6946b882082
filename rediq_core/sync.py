"""The blocking twins of the async API (``enqueue_sync()``, ``result_sync()``, ...), for
code without an event loop: Django and Flask views, scripts, threads.

One mechanism serves them all. Each app owns a :class:`SyncRunner`: an event loop in a
daemon thread, started on the first blocking call and shared by every thread of the
process. A blocking call submits the async method's coroutine to that loop
(``asyncio.run_coroutine_threadsafe``) and waits for its outcome, so the sync API does
exactly what the async one does, through the same producer pipeline and broker roles.
The broker the runner's loop uses is its own (``Rediq.get_broker`` hands it out on that
loop), so sync calls never disturb the broker of an event loop the app also serves.

- **Threads**: any number of threads may call at once; their coroutines interleave on
  the one loop and share its connection pool.
- **Fork**: a child process (gunicorn's pre-fork workers, ``multiprocessing``) starts a
  fresh loop and broker on its first call; it never touches the parent's connections.
- **Close**: ``app.close_sync()`` or ``await app.close()`` stop the loop and close its
  connections; the runner of every app is closed at interpreter exit as well.
- **Inside an event loop** a blocking call would stall every coroutine of that loop (or
  deadlock, on the runner's own loop): it raises :class:`SyncCallInEventLoopError` at once.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

from .errors import SyncCallInEventLoopError

if TYPE_CHECKING:
    from .app import Rediq
    from .broker import Broker

__all__ = ["CLOSE_TIMEOUT_S", "SyncRunner", "refuse_in_event_loop"]

P = ParamSpec("P")
T = TypeVar("T")

#: How long closing a runner waits for its loop to close its connections and end.
CLOSE_TIMEOUT_S: Final = 10.0

#: Runners whose loop is started, for the fork and exit hooks.
_STARTED: weakref.WeakSet[SyncRunner] = weakref.WeakSet()
#: In a forked child, the parent's loops: kept, never used, never closed (their sockets
#: are the parent's; finalizing them here would only warn or touch them).
_FORKED_AWAY: list[object] = []


def refuse_in_event_loop(method: str) -> None:
    """Raise :class:`SyncCallInEventLoopError` if this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise SyncCallInEventLoopError(
        f"{method}_sync() blocks its thread until the broker answers, but this thread runs"
        f" an event loop (every coroutine on it would stall): in async code, await"
        f" {method}() instead"
    )


class _LoopThread:
    """One started loop: its thread, the process it belongs to, and its broker."""

    def __init__(self, app: Rediq) -> None:
        self.app = app
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.broker: Broker | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"rediq-sync-loop {app.namespace}", daemon=True
        )
        self.thread.start()

    def get_broker(self) -> Broker:
        """The broker of this loop, built on first use (only ever called on the loop)."""
        if self.broker is None:
            self.broker = self.app.plugins.broker(self.app.broker_options)
        return self.broker

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self._shutdown())
            self.loop.close()

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()  # a call still waiting when the app closes ends cancelled
        await asyncio.gather(*pending, return_exceptions=True)
        if self.broker is not None:
            await self.broker.close()
        await self.loop.shutdown_asyncgens()
        await self.loop.shutdown_default_executor()

    def stop(self, timeout: float) -> None:
        if self.thread is threading.current_thread():
            raise RuntimeError("a sync runner cannot be closed from its own loop")
        with contextlib.suppress(RuntimeError):  # the loop already ended
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)


class SyncRunner:
    """The background event loop that carries an app's blocking calls (module docstring)."""

    def __init__(self, app: Rediq) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._current: _LoopThread | None = None

    @property
    def running(self) -> bool:
        current = self._current
        return current is not None and current.pid == os.getpid()

    def owns(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether ``loop`` is the runner's loop (a coroutine running on it)."""
        current = self._current
        return current is not None and current.loop is loop

    def broker_for(self, loop: asyncio.AbstractEventLoop) -> Broker | None:
        """The runner's broker if ``loop`` is the runner's loop, else None."""
        current = self._current
        if current is None or current.loop is not loop:
            return None
        return current.get_broker()

    def call(
        self, fn: Callable[P, Coroutine[Any, Any, T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(*args, **kwargs)`` on the runner's loop; block until it ends and return
        its result or raise its exception. Refused in a thread that runs an event loop."""
        refuse_in_event_loop(getattr(fn, "__name__", "the async method"))
        loop = self._loop()
        future = asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # the caller gave up (KeyboardInterrupt): stop the coroutine too
            raise

    def _loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            current = self._current
            if current is not None and current.pid != os.getpid():
                _FORKED_AWAY.append(current)  # forked without the fork hook (a C fork())
                current = None
            if current is None:
                current = self._current = _LoopThread(self._app)
                _STARTED.add(self)
            return current.loop

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Stop the loop after closing its broker; the next call starts a new one."""
        with self._lock:
            current, self._current = self._current, None
        _STARTED.discard(self)
        if current is not None and current.pid == os.getpid():
            current.stop(timeout)

    def _forget_after_fork(self) -> None:
        # The child has no loop thread, and its lock may have been held by a thread that
        # the fork did not copy: start from scratch, leaving the parent's sockets alone.
        self._lock = threading.Lock()
        if self._current is not None:
            _FORKED_AWAY.append(self._current)
        self._current = None


def _after_fork_in_child() -> None:
    for runner in list(_STARTED):
        runner._forget_after_fork()
        _STARTED.discard(runner)


def _close_all() -> None:
    for runner in list(_STARTED):
        runner.close()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all)
