"""TEST04 planning, validation and the pure verdict (numbers alone, no endpoint)."""

import dataclasses
from typing import Any

import pytest

from auditkit.audits import REGISTRY, build_config, get_test
from auditkit.audits.test04 import AUDIT, REFERENCE, WARMUP, Test04
from auditkit.config import DatasetConfig
from auditkit.data import Dataset, Sample, load_dataset
from auditkit.errors import InputError
from auditkit.plan import LoadPattern, Role, RunSpec
from auditkit.results import LatencyStats, PhaseResult, PhaseSummary, records_frame


def _dataset(n: int) -> Dataset:
    return Dataset("mem", tuple(Sample(i, f"prompt {i}") for i in range(n)))


def _phase(name: Role, score: float | None, scenario: str = "offline", **kw: object) -> PhaseResult:
    summary = PhaseSummary(
        name=name,
        scenario=scenario,
        order="x",
        requested=100,
        issued=100,
        completed=100,
        failed=0,
        cancelled=0,
        duration_ns=1,
        samples_per_second=score or 0.0,
        queries=100,
        latency=LatencyStats(count=100, p50_ns=1000, p90_ns=1000, p99_ns=1000),
        score=score,
        score_name="s",
        complete=True,
        loadgen_valid=True,
        **kw,  # type: ignore[arg-type]
    )
    spec = RunSpec(name, None, 100, LoadPattern(scenario), role=name)  # type: ignore[arg-type]
    return PhaseResult(spec, records_frame([]), summary)


def test_registry_is_the_only_wiring() -> None:
    assert isinstance(get_test("TEST04"), Test04)
    assert "test04" in REGISTRY
    with pytest.raises(InputError, match="unknown audit test"):
        get_test("test99")


def test_plan_warmup_then_reference_distinct_then_audit_single() -> None:
    cfg = Test04().resolve(
        build_config(
            {
                "test04": {
                    "samples": 64,
                    "audit_samples": 32,
                    "sample_index": 5,
                    "design": "sequential",
                }
            }
        ),
        _dataset(100),
    )
    warm, ref, aud = _measured_plan(cfg, _dataset(100))
    assert warm.name == WARMUP and warm.order.kind == "salted" and warm.warmup is not None
    assert warm.warmup.min_queries == 64  # 2 × the default 32 in flight
    assert (ref.name, ref.samples, ref.order.kind) == (REFERENCE, 64, "without_replacement")
    assert (aud.name, aud.samples, aud.order.kind, aud.order.index) == (AUDIT, 32, "single", 5)
    # one run nonce on every measured prompt; the control twins carry another
    assert ref.salt == aud.salt and ref.salt is not None and ref.salt.startswith("[run ")
    assert ref.twins == 8 and ref.twin_salt is not None and ref.twin_salt != ref.salt


def test_no_salt_and_no_warmup() -> None:
    t4 = {"samples": 64, "salt": False, "warmup": 0, "design": "sequential"}
    cfg = build_config({"test04": t4})
    ref, aud = _measured_plan(Test04().resolve(cfg, _dataset(100)), _dataset(100))
    assert ref.salt is None and aud.salt is None and ref.twins == 8


def test_each_run_draws_its_own_salt_unless_given() -> None:
    cfg = build_config({})
    first = Test04().settings(Test04().resolve(cfg, _dataset(100))).run_salt
    second = Test04().settings(Test04().resolve(cfg, _dataset(100))).run_salt
    assert first and second and first != second
    fixed = build_config({"test04": {"run_salt": "abc123"}})
    assert Test04().settings(Test04().resolve(fixed, _dataset(100))).run_salt == "abc123"


