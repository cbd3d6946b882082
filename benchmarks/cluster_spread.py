"""One queue across a Redis Cluster: how the Redis CPU of one queue's work spreads over
the masters, unsharded against sharded (``app.queue("emails", shards=N)``), and how many
tasks per second one fully busy Redis core carries.

    .venv/bin/python benchmarks/cluster_spread.py [--tasks 20000] [--masters 3,6] [--shards 12]

For each master count (``--masters``), a masters-only cluster (``ClusterTopology(masters=M,
replicas=False)``: equal contiguous slot ranges, as ``redis-cli --cluster create`` makes);
for each case, the queue ``emails`` unsharded, then with each ``--shards`` count (a
multiple of every master count spreads evenly), on a flushed cluster:

1. idle: every master's CPU over ``--idle`` seconds with nothing running (the cluster's own
   background: cron, cluster-bus pings), to show it is noise;
2. enqueue: ``--tasks`` no-op tasks with ``app.enqueue_many`` in batches of 500, from this
   process, no worker running (the producer spreads them round-robin over the shards);
3. drain: ``--workers`` ``rediq worker`` processes start (``--queue-name emails
   --skip-default-queue --worker-task-concurrency 50 --worker-queue-size 50``, set by
   ``--concurrency`` and ``--prefetch``; the app, written to a temporary folder, declares
   the queue's shards), and the benchmark waits (at most ``--timeout`` s) until ``app.control.queue("emails")`` shows pending 0, active 0
   and ``--tasks`` succeeded. Worker start-up and the benchmark's own overview polls
   (one every 0.5 s) are inside this window.

Each master's CPU is ``INFO cpu`` ``used_cpu_user + used_cpu_sys``, read before and after
each phase; ``INFO commandstats`` (reset before each phase) gives the script calls. Reported
per case: each master's CPU seconds and share, the spread (the largest ``|share - 1/M| /
(1/M)``; 0 is perfectly even), the busiest master's share, the capacity per Redis core
(tasks / Redis CPU seconds summed over the masters, for the enqueue, the drain, and both:
one task's whole Redis life), the ceiling (tasks / the busiest master's CPU seconds: the
rate at which that master is fully busy) and the script calls per 100 tasks.

On a small machine the workers, this producer and every redis-server share the same few
cores, so the wall-clock throughput printed beside does not grow with the masters; the
CPU accounting (shares, tasks per Redis core) is what carries over to a real cluster.
Prints markdown tables; writes the raw figures to ``benchmarks/results/cluster_spread.json``
(``--out``). Nothing asserts: benchmarks/README.md ("One queue across a Redis Cluster") carries the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis
from redis.crc import key_slot

from benchmarks.common import stop_workers
from rediq import Rediq
from rediq_redis.keys import NamespaceKeys, QueueKeys
from rediq_redis.testing import RedisServer
from rediq_redis.testing.cluster import ClusterTopology

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "cluster_spread.json"
QUEUE = "emails"
NAMESPACE = "spread"
BATCH = 500
POLL_S = 0.5
APP_MODULE = "spread_app"
APP = """
import os
from rediq import Rediq

app = Rediq(redis_url=os.environ["BENCH_REDIS_URL"], namespace=os.environ["BENCH_NAMESPACE"])
app.queue("emails", shards=int(os.environ["BENCH_SHARDS"]))


@app.task(task_name="spread.noop", task_queue="emails")
async def noop() -> None:
    return None
