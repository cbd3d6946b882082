"""Render the results of ``run.py`` as one side-by-side markdown table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Getter = Callable[[dict[str, Any]], float | None]

SYSTEM_ORDER = ("rediq", "arq", "saq", "streaq", "taskiq")


def _get(*path: str) -> Getter:
    def getter(result: dict[str, Any]) -> float | None:
        node: Any = result
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return float(node) if isinstance(node, int | float) else None

    return getter


def _rss_mib(result: dict[str, Any]) -> float | None:
    value = result.get("rss_kib")
    return value / 1024 if isinstance(value, int | float) and value else None


def _redis_cpu_total(result: dict[str, Any]) -> float | None:
    enqueue = _get("redis_cpu_us", "enqueue")(result)
    drain = _get("redis_cpu_us", "drain")(result)
    return None if enqueue is None or drain is None else enqueue + drain


#: (label, unit, higher is better, getter)
METRICS: tuple[tuple[str, str, bool, Getter], ...] = (
    ("enqueue one by one", "tasks/s", True, _get("enqueue", "enqueue_single_per_s")),
    ("enqueue batched (100/batch)", "tasks/s", True, _get("enqueue", "enqueue_batch_per_s")),
    ("drain no-op tasks", "tasks/s", True, _get("drain_noop", "per_s")),
    ("drain sleep(10 ms) tasks", "tasks/s", True, _get("drain_sleep", "per_s")),
    ("pickup latency p50", "ms", False, _get("pickup", "p50_ms")),
    ("pickup latency p95", "ms", False, _get("pickup", "p95_ms")),
    ("pickup latency p99", "ms", False, _get("pickup", "p99_ms")),
    ("delayed lateness p50", "ms", False, _get("delayed", "p50_ms")),
    ("delayed lateness p95", "ms", False, _get("delayed", "p95_ms")),
    ("delayed lateness max", "ms", False, _get("delayed", "max_ms")),
    ("worker peak RSS", "MiB", False, _rss_mib),
    ("worker CPU per no-op task (drain, incl. start-up)", "µs", False, _get("worker_cpu_us")),
    ("redis-server CPU per no-op task: enqueue", "µs", False, _get("redis_cpu_us", "enqueue")),
    ("redis-server CPU per no-op task: processing", "µs", False, _get("redis_cpu_us", "drain")),
    ("redis-server CPU per no-op task: both", "µs", False, _redis_cpu_total),
)


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(rediq: float | None, peer: float | None, higher_better: bool) -> str:
    """How many times better rediq is than the peer (> 1: rediq better)."""
    if rediq is None or peer is None or rediq <= 0 or peer <= 0:
        return "n/a"
    return f"{(rediq / peer) if higher_better else (peer / rediq):.2f}x"


def render(results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    systems = [s for s in SYSTEM_ORDER if s in results]
    peers = [s for s in systems if s != "rediq"]
    with_ratios = "rediq" in results and "error" not in results["rediq"]
    header = ["metric", "unit", *systems]
    if with_ratios:
        header += [f"rediq vs {p}" for p in peers]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, unit, higher, getter in METRICS:
        values = {s: getter(results[s]) for s in systems}
        arrow = "higher is better" if higher else "lower is better"
        row = [label, f"{unit} ({arrow})", *(_fmt(values[s]) for s in systems)]
        if with_ratios:
            row += [_ratio(values["rediq"], values[p], higher) for p in peers]
        lines.append("| " + " | ".join(row) + " |")

    sizes = meta.get("sizes", {})
    notes = [
        "",
        f"Sizes: {sizes}. {'QUICK smoke run. ' if meta.get('quick') else ''}"
        f"{meta.get('cpus')} CPUs, Python {meta.get('python')},"
        f" redis-server {meta.get('redis_server')}, wall {meta.get('wall_s')} s.",
    ]
    if with_ratios:
        notes.append(
            "Ratio columns: how many times better rediq is than that peer (>1x: rediq"
            " better), i.e. rediq/peer for rates and peer/rediq for latency and memory."
        )
    for system in systems:
        result = results[system]
        if "error" in result:
            notes.append(f"{system}: FAILED: {result['error'][:300]}")
        batch = result.get("enqueue", {}).get("batch_method")
        if batch:
            notes.append(f"{system} batched enqueue: {batch}.")
        unsupported = result.get("delayed", {}).get("unsupported")
        if unsupported:
            notes.append(f"{system} delayed tasks: n/a, {unsupported}.")
    versions = meta.get("versions", {})
    for env, found in versions.items():
        notes.append(f"versions ({env}): " + ", ".join(f"{k} {v}" for k, v in found.items()))
    return "\n".join(lines + notes + _commands_table(results, systems))


#: What the shared task body and the drain's progress polling send, for every system.
HARNESS_COMMANDS = frozenset({"set", "incr", "incrby", "get", "mget"})


def _commands_table(results: dict[str, dict[str, Any]], systems: list[str]) -> list[str]:
    """Redis commands per no-op task (prefill and drain), as the server counted them:
    which writes each system pays for. Script calls are shown with their own calls."""
    counted = [s for s in systems if results[s].get("redis_commands_per_task")]
    if not counted:
        return []
    lines = [
        "",
        "Redis commands per no-op task (`INFO commandstats` over the no-op prefill and drain;"
        " a script's own calls are counted under their commands; the shared task body's"
        f" {', '.join(sorted(HARNESS_COMMANDS))} are left out):",
        "",
        "| phase | " + " | ".join(counted) + " |",
        "|---|" + "---|" * len(counted),
    ]
    for phase in ("enqueue", "drain"):
        cells = []
        for system in counted:
            found = results[system]["redis_commands_per_task"][phase]
            shown = {k: v for k, v in found.items() if k not in HARNESS_COMMANDS and v >= 0.005}
            total = sum(v for k, v in shown.items() if k not in ("evalsha", "eval", "fcall"))
            parts = ", ".join(
                f"{k} {v:.2f}" for k, v in sorted(shown.items(), key=lambda kv: -kv[1])
            )
            cells.append(f"**{total:.1f}**: {parts}")
        lines.append(f"| {phase} | " + " | ".join(cells) + " |")
    return lines
