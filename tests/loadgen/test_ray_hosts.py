"""A phase spread over several hosts on Ray (loadgen/ray_hosts.py): the clock-offset estimate,
its bound, the placement and leases, the stitching of each host's records into the phase's
part files, the one-line error without Ray, and one phase over a local two-node Ray cluster
against the mock in its own process."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditkit import artifacts
from auditkit.cli import main
from auditkit.config import MockConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.endpoints.openai import CompletionsAdapter
from auditkit.errors import EXIT_SETUP, SetupError
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.loadgen.clock_offsets import ClockSample, check_offsets, estimate_offset
from auditkit.loadgen.ray_hosts import (
    import_ray,
    lease_size,
    measure_offset,
    place,
    stitch_parts,
)
from auditkit.mock import MockProcess
from auditkit.plan import LoadPattern, RunSpec
from auditkit.records_io import read_parts, rows_to_batch, to_frame
from auditkit.results import RECORD_COLUMNS

MS = 1_000_000


def test_offset_comes_from_the_min_rtt_sample() -> None:
    # the host's clock is 5 ms ahead; queueing delays the replies unevenly
    samples = [
        ClockSample(0, 5 * MS + 3 * MS, 4 * MS),  # rtt 4 ms, host read late: offset +6 ms
        ClockSample(10 * MS, 15 * MS + 150_000, 10 * MS + 300_000),  # rtt 0.3 ms
        ClockSample(20 * MS, 25 * MS + 100, 22 * MS),  # rtt 2 ms, read early
    ]
    off = estimate_offset(samples)
    assert off.rtt_ns == 300_000 and off.uncertainty_ns == 150_000 and off.rounds == 3
    assert off.offset_ns == 5 * MS
    # the truth lies within the uncertainty of the chosen sample whatever the host's read time
    for read_at in (0, 300_000):
        s = ClockSample(0, 5 * MS + read_at, 300_000)
        assert abs(s.offset_ns - 5 * MS) <= estimate_offset([s]).uncertainty_ns
    assert off.to_host(off.to_driver(123)) == 123
    with pytest.raises(ValueError):
        estimate_offset([])
    with pytest.raises(ValueError):
        estimate_offset([ClockSample(10, 5, 9)])


def test_an_offset_known_worse_than_the_bound_is_refused() -> None:
    good = estimate_offset([ClockSample(0, 7, 400_000)])  # ±0.2 ms
    far = estimate_offset([ClockSample(0, 7, 3 * MS)])  # ±1.5 ms
    check_offsets({"a": good}, 1.0)
    check_offsets({}, 1.0)
    with pytest.raises(SetupError) as info:
        check_offsets({"a": good, "b": far}, 1.0)
    assert info.value.exit_code == EXIT_SETUP
    text = info.value.one_line()
    assert "host b" in text and "1.500 ms" in text and "--max-clock-offset-ms" in text
    assert "\n" not in text
    check_offsets({"b": far}, 2.0)


class _SlowThenQuick:
    """A stand-in actor (and `ray`) whose clock answers late `slow` times, then at once."""

    def __init__(self, slow: int) -> None:
        self.slow = slow
        self.calls = 0
        self.clock = self

    def remote(self) -> int:
        self.calls += 1
        if self.calls <= self.slow + 1:  # the first call only warms the path
            time.sleep(0.004)
        return time.perf_counter_ns()

    def get(self, value: int) -> int:
        return value


def test_offset_pings_go_on_until_one_answer_is_quick_enough() -> None:
    host = _SlowThenQuick(slow=10)
    off = measure_offset(host, host, enough_ns=MS // 2, rounds=8, most=20)  # type: ignore[arg-type]
    assert off.rounds == 11 and off.uncertainty_ns <= MS // 2
    assert abs(off.offset_ns) <= off.uncertainty_ns  # one clock: the true offset is 0
    busy = _SlowThenQuick(slow=100)
    off = measure_offset(busy, busy, enough_ns=MS // 2, rounds=8, most=12)  # type: ignore[arg-type]
    assert off.rounds == 12 and off.uncertainty_ns > MS  # gives up; check_offsets refuses
    with pytest.raises(SetupError):
        check_offsets({"busy": off}, 1.0)


def test_placement_and_leases() -> None:
    assert place(1, 2) == [0, 1]  # at least one worker per node
    assert place(5, 2) == [0, 1, 0, 1, 0]
    with pytest.raises(ValueError):
        place(2, 0)
    assert lease_size(100_000, 4) == 1024
    assert lease_size(600, 2) == 37
    assert lease_size(3, 4) == 1


def _rows(worker: int, ids: range) -> Any:
    rows = [
        (
            *("p", q, q % 7, 0, q * 10 + 1, q * 10 + 2, None, q * 10 + 5, q * 10 + 4, None),
            *("ok", 200, None, 3, 4, None, "ab" * 32, "base"),
        )
        for q in ids
    ]
    assert len(rows[0]) == len(RECORD_COLUMNS)
    return rows_to_batch(rows, worker)


def test_stitched_parts_read_as_one_phase(tmp_path: Path) -> None:
    import pyarrow as pa

    tables = {0: pa.Table.from_batches([_rows(0, range(0, 5))]), 1: pa.Table.from_batches(
        [_rows(1, range(5, 8)), _rows(1, range(8, 10))]
    )}  # fmt: skip
    assert stitch_parts(tmp_path, tables) == 10
    parts = sorted(p.name for p in (tmp_path / "records.parts").iterdir())
    assert parts[0].startswith("part-w000-") and parts[-1].startswith("part-w001-")
    frame = to_frame(read_parts(tmp_path), keep_worker=True, sort=True)
    assert frame["query_id"].tolist() == list(range(10))
    assert frame["worker"].tolist() == [0] * 5 + [1] * 5
    assert frame["latency_ns"].tolist() == [q * 10 + 4 for q in range(10)]
    with pytest.raises(ValueError, match="worker ids"):
        stitch_parts(tmp_path / "x", {3: tables[1]})


def test_without_ray_the_option_is_a_one_line_setup_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(SetupError, match=r"auditkit\[ray\]"):
        import_ray()
    out = tmp_path / "out"
    code = main(["run", "test04", "--ray-address", "auto", "--output-dir", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_SETUP, err
    assert len(err.splitlines()) == 1 and "pip install 'auditkit[ray]'" in err
    assert not (out / "TEST04" / "audit_result.json").exists()


# --- one phase over a local two-node cluster -------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_args() -> dict[str, Any]:
    # the raylet waits ~15 s for its dashboard agent to write these ports unless given; on a
    # loaded 2-core machine the agent's start can take longer and the node aborts
    return {
        "num_cpus": 1,
        "metrics_agent_port": _free_port(),
        "metrics_export_port": _free_port(),
        "dashboard_agent_listen_port": _free_port(),
        "runtime_env_agent_port": _free_port(),
    }


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A two-node Ray cluster on this machine (Ray's own cluster utilities), started once."""
    ray = pytest.importorskip("ray", reason="Ray not installed (pip install 'auditkit[ray]')")
    from ray.cluster_utils import Cluster

    # jsonschema imports rfc3987_syntax when present (a Jupyter dependency here), which builds
    # a grammar at import: ~3 s of CPU in every Ray process, enough on a loaded machine to miss
    # the raylet's wait for its agent. Ray's processes get a stand-in that is not importable.
    shim = tmp_path_factory.mktemp("ray-shim")
    (shim / "rfc3987_syntax").mkdir()
    (shim / "rfc3987_syntax" / "__init__.py").write_text("raise ImportError('not here')\n")
    with pytest.MonkeyPatch.context() as env:
        path = os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", ""), *sys.path])
        env.setenv("PYTHONPATH", path)
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
        cluster = Cluster(
            initialize_head=True, head_node_args={**_node_args(), "include_dashboard": False}
        )
        try:
            cluster.add_node(**_node_args())
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
            yield str(cluster.address)
        finally:
            ray.shutdown()
            cluster.shutdown()


