"""End to end: the whole audit (plan, phases, verdict, files) for each cache mode.

Verdicts are tested on a virtual clock through the in-memory transport (exact, instant, never
racing the wall clock); the real-HTTP runs against the mock in its own process assert on the
size of the effect with margins, and on files, never on one lucky verdict.
"""

import statistics
from pathlib import Path

import pandas as pd
import pytest

from auditkit import artifacts
from auditkit.audits import build_config
from auditkit.audits.test04.evidence import Test04Evidence
from auditkit.config import MockConfig
from auditkit.errors import InputError, SetupError
from auditkit.loadgen.fake import FakeTransport, SimulatedSUT
from auditkit.mock import MockProcess
from auditkit.results import AuditResult
from auditkit.runner import run_audit

#: seed 1 is test_validity.py's "no cache" and "output cache" rows (the same defaults)
SEEDS = (0, 2)


def _run(tmp_path: Path, **sections: dict) -> tuple[str, Path]:
    cfg = build_config({"output_dir": str(tmp_path), **sections})
    run = run_audit(cfg)
    return run.result.verdict, run.folder


def _simulated(tmp_path: Path, cache: str, seed: int, **sections: dict) -> str:
    cfg = build_config({"output_dir": str(tmp_path), **sections})
    sut = SimulatedSUT(MockConfig(cache=cache, seed=seed))  # type: ignore[arg-type]
    return run_audit(cfg, transport=FakeTransport(sut)).result.verdict


@pytest.mark.parametrize("scenario", ["offline", "single-stream"])
def test_no_cache_passes_and_output_cache_fails_for_every_seed(
    tmp_path: Path, scenario: str
) -> None:
    """Acceptance on a virtual clock: shipped dataset and defaults, a fresh SUT per run (so no
    run warms the next one's cache), the mock's latency model with each seed's jitter."""
    for seed in SEEDS:
        for cache, expected in (("none", "PASS"), ("output", "FAIL")):
            verdict = _simulated(
                tmp_path / f"{cache}{seed}", cache, seed, load={"scenario": scenario}
            )
            assert verdict == expected, (scenario, cache, seed)


#: the fewest queries whose scores are not mere noise: single-stream's early-stopping p90
#: estimate needs ≥ 122 queries a phase (with 64 the one cache miss of the audit row is the
#: estimate); offline's throughput is a mean, steady with 64
REAL_HTTP_SAMPLES = {"single-stream": 128, "offline": 64}
#: a short single-stream request (~2 ms, as benchmarks/validity.py's rows): only the ratio counts
REAL_HTTP_MOCK: dict[str, dict[str, float]] = {
    "single-stream": {"decode_us_per_token": 60.0, "base_latency_ms": 0.3},
    "offline": {},
}


@pytest.mark.slow
@pytest.mark.timing
@pytest.mark.parametrize("scenario", ["offline", "single-stream"])
def test_real_http_separates_no_cache_from_output_cache(tmp_path: Path, scenario: str) -> None:
    """Over real HTTP with the mock in its own process: the audit/reference score ratio stays
    near 1 without a cache (the median of 3 runs) and far above the limit with one (one run: a
    cache's speed-up, 4.5-5x here, is twice the bound even on a loaded machine). Wide margins: the
    verdict's own correctness is the virtual-clock test's job. The no-cache runs share one mock
    process: each run draws its own salt, so no run finds the previous one's prompts."""
    ratios: dict[str, list[float]] = {"none": [], "output": []}
    for cache, runs in (("none", 3), ("output", 1)):
        with MockProcess(MockConfig(cache=cache, **REAL_HTTP_MOCK[scenario])) as mock:  # type: ignore[arg-type]
            for i in range(runs):
                cfg = build_config(
                    {
                        "output_dir": str(tmp_path / f"{cache}{i}"),
                        "endpoint": {"url": mock.url},
                        # the ratio is under test here, not the client guard (a loaded
                        # machine's event loop can run late enough to trip it)
                        "load": {"scenario": scenario, "client_guard": False},
                        # no warm-up: the mock process is shared, so only the first run
                        # meets a cold server, and the median of 3 sets that run aside
                        "test04": {
                            "samples": REAL_HTTP_SAMPLES[scenario],
                            "allow_small": True,
                            "rounds": 0,
                            "warmup": 0,
                            # the default alternating blocks, not reference-then-audit: a
                            # shared CI machine's load came and went between a sequential run's
                            # two phases (honest single-stream ratios of 1.34-1.50, 3 of 3)
                        },
                    }
                )
                result = run_audit(cfg).result
                assert result.ratio is not None, result.reason
                ratios[cache].append(_separation(result, scenario))
    assert statistics.median(ratios["none"]) < 1.25, ratios
    assert statistics.median(ratios["output"]) > 2.0, ratios


