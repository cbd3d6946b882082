"""The ``hookimpl`` marker, alone in a leaf module.

Public users import it from :mod:`rediq` or :mod:`rediq_core.plugins`. It is defined here,
importing nothing of rediq, so that the built-in plugins the plugin manager registers
(:mod:`rediq_core.executors`) can mark their hooks without importing the plugin manager,
which imports them: no import circle.
"""

from __future__ import annotations

import pluggy

__all__ = ["hookimpl"]

#: The marker for hook implementations.
hookimpl = pluggy.HookimplMarker("rediq")
