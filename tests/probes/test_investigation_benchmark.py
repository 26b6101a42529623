"""benchmarks/investigation.py, one run per behaviour on the virtual clock: the probes' diagnosis
and the TEST04 fingerprint name every mock behaviour correctly (the real-HTTP table, 30 runs
per behaviour, is in docs/investigation.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from auditkit.config import DatasetConfig
from auditkit.data import load_dataset
from auditkit.mock.presets import PRESETS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "investigation.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("investigation_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # the fingerprint's audit on one reference and one audit phase: it reads pooled records,
    # whichever design made them, and the default's blocks and extra round cost ~3× the CPU
    module.AUDIT = {**module.AUDIT, "test04": {**module.AUDIT["test04"], "design": "sequential"}}
    return module


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_behaviour_is_named_correctly(bench: ModuleType, name: str) -> None:
    row = bench.row(name, 1, 10, load_dataset(DatasetConfig()), True, True)
    expected = PRESETS[name][1]
    assert row["probes"] == {expected: 1}
    assert row["fingerprint"] == {expected: 1}
    assert "| " + name + " |" in bench.table([row])
