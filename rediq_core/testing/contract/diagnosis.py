"""The diagnosis role (``rediq doctor``): what any broker's checks and namespace listing
must look like; what they find depends on the server, so only their shape is tested."""

from __future__ import annotations

from rediq_core.diagnosis import Check, CheckStatus
from rediq_core.roles import Diagnosis, Role

from .helpers import RoleContract

__all__ = ["DiagnosisContract"]


class DiagnosisContract(RoleContract):
    role = Role.DIAGNOSIS

    async def test_checks_have_stable_unique_names(self, broker: Diagnosis) -> None:
        """``--json`` keys checks by name: each is named once, with a status and a detail."""
        checks = await broker.diagnose()
        assert checks, "a broker with the diagnosis role checks something"
        assert all(isinstance(c, Check) and isinstance(c.status, CheckStatus) for c in checks)
        names = [c.name for c in checks]
        assert len(set(names)) == len(names) and all(names), names
        assert all(c.detail for c in checks), checks

    async def test_namespaces_are_sorted_names(self, broker: Diagnosis) -> None:
        found = await broker.namespaces()
        assert all(isinstance(n, str) and n for n in found), found
        assert found == sorted(found)
