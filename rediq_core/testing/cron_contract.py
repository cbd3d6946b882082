"""The cron role's contract (moved to :mod:`rediq_core.testing.contract.cron`; re-exported
here for code written before the suite was split by role)."""

from __future__ import annotations

from rediq_core.testing.contract.cron import CRON_QUEUE, CronBroker, CronContract, make_spec

__all__ = ["CRON_QUEUE", "CronBroker", "CronContract", "make_spec"]
