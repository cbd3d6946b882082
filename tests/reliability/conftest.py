"""Reliability tests reuse the worker harness: real ``rediq worker`` processes against
throwaway redis-servers (tests/worker/conftest.py)."""

from __future__ import annotations

from ..broker.conftest import redis
from ..worker.conftest import harness

__all__ = ["harness", "redis"]