def test_too_few_single_stream_queries_need_allow_small() -> None:
    cfg = build_config({"load": {"scenario": "single-stream"}, "test04": {"samples": 64}})
    with pytest.raises(InputError, match=r"the slowest query.*at least 122 queries"):
        Test04().validate(cfg, _dataset(100))
    small = build_config(
        {"load": {"scenario": "single-stream"}, "test04": {"samples": 64, "allow_small": True}}
    )
    Test04().validate(small, _dataset(100))


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"test04": {"samples": 200}}, "exceeds the dataset's 100 rows"),
        ({"test04": {"samples": 10, "sample_index": 100}}, "sample_index (100) is out of range"),
        (
            {"test04": {"samples": 10}, "load": {"scenario": "multi-stream"}},
            "multiple of load.samples_per_query",
        ),
    ],
)
def test_validate_rejects_before_running(overrides: dict, needle: str) -> None:
    with pytest.raises(InputError) as info:
        Test04().validate(build_config(overrides), _dataset(100))
    assert needle in info.value.one_line()


def test_median_sample_index_resolves_to_a_typical_row() -> None:
    cfg = build_config({"test04": {"sample_index": "median", "samples": 8}})
    ds = load_dataset(DatasetConfig())
    *_, aud = _measured_plan(cfg, ds)
    assert 0 <= aud.order.index < len(ds)


@pytest.mark.parametrize(
    ("ref", "aud", "verdict"),
    [
        (100.0, 109.9, "PASS"),
        # upstream compares floats: 100 * 1.1 == 110.00000000000001, so 110.0 passes there too
        (100.0, 110.0, "PASS"),
        (100.0, 110.1, "FAIL"),
        (100.0, 250.0, "FAIL"),
        (100.0, 60.0, "PASS"),
    ],
)
def test_offline_rule_is_strict(ref: float, aud: float, verdict: str) -> None:
    result = Test04().verify([_phase(REFERENCE, ref), _phase(AUDIT, aud)], build_config({}))
    assert result.upstream_verdict == verdict
    assert result.threshold == pytest.approx(0.10)
    assert "(1 + 0.1)" in result.rule


def test_single_stream_upstream_threshold_is_020() -> None:
    cfg = build_config({"load": {"scenario": "single-stream"}})
    ref = _phase(REFERENCE, 1000.0, "single-stream", early_stopping_latency_ns=1_000_000)
    aud = _phase(AUDIT, 1150.0, "single-stream", early_stopping_latency_ns=869_565)
    result = Test04().verify([ref, aud], cfg)
    assert result.threshold == pytest.approx(0.20) and result.upstream_verdict == "PASS"
    assert result.threshold_source.startswith("upstream")


def test_intended_threshold_mode_uses_latency() -> None:
    cfg = build_config(
        {"load": {"scenario": "single-stream"}, "test04": {"threshold_mode": "intended"}}
    )
    ref = _phase(REFERENCE, 1000.0, "single-stream", early_stopping_latency_ns=1_000_000)
    aud = _phase(AUDIT, 1150.0, "single-stream", early_stopping_latency_ns=869_565)
    result = Test04().verify([ref, aud], cfg)
    assert result.threshold == pytest.approx(0.10) and result.upstream_verdict == "FAIL"


def test_user_threshold_overrides() -> None:
    cfg = build_config({"test04": {"threshold": 0.5}})
    result = Test04().verify([_phase(REFERENCE, 100.0), _phase(AUDIT, 140.0)], cfg)
    assert result.upstream_verdict == "PASS" and result.threshold_source == "user"


def test_incomplete_phase_is_invalid_never_pass_or_fail() -> None:
    bad = _phase(AUDIT, 50.0)
    bad = dataclasses.replace(
        bad,
        summary=bad.summary.model_copy(
            update={"complete": False, "invalid_reasons": ("3 failed queries (3 http_error)",)}
        ),
    )
    result = Test04().verify([_phase(REFERENCE, 100.0), bad], build_config({}))
    assert result.upstream_verdict == "INVALID"
    assert "3 failed queries" in result.reason


def test_zero_reference_score_is_invalid_not_a_crash() -> None:
    result = Test04().verify([_phase(REFERENCE, 0.0), _phase(AUDIT, 5.0)], build_config({}))
    assert result.upstream_verdict == "INVALID" and "score is 0" in result.reason


def _measured_plan(cfg: Any, dataset: Any) -> list[Any]:
    """The plan without its control phase (planned after the phases upstream reads)."""
    return [s for s in Test04().plan(cfg, dataset) if s.role != "control"]
