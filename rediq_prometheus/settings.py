"""Settings of the Prometheus plugin (``docs/configuration.md`` renders this module).

Imported when the plugin loads, with or without prometheus_client: constants only.
"""

from __future__ import annotations

from typing import Final

#: ``rediq worker --metrics-port`` serves Prometheus metrics on this address (all
#: interfaces, for a scraper on another host); the port has no default.
METRICS_HOST: Final = "0.0.0.0"
ENV_METRICS_HOST: Final = "REDIQ_METRICS_HOST"
ENV_METRICS_PORT: Final = "REDIQ_METRICS_PORT"
#: prometheus_client's multiprocess directory; ``rediq worker --processes N`` with a
#: metrics port sets a temporary one for its processes unless it is set already.
ENV_MULTIPROC_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"
#: A scrape waits at most this long for the queue depths read from the broker.
METRICS_QUEUE_READ_TIMEOUT_S: Final = 2.0
