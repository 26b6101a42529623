"""The --mlperf-run-rules preset: floors per scenario, applied before validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditkit import run_rules
from auditkit.audits import build_config
from auditkit.audits.test04 import Test04
from auditkit.cli import build_parser, run_overrides
from auditkit.data import Dataset, Sample
from auditkit.errors import InputError
from auditkit.runner import prepare


@pytest.mark.parametrize(
    ("load", "queries", "samples"),
    [
        ({"scenario": "single-stream"}, 64, 64),
        ({"scenario": "multi-stream"}, 662, 662 * 8),
        ({"scenario": "multi-stream", "samples_per_query": 4}, 662, 662 * 4),
        ({"scenario": "server", "target_qps": 5.0}, 459, 459),
        ({"scenario": "offline"}, 24576, 24576),
        ({"scenario": "offline", "target_qps": 100.0}, 66000, 66000),  # 1.1 × 600 × 100
    ],
)
def test_minimum_query_counts(load: dict, queries: int, samples: int) -> None:
    cfg = build_config({"load": {**load, "run_rules": True}})
    assert run_rules.min_queries(cfg.load) == queries
    assert run_rules.min_samples(cfg.load) == samples
    applied = Test04().with_run_rules(run_rules.apply(cfg))
    assert applied.load.min_duration_s == 600.0
    t4 = Test04().settings(applied)
    assert t4.samples == max(256, samples)
    assert t4.effective_audit_samples == max(256, samples)


def test_off_means_unchanged_and_never_lowers() -> None:
    cfg = build_config({"load": {"scenario": "single-stream"}})
    assert run_rules.apply(cfg) is cfg
    big = build_config(
        {"load": {"run_rules": True, "min_duration_s": 900}, "test04": {"samples": 30000}}
    )
    applied = Test04().with_run_rules(run_rules.apply(big))
    assert applied.load.min_duration_s == 900 and Test04().settings(applied).samples == 30000


def test_small_dataset_is_rejected_before_running(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(f'{{"prompt": "p {i}"}}\n' for i in range(100)))
    cfg = build_config({"dataset": {"path": str(data)}, "load": {"run_rules": True}})
    with pytest.raises(InputError, match="24576 samples per phase"):
        prepare(cfg)


def test_server_needs_target_latency() -> None:
    cfg = run_rules.apply(
        build_config({"load": {"scenario": "server", "target_qps": 1, "run_rules": True}})
    )
    ds = Dataset("mem", tuple(Sample(i, f"p {i}") for i in range(1000)))
    with pytest.raises(InputError, match="target_latency_ms"):
        Test04().validate(cfg, ds)


def test_cli_flag_sets_the_config_field() -> None:
    args = build_parser().parse_args(["run", "test04", "--mlperf-run-rules", "--min-duration", "5"])
    assert run_overrides(args)["load"] == {"min_duration_s": 5.0, "run_rules": True}
    plain = build_parser().parse_args(["run", "test04"])
    assert "load" not in run_overrides(plain)


def test_submission_grade_only_under_the_rules() -> None:
    load = build_config({"load": {"scenario": "single-stream", "run_rules": True}}).load
    assert run_rules.shortfalls(load, 64, 600.0) == []
    assert run_rules.shortfalls(load, 63, 600.0) == ["63 samples < 64 required"]
    quick = build_config({"load": {"scenario": "single-stream"}}).load
    assert "run without --mlperf-run-rules" in run_rules.shortfalls(quick, 64, 600.0)
