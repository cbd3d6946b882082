"""The ``rediq`` command line (rich-click).

``rediq worker APP`` and the original form ``rediq APP`` start a worker; the other
subcommands inspect and control queues. Plugins add subcommands with
``rediq_register_commands``.
"""

from __future__ import annotations

from .group import RediqGroup, main

__all__ = ["RediqGroup", "main"]
