"""A typed facade over ``pm.hook``: one method per registry, and the typed events
(:class:`~rediq_core.plugins.events.Events`, ``host.events``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from ..errors import PluginError, PluginNameClash, UnknownNameError
from .events import Events

if TYPE_CHECKING:
    import click

    from ..broker import Broker, BrokerOptions
    from ..serializer import Serializer

__all__ = ["PluginHost", "Registration"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Registration(Generic[T]):
    """One name registered by one plugin."""

    name: str
    value: T
    plugin: str


class PluginHost:
    """Owns one plugin manager. Registries are collected lazily, once."""

    def __init__(self, pm: pluggy.PluginManager, distributions: dict[str, str]) -> None:
        self.pm = pm
        self.distributions = distributions
        self._registries: dict[str, dict[str, Registration[Any]]] = {}
        #: One typed, awaitable method per event hook.
        self.events = Events(pm)

    # --- registries -------------------------------------------------------------------

    def _collect(
        self, hook_name: str, kind: str, name_of: Callable[[Any], str] | None = None
    ) -> dict[str, Registration[Any]]:
        """Call a registration hook once per plugin with a ``register`` callback that
        reports a clash naming both plugins. ``register(name, value)``, or
        ``register(value)`` when ``name_of`` derives the name."""
        if hook_name in self._registries:
            return self._registries[hook_name]
        found: dict[str, Registration[Any]] = {}
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            if impl.wrapper or impl.hookwrapper:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} implements {hook_name} as a wrapper;"
                    " registration hooks take no wrappers (drop wrapper=/hookwrapper=)"
                )

            def register(*args: Any, _plugin: str = impl.plugin_name) -> None:
                name, value = (name_of(args[0]), args[0]) if name_of else args
                if name in found:
                    raise PluginNameClash(
                        f"{kind} {name!r} is registered by both plugin {found[name].plugin!r}"
                        f" and plugin {_plugin!r}; block one of them with REDIQ_DISABLE_PLUGINS"
                    )
                found[name] = Registration(name, value, _plugin)

            impl.function(register)
        self._registries[hook_name] = found
        return found

    def brokers(self) -> dict[str, Registration[Callable[[BrokerOptions], Broker]]]:
        return self._collect("rediq_register_brokers", "broker scheme")

    def serializers(self) -> dict[str, Registration[Callable[[], Serializer]]]:
        return self._collect("rediq_register_serializers", "serializer")

    def executor_pools(self) -> dict[str, Registration[Callable[[int | None], Executor]]]:
        return self._collect("rediq_register_executor_pools", "executor pool")

    def commands(self) -> dict[str, Registration[click.Command]]:
        return self._collect("rediq_register_commands", "command", lambda c: c.name or "?")

    def pytest_plugins(self) -> dict[str, Registration[str]]:
        """Dotted names of modules of pytest fixtures (``pytest -p rediq.testing``)."""
        return self._collect("rediq_register_pytest_plugins", "pytest plugin", str)

    def worker_options(self) -> dict[str, Registration[click.Option]]:
        """The options plugins add to ``rediq worker``, by parameter name."""
        return self._collect(
            "rediq_register_worker_options", "worker option", lambda o: o.name or "?"
        )

    def settings(self) -> dict[str, Registration[ModuleType]]:
        """The settings modules plugins publish, by module name."""
        return self._collect("rediq_register_settings", "settings module", lambda m: m.__name__)

    def configure_worker(self, options: Mapping[str, Any], processes: int) -> None:
        """Hand the parsed plugin options of ``rediq worker`` to the plugins (which may
        refuse them by raising ``click.UsageError`` or ``SystemExit``)."""
        self.pm.hook.rediq_configure_worker(options=options, processes=processes)

    def prepare_worker_process(
        self, slot: int, processes: int, argv: list[str], env: dict[str, str]
    ) -> None:
        """Let the plugins adjust the arguments and environment of one supervised worker
        process (both edited in place)."""
        self.pm.hook.rediq_prepare_worker_process(
            slot=slot, processes=processes, argv=argv, env=env
        )

    def serializer(self, name: str) -> Serializer:
        """Build the serializer registered as ``name``."""
        serializer: Serializer = _build(self.serializers(), name, "serializer")()
        return serializer

    def broker(self, options: BrokerOptions) -> Broker:
        """Build the broker registered for the scheme of ``options.url``."""
        scheme = options.url.partition("://")[0].lower()
        if "://" not in options.url:
            raise UnknownNameError(
                f"broker URL {options.url!r} has no scheme; use e.g. redis://localhost:6379/0"
            )
        broker: Broker = _build(self.brokers(), scheme, "broker URL scheme")(options)
        return broker

    def executor_pool(self, name: str, size: int | None) -> Executor:
        pool: Executor = _build(self.executor_pools(), name, "executor pool")(size)
        return pool

    def plugin_names(self) -> list[str]:
        return [name for name, plugin in self.pm.list_name_plugin() if plugin is not None]


def _build(registry: dict[str, Registration[Any]], name: str, kind: str) -> Any:
    try:
        return registry[name].value
    except KeyError:
        known = ", ".join(sorted(registry)) or "none"
        raise UnknownNameError(
            f"unknown {kind} {name!r}; installed: {known}."
            " Install the plugin that provides it (see `rediq plugins`)"
        ) from None
