"""Prometheus metrics for rediq (``pip install 'rediq[prometheus]'``).

The plugin counts every task a process enqueues or runs, per task name and queue, in
prometheus_client's default registry; ``rediq worker --metrics-port 9808`` serves them at
``/metrics`` together with the depth of every queue, read through the control API at each
scrape. Without prometheus_client the plugin registers nothing and ``rediq plugins`` says
how to enable it. See docs/observability.md for the metric names.
"""

from __future__ import annotations

__all__ = ["EXTRA"]

#: The pip command that enables this plugin.
EXTRA = "pip install 'rediq[prometheus]'"
