"""Optional plugins: "register only when the extra is installed", in one place.

A plugin shipped with rediq but needing an extra (``rediq[prometheus]``) loads whether or
not the extra is installed, so ``rediq plugins`` can say how to enable it. It asks
:func:`missing_extra` at load time, which *finds* the extra's modules without importing
them: the heavy packages are imported only when the plugin is first used, so an idle
worker does not pay for them.
"""

from __future__ import annotations

import importlib.util

__all__ = ["missing_extra"]


def missing_extra(extra_hint: str, *modules: str) -> str | None:
    """``extra_hint`` (the pip command that enables the plugin) when any of ``modules``
    cannot be found, else ``None``. Set it as the plugin module's ``REDIQ_UNAVAILABLE``.

    :param extra_hint: e.g. ``"pip install 'rediq[prometheus]'"``.
    :param modules: importable names the extra provides, e.g. ``"prometheus_client"``;
        a dotted name imports its parent packages (keep them light).
    """
    for module in modules:
        try:
            if importlib.util.find_spec(module) is None:
                return extra_hint
        except (ImportError, ValueError):  # a parent package is missing, or refused
            return extra_hint
    return None