def _separation(result: AuditResult[Test04Evidence], scenario: str) -> float:
    """How much faster the audit phase ran: offline, the score ratio (a throughput: every query
    counts); single-stream, the median latency's speed-up. Single-stream's score is a p90
    estimate set by the ~6 slowest of 128 queries, so a burst of load elsewhere on the machine
    decides it (honest ratios up to 1.5 with two timing tests side by side beside a CPU hog);
    the median is what a cache moves and a burst does not."""
    if scenario == "offline":
        assert result.ratio is not None
        return result.ratio
    assert result.evidence is not None and result.evidence.latency.p50_speedup is not None
    return result.evidence.latency.p50_speedup


@pytest.mark.slow
def test_artifacts_are_complete_and_consistent(tmp_path: Path) -> None:
    verdict, folder = _run(tmp_path, test04={"samples": 64, "rounds": 0, "design": "sequential"})
    assert verdict in ("PASS", "FAIL", "INCONCLUSIVE")
    for name in ("audit_result.json", "verify_performance.txt", "config.yaml"):
        assert (folder / name).is_file()
    for phase, queries in (("reference", 64 + 8), ("audit", 64)):  # + the control twins
        records, summary = artifacts.load_phase(folder / phase)
        assert len(records) == summary.requested == queries
        assert (records["status"] == "ok").all()
        assert records["latency_ns"].min() > 0
        assert (records["completed_ns"] >= records["sent_ns"]).all()
    ref = pd.read_parquet(folder / "reference" / "records.parquet")
    aud = pd.read_parquet(folder / "audit" / "records.parquet")
    assert ref["sample_index"].nunique() == 64
    assert set(aud["sample_index"]) == {3}
    result = artifacts.load_result(folder)
    # the MLPerf file carries upstream's rule
    assert f"TEST {result.upstream_verdict}" in (folder / "verify_performance.txt").read_text()
    assert result.phases["reference"].score == pytest.approx(result.reference_score)


def test_prefix_cache_drops_ttft_only(tmp_path: Path) -> None:
    """Prefix caching skips prefill for the repeated prompt: TTFT falls, decode does not."""
    cfg = build_config(
        {
            "output_dir": str(tmp_path),
            "endpoint": {"stream": True, "api": "openai-chat"},
            "load": {"scenario": "single-stream"},
            # one reference and one audit phase to read (not alternating blocks)
            "test04": {"samples": 128, "design": "sequential"},
        }
    )
    sut = SimulatedSUT(MockConfig(cache="prefix", prefill_us_per_token=100.0))
    run = run_audit(cfg, transport=FakeTransport(sut))
    phases = {p.name: p for p in run.phases}
    ref, aud = phases["reference"].summary, phases["audit"].summary
    assert ref.ttft and aud.ttft and ref.ttft.p50_ns and aud.ttft.p50_ns
    assert aud.ttft.p50_ns < 0.7 * ref.ttft.p50_ns
    aud_records = phases["audit"].records
    assert (aud_records["cached_tokens"].iloc[1:] > 0).all()
    # the verdict follows upstream's score; the TTFT split is reported as evidence
    assert run.result.evidence.latency.ttft_p50_speedup > 1.3


def test_validation_happens_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="sample_index"):
        _run(tmp_path, test04={"samples": 8, "sample_index": 5000})
    assert not (tmp_path / "TEST04").exists()


def test_unreachable_endpoint_is_a_setup_error(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="unreachable"):
        _run(tmp_path, endpoint={"url": "http://127.0.0.1:9", "connect_timeout_s": 1})
    assert not (tmp_path / "TEST04" / "reference").exists()


@pytest.mark.slow
def test_failed_queries_make_the_audit_invalid(tmp_path: Path) -> None:
    verdict, folder = _run(tmp_path, test04={"samples": 64}, mock={"faults": {"error_rate": 0.2}})
    assert verdict == "INVALID"
    # the warm-up already meets the failures: the run stops there, its records kept
    records, summary = artifacts.load_phase(folder / "warmup")
    assert (records["status"] == "http_error").sum() == summary.failed > 0
    assert "TEST PASS" not in (folder / "verify_performance.txt").read_text()


