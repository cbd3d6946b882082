"""``python -m rediq_core.cli`` runs the ``rediq`` command."""

from __future__ import annotations

from .group import main

main()
