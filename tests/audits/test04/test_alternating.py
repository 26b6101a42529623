"""The alternating design (R A, A R, … block pairs) and its pair bootstrap: a busy spell of the
client or the server during one phase's block must widen the interval, never make a FAIL."""

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from auditkit.audits import build_config
from auditkit.audits.kit.designs import pool_blocks
from auditkit.audits.kit.ratio import statistical_view
from auditkit.audits.test04 import ALTERNATING_PAIRS, Test04, effective_design
from auditkit.audits.test04.decision import decide_with_certainty
from auditkit.data import Dataset, Sample
from auditkit.errors import InputError
from tests.audits.conftest import SimulatedAudit


def _dataset(n: int) -> Dataset:
    return Dataset("mem", tuple(Sample(i, f"prompt {i}") for i in range(n)))


def test_auto_alternates_untimed_runs_that_have_the_rows() -> None:
    t4 = {"samples": 256}
    for load in ({"scenario": "single-stream"}, {"scenario": "offline"},
                 {"scenario": "server", "target_qps": 50}):  # fmt: skip
        cfg = build_config({"load": load, "test04": t4})
        assert effective_design(Test04().settings(cfg), cfg, 1024) == "alternating"
    timed = build_config({"load": {"scenario": "single-stream", "min_duration_s": 5}})
    assert effective_design(Test04().settings(timed), timed) == "sequential"
    # a reference as large as the dataset cannot leave the audit row out of its blocks
    whole = build_config({"test04": {"samples": 1024}})
    assert effective_design(Test04().settings(whole), whole, 1024) == "sequential"
    Test04().validate(whole, _dataset(1024))  # auto falls back: no error
    too_few = build_config({"test04": {"samples": 31}})
    assert effective_design(Test04().settings(too_few), too_few, 1024) == "sequential"
    # config.yaml records the concrete design
    resolved = Test04().resolve(
        build_config({"load": {"scenario": "single-stream"}}), _dataset(1024)
    )
    assert Test04().settings(resolved).design == "alternating"


def test_plan_alternates_pairs_and_never_reuses_the_audit_row() -> None:
    cfg = build_config({"load": {"scenario": "single-stream"}, "test04": {"samples": 256}})
    dataset = _dataset(300)
    specs = _measured_plan(cfg, dataset)
    names = [s.name for s in specs[1:]]  # after the warm-up
    assert names[:4] == ["reference_1", "audit_1", "audit_2", "reference_2"]
    assert len(names) == 2 * ALTERNATING_PAIRS
    references = [s for s in specs if s.name.startswith("reference_")]
    rows = [r for s in references for r in s.order.indices(s.samples, len(dataset))]
    audit_row = specs[2].order.index
    assert len(rows) == len(set(rows)) == 256
    assert audit_row not in rows
    assert sum(s.twins for s in references) == Test04().settings(cfg).twins()


@pytest.mark.parametrize("samples", [64, 256])
def test_offline_audit_blocks_are_as_large_as_their_reference_blocks(samples: int) -> None:
    """A throughput block's score falls with a lone straggler at its end: a reference block
    with its control twins on top of an audit block's queries made an honest server FAIL."""
    cfg = build_config({"test04": {"samples": samples, "allow_small": True}})
    specs = _measured_plan(Test04().resolve(cfg, _dataset(1024)), _dataset(1024))
    size = {s.name: s.samples + s.twins for s in specs[1:]}
    assert len(size) == 2 * ALTERNATING_PAIRS
    for i in range(1, ALTERNATING_PAIRS + 1):
        assert size[f"audit_{i}"] == size[f"reference_{i}"]


def test_honest_offline_server_passes_on_blocks(simulated_audit: SimulatedAudit) -> None:
    run = simulated_audit(
        "test04", mock={"seed": 2}, samples=64, allow_small=True, rounds=0, warmup=0
    )
    assert {"reference_1", "audit_8"} <= {p.name for p in run.phases}  # the blocks ran
    assert run.result.verdict == "PASS", run.result.reason
    assert run.result.ratio is not None and abs(run.result.ratio - 1) < 0.05


