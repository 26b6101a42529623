"""Counterbalanced design (R A A R) and salted warm-up, end to end on a virtual clock."""

from typing import Any

import pandas as pd
import pytest

from auditkit import artifacts
from auditkit.audits import build_config
from auditkit.audits.test04 import Test04
from auditkit.data import Dataset, Sample
from auditkit.errors import InputError
from tests.audits.conftest import SimulatedAudit


def _dataset(n: int) -> Dataset:
    return Dataset("mem", tuple(Sample(i, f"prompt {i}") for i in range(n)))


def test_plan_is_r_a_a_r_with_distinct_reference_halves() -> None:
    cfg = build_config({"test04": {"samples": 64, "design": "counterbalanced", "warmup": 8}})
    specs = _measured_plan(cfg, _dataset(100))
    assert [s.name for s in specs] == [
        "warmup",
        "reference_1",
        "audit_1",
        "audit_2",
        "reference_2",
    ]
    r1, r2 = specs[1], specs[4]
    rows = r1.order.indices(r1.samples, 100) + r2.order.indices(r2.samples, 100)
    assert len(rows) == len(set(rows)) == 64  # the reference never repeats a sample
    assert specs[2].order.kind == specs[3].order.kind == "single"  # repeats back to back
    assert specs[0].order.kind == "salted"


def test_reference_blocks_after_an_audit_block_never_issue_the_audit_sample() -> None:
    # the audit phase may have filled a cache with that row: a later reference query for it
    # would be answered from the cache and hide the cache's effect on the ratio
    cfg = build_config({"test04": {"samples": 64, "design": "counterbalanced", "warmup": 8}})
    dataset = _dataset(70)
    specs = _measured_plan(cfg, dataset)
    audit_row = specs[2].order.index
    r1, r2 = specs[1], specs[4]
    first = r1.order.indices(r1.samples, 70)
    second = r2.order.indices(r2.samples, 70)
    assert audit_row not in second
    assert len(set(first + second)) == 64  # still distinct across the two blocks


def test_too_few_samples_to_split_is_rejected() -> None:
    cfg = build_config({"test04": {"samples": 1, "design": "counterbalanced"}})
    with pytest.raises(InputError, match="counterbalanced"):
        Test04().validate(cfg, _dataset(10))


@pytest.mark.parametrize(("cache", "verdict"), [("none", "PASS"), ("output", "FAIL")])
def test_counterbalanced_audit_end_to_end(
    simulated_audit: SimulatedAudit, cache: str, verdict: str
) -> None:
    run = simulated_audit(
        "test04", mock={"cache": cache}, samples=128, design="counterbalanced", warmup=16
    )
    assert run.result.verdict == verdict
    folder = run.folder
    for block in ("warmup", "reference_1", "audit_1", "audit_2", "reference_2"):
        assert (folder / block / "records.parquet").is_file()
    # pooled phases carry every query of both blocks
    assert run.result.phases["reference"].completed == 128 + 16  # + the control twins
    assert run.result.phases["audit"].completed == 128
    warm = pd.read_parquet(folder / "warmup" / "records.parquet")
    assert (warm["status"] == "ok").all()
    # at temperature 0 the mock's output is a function of the prompt: all-distinct outputs
    # mean every warm-up query carried its own random prefix (nothing a cache could reuse)
    assert warm["output_sha256"].nunique() == len(warm) == 16
    records, _ = artifacts.load_phase(folder / "reference_1")
    assert set(records["sample_index"]).isdisjoint(
        set(artifacts.load_phase(folder / "reference_2")[0]["sample_index"])
    )


def test_counterbalanced_with_min_duration_is_rejected() -> None:
    cfg = build_config(
        {"test04": {"samples": 8, "design": "counterbalanced"}, "load": {"min_duration_s": 5}}
    )
    with pytest.raises(InputError, match="min_duration"):
        Test04().validate(cfg, _dataset(100))


def _measured_plan(cfg: Any, dataset: Any) -> list[Any]:
    """The plan without its control phase (planned after the phases upstream reads)."""
    return [s for s in Test04().plan(cfg, dataset) if s.role != "control"]
