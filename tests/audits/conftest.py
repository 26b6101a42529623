"""The one way the audits' tests run an audit end to end: the simulated mock on a virtual clock
(exact and fast; no process, no HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pytest

from auditkit.audits import load_config
from auditkit.runner import AuditRun, run_audit

#: each audit's settings small enough for a test (an audit not listed runs its defaults)
SMALL: dict[str, dict[str, Any]] = {
    "test01": {"samples": 24, "log_samples": 12, "warmup": 4},
    "test05": {"samples": 64, "warmup": 8},
    "test06": {"samples": 20, "warmup": 4},
    "test09": {"samples": 24, "warmup": 4},
}


class SimulatedAudit(Protocol):
    def __call__(
        self,
        key: str,
        misbehaviour: dict[str, Any] | None = None,
        *,
        out: Path | None = None,
        mock: dict[str, Any] | None = None,
        endpoint: dict[str, Any] | None = None,
        load: dict[str, Any] | None = None,
        dataset: dict[str, Any] | None = None,
        **settings: Any,
    ) -> AuditRun: ...


@pytest.fixture
def simulated_audit(tmp_path: Path) -> SimulatedAudit:
    """`simulated_audit(key, misbehaviour, **settings)` runs audit `key` against the simulated
    mock (with `misbehaviour`, `mock` settings) into `out` (default tmp_path); `settings` go to
    the audit's own section over its SMALL sizes; `endpoint`, `load`, `dataset` to theirs."""

    def run(
        key: str,
        misbehaviour: dict[str, Any] | None = None,
        *,
        out: Path | None = None,
        mock: dict[str, Any] | None = None,
        endpoint: dict[str, Any] | None = None,
        load: dict[str, Any] | None = None,
        dataset: dict[str, Any] | None = None,
        **settings: Any,
    ) -> AuditRun:
        over: dict[str, Any] = {
            "mock": {**(mock or {}), "simulated": True, "misbehaviour": misbehaviour or {}},
            "output_dir": str(out or tmp_path),
            key: {**SMALL.get(key, {}), **settings},
        }
        sections = {"endpoint": endpoint, "load": load, "dataset": dataset}
        over |= {name: value for name, value in sections.items() if value is not None}
        return run_audit(load_config(None, over), key)

    return run
