"""``rediq doctor``: checks of a deployment, each with what it found and what to do."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Check", "CheckStatus"]


class CheckStatus(enum.StrEnum):
    OK = "ok"
    INFO = "info"  # worth knowing, nothing to do
    WARN = "warn"  # needs attention: `rediq doctor` exits 1
    FAIL = "fail"  # rediq cannot work correctly like this: exit 1

    @property
    def attention(self) -> bool:
        return self in (CheckStatus.WARN, CheckStatus.FAIL)


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: ``name`` (stable, for ``--json``), what was found, and advice."""

    name: str
    status: CheckStatus
    detail: str
    advice: str = ""
