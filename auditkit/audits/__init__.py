"""Audit tests: one module per test plus one entry in `REGISTRY`."""

from __future__ import annotations

from auditkit.audits.base import AuditTest
from auditkit.audits.test04 import Test04
from auditkit.errors import InputError

REGISTRY: dict[str, AuditTest] = {
    "test04": Test04(),
}


def get_test(name: str) -> AuditTest:
    """Look a test up by id, case-insensitively (TEST04, test04)."""
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise InputError(f"unknown audit test {name!r}; known tests: {known}") from None


__all__ = ["REGISTRY", "AuditTest", "get_test"]
