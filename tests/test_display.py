"""display.py: the verdict panel shows verdict, scores, threshold, formula, reason; the table."""

from __future__ import annotations

import re

import pytest

from auditkit import display
from auditkit.results import AuditResult, LatencyStats, PhaseSummary


def summary(name: str, sps: float, p50_ms: float) -> PhaseSummary:
    ns = int(p50_ms * 1e6)
    return PhaseSummary(
        name=name, scenario="offline", order="x", requested=10, issued=10, completed=10,
        failed=0, cancelled=0, duration_ns=2_000_000_000, samples_per_second=sps, queries=10,
        latency=LatencyStats(count=10, p50_ns=ns, p90_ns=ns * 2, p99_ns=ns * 3),
        score=sps, score_name="Samples per second", complete=True, loadgen_valid=True,
    )  # fmt: skip


def result(verdict: str, ref: float | None = 100.0, aud: float | None = 150.0) -> AuditResult:
    return AuditResult(
        test="TEST04", verdict=verdict, reason="audit score <is> high & cached",  # type: ignore[arg-type]
        scenario="offline", score_name="Samples per second", reference_score=ref,
        audit_score=aud, ratio=(aud / ref) if ref and aud else None, threshold=0.1,
        threshold_source="default", rule="PASS iff …", notes=("a note",),
        phases={"reference": summary("reference", 100, 10), "audit": summary("audit", 150, 2)},
    )  # fmt: skip


@pytest.mark.parametrize("verdict", ["PASS", "FAIL", "INVALID"])
def test_panel_shows_everything(verdict: str) -> None:
    markup = display.verdict_panel(result(verdict))._repr_html_()
    assert f">{verdict}</span>" in markup
    assert "100" in markup and "150" in markup  # both scores
    assert "(1 + 0.1)" in markup and "110" in markup  # threshold and the limit it gives
    assert "audit_score &lt; reference_score × (1 + threshold)" in markup
    assert "false" in markup  # 150 < 110 does not hold
    assert "audit score &lt;is&gt; high &amp; cached" in markup  # reason, escaped
    assert not re.search(r"(src|href)\s*=\s*['\"]https?://", markup)
    assert "<script" not in markup


def test_panel_without_scores() -> None:
    markup = display.verdict_html(result("INVALID", None, None))
    assert "not evaluated" in markup


def test_summary_table_in_ms() -> None:
    table = display.summary_table(result("PASS"))
    assert list(table.index) == ["reference", "audit"]
    assert table.loc["audit", "p50 latency (ms)"] == pytest.approx(2.0)
    assert table.loc["reference", "throughput (samples/s)"] == pytest.approx(100.0)
    assert display.summary_table([]).empty


def test_panel_shows_the_audits_own_evidence_rows() -> None:
    from auditkit.audits import get_test
    from auditkit.display import verdict_html

    model = get_test("test04").result_model
    result = model.model_validate(
        {
            "test": "TEST04",
            "verdict": "FAIL",
            "reason": "r",
            "scenario": "offline",
            "reference_score": 100.0,
            "audit_score": 200.0,
            "threshold": 0.1,
            "evidence": {
                "latency": {"speedup_flag_limit": 1.5, "latency_speedup_flag": True},
                "decision": {
                    "verdict": "FAIL", "reason": "r", "look": 1, "looks": 4,
                    "alpha_per_look": 0.0125,
                    "interval": {
                        "verdict": "FAIL", "ratio": 2.0, "ci_low": 1.8, "ci_high": 2.2,
                        "confidence": 0.975, "limit": 1.1, "blocks": [4, 4],
                        "queries_to_settle": None, "mannwhitney_p": 1e-9,
                        "service_median_ratio": 2.0, "method": "m",
                    },
                },
                "fingerprint": {"kind": "response cache", "evidence": ["decode collapsed"]},
            },
        }
    )  # fmt: skip
    html_text = verdict_html(result)
    assert "decision" in html_text and "[1.8, 2.2]" in html_text
    assert "response cache" in html_text and "decode collapsed" in html_text


def test_next_step_comes_from_the_audit_that_gave_the_verdict() -> None:
    from auditkit.audits import get_test
    from auditkit.audits.test06 import Test06Evidence
    from auditkit.audits.test09 import Test09Evidence

    t6 = Test06Evidence(
        samples=4, first_token_pass=False, eos_pass=True, sample_length_pass=True,
        finish_reason_pass=True, count_source="logprobs", first_token_failures=2,
        eos_failures=0, length_failures=0, finish_reason_failures=0,
    )  # fmt: skip
    t9 = Test09Evidence(
        samples=4, mean_output_tokens=50.0, min_tokens=40, max_tokens=60, std_tokens=5.0,
        accuracy_mean_tokens=100.0, min_bound=90.0, max_bound=110.0, bounds_source="x",
        shortened_samples=4,
    )  # fmt: skip
    for key, evidence, words in (
        ("test06", t6, "first streamed chunk"),
        ("test09", t9, "shorter under load"),
    ):
        model = get_test(key).result_model
        failed = model(
            test=key.upper(), verdict="FAIL", reason="x", scenario="offline", evidence=evidence
        )
        step = display.next_step(failed)
        assert words in step and "cache" not in step, step
        assert "cache" not in display.next_step(failed.model_copy(update={"evidence": None}))
    assert "find the cache that answered" in display.next_step(result("FAIL"))