"""


@dataclass
class Phase:
    """One phase's Redis CPU seconds per master (in the masters' order)."""

    cpu_s: list[float]
    wall_s: float
    #: calls and microseconds per command, summed over the masters
    commands: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.cpu_s)

    @property
    def shares(self) -> list[float]:
        return [c / self.total for c in self.cpu_s]

    @property
    def script_calls(self) -> int:
        return sum(v["calls"] for k, v in self.commands.items() if k in ("evalsha", "eval"))

    @property
    def spread(self) -> float:
        even = 1 / len(self.cpu_s)
        return max(abs(s - even) for s in self.shares) / even


@dataclass
class Case:
    masters: int
    shards: int
    tasks: int
    ports: list[int]
    #: shards (queue slots) held by each master, and the master of the ``{NS}`` keys
    shards_per_master: list[int]
    namespace_master: int
    idle_cpu_ms_per_s: list[float]
    enqueue: Phase
    drain: Phase
    whole: Phase = field(init=False)

    def __post_init__(self) -> None:
        cpu = [e + d for e, d in zip(self.enqueue.cpu_s, self.drain.cpu_s, strict=True)]
        self.whole = Phase(cpu, self.enqueue.wall_s + self.drain.wall_s)

    def per_core(self, phase: Phase) -> float:
        """Tasks per second one fully busy Redis core carries in ``phase``."""
        return self.tasks / phase.total

    @property
    def ceiling(self) -> float:
        """Tasks per second (whole life) at which the busiest master is fully busy: what
        the cluster carries for this queue when Redis is the bottleneck."""
        return self.tasks / max(self.whole.cpu_s)


async def _commands(nodes: Sequence[Redis]) -> dict[str, dict[str, int]]:
    """Calls and microseconds per command, summed over ``nodes`` (since their last
    ``CONFIG RESETSTAT``)."""
    found: dict[str, dict[str, int]] = {}
    for info in await asyncio.gather(*(n.info("commandstats") for n in nodes)):
        for name, stat in info.items():
            entry = found.setdefault(name.removeprefix("cmdstat_"), {"calls": 0, "usec": 0})
            entry["calls"] += int(stat["calls"])
            entry["usec"] += int(stat["usec"])
    return dict(sorted(found.items(), key=lambda item: -item[1]["usec"]))


async def _reset(nodes: Sequence[Redis]) -> None:
    await asyncio.gather(*(n.config_resetstat() for n in nodes))


async def _cpu(nodes: Sequence[Redis]) -> list[float]:
    infos = await asyncio.gather(*(n.info("cpu") for n in nodes))
    return [float(i["used_cpu_user"]) + float(i["used_cpu_sys"]) for i in infos]


def _placement(cluster: ClusterTopology, shards: int) -> tuple[list[int], int]:
    masters = cluster.servers[: cluster.master_count]

    def master_index(tag: str) -> int:
        return masters.index(cluster.master_of_slot(key_slot(tag.encode())))

    app_shards = Rediq(namespace=NAMESPACE)
    app_shards.queue(QUEUE, shards=shards)
    held = [0] * len(masters)
    for name in app_shards.shards.names(QUEUE):
        held[master_index(QueueKeys(NAMESPACE, name).tag)] += 1
    return held, master_index(NamespaceKeys(NAMESPACE).queues)


def _load_app(url: str, shards: int) -> Rediq:
    os.environ.update(BENCH_REDIS_URL=url, BENCH_NAMESPACE=NAMESPACE, BENCH_SHARDS=str(shards))
    sys.modules.pop(APP_MODULE, None)
    module = importlib.import_module(APP_MODULE)
    app: Rediq = module.app
    return app


def _start_workers(folder: Path, args: argparse.Namespace) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(folder)}
    command = [
        sys.executable,
        "-m",
        "rediq_core.cli",
        "worker",
        f"{APP_MODULE}:app",
        "--queue-name",
        QUEUE,
        "--skip-default-queue",
        "--worker-task-concurrency",
        str(args.concurrency),
        "--worker-queue-size",
        str(args.prefetch),
        "--log-level",
        "warning",
    ]
    with (folder / "workers.log").open("ab") as log:  # banners and shutdown notices
        return [
            subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=log)
            for _ in range(args.workers)
        ]


async def _drained(app: Rediq, tasks: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        view = await app.control.queue(QUEUE)
        if (view.pending, view.active, view.totals.get("succeeded", 0)) == (0, 0, tasks):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"not drained after {timeout_s} s: pending {view.pending}, active"
                f" {view.active}, succeeded {view.totals.get('succeeded')}"
            )
        await asyncio.sleep(POLL_S)  # the benchmark's own progress check


async def run_case(
    cluster: ClusterTopology, folder: Path, shards: int, args: argparse.Namespace
) -> Case:
    masters: list[RedisServer] = cluster.servers[: cluster.master_count]
    nodes = [Redis(host="127.0.0.1", port=m.port) for m in masters]
    await asyncio.gather(*(n.flushall() for n in nodes))
    app = _load_app(cluster.url(), shards)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        before = await _cpu(nodes)
        await asyncio.sleep(args.idle)  # the cluster's background, nothing running
        idle = [(a - b) * 1000 / args.idle for a, b in zip(await _cpu(nodes), before, strict=True)]

        noop = sys.modules[APP_MODULE].noop
        started = time.monotonic()
        await _reset(nodes)
        before = await _cpu(nodes)
        for first in range(0, args.tasks, BATCH):
            await app.enqueue_many([noop() for _ in range(min(BATCH, args.tasks - first))])
        after = await _cpu(nodes)
        enqueue = Phase(
            [a - b for a, b in zip(after, before, strict=True)],
            time.monotonic() - started,
            await _commands(nodes),
        )

        await _reset(nodes)
        started, before = time.monotonic(), await _cpu(nodes)
        workers = _start_workers(folder, args)
        await _drained(app, args.tasks, args.timeout)
        after = await _cpu(nodes)
        drain = Phase(
            [a - b for a, b in zip(after, before, strict=True)],
            time.monotonic() - started,
            await _commands(nodes),
        )
    except BaseException:
        log = (folder / "workers.log").read_text(errors="replace").splitlines()
        print("\n".join(["workers.log (last lines):", *log[-20:]]), file=sys.stderr)
        raise
    finally:
        stop_workers(workers)
        await app.close()
        for node in nodes:
            await node.aclose()
    held, ns_master = _placement(cluster, shards)
    return Case(
        masters=cluster.master_count,
        shards=shards,
        tasks=args.tasks,
        ports=[m.port for m in masters],
        shards_per_master=held,
        namespace_master=ns_master,
        idle_cpu_ms_per_s=idle,
        enqueue=enqueue,
        drain=drain,
    )


def _pct(values: Sequence[float]) -> str:
    return " / ".join(f"{v * 100:.0f}" for v in values)


def report(cases: Sequence[Case]) -> str:
    lines = [
        "| masters | queue | shards per master | Redis CPU share per master, % (enqueue + drain)"
        " | spread | busiest master | tasks/s per Redis core: enqueue / drain / whole life"
        " | ceiling, tasks/s | Redis CPU s | drain wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        queue = "unsharded" if c.shards == 1 else f"{c.shards} shards"
        capacity = " / ".join(f"{c.per_core(p):,.0f}" for p in (c.enqueue, c.drain, c.whole))
        lines.append(
            f"| {c.masters} | {queue} | {' / '.join(map(str, c.shards_per_master))}"
            f" | {_pct(c.whole.shares)} | {c.whole.spread * 100:.0f} %"
            f" | {max(c.whole.shares) * 100:.0f} % | {capacity} | {c.ceiling:,.0f}"
            f" | {c.whole.total:.2f}"
            f" | {c.drain.wall_s:.1f} |"
        )
    lines += [
        "",
        "| masters | queue | enqueue: share per master, % | spread | drain: share per master, %"
        " | spread | script calls per 100 tasks: enqueue / drain | idle CPU per master, ms/s"
        " | `{NS}` keys on master |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        queue = "unsharded" if c.shards == 1 else f"{c.shards} shards"
        lines.append(
            f"| {c.masters} | {queue} | {_pct(c.enqueue.shares)} | {c.enqueue.spread * 100:.0f} %"
            f" | {_pct(c.drain.shares)} | {c.drain.spread * 100:.0f} %"
            f" | {c.enqueue.script_calls * 100 / c.tasks:.1f} / {c.drain.script_calls * 100 / c.tasks:.1f}"
            f" | {' / '.join(f'{v:.1f}' for v in c.idle_cpu_ms_per_s)}"
            f" | {c.namespace_master + 1} |"
        )
    return "\n".join(lines)


def _as_json(case: Case) -> dict[str, object]:
    found = asdict(case)
    for name in ("enqueue", "drain", "whole"):
        phase: Phase = getattr(case, name)
        found[name].update(
            total_cpu_s=phase.total,
            shares=phase.shares,
            spread=phase.spread,
            script_calls=phase.script_calls,
            tasks_per_redis_core_s=case.per_core(phase),
        )
    found["ceiling_tasks_s"] = case.ceiling
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--masters", default="3,6", help="master counts, comma separated")
    parser.add_argument("--shards", default="12", help="shard counts, comma separated")
    parser.add_argument("--workers", type=int, default=2, help="rediq worker processes")
    parser.add_argument("--concurrency", type=int, default=50, help="per worker")
    parser.add_argument("--prefetch", type=int, default=50, help="per worker")
    parser.add_argument("--idle", type=float, default=2.0, help="idle baseline, seconds")
    parser.add_argument("--timeout", type=float, default=600.0, help="longest drain, seconds")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file written")
    args = parser.parse_args()
    cases: list[Case] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / f"{APP_MODULE}.py").write_text(APP)
        sys.path.insert(0, str(folder))
        for masters in (int(m) for m in args.masters.split(",")):
            with ClusterTopology(masters=masters, replicas=False) as cluster:
                for shards in (1, *(int(s) for s in args.shards.split(","))):
                    case = await run_case(cluster, folder, shards, args)
                    cases.append(case)
                    print(
                        f"# {masters} masters, {shards} shard(s): drained {args.tasks} in"
                        f" {case.drain.wall_s:.1f} s",
                        file=sys.stderr,
                    )
    print(report(cases))
    print(
        "\nOn a 2-core machine the workers, the producer and the Redis nodes share the cores:"
        " wall-clock throughput does not scale with masters here; the CPU accounting"
        " (shares, tasks/s per Redis core) is what carries over to a real cluster."
    )
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"args": {**vars(args), "out": str(args.out)}, "cases": [_as_json(c) for c in cases]},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
