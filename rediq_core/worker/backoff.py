"""Retry backoff: how long a failed attempt waits before its retry is delivered."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .. import defaults

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Exponential backoff, ``base_ms * 2**retried`` capped at ``cap_ms``.

    With ``jitter`` (the default) the delay is drawn uniformly from ``[delay/2, delay]``
    so that tasks failing together do not retry together.
    """

    base_ms: int = defaults.BACKOFF_BASE_MS
    cap_ms: int = defaults.BACKOFF_CAP_MS
    jitter: bool = defaults.BACKOFF_JITTER

    def __post_init__(self) -> None:
        if self.base_ms < 0 or self.cap_ms < 0:
            raise ValueError("backoff base_ms and cap_ms must be >= 0")

    def delay_ms(self, retried: int) -> int:
        """The delay before the retry that follows attempt number ``retried`` (0-based)."""
        delay: int = min(self.cap_ms, self.base_ms * 2 ** min(retried, 32))
        if self.jitter and delay > 1:
            return random.randint(delay // 2, delay)
        return delay
