"""How rediq calls an event hook: awaiting async listeners, with pluggy's wrappers.

Why this exists: pluggy is synchronous. ``pm.hook.rediq_x(...)`` would hand back the
coroutine objects of ``async def`` implementations unawaited, and pluggy's own wrappers
would see those coroutines at their ``yield``, not results, and finish before any
listener ran. So rediq walks the implementations itself, in the order pluggy would call
them (``HookCaller.get_hookimpls()`` reversed: ``tryfirst`` first, ``trylast`` last, later
registrations before earlier ones), under these rules:

- **Order.** Each wrapper (``wrapper=True`` or old-style ``hookwrapper=True``; a
  synchronous generator, as pluggy requires) runs up to its ``yield`` as it is met, then
  the plain implementations run, each awaited before the next starts, then every wrapper
  resumes, innermost first.
- **Isolation.** An implementation that raises is logged with its traceback and skipped;
  so is a wrapper that raises before its ``yield`` (it is not resumed) or after it. A
  wrapper that yields a second time is closed and logged. Nothing reaches the caller: an
  event never breaks the task or the worker.
- **What a wrapper receives at its yield.** A ``wrapper=True`` receives the list of the
  plain implementations' non-``None`` results (awaited); a ``hookwrapper=True`` receives a
  :class:`pluggy.Result` holding that list. Event hooks return nothing, so the list is
  normally empty; the wrapper's value is in running around the listeners (a span, a
  timer). Neither can replace the result or see a listener's exception (it was isolated).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Generator, Mapping
from typing import Any, cast

import pluggy
from pluggy import HookCaller, HookImpl

__all__ = ["call_event"]

log = logging.getLogger("rediq.plugins")

Wrapper = Generator[Any, Any, Any]


async def call_event(hook: HookCaller, kwargs: Mapping[str, Any]) -> None:
    """Call every implementation of the event hook ``hook`` with ``kwargs`` under the
    rules of the module docstring."""
    entered: list[tuple[HookImpl, Wrapper]] = []
    results: list[Any] = []
    for impl in reversed(hook.get_hookimpls()):
        args = [kwargs[arg] for arg in impl.argnames]
        if impl.wrapper or impl.hookwrapper:
            wrapper = _enter(hook.name, impl, args)
            if wrapper is not None:
                entered.append((impl, wrapper))
            continue
        try:
            outcome = impl.function(*args)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if outcome is not None:
                results.append(outcome)
        except Exception:
            log.exception("plugin %r failed in %s", impl.plugin_name, hook.name)
    for impl, wrapper in reversed(entered):
        _leave(hook.name, impl, wrapper, results)


def _enter(hook_name: str, impl: HookImpl, args: list[Any]) -> Wrapper | None:
    """Run a wrapper up to its ``yield``; None if it raised there (it is not resumed)."""
    try:
        wrapper = cast(Wrapper, impl.function(*args))
        next(wrapper)
    except Exception:
        log.exception(
            "plugin %r failed in %s (wrapper, before its yield)", impl.plugin_name, hook_name
        )
        return None
    return wrapper


def _leave(hook_name: str, impl: HookImpl, wrapper: Wrapper, results: list[Any]) -> None:
    """Resume a wrapper with what its kind receives; it must end at that point."""
    sent: Any = pluggy.Result(list(results), None) if impl.hookwrapper else list(results)
    try:
        wrapper.send(sent)
    except StopIteration:
        return
    except Exception:
        log.exception(
            "plugin %r failed in %s (wrapper, after its yield)", impl.plugin_name, hook_name
        )
        return
    wrapper.close()
    log.error("plugin %r: its %s wrapper yielded more than once", impl.plugin_name, hook_name)
