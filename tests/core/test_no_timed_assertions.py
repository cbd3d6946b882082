"""No test asserts a wall-clock window: tests assert order and conditions, benchmarks/
measures time (ARCHITECTURE §9). A duration checked against a number fails on a slower
machine for the wrong reason, so this scan of tests/, rediq_core/testing/ (the contract
suite that third-party brokers run) and rediq_redis/testing/ (the Redis harness) fails on
every ``assert`` that compares a measured duration with a number:

- a difference involving a clock read (``time.monotonic()``, ``perf_counter()``,
  ``time.time()``, ``loop.time()``, ``now_ms()``, ...), or a name bound to one;
- a name whose words say it is a duration (``elapsed``, ``took_ms``, ``latencies``, ...).

A bounded wait compares the clock with a deadline (``time.monotonic() < deadline``), not a
duration with a number, and is not reported.
"""

from __future__ import annotations

import ast
import itertools
import textwrap
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = (ROOT / "tests", ROOT / "rediq_core" / "testing", ROOT / "rediq_redis" / "testing")
#: Calls that read a clock (as a function or a method: ``time.time()``, ``loop.time()``).
CLOCKS = frozenset(
    {
        "monotonic",
        "monotonic_ns",
        "perf_counter",
        "perf_counter_ns",
        "time",
        "time_ns",
        "now_ms",
        "server_ms",
    }
)
#: Words of a name (split at ``_``) that say it holds a measured duration.
DURATION_WORDS = frozenset(
    {"elapsed", "duration", "durations", "took", "latency", "latencies", "lateness", "waited"}
)
#: ``path:line`` of hang guards allowed to compare a duration with a bound. Empty: a hang
#: is caught by a bounded wait (``asyncio.wait_for``, a deadline) with a clear message.
ALLOWED: frozenset[str] = frozenset()


def _words(name: str) -> set[str]:
    return set(name.lower().split("_"))


def _reads_clock(node: ast.AST) -> bool:
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in CLOCKS:
                return True
    return False


#: Calls that keep a duration a duration (``max(latencies)``, ``round(took, 1)``).
_KEEPING = frozenset({"abs", "float", "int", "max", "min", "round", "sorted", "sum"})


def _is_duration(node: ast.AST, tainted: set[str]) -> bool:
    """A clock difference, a name bound to one, or a name that says it is a duration,
    possibly in arithmetic, a subscript, a list or a call that keeps it a duration."""
    match node:
        case ast.Name(id=name):
            return name in tainted or bool(_words(name) & DURATION_WORDS)
        case ast.Attribute(attr=attr):
            return bool(_words(attr) & DURATION_WORDS)
        case ast.BinOp(left=left, op=op, right=right):
            if isinstance(op, ast.Sub) and (_reads_clock(left) or _reads_clock(right)):
                return True
            return _is_duration(left, tainted) or _is_duration(right, tainted)
        case ast.UnaryOp(operand=inner) | ast.Await(value=inner) | ast.Subscript(value=inner):
            return _is_duration(inner, tainted)
        case ast.ListComp(elt=inner) | ast.GeneratorExp(elt=inner):
            return _is_duration(inner, tainted)
        case ast.List(elts=items) | ast.Tuple(elts=items):
            return any(_is_duration(item, tainted) for item in items)
        case ast.Call(func=ast.Name(id=name), args=args) if name in _KEEPING:
            return any(_is_duration(arg, tainted) for arg in args)
    return False


def _is_number(node: ast.AST) -> bool:
    """A literal, arithmetic on literals, or an UPPER_CASE constant."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int | float) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp):
        return _is_number(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_number(node.left) and _is_number(node.right)
    if isinstance(node, ast.Name):
        return node.id.isupper()
    if isinstance(node, ast.Attribute):
        return node.attr.isupper()
    return False


def _names(target: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}


def _tainted(function: ast.AST) -> set[str]:
    """Names of ``function`` bound (directly or through a list) to a measured duration."""
    tainted: set[str] = set()
    while True:
        before = len(tainted)
        for node in ast.walk(function):
            value: ast.AST | None = None
            targets: list[ast.AST] = []
            if isinstance(node, ast.Assign):
                value, targets = node.value, list(node.targets)
            elif isinstance(node, ast.AugAssign | ast.AnnAssign) and node.value is not None:
                value, targets = node.value, [node.target]
            elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
                value, targets = node.iter, [node.target]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"append", "extend", "add", "insert"}
            ):
                value, targets = ast.Tuple(elts=node.args, ctx=ast.Load()), [node.func.value]
            if value is not None and _is_duration(value, tainted):
                for target in targets:
                    tainted |= _names(target)
        if len(tainted) == before:
            return tainted


def timed_assertions(source: str, path: str = "<source>") -> Iterator[str]:
    """``path:line: assertion`` of every assertion comparing a duration with a number."""
    tree = ast.parse(source)
    scopes = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    seen: set[int] = set()
    for scope in scopes:
        tainted = _tainted(scope)
        for node in ast.walk(scope):
            if not isinstance(node, ast.Assert) or node.lineno in seen:
                continue
            for compare in (c for c in ast.walk(node.test) if isinstance(c, ast.Compare)):
                operands = [compare.left, *compare.comparators]
                if any(
                    (_is_duration(a, tainted) and _is_number(b))
                    or (_is_number(a) and _is_duration(b, tainted))
                    for a, b in itertools.pairwise(operands)
                ):
                    seen.add(node.lineno)
                    yield f"{path}:{node.lineno}: assert {ast.unparse(node.test)[:120]}"
                    break


def test_no_test_asserts_a_wall_clock_window() -> None:
    found = sorted(
        finding
        for directory in SCANNED
        for path in sorted(directory.rglob("*.py"))
        for finding in timed_assertions(path.read_text(), str(path.relative_to(ROOT)))
        if finding.split(": ", 1)[0] not in ALLOWED
    )
    assert not found, (
        "these assertions compare a measured duration with a number; assert order and"
        " conditions instead (bounded waits on a condition), and measure time in"
        " benchmarks/:\n" + "\n".join(found)
    )


def test_the_scan_reports_durations_and_spares_bounded_waits() -> None:
    source = textwrap.dedent("""
        async def timed(loop, started):
            t0 = time.monotonic()
            took = time.monotonic() - t0
            assert took < 5
            assert (time.perf_counter() - t0) * 1000 < 200
            assert 0.15 < loop.time() - started < WAIT_S
            lateness = []
            late = now_ms() - eta
            lateness.append(late)
            assert max(lateness) < 50
            assert abs(entry.seen_ms - now_ms()) < 5_000

        async def conditions(deadline, record, before):
            assert time.monotonic() < deadline, "bounded wait"
            assert record.lease_deadline_ms > now_ms()
            assert before <= record.started_at_ms <= now_ms()
            assert record.due_at_ms - 300 >= before
            message = make(enqueued_at_ms=now_ms() - 60_000)
            assert message.priority == 0
    """)
    lines = [int(f.split(":")[1]) for f in timed_assertions(source)]
    assert lines == [5, 6, 7, 11, 12]
