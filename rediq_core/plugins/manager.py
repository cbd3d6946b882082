"""The plugin-manager factory: specs, block-list, entry points, built-ins, validation."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable

import pluggy

from .. import defaults, hookspecs
from ..errors import PluginError
from .host import PluginHost

__all__ = ["OWN_DISTRIBUTION", "make_plugin_host"]

OWN_DISTRIBUTION = "rediq"
ENTRY_POINT_GROUP = "rediq"


def _env_blocked() -> list[str]:
    raw = os.environ.get(defaults.ENV_DISABLE_PLUGINS, "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def _env_autoload() -> bool:
    raw = os.environ.get(defaults.ENV_DISABLE_AUTOLOAD, "").strip().lower()
    return raw in ("", "0", "false", "no")


def make_plugin_host(
    *,
    plugins: Iterable[object] = (),
    blocked: Iterable[str] = (),
    autoload: bool | None = None,
) -> PluginHost:
    """Build a fresh plugin manager and wrap it in a :class:`PluginHost`.

    :param plugins: extra plugin objects to register (tests, embedding applications).
    :param blocked: plugin names to block, in addition to ``REDIQ_DISABLE_PLUGINS``.
    :param autoload: load third-party entry points; default: not disabled by
        ``REDIQ_DISABLE_PLUGIN_AUTOLOAD``. rediq's own plugins always load unless blocked.
    """
    pm = pluggy.PluginManager("rediq")
    pm.add_hookspecs(hookspecs)
    for name in [*_env_blocked(), *blocked]:
        pm.set_blocked(name)
    load_third_party = _env_autoload() if autoload is None else autoload
    distributions: dict[str, str] = {}
    # read each distribution's entry points, and the metadata only of those that declare a
    # rediq plugin (parsing every distribution's metadata costs an idle worker ~0.5 MiB)
    for dist in importlib.metadata.distributions():
        eps = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
        if not eps:
            continue
        dist_name = dist.metadata["Name"] or "?"
        if dist_name != OWN_DISTRIBUTION and not load_third_party:
            continue
        for ep in eps:
            if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name!r} from distribution {dist_name!r} failed to load:"
                    f" {exc!r}; block it with {defaults.ENV_DISABLE_PLUGINS}={ep.name}"
                ) from exc
            pm.register(plugin, name=ep.name)
            distributions[ep.name] = f"{dist_name} {dist.version}"
    _register_builtin_defaults(pm, distributions)
    for plugin in plugins:
        pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"{exc}; every hook implementation needs a rediq_* hook spec") from exc
    _reject_registration_wrappers(pm)
    return PluginHost(pm, distributions)


def _reject_registration_wrappers(pm: pluggy.PluginManager) -> None:
    """A wrapper of a ``rediq_register_*`` hook would receive ``register`` and never call
    it: refuse it when the manager is built, not silently at first use."""
    for name in dir(pm.hook):
        if not name.startswith("rediq_register_"):
            continue
        for impl in getattr(pm.hook, name).get_hookimpls():
            if impl.wrapper or impl.hookwrapper:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} implements {name} as a wrapper;"
                    " registration hooks take no wrappers (drop wrapper=/hookwrapper=)"
                )


def _register_builtin_defaults(pm: pluggy.PluginManager, distributions: dict[str, str]) -> None:
    from .. import executors

    name = "executors"
    if not pm.has_plugin(name) and not pm.is_blocked(name):
        pm.register(executors, name=name)
        distributions[name] = f"{OWN_DISTRIBUTION} (built in)"
