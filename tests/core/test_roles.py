"""Role defaults and neutral app names (which roles each broker implements, exactly:
tests/broker/test_roles.py)."""

from __future__ import annotations

import pytest

from rediq import ConfigurationError, Rediq
from rediq_core.roles import Role, supports
from rediq_memory import MemoryBroker


def test_an_object_without_roles_is_read_as_a_core_broker() -> None:
    assert supports(object(), Role.PRODUCER) and not supports(object(), Role.CRON)


async def test_broker_url_is_the_neutral_spelling() -> None:
    app = Rediq(broker_url="memory://neutral", broker_config={})
    assert app.broker_url == app.redis_url == "memory://neutral"
    assert isinstance(app.get_broker(), MemoryBroker)
    await app.close()
    with pytest.raises(ConfigurationError, match="either redis_url or broker_url"):
        Rediq(redis_url="redis://x", broker_url="memory://y")


def test_the_documented_key_table_follows_the_one_key_order() -> None:
    """The key order lives in rediq_redis/keys.py; the Lua prelude is generated from it and
    docs/broker.md's table must list the keys in the same order."""
    import re
    from pathlib import Path

    from rediq_redis.keys import QUEUE_KEY_NAMES

    text = (Path(__file__).parents[2] / "docs" / "broker.md").read_text()
    rows = re.findall(r"^\| (\d+) \| `\{NS:Q\}:(\w+)` \|", text, flags=re.M)
    assert [name for _, name in rows] == list(QUEUE_KEY_NAMES)
    assert [int(n) for n, _ in rows] == list(range(1, len(QUEUE_KEY_NAMES) + 1))
