"""Workflow tests: ``harness`` (real worker processes against a throwaway redis-server)
comes from tests/worker/conftest.py, ``redis`` (a raw client on the test server) from
tests/broker/conftest.py."""

from tests.broker.conftest import redis  # noqa: F401 - fixture re-export
from tests.worker.conftest import harness  # noqa: F401 - fixture re-export