def _frame(latencies_ms: list[np.ndarray]) -> pd.DataFrame:
    """Pooled single-stream records: one block per array, laid end to end."""
    rows, clock, qid = [], 0, 0
    for block, lat in enumerate(latencies_ms, start=1):
        for ms in lat:
            ns = int(ms * 1e6)
            rows.append((qid, qid, clock, clock, clock + ns, ns, "ok", block, "main"))
            clock += ns
            qid += 1
    return pd.DataFrame(
        rows,
        columns=[
            "query_id",
            "sample_index",
            "scheduled_ns",
            "sent_ns",
            "completed_ns",
            "latency_ns",
            "status",
            "block",
            "variant",
        ],
    )


def test_a_busy_spell_in_one_phase_widens_the_interval_instead_of_failing() -> None:
    rng = np.random.default_rng(1)
    pairs = ALTERNATING_PAIRS

    def honest() -> np.ndarray:
        return rng.normal(5.0, 0.3, 32).clip(1)

    ref = [honest() for _ in range(pairs)]
    aud = [honest() for _ in range(pairs)]
    # the client machine got busy while three reference blocks ran: they are 2× slower
    for i in (1, 2, 5):
        ref[i] = ref[i] * 2
    reference, audit = _frame(ref), _frame(aud)
    paired = statistical_view(reference, audit, "single-stream", 0.2, confidence=0.99)
    assert paired is not None and "pairs" in paired.method
    assert paired.verdict != "FAIL"
    # the same queries read as one block each (the sequential design's view) look cached
    one_block = statistical_view(
        reference.drop(columns="block"), audit.drop(columns="block"), "single-stream", 0.2
    )
    assert one_block is not None and one_block.verdict == "FAIL"
    decision = decide_with_certainty(
        reference,
        audit,
        scenario="single-stream",
        threshold=0.2,
        upstream_verdict="FAIL",
        upstream_reason="",
        look=1,
        looks=4,
        salted=True,
    )
    assert decision.verdict != "FAIL"


def test_a_cache_still_fails_in_every_pair() -> None:
    rng = np.random.default_rng(2)
    ref = [rng.normal(5.0, 0.3, 32) for _ in range(ALTERNATING_PAIRS)]
    aud = [rng.normal(1.0, 0.1, 32) for _ in range(ALTERNATING_PAIRS)]
    view = statistical_view(_frame(ref), _frame(aud), "single-stream", 0.2, confidence=0.99)
    assert view is not None and view.verdict == "FAIL"


def test_alternating_audit_end_to_end_on_a_virtual_clock(
    simulated_audit: SimulatedAudit, tmp_path: Path
) -> None:
    for cache, verdict in (("none", "PASS"), ("output", "FAIL")):
        run = simulated_audit(
            "test04",
            mock={"cache": cache},
            out=tmp_path / cache,
            load={"scenario": "single-stream"},
            samples=256,
        )
        assert run.result.verdict == verdict, run.result.reason
        evidence = run.result.evidence
        assert evidence is not None and evidence.decision is not None
        assert evidence.decision.interval is not None
        assert "pairs" in evidence.decision.interval.method
        assert (run.folder / f"reference_{ALTERNATING_PAIRS}" / "records.parquet").is_file()


def test_a_reference_as_large_as_the_dataset_is_refused_in_blocks() -> None:
    # the blocks never issue the audit row: 256 distinct rows need 257 in the dataset
    t4 = {"samples": 256, "design": "alternating"}
    cfg = build_config({"load": {"scenario": "single-stream"}, "test04": t4})
    with pytest.raises(InputError, match="--design sequential"):
        Test04().validate(cfg, _dataset(256))
    Test04().validate(cfg, _dataset(257))


def test_pooling_an_empty_block_keeps_query_ids_whole(simulated_audit: SimulatedAudit) -> None:
    run = simulated_audit("test04", load={"scenario": "single-stream"}, samples=256, rounds=0)
    blocks = [p for p in run.phases if p.spec.role == "reference"]
    # every query of the second block failed: nothing of it reached the records
    blocks[1] = dataclasses.replace(blocks[1], source=blocks[1].records.iloc[0:0])
    pooled = pool_blocks("reference", blocks).records
    assert pooled["query_id"].notna().all()
    assert pooled["query_id"].is_unique


def _measured_plan(cfg: Any, dataset: Any) -> list[Any]:
    """The plan without its control phase (planned after the phases upstream reads)."""
    return [s for s in Test04().plan(cfg, dataset) if s.role != "control"]
