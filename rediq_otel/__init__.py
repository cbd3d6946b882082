"""OpenTelemetry tracing for rediq (``pip install 'rediq[otel]'``).

A producer span per enqueue (kind PRODUCER, ``send <queue>``) injects its trace context
into the message headers (W3C ``traceparent``, through the globally configured
propagator); a worker starts a consumer span per attempt (kind CONSUMER,
``process <queue>``) whose parent is that context, so one task is one trace from the
enqueue to its last attempt. The consumer span is current while the task function runs.
Attribute names follow the OpenTelemetry messaging semantic conventions; see
docs/observability.md. Configure a tracer provider and exporter as usual; without one the
spans are no-ops.
"""

from __future__ import annotations

__all__ = ["EXTRA"]

#: The pip command that enables this plugin.
EXTRA = "pip install 'rediq[otel]'"