@pytest.mark.slow
def test_a_phase_over_two_ray_nodes_scores_as_one_host(
    ray_cluster: str, dataset: Dataset, tmp_path: Path
) -> None:
    load = LoadPattern("offline", max_concurrency=8)
    spec = RunSpec("reference", SampleOrder.without_replacement(1), 240, load)
    adapter = CompletionsAdapter("mock-llm", 4, 0.0, False)
    mock_cfg = MockConfig(base_latency_ms=25.0, prefill_us_per_token=0.0)
    with MockProcess(mock_cfg) as mock:
        assert mock.url.startswith("http://127.0.0.1:")
        target = HttpTarget(mock.url)
        started = time.monotonic()
        spread = run_phase(
            spec, dataset, adapter, target, workers=2, ray_address=ray_cluster,
            records_dir=tmp_path / "reference",
        )  # fmt: skip
        spread_s = time.monotonic() - started
        one = run_phase(spec, dataset, adapter, target)
    s, records = spread.summary, spread.records
    assert s.complete and len(records) == spec.planned_queries
    assert records["query_id"].is_unique
    assert sorted(records["sample_index"]) == sorted(one.records["sample_index"])
    # records from both nodes: two hosts, each with its worker and its share of the records
    assert len(s.hosts) == 2 and len({h.node_id for h in s.hosts}) == 2
    assert all(h.records > 0 for h in s.hosts) and sum(h.records for h in s.hosts) == 240
    by_worker = records.groupby("worker").size().to_dict()
    for h in s.hosts:
        assert sum(by_worker.get(w, 0) for w in h.workers) == h.records
        # both nodes share this machine's CLOCK_MONOTONIC: the true offset is 0, so the
        # estimate must lie within its own error bound of it
        assert 0 < h.clock_uncertainty_ns <= 1_000_000
        assert abs(h.clock_offset_ns) <= h.clock_uncertainty_ns
    # the score (offline: samples/s) of one host within noise: each query takes 25 ms at 8 in
    # flight, so both runs sit near 8 / 25 ms; the margin covers this shared machine's jitter
    assert one.summary.score is not None and s.score is not None
    assert math.isclose(s.score, one.summary.score, rel_tol=0.2), (s.score, one.summary.score)
    for col in ("sent_ns", "completed_ns"):  # the driver's time axis: from the phase start
        assert records[col].min() >= 0
    assert records["completed_ns"].max() <= s.duration_ns + 1
    # phase.json carries the hosts (an additive field, same schema_version)
    artifacts.write_phase(tmp_path, spread)
    _, back = artifacts.load_phase(tmp_path / "reference")
    assert back.hosts == s.hosts
    hosts = [(h.clock_offset_ns, h.clock_uncertainty_ns) for h in s.hosts]
    print(f"over Ray {spread_s:.2f} s; score {s.score:.1f} vs {one.summary.score:.1f}; {hosts}")
