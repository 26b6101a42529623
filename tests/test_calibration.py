"""The client-saturation guard: firing on a throttled client, silent on a normal run."""

from pathlib import Path

import pytest

from auditkit.audits import build_config
from auditkit.calibration import NullServer, client_ceiling, streamed_response
from auditkit.data import Dataset, Sample, SampleOrder
from auditkit.endpoints.openai import CompletionsAdapter
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.plan import LoadPattern, RunSpec
from auditkit.runner import run_audit

pytestmark = [pytest.mark.slow, pytest.mark.timing]


def test_null_server_ceiling_is_high() -> None:
    with NullServer() as null:
        assert null.url.startswith("http://127.0.0.1:")
    assert client_ceiling(16) > 1000


def test_streamed_null_answers_parse_as_a_stream_of_that_many_tokens() -> None:
    """The streamed calibration reads what a streamed phase reads: chunked SSE, one content
    chunk per token, usage and [DONE]; a first token is timed."""
    dataset = Dataset("d", (Sample(0, "a b"),))
    spec = RunSpec("s", SampleOrder.with_replacement(0), 8, LoadPattern("offline", 4))
    with NullServer(response=streamed_response(5)) as null:
        phase = run_phase(
            spec, dataset, CompletionsAdapter("m", 5, 0.0, True), HttpTarget(null.url)
        )
    records = phase.records
    assert (records["status"] == "ok").all(), records["error"].tolist()
    assert (records["output_tokens"] == 5).all()
    assert records["first_token_ns"].notna().all()


def _audit(tmp_path: Path, guard: bool) -> tuple[str, str]:
    cfg = build_config(
        {
            "output_dir": str(tmp_path),
            # a client far slower than the SUT (at most 100 requests/s against the mock's ~375):
            # both phases measure the client, whatever else the machine is doing
            "load": {"client_delay_ms": 10.0, "client_guard": guard, "max_concurrency": 8},
            "test04": {"samples": 64, "design": "sequential", "warmup": 0},
            "mock": {"cache": "output"},
        }
    )
    result = run_audit(cfg).result
    # the upstream rule is what a throttled client fools (auditkit's own decision may also
    # just say it cannot tell)
    return str(result.upstream_verdict or result.verdict), result.reason


def test_throttled_client_would_hide_a_cache_and_the_guard_says_invalid(tmp_path: Path) -> None:
    unguarded, _ = _audit(tmp_path / "off", guard=False)
    assert unguarded == "PASS"  # the false PASS the guard exists to prevent
    guarded, reason = _audit(tmp_path / "on", guard=True)
    assert guarded == "INVALID"
    assert "client" in reason


def test_guard_is_silent_when_the_sut_bounds_the_phase(tmp_path: Path) -> None:
    run = run_audit(build_config({"output_dir": str(tmp_path), "test04": {"samples": 64}}))
    # the verdict's correctness is the virtual-clock tests' job; here: the guard stays quiet
    assert run.result.verdict != "INVALID", run.result.reason
    assert all(p.summary.client_bound is None for p in run.phases)
    assert run.phases[0].summary.client_ceiling_qps is not None