def test_client_guard_judges_each_phase_by_its_own_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TEST01 in an offline run: its accuracy phase runs one query at a time, so the offline
    ceiling (here an absurd 1 req/s, which any offline phase exceeds) never judges it; the
    performance phase is judged by the ceiling calibrated at its own concurrency."""
    from auditkit import runner
    from auditkit.endpoints import make_adapter
    from auditkit.loadgen import HttpTarget

    calibrated: list[tuple[int, float, bool, int]] = []

    def ceiling(
        concurrency: int,
        delay_ms: float = 0.0,
        http_client: str = "h1",
        stream: bool = False,
        tokens: int = 1,
    ) -> float:
        calibrated.append((concurrency, delay_ms, stream, tokens))
        return 1.0

    monkeypatch.setattr(runner, "client_ceiling", ceiling)
    cfg = build_config(
        {
            "output_dir": str(tmp_path),
            "load": {"scenario": "offline", "max_concurrency": 8, "client_guard": True},
            "test01": {"samples": 16, "log_samples": 4, "warmup": 0},
        }
    )
    prepared = runner.prepare(cfg, "test01")
    http = HttpTarget.from_config(cfg.endpoint, runner.IN_MEMORY_URL, None)
    guard = runner.PhaseRunner(
        prepared,
        make_adapter(cfg.endpoint, cfg.mock.model),
        http,
        FakeTransport(SimulatedSUT(cfg.mock)),
        tmp_path,
        None,
        lambda _msg: None,
    )
    guard.guard = True  # an in-memory transport turns the guard off; judged here all the same
    specs = {s.role: s for s in prepared.specs}
    assert specs["accuracy"].load.scenario == "single-stream"
    assert guard.ceiling(specs["accuracy"]) is None
    assert guard.ceiling(specs["performance"]) == 1.0
    # calibrated as the phase reads its answers: streamed (the OpenAI default), 32 chunks each
    assert calibrated == [(8, 0.0, True, 32)]
    accuracy = guard._one(specs["accuracy"])
    assert accuracy.summary.client_bound is None
    assert accuracy.summary.client_ceiling_qps is None
    performance = guard._one(specs["performance"])
    assert performance.summary.client_bound is not None
    assert calibrated == [(8, 0.0, True, 32)]  # calibrated once per load pattern


def test_a_server_that_ignores_stream_is_judged_by_the_whole_answer_ceiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default streams; a server that answers whole JSON bodies anyway cost the client a
    non-streamed answer each, so the guard judges the phase (and the next) by that ceiling."""
    from auditkit import runner
    from auditkit.endpoints import make_adapter
    from auditkit.loadgen import HttpTarget
    from auditkit.loadgen.fake import FakeRequest, FakeResponse

    calibrated: list[bool] = []

    def ceiling(
        concurrency: int,
        delay_ms: float = 0.0,
        http_client: str = "h1",
        stream: bool = False,
        tokens: int = 1,
    ) -> float:
        calibrated.append(stream)
        return 1.0 if stream else 1e9  # streamed: any phase is bound; whole: none is

    def whole(request: FakeRequest) -> FakeResponse:
        if request.method == "GET":
            return FakeResponse.json({"data": []})
        return FakeResponse.json({"choices": [{"index": 0, "text": " ok"}], "usage": {}})

    monkeypatch.setattr(runner, "client_ceiling", ceiling)
    cfg = build_config({"output_dir": str(tmp_path), "test04": {"samples": 8, "warmup": 0}})
    prepared = runner.prepare(cfg, "test04")
    http = HttpTarget.from_config(cfg.endpoint, runner.IN_MEMORY_URL, None)
    adapter = make_adapter(cfg.endpoint, "m")
    assert adapter.stream  # the default
    guard = runner.PhaseRunner(
        prepared, adapter, http, FakeTransport(whole), tmp_path, None, lambda _msg: None
    )
    guard.guard = True
    first = guard._one(prepared.specs[0])
    assert calibrated == [True, False]
    assert first.summary.client_bound is None and first.summary.client_ceiling_qps == 1e9
    assert guard.ceiling(prepared.specs[-1]) == 1e9  # later phases too
